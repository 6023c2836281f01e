"""The demo world: deterministic, shaped like a shop, and its history drawn from its own ground truth."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.demo import DAY, END_EPOCH, DemoWorld, position_bias
from engine.data.schema import EVENT_COLUMNS, EVENT_TYPES, ITEM_COLUMNS, Dataset, DatasetError

N_USERS, N_ITEMS = 800, 400
TOP = np.arange(10)


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return DemoWorld.generate(seed=7, n_users=N_USERS, n_items=N_ITEMS)


def _true_ctr(world: DemoWorld, user: int, items: np.ndarray) -> float:
    """Expected clicks per slot of showing ``items`` top-down to ``user``."""
    return float(world.click_probability(user, items, np.arange(len(items))).mean())


# ---- determinism -----------------------------------------------------------------
def test_same_seed_gives_the_same_world_and_another_seed_does_not() -> None:
    a = DemoWorld.generate(seed=3, n_users=300, n_items=120)
    b = DemoWorld.generate(seed=3, n_users=300, n_items=120)
    c = DemoWorld.generate(seed=4, n_users=300, n_items=120)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.items, b.items)
    np.testing.assert_array_equal(a.user_vecs, b.user_vecs)
    np.testing.assert_array_equal(a.relevance("u00005"), b.relevance("u00005"))
    assert len(a.events) != len(c.events) or not a.events.equals(c.events)
    assert not np.array_equal(a.item_vecs, c.item_vecs)
    assert (a.items["title"] != c.items["title"]).any()


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="n_categories"):
        DemoWorld.generate(n_users=10, n_items=50, n_categories=99)
    with pytest.raises(ValueError, match="n_items"):
        DemoWorld.generate(n_users=10, n_items=5, n_categories=20)


# ---- catalogue and history shape ----------------------------------------------------
def test_catalogue_has_readable_categories_titles_and_ids(world: DemoWorld) -> None:
    items = world.items
    assert len(items) == N_ITEMS
    assert items["item_id"].is_unique
    assert items["item_id"].str.fullmatch(r"i\d{5}").all()
    assert items["item_id"].iloc[0] == "i00000" and items["item_id"].iloc[-1] == f"i{N_ITEMS - 1:05d}"
    assert items["category"].nunique() == 24 >= 20
    assert all(re.fullmatch(r"[A-Z][A-Za-z ]+", c) for c in items["category"].unique())
    assert items["title"].str.split().str.len().min() >= 3
    assert items["title"].nunique() > 0.9 * N_ITEMS
    assert (items["price"] > 0).all() and items["price"].nunique() > 50
    # a title's noun belongs to its category: kitchen items are never tents
    kitchen = items.loc[items["category"] == "Kitchen", "title"]
    assert not kitchen.str.contains("Tent|Sleeping Bag|Novel").any()


def test_dataset_follows_the_schema(world: DemoWorld) -> None:
    ds = world.dataset()
    assert isinstance(ds, Dataset)
    assert list(ds.items.columns) == [*ITEM_COLUMNS, "price"]
    assert list(ds.events.columns) == list(EVENT_COLUMNS)
    ev = ds.events
    assert set(ev["type"]) == set(EVENT_TYPES) - {"impression"}
    assert ev["user_id"].str.fullmatch(r"u\d{5}").all()
    assert ev["item_id"].isin(ds.items["item_id"]).all()
    assert ev["timestamp"].between(END_EPOCH - 60 * DAY, END_EPOCH, inclusive="left").all()
    assert ev["timestamp"].is_monotonic_increasing
    price = ds.items.set_index("item_id")["price"]
    purchases = ev[ev["type"] == "purchase"]
    np.testing.assert_allclose(purchases["value"], price.loc[purchases["item_id"]].to_numpy())
    ratings = ev.loc[ev["type"] == "rating", "value"]
    assert set(ratings.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (ev.loc[~ev["type"].isin(["purchase", "rating"]), "value"] == 1.0).all()


def test_item_table_aggregates_the_history(world: DemoWorld) -> None:
    items, ev = world.items.set_index("item_id"), world.events
    share = ev["item_id"].value_counts(normalize=True).reindex(items.index, fill_value=0.0)
    np.testing.assert_allclose(items["popularity"], share)
    assert items["popularity"].sum() == pytest.approx(1.0)
    mean_rating = ev[ev["type"] == "rating"].groupby("item_id")["value"].mean()
    np.testing.assert_allclose(items.loc[mean_rating.index, "avg_rating"], mean_rating)
    unrated = items.index.difference(mean_rating.index)
    assert len(unrated) > 0 and items.loc[unrated, "avg_rating"].isna().all()


def test_volume_and_heavy_tailed_activity(world: DemoWorld) -> None:
    per_user = world.events.groupby("user_id").size()
    assert 20 <= len(world.events) / N_USERS <= 70
    assert per_user.max() > 5 * per_user.median()
    counts = world.events["type"].value_counts()
    # the funnel narrows at every step
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > counts["rating"]


def test_item_popularity_is_zipf_like(world: DemoWorld) -> None:
    pop = np.sort(world.items["popularity"].to_numpy())[::-1]
    assert pop[: N_ITEMS // 10].sum() > 0.35  # top 10% of items
    assert pop[: N_ITEMS // 2].sum() > 0.8
    prior_rank = pd.Series(world.pop_prior).rank()
    observed_rank = world.items["popularity"].rank()
    assert prior_rank.corr(observed_rank) > 0.5


# ---- ground truth --------------------------------------------------------------------
def test_position_bias_decreases_from_one() -> None:
    bias = position_bias(np.arange(50))
    assert bias[0] == 1.0
    assert np.all(np.diff(bias) < 0) and bias[-1] > 0
    with pytest.raises(ValueError):
        position_bias(-1)


def test_probabilities_are_probabilities_and_consistent(world: DemoWorld) -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, N_USERS, 5_000)
    items = rng.integers(0, N_ITEMS, 5_000)
    positions = rng.integers(0, 30, 5_000)
    click = world.click_probability(users, items, positions)
    buy = world.purchase_probability(users, items, positions)
    attr = world.attractiveness(users, items)
    for p in (click, buy, attr):
        assert p.shape == (5_000,) and np.all((p >= 0) & (p <= 1))
    assert np.all(buy <= click) and np.all(buy > 0)
    np.testing.assert_allclose(click, position_bias(positions) * attr)
    # relevance is attractiveness over the whole catalogue, in item index order
    np.testing.assert_allclose(world.relevance("u00042"), world.attractiveness(42, np.arange(N_ITEMS)))
    # ids as strings, ints and broadcasting all agree; lower slots get fewer clicks
    ladder = world.click_probability("u00042", "i00007", np.arange(10))
    assert np.all(np.diff(ladder) < 0)
    by_str = world.click_probability(["u00001", "u00002"], ["i00003", "i00004"], 0)
    np.testing.assert_allclose(by_str, world.click_probability([1, 2], [3, 4], [0, 0]))


@pytest.mark.parametrize("bad", ["x00001", "u99999", "u12a", -1])
def test_unknown_user_ids_are_refused(world: DemoWorld, bad: str | int) -> None:
    with pytest.raises(KeyError):
        world.click_probability(bad, "i00001", 0)


def test_sampled_feedback_matches_the_probabilities(world: DemoWorld) -> None:
    reps = 40_000
    users = np.repeat([3, 3, 150], reps)
    items = np.repeat([int(np.argmax(world.relevance(3))), 11, 250], reps)
    positions = np.repeat([0, 4, 1], reps)
    fb = world.sample_feedback(users, items, positions, np.random.default_rng(1))
    assert np.all(fb.click <= fb.view) and np.all(fb.add_to_cart <= fb.click)
    assert np.all(fb.purchase <= fb.add_to_cart)
    for k in range(3):
        block = slice(k * reps, (k + 1) * reps)
        u, i, p = users[k * reps], items[k * reps], positions[k * reps]
        for observed, expected in (
            (fb.click[block].mean(), world.click_probability(u, i, p)),
            (fb.purchase[block].mean(), world.purchase_probability(u, i, p)),
        ):
            se = np.sqrt(expected * (1 - expected) / reps)
            assert abs(observed - expected) < 4 * se + 1e-4


def test_history_is_drawn_from_the_ground_truth(world: DemoWorld) -> None:
    ev = world.events
    attr = world.attractiveness(ev["user_id"].to_numpy(), ev["item_id"].to_numpy())
    mean_by_type = pd.Series(attr).groupby(ev["type"].to_numpy()).mean()
    rng = np.random.default_rng(2)
    baseline = world.attractiveness(rng.integers(0, N_USERS, 20_000), rng.integers(0, N_ITEMS, 20_000)).mean()
    # the deeper the funnel step, the more attractive the items that reached it
    assert mean_by_type["purchase"] > mean_by_type["click"] > mean_by_type["view"] > 1.5 * baseline
    rated = ev["type"].to_numpy() == "rating"
    assert np.corrcoef(attr[rated], ev.loc[rated, "value"])[0, 1] > 0.2


def test_personal_ranking_beats_popularity_on_true_ctr(world: DemoWorld) -> None:
    by_popularity = np.argsort(-world.items["popularity"].to_numpy(), kind="stable")[:10]
    # A crude model learned from the history alone: the user's category mix × item popularity.
    ev = world.events
    cats = pd.Categorical(world.items["category"]).codes
    user_idx = world.user_index(ev["user_id"].to_numpy())
    item_idx = world.item_index(ev["item_id"].to_numpy())
    affinity = np.zeros((N_USERS, cats.max() + 1))
    np.add.at(affinity, (user_idx, cats[item_idx]), 1.0)
    popularity = world.items["popularity"].to_numpy()

    users = np.unique(user_idx)[:200]
    ideal, learned, popular = [], [], []
    for u in users:
        ideal.append(_true_ctr(world, u, np.argsort(-world.relevance(int(u)))[:10]))
        learned.append(_true_ctr(world, u, np.argsort(-(affinity[u, cats] + 0.5) * popularity)[:10]))
        popular.append(_true_ctr(world, u, by_popularity))
    assert np.mean(ideal) > 1.3 * np.mean(popular)
    assert np.mean(learned) > 1.1 * np.mean(popular)
    assert np.mean(ideal) > np.mean(learned)


# ---- persistence ---------------------------------------------------------------------
FORMATS = ["csv.gz", *(["parquet"] if importlib.util.find_spec("pyarrow") else [])]


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_and_load_round_trip(world: DemoWorld, tmp_path: Path, fmt: str) -> None:
    world.save(tmp_path, table_format=fmt)  # type: ignore[arg-type]
    assert (tmp_path / f"events.{fmt}").exists() and not list(tmp_path.glob("*.pkl"))
    back = DemoWorld.load(tmp_path)
    pd.testing.assert_frame_equal(back.events, world.events)
    pd.testing.assert_frame_equal(back.items, world.items)
    assert back.params == world.params and back.categories == world.categories
    np.testing.assert_array_equal(back.relevance("u00010"), world.relevance("u00010"))
    users, items = np.arange(50), np.arange(50)
    np.testing.assert_array_equal(
        back.purchase_probability(users, items, 2), world.purchase_probability(users, items, 2)
    )


def test_load_or_generate_reuses_only_a_matching_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = DemoWorld.load_or_generate(tmp_path, seed=5, n_users=200, n_items=100)
    assert (tmp_path / "meta.json").exists()

    def refuse(*args: object, **kwargs: object) -> DemoWorld:
        raise AssertionError("a matching saved world must be reused, not regenerated")

    with monkeypatch.context() as m:
        m.setattr(DemoWorld, "generate", classmethod(refuse))
        again = DemoWorld.load_or_generate(tmp_path, seed=5, n_users=200, n_items=100)
    pd.testing.assert_frame_equal(again.events, first.events)

    other = DemoWorld.load_or_generate(tmp_path, seed=6, n_users=200, n_items=100)
    assert other.params["seed"] == 6
    assert DemoWorld.load(tmp_path).params["seed"] == 6


def test_load_reports_a_missing_or_broken_world(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"meta\.json"):
        DemoWorld.load(tmp_path / "nowhere")
    world = DemoWorld.generate(seed=1, n_users=50, n_items=40)
    world.save(tmp_path, table_format="csv.gz")
    (tmp_path / "events.csv.gz").unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        DemoWorld.load(tmp_path)
    # and load_or_generate heals it
    healed = DemoWorld.load_or_generate(tmp_path, seed=1, n_users=50, n_items=40)
    pd.testing.assert_frame_equal(healed.events, world.events)
