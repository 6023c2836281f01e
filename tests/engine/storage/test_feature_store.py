"""Feature store against a real Redis: aggregates, batching, TTLs, refresh, live-log merge."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis
from prometheus_client import REGISTRY

from engine.config import Settings
from engine.data.schema import EVENT_WEIGHTS, Dataset
from engine.events.tracker import Event, EventTracker
from engine.storage.feature_store import (
    TOP_CATEGORIES,
    FeatureSource,
    FeatureStore,
    ItemFeatures,
    LiveState,
    UserFeatures,
)
from engine.storage.keys import Keys
from tests.support.redis_roundtrips import RoundTrips, counting_client

KEYS = Keys()
T0 = 1_700_000_000.0


def _items(n: int, categories: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "title": [f"Item {k}" for k in range(n)],
            "category": [categories[k % len(categories)] for k in range(n)],
            "popularity": np.linspace(0.2, 0.01, n),
            "avg_rating": [4.5 if k % 2 == 0 else np.nan for k in range(n)],
        }
    )


def _events(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp", "value"])


@pytest.fixture
def tiny() -> Dataset:
    """u1 is rich, u2 only saw impressions, u3 bought once; categories A/B/C by item id mod 3."""
    items = _items(6, ["A", "B", "C"])
    events = _events(
        [
            ("u1", "i0", "view", T0 + 1, 1.0),
            ("u1", "i1", "click", T0 + 2, 1.0),
            ("u1", "i0", "click", T0 + 3, 1.0),  # i0 again: history keeps it once, at its latest
            ("u1", "i2", "impression", T0 + 4, 1.0),  # impressions are not interactions
            ("u1", "i3", "purchase", T0 + 5, 30.0),
            ("u1", "i3", "purchase", T0 + 6, 10.0),
            ("u1", "i4", "rating", T0 + 7, 4.0),
            ("u2", "i0", "impression", T0 + 8, 1.0),
            ("u2", "i1", "impression", T0 + 9, 1.0),
            ("u3", "i5", "purchase", T0 + 10, 20.0),
        ]
    )
    return Dataset(items=items, events=events, name="tiny")


def _random_dataset(seed: int, n_users: int = 40, n_items: int = 30, n_events: int = 3_000) -> Dataset:
    rng = np.random.default_rng(seed)
    types = list(EVENT_WEIGHTS)
    events = pd.DataFrame(
        {
            "user_id": [f"u{k}" for k in rng.integers(0, n_users, n_events)],
            # a few events on items outside the catalogue must not break the aggregates
            "item_id": [f"i{k}" for k in rng.integers(0, n_items + 3, n_events)],
            "type": [types[k] for k in rng.integers(0, len(types), n_events)],
            "timestamp": T0 + rng.permutation(n_events).astype(float),  # distinct: order is unambiguous
            "value": rng.uniform(1, 5, n_events),
        }
    )
    return Dataset(items=_items(n_items, ["A", "B", "C", "D", "E", "F", "G"]), events=events)


def _reference(dataset: Dataset, history_length: int) -> dict[str, UserFeatures]:
    """Straightforward per-event loop, the specification the vectorised code must match."""
    category = dict(zip(dataset.items["item_id"], dataset.items["category"], strict=True))
    by_user: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for row in dataset.events.itertuples():
        by_user[row.user_id].append((row.timestamp, row.item_id, row.type))
    out = {}
    for user, rows in by_user.items():
        rows.sort(reverse=True)
        history: list[str] = []
        weights: dict[str, float] = defaultdict(float)
        total = 0.0
        for _, item, kind in rows:
            w = EVENT_WEIGHTS[kind]
            if w > 0 and item not in history and len(history) < history_length:
                history.append(item)
            if w > 0 and item in category:
                weights[category[item]] += w
                total += w
        bought = [item for _, item, kind in rows if kind == "purchase"]
        active = [ts for ts, _, kind in rows if EVENT_WEIGHTS[kind] > 0]
        out[user] = UserFeatures(
            user_id=user,
            history=tuple(history),
            purchased=frozenset(bought),
            category_affinity={c: w / total for c, w in weights.items()},  # all, not just the top
            total_purchases=len(bought),
            last_active=max(active) if active else None,
            is_new=not history and not bought,
        )
    return out


@pytest.fixture
def counted(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[redis.Redis, RoundTrips]]:
    client, trips = counting_client(redis_url)
    yield client, trips
    client.close()


def _store(client: redis.Redis, settings: Settings, dataset: Dataset) -> FeatureStore:
    return FeatureStore(client, KEYS, settings, FeatureSource.from_dataset(dataset, settings.history_length))


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- source aggregates


def test_source_aggregates_of_a_hand_made_history(tiny: Dataset) -> None:
    source = FeatureSource.from_dataset(tiny, history_length=50)
    u1 = source.merge("u1")
    assert u1.history == ("i4", "i3", "i0", "i1")
    assert u1.purchased == {"i3"}
    assert u1.total_purchases == 2
    assert u1.last_active == T0 + 7
    # category weights: A = i0 view 1 + click 2 + i3 two purchases 10 = 13, B = i1 click 2 + i4 rating 1
    assert u1.category_affinity == pytest.approx({"A": 13 / 16, "B": 3 / 16})
    assert not u1.is_new

    u2 = source.merge("u2")
    assert u2.is_new and u2.history == () and u2.last_active is None
    assert source.merge("u3").purchased == {"i5"}
    assert source.top_active_users(2) == ["u1", "u2"]
    assert source.known_user("u2") and not source.known_user("nobody")


def test_history_is_capped(tiny: Dataset) -> None:
    assert FeatureSource.from_dataset(tiny, history_length=2).merge("u1").history == ("i4", "i3")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_aggregates_match_the_reference_loop(seed: int) -> None:
    dataset = _random_dataset(seed)
    source = FeatureSource.from_dataset(dataset, history_length=7)
    expected = _reference(dataset, history_length=7)
    assert set(source.users) == set(expected)
    for user, want in expected.items():
        got = source.merge(user)
        assert got.history == want.history, user
        assert got.purchased == want.purchased, user
        assert got.total_purchases == want.total_purchases, user
        assert got.last_active == want.last_active, user
        assert got.is_new == want.is_new, user
        # the top categories by share (which ones, among ties, is free)
        assert len(got.category_affinity) == min(TOP_CATEGORIES, len(want.category_affinity)), user
        for category, share in got.category_affinity.items():
            assert share == pytest.approx(want.category_affinity[category], abs=1e-6), user
        assert sorted(got.category_affinity.values(), reverse=True) == pytest.approx(
            sorted(want.category_affinity.values(), reverse=True)[:TOP_CATEGORIES], abs=1e-6
        )


def test_item_features_take_price_from_the_catalogue_or_from_purchases(tiny: Dataset) -> None:
    derived = FeatureSource.from_dataset(tiny).item_features(["i3", "i0", "nope"])
    assert set(derived) == {"i3", "i0"}
    assert derived["i3"].price == 20.0  # median of 30 and 10
    assert derived["i0"].price is None  # never bought, no price column
    assert derived["i0"].avg_rating == 4.5 and derived["i3"].avg_rating is None
    assert derived["i3"].category == "A" and derived["i3"].title == "Item 3"

    priced = Dataset(items=tiny.items.assign(price=np.arange(6) + 0.5), events=tiny.events)
    assert FeatureSource.from_dataset(priced).item_features(["i3"])["i3"].price == 3.5


def test_feature_records_round_trip_through_string_hashes() -> None:
    user = UserFeatures("u1", ("i2", "i1"), frozenset({"i1"}), {"A": 0.75, "B": 0.25}, 3, T0 + 0.125, False)
    empty = UserFeatures.empty("u9")
    item = ItemFeatures("i1", "A", "Item 1", 0.01, None, 19.99)
    imported = ItemFeatures("i2", "B", "Item 2", 0.02, 4.0, None, {"brand": "Acme", "colour": "red"})
    for record in (user, empty):
        encoded = record.to_hash()
        assert all(isinstance(v, str) for v in encoded.values())
        assert UserFeatures.from_hash(record.user_id, encoded) == record
    assert ItemFeatures.from_hash("i1", item.to_hash()) == item
    assert ItemFeatures.from_hash("i2", imported.to_hash()) == imported
    bytes_hash = {k.encode(): v.encode() for k, v in item.to_hash().items()}
    assert ItemFeatures.from_hash("i1", bytes_hash) == item


# --------------------------------------------------------------------------- the store


def test_a_cached_batch_is_one_round_trip(
    counted: tuple[redis.Redis, RoundTrips], settings: Settings, tiny: Dataset
) -> None:
    client, trips = counted
    store = _store(client, settings, tiny)
    users = ["u1", "u2", "u3", "ghost"]
    store.get_user("warm-up")  # the first write on a fresh server also loads the Lua script
    trips.reset()

    misses_before = _sample("recops_feature_requests_total", entity="user", result="miss")
    first = store.get_users(users)
    assert trips.count == 3  # read hashes, read live logs, write back
    assert _sample("recops_feature_requests_total", entity="user", result="miss") == misses_before + 4

    trips.reset()
    hits_before = _sample("recops_feature_requests_total", entity="user", result="hit")
    second = store.get_users(users)
    assert trips.count == 1
    assert second == first
    assert list(second) == users
    assert _sample("recops_feature_requests_total", entity="user", result="hit") == hits_before + 4


def test_every_feature_hash_has_a_ttl_within_the_configured_one(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    store.get_users(["u1", "u2", "ghost"])
    store.get_items(["i0", "i1", "i5"])
    user_keys = list(redis_client.scan_iter(match=f"{KEYS.prefix}:feat:user:*"))
    item_keys = list(redis_client.scan_iter(match=f"{KEYS.prefix}:feat:item:*"))
    assert len(user_keys) == 3 and len(item_keys) == 3
    for key in user_keys:
        assert 0 < redis_client.ttl(key) <= settings.user_feature_ttl_seconds
    for key in item_keys:
        assert 0 < redis_client.ttl(key) <= settings.item_feature_ttl_seconds


def test_a_user_without_history_gets_empty_features(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    ghost = store.get_user("ghost")
    assert ghost == UserFeatures.empty("ghost") and ghost.is_new
    assert store.get_user("ghost") == ghost  # served from the cached hash the second time
    assert not store.known_user("ghost")


def test_a_miss_is_refreshed_from_the_source_and_written_back(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    assert redis_client.exists(KEYS.user_features("u1")) == 0
    u1 = store.get_user("u1")
    assert u1 == store.source.merge("u1")
    assert UserFeatures.from_hash("u1", redis_client.hgetall(KEYS.user_features("u1"))) == u1

    assert store.invalidate_user("u1")
    assert redis_client.exists(KEYS.user_features("u1")) == 0
    assert store.get_user("u1") == u1
    assert redis_client.exists(KEYS.user_features("u1")) == 1


def test_a_damaged_hash_reads_as_a_miss_and_is_rewritten(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    redis_client.hset(KEYS.user_features("u1"), mapping={"history": "not json"})
    assert store.get_user("u1") == store.source.merge("u1")
    assert redis_client.hget(KEYS.user_features("u1"), "history") != "not json"
    assert redis_client.ttl(KEYS.user_features("u1")) > 0


def test_a_purchase_reaches_the_next_read_after_invalidation(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    before = store.get_user("u3")
    tracker = EventTracker(
        redis_client, KEYS, settings, on_invalidate=lambda user, _reason: store.invalidate_user(user)
    )

    tracker.track(Event(user_id="u3", item_id="i1", type="purchase", value=5.0, timestamp=T0 + 100))
    after = store.get_user("u3")
    assert after.purchased == {"i5", "i1"}
    assert after.history == ("i1", "i5")
    assert after.total_purchases == before.total_purchases + 1
    assert after.last_active == T0 + 100
    assert after.category_affinity == pytest.approx({"C": 0.5, "B": 0.5})  # one purchase in each


def test_live_clicks_show_after_invalidation_and_merge_with_the_dataset(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    tracker = EventTracker(redis_client, KEYS, settings)
    cached = store.get_user("u2")
    assert cached.is_new

    tracker.track(Event(user_id="u2", item_id="i1", type="click", timestamp=T0 + 50))
    assert store.get_user("u2") == cached  # a click does not invalidate: the cached hash stands
    store.invalidate_user("u2")
    fresh = store.get_user("u2")
    assert fresh.history == ("i1",) and not fresh.is_new
    assert fresh.category_affinity == {"B": 1.0}

    tracker.track(Event(user_id="newbie", item_id="i0", type="view", timestamp=T0 + 60))
    assert store.known_user("newbie")
    assert store.get_user("newbie").history == ("i0",)


def test_a_refresh_racing_an_event_is_not_written_back(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    tracker = EventTracker(redis_client, KEYS, settings)

    class RacingSource(FeatureSource):
        """An event lands between reading the live log and writing the features back."""

        def read_live(self, client: redis.Redis, user_ids: list[str], keys: Keys | None = None) -> dict[str, LiveState]:
            states = super().read_live(client, user_ids, keys)
            tracker.track(Event(user_id="u3", item_id="i1", type="purchase", timestamp=T0 + 70))
            return states

    base = FeatureSource.from_dataset(tiny)
    racing = RacingSource(base.users, base.items, base.activity_order, base.history_length)
    stale = FeatureStore(redis_client, KEYS, settings, racing).get_user("u3")
    assert "i1" not in stale.purchased
    assert redis_client.exists(KEYS.user_features("u3")) == 0  # the stale refresh was dropped
    assert "i1" in FeatureStore(redis_client, KEYS, settings, base).get_user("u3").purchased


def test_get_items_batches_caches_and_leaves_out_unknown_ids(
    counted: tuple[redis.Redis, RoundTrips], settings: Settings, tiny: Dataset
) -> None:
    client, trips = counted
    store = _store(client, settings, tiny)
    first = store.get_items(["i0", "zzz", "i3"])
    assert list(first) == ["i0", "i3"]
    assert first["i3"] == store.source.items["i3"]
    trips.reset()
    assert store.get_items(["i0", "i3", "zzz"]) == first
    assert trips.count == 1  # both cached; the unknown id costs nothing more
    assert store.get_items([]) == {} and store.get_users([]) == {}


def test_an_item_file_s_attributes_are_served_and_an_older_hash_is_rewritten(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    # an imported catalogue: the columns beyond the engine's own are attributes, empty cells left out
    items = tiny.items.assign(brand=["Acme", "Bolt", None, "Acme", "Bolt", "Acme"], weight_kg=[1.5] * 6)
    store = _store(redis_client, settings, Dataset(items=items, events=tiny.events))
    assert store.get_items(["i0", "i2"]) == {
        "i0": store.source.items["i0"], "i2": store.source.items["i2"]}
    assert store.source.items["i0"].attributes == {"brand": "Acme", "weight_kg": "1.5"}
    assert store.source.items["i2"].attributes == {"weight_kg": "1.5"}
    cached = ItemFeatures.from_hash("i0", redis_client.hgetall(KEYS.item_features("i0")))
    assert cached.attributes == {"brand": "Acme", "weight_kg": "1.5"}
    # a hash written before attributes existed reads as a miss and is rewritten with them
    redis_client.hdel(KEYS.item_features("i0"), "attributes")
    assert store.get_items(["i0"])["i0"].attributes == {"brand": "Acme", "weight_kg": "1.5"}
    assert redis_client.hexists(KEYS.item_features("i0"), "attributes")
    # the demo world's catalogue has none
    assert all(not f.attributes for f in _store(redis_client, settings, tiny).source.items.values())


def test_scripts_are_reloaded_after_a_script_flush(
    redis_client: redis.Redis, settings: Settings, tiny: Dataset
) -> None:
    store = _store(redis_client, settings, tiny)
    redis_client.script_flush()
    assert store.get_users(["u1", "u3"])["u3"].purchased == {"i5"}
    assert redis_client.exists(KEYS.user_features("u1"), KEYS.user_features("u3")) == 2


def test_works_with_a_client_returning_bytes(redis_url: str, settings: Settings, tiny: Dataset) -> None:
    client, _ = counting_client(redis_url, decode_responses=False)
    try:
        store = _store(client, settings, tiny)
        tracker = EventTracker(client, KEYS, settings)
        tracker.track(Event(user_id="u3", item_id="i2", type="purchase", timestamp=T0 + 80))
        first = store.get_user("u3")
        assert first.purchased == {"i5", "i2"}
        assert store.get_user("u3") == first
        assert store.get_items(["i1"])["i1"] == store.source.items["i1"]
    finally:
        client.close()


def test_a_dataset_without_events_gives_only_new_users(tiny: Dataset) -> None:
    source = FeatureSource.from_dataset(tiny.with_events(tiny.events.iloc[0:0]))
    assert source.users == {} and source.top_active_users(5) == []
    assert source.merge("u1") == UserFeatures.empty("u1")
    assert source.item_features(["i0"])["i0"].price is None
