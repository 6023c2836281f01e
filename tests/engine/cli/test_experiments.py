"""`recops analyze` and `recops experiments ...` in process: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from analysis.readout import VariantSummary, analyze
from engine.cli.main import main
from engine.config import get_settings


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "summary.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -------------------------------------------------------------------------------- analyze


def test_analyze_binomial_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write(tmp_path, "variant,users,sum\ncontrol,10000,1000\nb,10000,1130\nc,10000,1010\n")
    code, out, err = run(["analyze", "--input", csv, "--engine", "all", "--json"], capsys)
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["srm_p_value"] == pytest.approx(1.0)
    assert [r["variant"] for r in data["results"]] == ["b", "c"]
    b = data["results"][0]
    for field in ("variant", "mean", "lift_abs", "lift_rel", "ci_abs", "ci_rel", "p_value", "chance_to_win",
                  "expected_loss", "p_value_abs", "p_value_rel", "test", "method", "ci"):
        assert field in b
    expected = analyze(
        [VariantSummary("control", 10000, 1000), VariantSummary("b", 10000, 1130), VariantSummary("c", 10000, 1010)],
        "binomial",
        "all",
    )
    assert b["p_value"] == pytest.approx(expected.results[0].p_value)
    assert b["mean"] == pytest.approx(0.113) and b["lift_rel"] == pytest.approx(0.13)
    assert b["test"] == "relative" and b["p_value"] == b["p_value_rel"] and data["test"] == "relative"
    assert b["chance_to_win"] > 0.95 and data["decision"] == "ship"


def test_analyze_mean_with_cuped_and_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    rows = ["variant,users,sum,sum_squares,pre_sum,pre_sum_squares,sum_product,weight"]
    for name, n, lift in (("control", 3000, 0.0), ("treatment", 1000, 0.3)):
        pre = rng.normal(10, 3, n)
        y = pre + rng.normal(lift, 1, n)
        rows.append(f"{name},{n},{y.sum()},{(y**2).sum()},{pre.sum()},{(pre**2).sum()},{(y * pre).sum()},"
                    f"{3 if name == 'control' else 1}")
    csv = write(tmp_path, "\n".join(rows) + "\n")
    code, out, _ = run(["analyze", "--input", csv, "--metric-type", "mean", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["cuped_theta"] == pytest.approx(1.0, abs=0.1)
    assert data["srm_p_value"] > 0.5  # 3:1 split matches the 3:1 weights
    assert data["results"][0]["p_value"] < 1e-6
    code, out, _ = run(["analyze", "--input", csv, "--metric-type", "mean"], capsys)
    assert code == 0 and "treatment" in out and "decision: ship treatment" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("variant,users,sum\nA,100,10\nB,abc,12\n", "row 2, column 'users': expected a number, got 'abc'"),
        ("variant,users\nA,100\nB,100\n", "column 'sum' is missing"),
        ("variant,users,sum\nA,100,10\n", "need a control row and at least one treatment row"),
        ("variant,users,sum\nA,100,10\nA,100,12\n", "'A' repeats row 1"),
        ("variant,users,sum\nA,100,10\nB,100,120\n", "120.0 conversions for 100 users"),
        ("variant,users,sum\nA,100,10,7\nB,100,12\n", "more values than the header"),
        ("", "the file is empty"),
        ("variant,users,sum,pre_sum\nA,100,10,5\nB,100,12,6\n", "CUPED needs all of"),
    ],
)
def test_analyze_bad_csv_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    code, out, err = run(["analyze", "--input", write(tmp_path, text)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_analyze_missing_file_and_mean_without_squares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["analyze", "--input", str(tmp_path / "missing.csv")], capsys)
    assert code == 2 and "cannot read" in err and err.count("\n") == 1
    csv = write(tmp_path, "variant,users,sum\nA,100,10\nB,100,12\n")
    code, _, err = run(["analyze", "--input", csv, "--metric-type", "mean"], capsys)
    assert code == 2 and "sum_squares is required" in err


def test_analyze_pins_gbstats_and_keeps_the_one_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13: 10000/564 was "ship (+12.8%, p = 0.0438)" beside a relative interval holding 0."""
    csv = write(tmp_path, "variant,users,sum\ncontrol,10000,500\nb,10000,560\n")
    code, out, _ = run(["analyze", "--input", csv, "--json"], capsys)
    b = json.loads(out)["results"][0]
    assert code == 0 and b["method"] == "welch-t"
    assert b["p_value_rel"] == pytest.approx(0.07359, abs=5e-6) and b["p_value_abs"] == pytest.approx(0.05825, abs=5e-6)
    assert b["ci_rel"] == pytest.approx([-0.01146, 0.25146], abs=5e-6) and b["ci"] == b["ci_rel"]
    csv = write(tmp_path, "variant,users,sum\ncontrol,10000,500\nb,10000,564\n")
    code, out, _ = run(["analyze", "--input", csv], capsys)
    assert code == 0 and "decision: ship" not in out
    assert "one test: the relative one (p_value_rel with ci_rel)" in out
    code, out, _ = run(["analyze", "--input", csv, "--test", "absolute", "--json"], capsys)
    data = json.loads(out)
    assert data["test"] == "absolute" and data["decision"] == "ship" and data["results"][0]["ci"][0] > 0


