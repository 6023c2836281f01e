"""Why lists are missed, counted when it happens (against a real Redis), background warming, and
the guarded write that keeps a list computed before a purchase out of the cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from engine.api.interleaved_lists import serve_interleaved
from engine.config import Settings
from engine.events.tracker import Event
from engine.runtime import Engine, build_engine
from engine.serving.cache import TieredCache
from engine.serving.cache.miss_causes import (
    EVICTED,
    EXPIRED,
    FIRST_SEEN,
    INVALIDATED,
    MODEL_CHANGED,
    Flush,
    Written,
    l2_miss_cause,
    list_slot,
)
from engine.storage.keys import Keys

USER = "u1"


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.key_prefix)


@pytest.fixture
def make_cache(redis_client: redis.Redis, keys: Keys, settings: Settings) -> Iterator[Callable[..., TieredCache]]:
    made: list[TieredCache] = []

    def make(**overrides: Any) -> TieredCache:
        # no listener: each cache sees only what it does itself and what Redis says
        cache = TieredCache(redis_client, keys, settings.model_copy(update=overrides), rand=lambda: 1.0)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


def misses(cache: TieredCache, tier: str) -> dict[str, int]:
    return {cause: n for cause, n in cache.stats()["misses"][tier].items() if n}


def value() -> dict[str, Any]:
    return {"items": ["i1"]}


# --- the decision, pure ---------------------------------------------------------------------

def test_a_list_key_names_its_slot_without_the_model_version(keys: Keys) -> None:
    assert list_slot(keys.rec_list(USER, "als@v2", 10, "sig")) == ("als:10:sig", "v2")
    assert list_slot(keys.rec_list(USER, "popular", 5)) == ("popular:5:", "")


@pytest.mark.parametrize(
    ("written", "invalidation", "flush", "version", "now", "cause"),
    [
        (None, Flush("purchase", 5.0), None, "v1", 10.0, FIRST_SEEN),
        (Written("v1", 100.0, 4.0), Flush("purchase", 5.0), None, "v1", 10.0, INVALIDATED),
        (Written("v1", 100.0, 6.0), Flush("purchase", 5.0), None, "v1", 10.0, EVICTED),
        (Written("v1", 100.0, 4.0), None, Flush("model_reload", 5.0), "v1", 10.0, MODEL_CHANGED),
        (Written("v1", 100.0, 4.0), None, Flush("admin", 5.0), "v1", 10.0, INVALIDATED),
        (Written("v1", 100.0, 4.0), None, None, "v2", 10.0, MODEL_CHANGED),
        (Written("v1", 8.0, 4.0), None, None, "v1", 10.0, EXPIRED),
    ],
)
def test_the_cause_of_a_miss_in_redis(
    written: Written | None, invalidation: Flush | None, flush: Flush | None, version: str, now: float, cause: str
) -> None:
    assert l2_miss_cause(written, invalidation, flush, version, now) == cause


# --- counted when it happens ----------------------------------------------------------------

def test_a_first_visit_is_first_seen_in_both_tiers(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache()
    before = REGISTRY.get_sample_value("recops_cache_misses_total", {"tier": "l2", "cause": FIRST_SEEN}) or 0.0
    assert cache.get_or_compute(USER, keys.rec_list(USER, "als@v1", 10), value)[1] == "miss"
    assert misses(cache, "l1") == {FIRST_SEEN: 1}
    assert misses(cache, "l2") == {FIRST_SEEN: 1}
    assert REGISTRY.get_sample_value("recops_cache_misses_total", {"tier": "l2", "cause": FIRST_SEEN}) == before + 1


def test_a_list_dropped_by_a_purchase_is_missed_as_invalidated(
    make_cache: Callable[..., TieredCache], keys: Keys
) -> None:
    cache, key = make_cache(), keys.rec_list(USER, "als@v1", 10)
    cache.get_or_compute(USER, key, value)
    cache.invalidate_user(USER, reason="purchase")
    assert cache.get_or_compute(USER, key, value)[1] == "miss"
    assert misses(cache, "l2") == {FIRST_SEEN: 1, INVALIDATED: 1}
    assert misses(cache, "l1") == {FIRST_SEEN: 1, INVALIDATED: 1}


def test_another_process_sees_the_invalidation_in_the_ledger(
    make_cache: Callable[..., TieredCache], keys: Keys
) -> None:
    writer, invalidator, reader = make_cache(), make_cache(), make_cache()
    key = keys.rec_list(USER, "als@v1", 10)
    writer.get_or_compute(USER, key, value)
    invalidator.invalidate_user(USER, reason="add_to_cart")
    reader.get_or_compute(USER, key, value)
    assert misses(reader, "l2") == {INVALIDATED: 1}
    assert misses(reader, "l1") == {FIRST_SEEN: 1}  # never in the reader's own L1


def test_a_new_model_version_and_a_model_reload_are_model_changed(
    make_cache: Callable[..., TieredCache], keys: Keys
) -> None:
    cache = make_cache()
    cache.get_or_compute(USER, keys.rec_list(USER, "als@v1", 10), value)
    cache.get_or_compute(USER, keys.rec_list(USER, "als@v2", 10), value)
    assert misses(cache, "l2") == {FIRST_SEEN: 1, MODEL_CHANGED: 1}
    cache.invalidate_all(reason="model_reload")
    cache.get_or_compute(USER, keys.rec_list(USER, "als@v2", 10), value)
    assert misses(cache, "l2") == {FIRST_SEEN: 1, MODEL_CHANGED: 2}


def test_an_expired_list_is_expired_and_one_gone_before_its_expiry_is_evicted(
    make_cache: Callable[..., TieredCache], keys: Keys, redis_client: redis.Redis
) -> None:
    cache = make_cache(rec_cache_ttl_seconds=1, rec_cache_ttl_jitter=0.0, l1_max_entries=0)
    short, long_ = keys.rec_list(USER, "als@v1", 10), keys.rec_list(USER, "als@v1", 20)
    cache.get_or_compute(USER, short, value)
    time.sleep(1.1)  # past the 1 s TTL: Redis has dropped the list (no timing is asserted)
    cache.get_or_compute(USER, short, value)
    assert misses(cache, "l2") == {FIRST_SEEN: 1, EXPIRED: 1}
    cache.get_or_compute(USER, long_, value)
    redis_client.delete(long_)  # what Redis does under memory pressure
    cache.get_or_compute(USER, long_, value)
    assert misses(cache, "l2") == {FIRST_SEEN: 2, EXPIRED: 1, EVICTED: 1}


def test_an_entry_pushed_out_of_a_full_l1_is_evicted_there(
    make_cache: Callable[..., TieredCache], keys: Keys
) -> None:
    cache = make_cache(l1_max_entries=1)
    first, second = keys.rec_list(USER, "als@v1", 10), keys.rec_list(USER, "als@v1", 20)
    cache.get_or_compute(USER, first, value)
    cache.get_or_compute(USER, second, value)
    assert cache.get_or_compute(USER, first, value)[1] == "l2"
    assert misses(cache, "l1") == {FIRST_SEEN: 2, EVICTED: 1}


# --- no list computed before an invalidation is stored after it -----------------------------

def test_a_list_computed_while_another_process_invalidates_the_user_is_not_stored(
    make_cache: Callable[..., TieredCache], keys: Keys, redis_client: redis.Redis
) -> None:
    cache, other = make_cache(), make_cache()
    key = keys.rec_list(USER, "als@v1", 10)

    def compute_then_purchase() -> dict[str, Any]:
        computed = value()  # read before the purchase...
        other.invalidate_user(USER, reason="purchase")  # ...which another process handles now
        return computed

    assert cache.get_or_compute(USER, key, compute_then_purchase)[1] == "miss"
    assert redis_client.exists(key) == 0
    assert cache.stats()["writes_overtaken"] == 1
    assert cache.get_or_compute(USER, key, value)[1] == "miss"  # not in L1 either


def test_a_list_computed_while_another_process_purges_every_list_is_not_stored(
    make_cache: Callable[..., TieredCache], keys: Keys, redis_client: redis.Redis
) -> None:
    cache, other = make_cache(), make_cache()
    key = keys.rec_list(USER, "als@v1", 10)
    other.get_or_compute(USER, key, value)  # the user's ledger remembers a list
    ledger = keys.rec_ledger(USER)
    other.invalidate_all(reason="admin")
    assert redis_client.exists(key) == 0 and redis_client.pttl(ledger) > 0  # the ledger outlives it, expiring

    def compute_then_purge() -> dict[str, Any]:
        computed = value()  # read before the purge...
        other.invalidate_all(reason="admin")  # ...which another process runs now
        return computed

    assert cache.get_or_compute(USER, key, compute_then_purge)[1] == "miss"
    assert redis_client.exists(key) == 0
    assert cache.stats()["writes_overtaken"] == 1
    # the generation moved on, it was not reset: the next list is stored, in either process
    assert cache.get_or_compute(USER, key, value)[1] == "miss"
    assert redis_client.exists(key) == 1
    assert other.get_or_compute(USER, key, value)[1] == "l2"


def test_a_warmed_list_overtaken_by_a_purchase_is_not_stored(
    make_cache: Callable[..., TieredCache], keys: Keys, redis_client: redis.Redis
) -> None:
    cache, other = make_cache(), make_cache()

    def lists_for(user: str) -> list[tuple[str, Any]]:
        if user == "buyer":
            other.invalidate_user(user, reason="purchase")
        return [(keys.rec_list(user, "als@v1", 10), value())]

    report = cache.warm(["buyer", "browser"], lists_for)
    assert report.keys_written == 1
    assert redis_client.exists(keys.rec_list("buyer", "als@v1", 10)) == 0
    assert redis_client.exists(keys.rec_list("browser", "als@v1", 10)) == 1


# --- the engine: warming the likely users ----------------------------------------------------

@pytest.fixture
def warming_engine(engine_settings: Settings) -> Iterator[Engine]:
    eng = build_engine(engine_settings.model_copy(update={"warm_on_start_users": 20}))
    yield eng
    eng.close()


def _list_key(engine: Engine, user: str) -> str:
    return engine.service.list_key(user, engine.service.default_model, engine.settings.default_n)


def test_warming_fills_l2_for_the_most_active_users_only(warming_engine: Engine) -> None:
    engine = warming_engine
    assert engine.warmer is not None and engine.warmer.wait_idle(timeout=60)
    active = engine.features.top_active_users(len(engine.dataset.users))
    assert all(engine.redis.exists(_list_key(engine, u)) for u in active[:20])
    assert not any(engine.redis.exists(_list_key(engine, u)) for u in active[20:60])
    result = engine.service.recommend(active[0])
    assert result.cache_tier in ("l1", "l2")


def test_a_purchase_after_warming_is_never_followed_by_the_warmed_list(warming_engine: Engine) -> None:
    engine = warming_engine
    assert engine.warmer is not None and engine.warmer.wait_idle(timeout=60)
    user = engine.features.top_active_users(1)[0]
    warmed = engine.service.recommend(user)
    assert warmed.cached
    bought = warmed.items[0]["item_id"]
    engine.events.track(Event(user_id=user, item_id=bought, type="purchase", value=5.0))
    after = engine.service.recommend(user)
    assert bought not in {i["item_id"] for i in after.items}
    assert misses(engine.cache, "l2").get(INVALIDATED) == 1


def test_warming_computes_both_rankers_lists_of_a_user_in_an_interleaving_experiment(
    warming_engine: Engine,
) -> None:
    engine = warming_engine
    assert engine.warmer is not None and engine.warmer.wait_idle(timeout=60)
    engine.experiments.create({
        "key": "ilv", "name": "ALS against item-item", "kind": "interleaving", "coverage_pct": 100,
        "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "item_item"}],
    })
    engine.experiments.start("ilv")
    engine.experiments.refresh(force=True)
    engine.warmer.restart()  # what a model switch does; the experiment's users are served both rankers now
    assert engine.warmer.wait_idle(timeout=60)
    user = engine.features.top_active_users(1)[0]
    assignment = engine.experiments.assign(user)
    assert assignment is not None and assignment.rankers is not None
    n = engine.settings.default_n
    for ranker in assignment.rankers:
        key = engine.service.list_key(user, ranker.model, ranker.serving.length(n), serving=ranker.serving,
                                      version=ranker.version)
        assert engine.redis.exists(key) == 1
    answer = serve_interleaved(engine, assignment, n, "warmed-request")
    assert answer.teams is not None and answer.result.cached
    assert misses(engine.cache, "l2") == {}


def test_a_model_switch_rewarms_and_its_misses_are_model_changed(warming_engine: Engine) -> None:
    engine = warming_engine
    assert engine.warmer is not None and engine.warmer.wait_idle(timeout=60)
    cold = engine.features.top_active_users(100)[-1]  # beyond the warmed 20
    engine.service.recommend(cold)
    engine.reload_models()  # a promotion: every list is flushed, the warmer starts over
    assert engine.warmer.wait_idle(timeout=60)
    assert engine.service.recommend(engine.features.top_active_users(1)[0]).cached
    engine.service.recommend(cold)
    assert misses(engine.cache, "l2") == {FIRST_SEEN: 1, MODEL_CHANGED: 1}
