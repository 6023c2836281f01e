"""The stratified split and the offline evaluation: protocol, reports, and the ``recops evaluate`` command."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.ranking import ranking_metrics
from engine.cli.main import main
from engine.config import Settings, get_settings
from engine.data.demo import DemoWorld
from engine.data.split import stratified_split
from engine.models import PopularityRecommender
from engine.models.evaluation import (
    EvaluationSplit,
    ModelReport,
    evaluate,
    evaluate_command,
    format_table,
    reports_to_json,
)
from tests.support.synthetic_data import T0, make_dataset, two_taste_dataset

# ---- split --------------------------------------------------------------------------------------


def _user_events(user: str, n_items: int, t0: float = T0) -> list[tuple[str, str, str, float, float]]:
    return [(user, f"i{j}", "view", t0 + j, 1.0) for j in range(n_items)]


def test_split_sizes_per_user_follow_round_half_even() -> None:
    # round(0.75·n): n = 1 → 1, 2 → 2 (1.5 rounds to even), 3 → 2, 4 → 3, 6 → 4 (4.5 → 4), 10 → 8
    sizes = {"u1": 1, "u2": 2, "u3": 3, "u4": 4, "u6": 6, "u10": 10}
    rows = [e for user, n in sizes.items() for e in _user_events(user, n)]
    train, test = stratified_split(make_dataset(rows, [f"i{j}" for j in range(10)]).events)
    n_train = train.groupby("user_id").size().to_dict()
    n_test = test.groupby("user_id").size().reindex(list(sizes), fill_value=0).to_dict()
    assert n_train == {"u1": 1, "u2": 2, "u3": 2, "u4": 3, "u6": 4, "u10": 8}
    assert n_test == {"u1": 0, "u2": 0, "u3": 1, "u4": 1, "u6": 2, "u10": 2}


def test_split_decides_per_pair_and_tests_on_the_latest_event() -> None:
    rows = []
    for j in range(8):
        rows += [("u", f"i{j}", "view", T0 + j, 1.0), ("u", f"i{j}", "click", T0 + j + 0.5, 1.0)]
    rows += [("u", "i0", "impression", T0 + 99, 1.0), ("u", "i9", "impression", T0 + 99, 1.0)]
    train, test = stratified_split(make_dataset(rows, [f"i{j}" for j in range(10)]).events, seed=3)
    assert set(train["item_id"]).isdisjoint(test["item_id"])
    assert "i9" not in set(train["item_id"]) | set(test["item_id"])  # an impression alone is no interaction
    assert (train["type"] != "impression").all()
    assert len(test) == 2 and (test["type"] == "click").all()  # one row per pair, the latest
    assert train.groupby("item_id").size().eq(2).all()  # train keeps every event of its pairs


def test_split_is_seeded() -> None:
    events = two_taste_dataset().events
    a_train, a_test = stratified_split(events, seed=1)
    b_train, b_test = stratified_split(events, seed=1)
    _, c_test = stratified_split(events, seed=2)
    pd.testing.assert_frame_equal(a_test, b_test)
    pd.testing.assert_frame_equal(a_train, b_train)
    assert not a_test[["user_id", "item_id"]].equals(c_test[["user_id", "item_id"]])


def _ratings(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    rows = [(u, i, "rating", T0 + n, 4.0) for n, (u, i) in enumerate(pairs)]
    return make_dataset(rows, sorted({i for _, i in pairs})).events


def _test_pairs(test: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(test["user_id"], test["item_id"], strict=True))


# RandomState(42).rand(8) = .3745 .9507 .7320 .5987 .1560 .1560 .0581 .8662 (rows 0..7 below)
_INTERLEAVED = [("u1", "i0"), ("u2", "i0"), ("u1", "i1"), ("u1", "i2"),
                ("u2", "i1"), ("u1", "i3"), ("u2", "i2"), ("u2", "i3")]  # fmt: skip


def test_split_by_user_by_hand() -> None:
    # u1's rows 0, 2, 3, 5 draw .3745 .7320 .5987 .15599: shuffled i3 i0 i2 | i1 (round(0.75·4) = 3 train);
    # u2's rows 1, 4, 6, 7 draw .9507 .15602 .0581 .8662: shuffled i2 i1 i3 | i0
    train, test = stratified_split(_ratings(_INTERLEAVED), seed=42)
    assert _test_pairs(test) == {("u1", "i1"), ("u2", "i0")}
    assert len(train) == 6 and not _test_pairs(train) & _test_pairs(test)


def test_split_by_item_by_hand() -> None:
    # the same rows with the roles swapped: item a's draws rank its users u3 u0 u2 | u1, item b's u2 u1 u3 | u0
    pairs = [(i.replace("i", "u"), u.replace("u1", "a").replace("u2", "b")) for u, i in _INTERLEAVED]
    _, test = stratified_split(_ratings(pairs), seed=42, by="item")
    assert _test_pairs(test) == {("u1", "a"), ("u0", "b")}
    with pytest.raises(ValueError, match="by must be one of"):
        stratified_split(_ratings(pairs), by="session")  # type: ignore[arg-type]


def _recommenders_stratification(data: pd.DataFrame, ratio: float, by: str, seed: int) -> pd.DataFrame:
    """Microsoft Recommenders' ``_do_stratification`` (python_splitters.py), is_random=True, min_rating=1,
    transcribed line by line: the reference the split must reproduce."""
    np.random.seed(seed)
    data = data.copy()
    data["random"] = np.random.rand(data.shape[0])
    data = data.sort_values([by, "random"])
    groups = data.groupby(by)
    data["count"] = groups[by].transform("count")
    data["rank"] = groups.cumcount() + 1
    return data[data["rank"] > round(ratio * data["count"])]


@pytest.mark.parametrize("by", ["user", "item"])
def test_split_reproduces_recommenders_row_for_row(by: str) -> None:
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 25
    sizes = rng.integers(1, 15, size=n_users)  # groups of 1 and 2 too, and every rounding case
    pairs = [(f"u{u}", f"i{j}") for u in range(n_users) for j in rng.choice(n_items, size=sizes[u], replace=False)]
    order = rng.permutation(len(pairs))  # rows interleaved, as a ratings file is
    pairs = [pairs[k] for k in order]
    reference = _recommenders_stratification(
        pd.DataFrame(pairs, columns=["user", "item"]), ratio=0.75, by=by, seed=42
    )
    for seed in (42, 3):
        _, test = stratified_split(_ratings(pairs), seed=seed, by=by)
        if seed == 42:
            assert _test_pairs(test) == set(zip(reference["user"], reference["item"], strict=True))
        else:
            assert _test_pairs(test) != set(zip(reference["user"], reference["item"], strict=True))


def test_split_min_rating_and_ratio() -> None:
    rows = [("u", f"i{j}", "rating", T0 + j, float(1 + j % 5)) for j in range(10)]
    train, test = stratified_split(make_dataset(rows, [f"i{j}" for j in range(10)]).events, min_rating=4)
    kept = pd.concat([train, test])
    assert sorted(kept["item_id"]) == ["i3", "i4", "i8", "i9"]  # ratings 4 and 5 only
    with pytest.raises(ValueError):
        stratified_split(pd.DataFrame(rows, columns=train.columns), ratio=1.0)


# ---- evaluation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_taste_reports() -> list[ModelReport]:
    # λ = 20 is tuned for thousands of users; 60 users and 24 items need far less shrinkage
    return evaluate(two_taste_dataset(), k=4, params={"als": {"regularization": 5.0}})


def test_collaborative_models_beat_popularity_on_two_tastes(two_taste_reports: list[ModelReport]) -> None:
    by_name = {r.model: r for r in two_taste_reports}
    assert list(by_name) == ["popularity", "item_item", "als"]
    for name in ("item_item", "als"):
        assert by_name[name].ndcg > by_name["popularity"].ndcg + 0.05
        assert by_name[name].precision > by_name["popularity"].precision
    # popularity hands out the same few items to everyone
    assert by_name["popularity"].coverage < by_name["item_item"].coverage
    assert all(r.n_users == 60 for r in two_taste_reports)


def test_split_for_evaluation_never_tests_on_train_items() -> None:
    split = EvaluationSplit.build(two_taste_dataset())
    for user, relevant in zip(split.test_users, split.relevant, strict=True):
        u = split.train.user_index[user]
        seen = set(split.train.item_ids[split.train.matrix[u].indices])
        assert relevant and not relevant & seen


@pytest.mark.parametrize("by", ["user", "item"])
def test_evaluation_split_tests_each_user_on_the_split_s_test_pairs(by: str) -> None:
    ds = two_taste_dataset()
    _, test = stratified_split(ds.events, seed=42, by=by)  # type: ignore[arg-type]
    split = EvaluationSplit.build(ds, by=by)  # type: ignore[arg-type]
    found = {(user, item) for user, items in zip(split.test_users, split.relevant, strict=True) for item in items}
    assert found == _test_pairs(test)


def test_report_matches_a_direct_computation() -> None:
    ds = two_taste_dataset()
    (report,) = evaluate(ds, k=5, models=("popularity",), params={"popularity": {"half_life_days": None}})
    split = EvaluationSplit.build(ds)
    model = PopularityRecommender(half_life_days=None).fit(split.train)
    lists = [[i for i, _ in model.recommend(u, n=5)] for u in split.test_users]
    expected = ranking_metrics(lists, split.relevant, 5)
    assert report.precision == pytest.approx(expected["precision"])
    assert report.ndcg == pytest.approx(expected["ndcg"])
    assert report.map == pytest.approx(expected["map"])


def test_evaluate_on_a_small_demo_world() -> None:
    ds = DemoWorld.generate(seed=5, n_users=300, n_items=150, n_categories=6, days=20).dataset()
    reports = evaluate(ds, k=10)
    assert [r.model for r in reports] == ["popularity", "item_item", "als"]
    for r in reports:
        assert r.n_users > 100
        for value in (r.precision, r.recall, r.ndcg, r.map, r.coverage, r.diversity):
            assert 0.0 <= value <= 1.0
        assert r.ndcg > 0 and r.novelty > 0 and r.train_seconds >= 0
    assert reports[0].coverage < reports[2].coverage


def test_evaluate_rejects_bad_arguments() -> None:
    ds = two_taste_dataset()
    with pytest.raises(ValueError, match="unknown models"):
        evaluate(ds, models=("popularity", "magic"))
    with pytest.raises(ValueError):
        evaluate(ds, k=0)


def test_table_and_json(two_taste_reports: list[ModelReport]) -> None:
    table = format_table(two_taste_reports).splitlines()
    assert len(table) == 2 + len(two_taste_reports)
    assert table[0].split()[:2] == ["model", "prec@k"]
    assert len({len(line) for line in table}) == 1  # aligned
    assert table[3].startswith("item_item")
    data = json.loads(reports_to_json(two_taste_reports, dataset="two-taste", k=4))
    assert data["k"] == 4 and [r["model"] for r in data["reports"]] == ["popularity", "item_item", "als"]
    assert data["reports"][1]["ndcg"] == pytest.approx(two_taste_reports[1].ndcg)


# ---- command ------------------------------------------------------------------------------------


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"dataset": "demo", "path": None, "k": 10, "json": False}
    return argparse.Namespace(**{**base, **kw})


def _write_ml_latest(directory: Path) -> Path:
    """The two-taste world written as an ml-latest directory (ratings.csv, movies.csv)."""
    ds = two_taste_dataset()
    ev = ds.events[ds.events["type"] == "view"]
    users = {u: n + 1 for n, u in enumerate(sorted(ev["user_id"].unique()))}
    items = {i: n + 1 for n, i in enumerate(ds.items["item_id"])}
    directory.mkdir()
    pd.DataFrame(
        {
            "userId": ev["user_id"].map(users),
            "movieId": ev["item_id"].map(items),
            "rating": 4.0,
            "timestamp": ev["timestamp"].astype(np.int64),
        }
    ).to_csv(directory / "ratings.csv", index=False)
    pd.DataFrame(
        {"movieId": list(items.values()), "title": list(items), "genres": [f"G{i[0]}" for i in items]}
    ).to_csv(directory / "movies.csv", index=False)
    return directory


def test_command_on_movielens_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_ml_latest(tmp_path / "ml-latest-small")
    assert evaluate_command(_args(dataset="movielens", path=str(path), k=5, json=True), Settings()) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["k"] == 5 and {r["model"] for r in data["reports"]} == {"popularity", "item_item", "als"}


def test_command_prints_a_table_for_the_demo_world(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_command(_args(k=5), Settings(demo_users=200, demo_items=100)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo:") and out[1].split()[0] == "model"
    assert [line.split()[0] for line in out[3:6]] == ["popularity", "item_item", "als"]
    assert out[6].startswith("truth:")


def _without_timings(reports: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{key: value for key, value in r.items() if key != "train_seconds"} for r in reports]


def test_recops_evaluate_uses_the_demo_world_of_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = {"RECOPS_DEMO_SEED": "7", "RECOPS_DEMO_USERS": "200", "RECOPS_DEMO_ITEMS": "100"}
    for name, value in world.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()  # the command reads the environment through the process-wide settings
    try:
        assert main(["evaluate", "--k", "5", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    printed = _without_timings(json.loads(capsys.readouterr().out)["reports"])

    def reports(seed: int) -> list[dict[str, object]]:
        demo = DemoWorld.generate(seed=seed, n_users=200, n_items=100)
        return _without_timings([asdict(r) for r in evaluate(demo.dataset(), k=5, world=demo)])

    assert printed == reports(7)
    assert printed != reports(42)  # the default world would give other numbers


@pytest.mark.parametrize(
    ("path", "message"), [(None, "needs --path"), ("/nonexistent/ml-100k", "/nonexistent/ml-100k")]
)
def test_command_dataset_errors_are_one_line_and_exit_2(
    path: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evaluate_command(_args(dataset="movielens", path=path), Settings()) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_truth_share_ranks_models_by_the_demo_worlds_ground_truth() -> None:
    world = DemoWorld.generate(seed=3, n_users=2_000, n_items=600)
    reports = {r.model: r for r in evaluate(world.dataset(), k=10, world=world)}
    for r in reports.values():
        assert r.truth_share is not None and 0.0 < r.truth_share <= 1.0
    # personalised models beat the popularity list on what users truly click
    assert reports["als"].truth_share > reports["popularity"].truth_share * 1.2
    assert reports["item_item"].truth_share > reports["popularity"].truth_share


def test_truth_share_is_absent_without_a_world() -> None:
    dataset = DemoWorld.generate(seed=3, n_users=300, n_items=200).dataset()
    assert all(r.truth_share is None for r in evaluate(dataset, k=5, models=("popularity",)))