def test_analyze_notes_exact_tests_and_missing_relative_intervals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["analyze", "--input", write(tmp_path, "variant,users,sum\nA,20,2\nB,20,7\n")], capsys)
    assert code == 0 and "fisher-exact" in out and "note (B): frequentist: Fisher's exact test" in out
    code, out, _ = run(["analyze", "--input", write(tmp_path, "variant,users,sum\nA,5000,0\nB,5000,25\n")], capsys)
    assert code == 0 and "note (B): frequentist: control mean is 0: the relative lift" in out
    assert " absolute " in out  # the verdict's test column


def test_analyze_cuped_table_shows_the_adjusted_means(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["variant,users,sum,sum_squares,pre_sum,pre_sum_squares,sum_product",
            "control,1000,10500,120000,10000,110000,114000", "treatment,1000,10900,128000,10300,115000,120000"]
    csv = write(tmp_path, "\n".join(rows) + "\n")
    code, out, _ = run(["analyze", "--input", csv, "--metric-type", "mean"], capsys)
    assert code == 0 and "mean (CUPED-adjusted)" in out
    code, out, _ = run(["analyze", "--input", csv, "--metric-type", "mean", "--json"], capsys)
    r = json.loads(out)["results"][0]
    assert r["lift_rel"] == pytest.approx(r["adjusted_mean"] / r["control_adjusted_mean"] - 1)
    assert r["adjusted_mean"] != pytest.approx(r["mean"])


def test_analyze_sequential_plan_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write(tmp_path, "variant,users,sum\ncontrol,14000,700\nb,14000,790\n")
    code, out, _ = run(["analyze", "--input", csv, "--sequential", "msprt", "--planned-users", "31000",
                        "--looks", "14", "--mde", "0.1", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["engine"] == "sequential" and data["results"][0]["method"] == "msprt"
    assert any("31,000 users per arm, 14 planned looks, most powerful at a +10.0% lift" in m for m in data["messages"])
    code, out, _ = run(["analyze", "--input", csv, "--sequential", "group", "--planned-users", "28000",
                        "--looks", "4", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["results"][0]["method"] == "group-sequential"
    assert any("look 2 at 50% of the planned information" in m for m in data["results"][0]["messages"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sequential", "group"], "--sequential group needs --looks"),
        (["--planned-users", "nan"], "--planned-users: must be a positive finite number"),
        (["--looks", "2.5"], "--looks: expected a whole number"),
        (["--mde", "abc"], "--mde: expected a number"),
        (["--alpha", "inf"], "--alpha: must be a positive finite number"),
        (["--alpha", "1.5"], "alpha must be in (0, 1)"),
        (["--sequential", "msprt", "--engine", "bayesian"], "--sequential reads the sequential engine"),
    ],
)
def test_analyze_bad_flags_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    csv = write(tmp_path, "variant,users,sum\nA,100,10\nB,100,12\n")
    code, out, err = run(["analyze", "--input", csv, *flags], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


@pytest.mark.filterwarnings("error")  # a numpy RuntimeWarning would reach the user's stderr too
@pytest.mark.parametrize(
    "row",
    ["B,100,12,1e308", "B,100,1e308,1e308", "B,100,nan,5", "B,100,inf,inf", "B,-5,1,1", "B,0,0,0", "B,100,-3,9"],
)
def test_analyze_never_prints_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str) -> None:
    """Any finite or infinite number, NaN, zero or negative count: a result, or one line and exit 2."""
    csv = write(tmp_path, f"variant,users,sum,sum_squares\nA,100,10,1e308\n{row}\n")
    for engine in ("frequentist", "sequential", "bayesian", "all"):
        code, out, err = run(["analyze", "--input", csv, "--metric-type", "mean", "--engine", engine], capsys)
        assert "Traceback" not in err and "Warning" not in err
        assert (code == 0 and "decision:" in out and err == "") or (code == 2 and err.count("\n") == 1)


# ----------------------------------------------------------------------------- experiments


@pytest.fixture
def cli_env(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_experiments_commands(tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {
        "key": "cli-exp",
        "name": "CLI experiment",
        "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}],
    }
    path = write(tmp_path, json.dumps(spec), "exp.json")
    assert run(["experiments", "list"], capsys)[1].strip() == "no experiments"
    code, out, _ = run(["experiments", "create", "--file", path], capsys)
    assert code == 0 and "created cli-exp (draft, version 1)" in out
    code, _, err = run(["experiments", "create", "--file", path], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    code, _, err = run(["experiments", "readout", "cli-exp"], capsys)
    assert code == 2 and "has not started" in err
    assert "cli-exp: running (phase 1" in run(["experiments", "start", "cli-exp"], capsys)[1]
    assert "cli-exp: paused" in run(["experiments", "pause", "cli-exp"], capsys)[1]
    code, _, err = run(["experiments", "pause", "cli-exp"], capsys)
    assert code == 2 and "only a running experiment can pause" in err
    code, out, _ = run(["experiments", "list"], capsys)
    assert code == 0 and "cli-exp" in out and "paused" in out and "control:popularity@0.50" in out

    code, out, _ = run(["experiments", "readout", "cli-exp", "--json", "--metric", "revenue"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["key"] == "cli-exp" and data["goal"]["metric"] == "ctr"
    assert [m["metric"] for m in data["secondary"]] == ["revenue"]
    assert "srm_p_value" in data and "decision_text" in data
    code, out, _ = run(["experiments", "readout", "cli-exp"], capsys)
    assert code == 0 and "goal metric ctr" in out and "decision:" in out

    assert "cli-exp: stopped" in run(["experiments", "stop", "cli-exp"], capsys)[1]
    code, out, _ = run(["experiments", "show", "cli-exp"], capsys)
    assert code == 0 and json.loads(out)["status"] == "stopped"


def test_experiments_command_errors(tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["experiments", "start", "nope"], capsys)
    assert code == 2 and err.strip() == "error: no experiment 'nope'"
    bad = write(tmp_path, json.dumps({"key": "x", "name": "x", "variants": [{"name": "a", "model": "als"}]}), "b.json")
    code, _, err = run(["experiments", "create", "--file", bad], capsys)
    assert code == 2 and "at least 2 variants" in err and err.count("\n") == 1
    code, _, err = run(["experiments", "create", "--file", write(tmp_path, "{nope", "c.json")], capsys)
    assert code == 2 and "not valid JSON" in err
    code, _, err = run(["experiments", "create", "--file", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and "No such file" in err


def test_simulate_refuses_a_dataset_without_ground_truth(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The simulated shoppers are the demo world's: against another dataset they would ask for
    users and items the API does not serve."""
    code, out, err = run(["simulate", "--rate", "1", "--duration", "1", "--dataset", "shop"], capsys)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "recops replay --dataset shop" in err and "demo world's ground truth" in err


def test_interleaving_readout_prints_the_preference_block(
    tmp_path: Path, cli_env: None, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.events.tracker import Event
    from engine.experiments import ExperimentService
    from engine.runtime import dataset_keys

    spec = {"key": "cli-ilv", "name": "interleaved", "kind": "interleaving", "engine": "sequential",
            "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}]}
    code, _, err = run(["experiments", "create", "--file", write(tmp_path, json.dumps(
        {**spec, "variants": [*spec["variants"], {"name": "third", "model": "ease"}]}), "bad.json")], capsys)
    assert code == 2 and err.count("\n") == 1 and "exactly 2 rankers" in err
    assert run(["experiments", "create", "--file", write(tmp_path, json.dumps(spec), "ilv.json")], capsys)[0] == 0
    assert run(["experiments", "start", "cli-ilv"], capsys)[0] == 0
    # users served merged lists, then clicking: 3 on the treatment's pick, 1 on the control's
    service = ExperimentService(redis_client, dataset_keys(get_settings(), "demo"))
    service.refresh(force=True)
    for k, team in enumerate("BBBA"):
        assignment = service.assign(f"u{k}")
        assert assignment is not None
        merged = service.interleave(assignment, f"r{k}", ["a1", "a2"], ["b1", "b2"], 4)
        item = next(i for i, t in zip(merged.items, merged.teams, strict=True) if t == team)
        service.observe([Event(user_id=f"u{k}", item_id=str(item), type="click", request_id=f"r{k}")])

    code, out, _ = run(["experiments", "readout", "cli-ilv", "--json"], capsys)
    block = json.loads(out)["interleaving"]
    assert code == 0 and (block["users"], block["wins"], block["losses"], block["ties"]) == (4, 3, 1, 0)
    assert block["preference_share"] == 0.75 and block["sequential"]["method"] == "beta-mixture SPRT"
    assert block["decided_by"] == "beta-mixture SPRT" and block["verdict"] == "no preference detected"
    assert sum(p["clicks_a"] + p["clicks_b"] for p in block["positions"]) == 4
    code, out, _ = run(["experiments", "readout", "cli-ilv"], capsys)
    assert code == 0 and "3 prefer B, 1 prefer A, 0 ties" in out and "preference share (B) 75.0%" in out
    assert "sequential (beta-mixture SPRT)" in out and "decision: no preference detected yet" in out
