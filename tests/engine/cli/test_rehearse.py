"""`recops rehearse` in process on the small demo world and a real Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.support.cli import Recops
from tests.support.engine_fixtures import small_world_env


@pytest.fixture
def cli(recops: Recops, small_world_dir: Path, redis_url: str, redis_client: redis.Redis) -> Recops:
    recops.env(REDIS_URL=redis_url, RECOPS_DATA_DIR=str(small_world_dir), **small_world_env())
    return recops


def test_ab_rehearsal_json_names_the_verdict_and_the_truth(cli: Recops) -> None:
    code, out, err = cli(["rehearse", "--design", "ab", "--control", "popularity@production",
                          "--treatment", "als:n=10", "--users", "800", "--seed", "3", "--json"])
    assert code == 0 and err == ""
    result = json.loads(out)
    assert {"design", "users", "winner", "truth_winner", "p_value", "significant"} <= set(result)
    assert (result["design"], result["users"], result["visits"], result["seed"]) == ("ab", 800, 1, 3)
    assert result["truth_winner"] == result["winner"] == "treatment" and result["significant"] is True
    assert 0 <= result["p_value"] < 0.05
    assert result["control"]["spec"] == "popularity@production" and result["treatment"]["serving"] == {"n": 10}
    arms = result["arms"]
    assert arms["control"]["users"] + arms["treatment"]["users"] == 800
    low, high = result["effect"]["ci"]
    assert 0 < low < result["effect"]["lift"] < high


def test_interleaving_rehearsal_text_and_json(cli: Recops) -> None:
    argv = ["rehearse", "--design", "interleaving", "--control", "als", "--treatment", "als",
            "--users", "200", "--visits", "2", "--seed", "5"]
    code, out, err = cli([*argv, "--json"])
    assert code == 0 and err == ""
    result = json.loads(out)
    assert result["design"] == "interleaving" and result["truth_winner"] is None
    # one ranker on both sides: every click falls in the lists' common prefix, credited to neither
    assert result["counts"] == {"wins": 0, "losses": 0, "ties": 200}
    assert result["p_value"] is None and result["significant"] is False and result["winner"] is None
    assert "no preference to test" in result["message"]
    code, out, err = cli(argv)
    assert code == 0 and "interleaving rehearsal: 200 users, 2 visit(s)" in out and "truth      a tie" in out
    assert "verdict    no test (none of the 200 users credited" in out
    subtle = ["rehearse", "--design", "interleaving", "--control", "als", "--treatment", "als:mmr_lambda=0.75",
              "--users", "300", "--seed", "5", "--json"]
    code, out, err = cli(subtle)
    result = json.loads(out)
    assert code == 0 and result["significant"] == (result["p_value"] < 0.05)
    assert (result["winner"] is None) == (not result["significant"])
    assert result["test"] == "Wilcoxon signed-rank test of the credit differences"
    low, high = result["effect"]["mean_credit_difference_ci"]
    assert low < result["effect"]["mean_credit_difference"] < high
    assert (low > 0 or high < 0) == (result["effect"]["t_test_p_value"] < 0.05)


def test_visit_law_rehearsal_says_which_law(cli: Recops) -> None:
    argv = ["rehearse", "--design", "interleaving", "--control", "popularity", "--treatment", "als",
            "--users", "150", "--visit-days", "14", "--seed", "2"]
    code, out, err = cli([*argv, "--json"])
    assert code == 0 and err == ""
    result = json.loads(out)
    assert {"design", "users", "winner", "truth_winner", "p_value", "significant", "visit_law"} <= set(result)
    law = result["visit_law"]
    assert law["law"] == "world" and law["days"] == 14.0 and law["total"] > 150 and result["visits"] is None
    assert result["truth_winner"] == "treatment" and result["winner"] in ("treatment", None)
    code, out, err = cli(argv)
    assert code == 0 and "150 users, visits by the world's law over 14 days (" in out
    code, out, _ = cli(["rehearse", "--design", "ab", "--control", "popularity", "--treatment", "als",
                        "--users", "20", "--json"])
    assert code == 0 and json.loads(out)["visit_law"]["law"] == "fixed"


@pytest.mark.parametrize(("args", "says"), [
    (["--control", "als@latest"], "after '@' expected"),
    (["--treatment", "als:mmr_lambda=3"], "mmr_lambda: Input should be less than or equal to 1"),
    (["--treatment", "als@9"], "no version 9"),
    (["--users", "1"], "--users must be within 2.."),
    (["--visits", "0"], "--visits must be within 1..100"),
    (["--visits", "2", "--visit-days", "14"], "--visits and --visit-days exclude each other"),
    (["--visit-days", "0"], "--visit-days must be a number of days within (0, 365]"),
    (["--visit-days", "-3"], "--visit-days must be a number of days within (0, 365]"),
    (["--visit-days", "nan"], "got 'nan'"),
    (["--visit-days", "two weeks"], "got 'two weeks'"),
    (["--visit-days", "400"], "--visit-days must be a number of days"),
    (["--dataset", "shop"], "dataset 'shop' has no ground truth"),
])
def test_bad_input_is_one_line_and_exit_2(cli: Recops, args: list[str], says: str) -> None:
    argv = {"--design": "ab", "--control": "popularity", "--treatment": "als", "--users": "50"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        argv[flag] = value
    code, out, err = cli(["rehearse", *[part for pair in argv.items() for part in pair]])
    assert code == 2 and out == ""
    assert says in err and err.count("\n") == 1 and err.startswith("recops rehearse: ")


def test_non_demo_served_dataset_is_refused(cli: Recops) -> None:
    cli.env(RECOPS_DATASET="shop")
    code, _, err = cli(["rehearse", "--design", "interleaving", "--control", "als", "--treatment", "als",
                        "--users", "10"])
    assert code == 2 and "only the demo world" in err
