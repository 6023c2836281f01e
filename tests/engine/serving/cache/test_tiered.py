"""TieredCache against a real Redis: tiers, TTL jitter, invalidation, single-flight, XFetch, L1
bound, Redis outages and listener recovery."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.config import Settings
from engine.serving.cache import CachedValue, L1Cache, TieredCache, xfetch_due
from engine.serving.cache import listener as listener_module
from engine.serving.cache.listener import InvalidationListener
from engine.storage.embedded_redis import EmbeddedRedis
from engine.storage.keys import Keys
from tests.support.polling import poll

FORCE_EARLY = 1e-300  # ln(1e-300) ≈ -691: any positive delta makes a value due at once
NEVER_EARLY = 1.0  # ln(1) = 0: a value is due only once it has expired


class Counting:
    """A compute function that counts its calls (thread-safely) and can sleep or raise."""

    def __init__(self, value: dict[str, Any] | None = None, sleep: float = 0.0,
                 error: Exception | None = None) -> None:
        self.value = value if value is not None else {"items": ["i1", "i2"]}
        self.sleep = sleep
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.key_prefix)


@pytest.fixture
def make_cache(redis_client: redis.Redis, keys: Keys, settings: Settings) -> Iterator[Callable[..., TieredCache]]:
    made: list[TieredCache] = []

    def make(client: redis.Redis | None = None, rand: Callable[[], float] | None = None,
             **overrides: Any) -> TieredCache:
        cache = TieredCache(client or redis_client, keys, settings.model_copy(update=overrides),
                            rand=rand or (lambda: NEVER_EARLY), listener_backoff=0.02, listener_max_backoff=0.2)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A server this test may stop and restart (the shared session server must stay up)."""
    server = EmbeddedRedis(data_dir=tmp_path / "own-redis", appendonly=False).start()
    yield server
    server.stop()


def fast_failing_client(url: str) -> redis.Redis:
    # no retries, so a stopped server fails the call at once instead of after seconds of back-off
    return redis.Redis.from_url(url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                                socket_timeout=1, socket_connect_timeout=1)


def rec_keys(client: redis.Redis, pattern: str) -> set[str]:
    return set(client.scan_iter(match=pattern, count=1000))


# --- tiers -----------------------------------------------------------------------------------

def test_miss_then_l1_then_l2(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    compute = Counting({"items": ["a", "b"]})

    assert cache.get_or_compute("u1", key, compute) == ({"items": ["a", "b"]}, "miss")
    assert cache.get_or_compute("u1", key, compute) == ({"items": ["a", "b"]}, "l1")
    cache.l1.clear()
    assert cache.get_or_compute("u1", key, compute) == ({"items": ["a", "b"]}, "l2")
    assert cache.get_or_compute("u1", key, compute) == ({"items": ["a", "b"]}, "l1")
    assert compute.calls == 1

    stats = cache.stats()
    assert stats["l1"]["hit"] == 2 and stats["l1"]["miss"] == 2
    assert stats["l2"]["hit"] == 1 and stats["l2"]["miss"] == 1
    assert stats["computes"] == 1


def test_l2_write_indexes_the_key_with_a_longer_ttl(make_cache: Callable[..., TieredCache], keys: Keys,
                                                   redis_client: redis.Redis) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    cache.get_or_compute("u1", key, Counting())

    assert redis_client.smembers(keys.rec_index("u1")) == {key}
    assert redis_client.pttl(keys.rec_index("u1")) >= redis_client.pttl(key) > 0
    stored = CachedValue.from_envelope(redis_client.get(key))
    assert stored.value() == {"items": ["i1", "i2"]}
    assert stored.expiry > time.time()
    assert not redis_client.exists(keys.rec_lock(key)), "the lock is released with the write"


def test_unreadable_l2_entry_is_a_miss(make_cache: Callable[..., TieredCache], keys: Keys,
                                       redis_client: redis.Redis) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    redis_client.set(key, '["not", "an", "envelope"]', ex=60)
    assert cache.get_or_compute("u1", key, Counting()) == ({"items": ["i1", "i2"]}, "miss")
    assert CachedValue.from_envelope(redis_client.get(key)).value() == {"items": ["i1", "i2"]}


def test_peek_l1_never_reaches_redis(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    assert cache.peek_l1(key) == (None, None)
    cache.get_or_compute("u1", key, Counting())
    assert cache.peek_l1(key) == ({"items": ["i1", "i2"]}, "l1")
    cache.l1.clear()
    assert cache.peek_l1(key) == (None, None), "an L2-only value is not visible to peek_l1"


def test_callers_get_independent_copies(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    first, _ = cache.get_or_compute("u1", key, Counting())
    first["items"].append("mutated")
    second, tier = cache.get_or_compute("u1", key, Counting())
    assert tier == "l1" and second == {"items": ["i1", "i2"]}


def test_prometheus_counters_follow_lookups(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    def sample(tier: str, result: str) -> float:
        return REGISTRY.get_sample_value("recops_cache_requests_total", {"tier": tier, "result": result}) or 0.0

    before = {(t, r): sample(t, r) for t in ("l1", "l2") for r in ("hit", "miss")}
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    cache.get_or_compute("u1", key, Counting())
    cache.get_or_compute("u1", key, Counting())
    assert sample("l1", "miss") - before["l1", "miss"] == 1
    assert sample("l2", "miss") - before["l2", "miss"] == 1
    assert sample("l1", "hit") - before["l1", "hit"] == 1
    assert sample("l2", "hit") - before["l2", "hit"] == 0


# --- TTL jitter ------------------------------------------------------------------------------

def test_ttl_jitter_spreads_expiries_within_bounds(make_cache: Callable[..., TieredCache], keys: Keys,
                                                   redis_client: redis.Redis) -> None:
    cache = make_cache(rec_cache_ttl_seconds=600, rec_cache_ttl_jitter=0.10)
    users = [f"u{i}" for i in range(200)]
    cache.warm(users, lambda u: [(keys.rec_list(u, "als", 10), {"u": u})])

    pipe = redis_client.pipeline(transaction=False)
    for u in users:
        pipe.pttl(keys.rec_list(u, "als", 10))
    ttls = pipe.execute()
    assert all(540_000 - 5_000 <= t <= 660_000 for t in ttls), (min(ttls), max(ttls))
    assert len(set(ttls)) > 100, "writes made together must not expire together"
    # 200 uniform draws over ±60 s land on both sides of ±10 s of the mean (failure odds ~1e-8)
    assert min(ttls) < 590_000 and max(ttls) > 610_000


# --- invalidation ----------------------------------------------------------------------------

COMBOS = [(model, n) for model in ("als", "pop", "item2item") for n in (5, 10)]


def fill(cache: TieredCache, keys: Keys, user: str) -> list[str]:
    made = []
    for model, n in COMBOS:
        key = keys.rec_list(user, model, n)
        cache.get_or_compute(user, key, lambda u=user, m=model: {"user": u, "model": m})
        made.append(key)
    return made


def test_invalidate_user_removes_only_that_user(make_cache: Callable[..., TieredCache], keys: Keys,
                                                redis_client: redis.Redis) -> None:
    cache = make_cache()
    a_keys = fill(cache, keys, "alice")
    b_keys = fill(cache, keys, "bob")

    assert cache.invalidate_user("alice", reason="purchase") == len(COMBOS)

    assert redis_client.exists(*a_keys) == 0
    assert not redis_client.exists(keys.rec_index("alice"))
    assert redis_client.exists(*b_keys) == len(b_keys)
    assert redis_client.smembers(keys.rec_index("bob")) == set(b_keys)
    assert all(cache.peek_l1(k) == (None, None) for k in a_keys)
    assert all(cache.peek_l1(k)[1] == "l1" for k in b_keys)
    again = Counting({"fresh": True})
    assert cache.get_or_compute("alice", a_keys[0], again) == ({"fresh": True}, "miss")
    assert cache.invalidate_user("nobody") == 0
    assert cache.stats()["invalidated"]["purchase"] == len(COMBOS)


def test_invalidate_all_removes_every_rec_key_and_nothing_else(
        make_cache: Callable[..., TieredCache], keys: Keys, redis_client: redis.Redis) -> None:
    cache = make_cache()
    for user in ("alice", "bob", "carol"):
        fill(cache, keys, user)
    redis_client.set(keys.user_features("alice"), "{}", ex=60)

    assert cache.invalidate_all(reason="admin") == 3 * len(COMBOS)

    assert rec_keys(redis_client, keys.rec_scan_pattern) == set()
    assert redis_client.exists(keys.user_features("alice")) == 1
    assert len(cache.l1) == 0
    assert cache.invalidate_all() == 0


def test_invalidation_during_compute_caches_nothing(make_cache: Callable[..., TieredCache], keys: Keys,
                                                    redis_client: redis.Redis) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)

    def compute_overtaken() -> dict[str, str]:
        cache.invalidate_user("u1", reason="purchase")  # an event arrives mid-compute
        return {"computed": "before the purchase"}

    assert cache.get_or_compute("u1", key, compute_overtaken) == ({"computed": "before the purchase"}, "miss")
    assert not redis_client.exists(key)
    assert cache.peek_l1(key) == (None, None)
    assert not redis_client.exists(keys.rec_lock(key))


# --- single-flight and the cross-process lock ------------------------------------------------

def call_from_threads(call: Callable[[], Any], threads: int) -> tuple[list[Any], list[BaseException]]:
    """``call()`` from ``threads`` threads released together; what they returned and what they raised."""
    start = threading.Barrier(threads)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            results.append(call())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return results, errors


def test_hundred_concurrent_misses_compute_once(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache()
    key = keys.rec_list("hot", "als", 10)
    compute = Counting({"items": ["x"]}, sleep=0.05)
    results, errors = call_from_threads(lambda: cache.get_or_compute("hot", key, compute), 100)

    assert errors == []
    assert compute.calls == 1
    assert len(results) == 100 and all(value == {"items": ["x"]} for value, _ in results)
    stats = cache.stats()
    assert stats["coalesced"] > 0
    assert stats["l2"]["hit"] + stats["l2"]["miss"] == 1, "the followers did not even read L2"


def test_compute_error_reaches_every_waiter_and_frees_the_lock(
        make_cache: Callable[..., TieredCache], keys: Keys, redis_client: redis.Redis) -> None:
    cache = make_cache()
    key = keys.rec_list("u1", "als", 10)
    compute = Counting(sleep=0.05, error=ValueError("model not loaded"))
    _, errors = call_from_threads(lambda: cache.get_or_compute("u1", key, compute), 5)
    assert len(errors) == 5 and all(isinstance(e, ValueError) for e in errors) and compute.calls == 1
    assert not redis_client.exists(keys.rec_lock(key))
    assert cache.get_or_compute("u1", key, Counting({"ok": 1})) == ({"ok": 1}, "miss")


def test_other_process_waits_for_the_lock_holder(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    # two caches, two single-flight groups: only the Redis lock keeps them from both computing
    holder, waiter = make_cache(), make_cache()
    key = keys.rec_list("u1", "als", 10)
    computing = threading.Event()

    def slow() -> dict[str, str]:
        computing.set()
        time.sleep(0.3)
        return {"by": "holder"}

    t = threading.Thread(target=holder.get_or_compute, args=("u1", key, slow))
    t.start()
    assert computing.wait(5)
    waiter_compute = Counting({"by": "waiter"})
    assert waiter.get_or_compute("u1", key, waiter_compute) == ({"by": "holder"}, "l2")
    t.join()
    assert waiter_compute.calls == 0
    assert waiter.stats()["lock_waits"] == 1


def test_lock_holder_that_never_delivers_does_not_block(make_cache: Callable[..., TieredCache], keys: Keys,
                                                        redis_client: redis.Redis) -> None:
    cache = make_cache(compute_lock_seconds=0.2)
    key = keys.rec_list("u1", "als", 10)
    redis_client.set(keys.rec_lock(key), "crashed-process", px=60_000)  # outlives our wait on purpose

    compute = Counting({"by": "us"})
    assert cache.get_or_compute("u1", key, compute) == ({"by": "us"}, "miss")
    assert compute.calls == 1
    assert cache.stats()["lock_timeouts"] == 1
    assert redis_client.get(keys.rec_lock(key)) == "crashed-process", "someone else's lock is not ours to free"


def test_expired_lock_is_taken_over(make_cache: Callable[..., TieredCache], keys: Keys,
                                    redis_client: redis.Redis) -> None:
    cache = make_cache(compute_lock_seconds=5)
    key = keys.rec_list("u1", "als", 10)
    redis_client.set(keys.rec_lock(key), "crashed-process", px=100)

    compute = Counting({"by": "us"})
    assert cache.get_or_compute("u1", key, compute) == ({"by": "us"}, "miss")
    assert cache.stats()["lock_timeouts"] == 0, "took the lock when it lapsed, not at the deadline"
    assert not redis_client.exists(keys.rec_lock(key))


# --- XFetch ----------------------------------------------------------------------------------

def test_xfetch_formula() -> None:
    entry = CachedValue(b"{}", delta=0.5, expiry=100.0)
    assert not xfetch_due(entry, now=99.0, beta=1.0, rand=lambda: 1.0)
    assert xfetch_due(entry, now=100.0, beta=1.0, rand=lambda: 1.0)
    # -0.5 * ln(e^-4) = 2 s early: due from now = 98
    assert xfetch_due(entry, now=98.0, beta=1.0, rand=lambda: 2.718281828459045 ** -4)
    assert not xfetch_due(entry, now=97.9, beta=1.0, rand=lambda: 2.718281828459045 ** -4)
    assert xfetch_due(entry, now=96.0, beta=2.0, rand=lambda: 2.718281828459045 ** -4)
    assert xfetch_due(entry, now=0.0, beta=1.0, rand=lambda: 0.0)


def test_xfetch_recomputes_early_only_when_the_draw_says_so(make_cache: Callable[..., TieredCache],
                                                           keys: Keys) -> None:
    draw = [NEVER_EARLY]
    cache = make_cache(rand=lambda: draw[0], rec_cache_ttl_seconds=10, rec_cache_ttl_jitter=0.0)
    key = keys.rec_list("u1", "als", 10)
    compute = Counting(sleep=0.02)  # delta ≥ 20 ms: a forced draw moves expiry ≥ 13.8 s earlier

    cache.get_or_compute("u1", key, compute)
    for _ in range(5):
        assert cache.get_or_compute("u1", key, compute)[1] == "l1"
    cache.l1.clear()
    assert cache.get_or_compute("u1", key, compute)[1] == "l2"
    assert compute.calls == 1

    draw[0] = FORCE_EARLY
    assert cache.get_or_compute("u1", key, compute)[1] == "miss"  # early refresh from an L1 read
    assert compute.calls == 2
    cache.l1.clear()
    assert cache.get_or_compute("u1", key, compute)[1] == "miss"  # early refresh from an L2 read
    assert compute.calls == 3
    stats = cache.stats()
    assert stats["l1"]["early_refresh"] == 1 and stats["l2"]["early_refresh"] == 1
    assert stats["early_refreshes"] == 2
    assert cache.peek_l1(key) == (None, None), "peek_l1 leaves a due value to get_or_compute"


def test_xfetch_serves_current_value_while_another_refreshes(make_cache: Callable[..., TieredCache],
                                                             keys: Keys, redis_client: redis.Redis) -> None:
    draw = [NEVER_EARLY]
    cache = make_cache(rand=lambda: draw[0], rec_cache_ttl_seconds=10, rec_cache_ttl_jitter=0.0)
    key = keys.rec_list("u1", "als", 10)
    compute = Counting(sleep=0.02)
    cache.get_or_compute("u1", key, compute)

    redis_client.set(keys.rec_lock(key), "other-refresher", px=5_000)
    draw[0] = FORCE_EARLY
    assert cache.get_or_compute("u1", key, compute) == ({"items": ["i1", "i2"]}, "l1")
    cache.l1.clear()
    assert cache.get_or_compute("u1", key, compute) == ({"items": ["i1", "i2"]}, "l2")
    assert compute.calls == 1


# --- L1 --------------------------------------------------------------------------------------

def test_l1_bound_and_lru_order(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache(l1_max_entries=5)
    all_keys = [keys.rec_list(f"u{i}", "als", 10) for i in range(20)]
    for i, key in enumerate(all_keys):
        cache.get_or_compute(f"u{i}", key, Counting())
        cache.peek_l1(all_keys[0])  # keep the first one recently used
        assert len(cache.l1) <= 5

    assert len(cache.l1) == 5
    in_l1 = {k for k in all_keys if cache.peek_l1(k)[1] == "l1"}
    assert in_l1 == {all_keys[0], *all_keys[-4:]}
    assert cache.stats()["l1_evictions"] == 15


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_l1_ttl_and_value_expiry() -> None:
    mono, wall = FakeClock(), FakeClock(5000.0)
    l1 = L1Cache(max_entries=10, ttl_seconds=30, monotonic=mono, wall=wall)
    l1.put("u", "long", CachedValue(b"1", 0.0, expiry=5000.0 + 600))
    l1.put("u", "short", CachedValue(b"2", 0.0, expiry=5000.0 + 10))
    l1.put("u", "gone", CachedValue(b"3", 0.0, expiry=4999.0))
    assert l1.get("gone") is None and len(l1) == 2

    mono.t += 10
    assert l1.get("short") is None, "L1 never outlives the value's own expiry"
    assert l1.get("long") is not None
    mono.t += 20
    assert l1.get("long") is None
    assert len(l1) == 0


def test_l1_drop_user_touches_only_that_user() -> None:
    l1 = L1Cache(max_entries=100, ttl_seconds=30)
    entry = CachedValue(b"1", 0.0, expiry=time.time() + 60)
    for i in range(3):
        l1.put("a", f"a{i}", entry)
        l1.put("b", f"b{i}", entry)
    assert l1.drop_user("a") == 3
    assert l1.drop_user("a") == 0
    assert [l1.get(f"b{i}") is not None for i in range(3)] == [True] * 3
    l1.put("a", "b0", entry)  # a key changing owner leaves the old owner's index
    assert l1.drop_user("b") == 2
    assert l1.get("b0") is not None


def test_l1_disabled_with_zero_entries(make_cache: Callable[..., TieredCache], keys: Keys) -> None:
    cache = make_cache(l1_max_entries=0)
    key = keys.rec_list("u1", "als", 10)
    compute = Counting()
    assert cache.get_or_compute("u1", key, compute)[1] == "miss"
    assert cache.get_or_compute("u1", key, compute)[1] == "l2"
    assert compute.calls == 1


# --- warming ---------------------------------------------------------------------------------

def test_warm_writes_in_batches_and_reports(make_cache: Callable[..., TieredCache], keys: Keys,
                                            redis_client: redis.Redis) -> None:
    cache = make_cache()
    users = [f"u{i}" for i in range(25)]

    def lists_for(user: str) -> list[tuple[str, dict[str, str]]]:
        if user == "u7":
            raise RuntimeError("no features for u7")
        return [(keys.rec_list(user, m, n), {"user": user, "model": m}) for m, n in COMBOS[:3]]

    progress: list[tuple[int, int]] = []
    report = cache.warm(users, lists_for, lambda done, total: progress.append((done, total)), batch=10)

    assert progress == [(10, 25), (20, 25), (25, 25)]
    assert report.users == 24 and report.failed == 1 and report.keys_written == 72
    assert report.seconds > 0
    assert redis_client.smembers(keys.rec_index("u3")) == {keys.rec_list("u3", m, n) for m, n in COMBOS[:3]}
    assert not redis_client.exists(keys.rec_index("u7"))
    key = keys.rec_list("u3", "als", 5)
    assert cache.get_or_compute("u3", key, Counting()) == ({"user": "u3", "model": "als"}, "l1")
    cache.l1.clear()
    assert cache.get_or_compute("u3", key, Counting()) == ({"user": "u3", "model": "als"}, "l2")


# --- Redis outages ---------------------------------------------------------------------------

def test_l1_serves_while_redis_is_down(own_redis: EmbeddedRedis, keys: Keys, settings: Settings) -> None:
    client = fast_failing_client(own_redis.url)
    draw = [NEVER_EARLY]
    cache = TieredCache(client, keys, settings, rand=lambda: draw[0])
    try:
        key = keys.rec_list("u1", "als", 10)
        compute = Counting(sleep=0.01)
        cache.get_or_compute("u1", key, compute)
        own_redis.stop()

        assert cache.get_or_compute("u1", key, compute) == ({"items": ["i1", "i2"]}, "l1")
        assert cache.peek_l1(key)[1] == "l1"
        draw[0] = FORCE_EARLY  # a due early refresh cannot reach Redis: the valid L1 value is served
        assert cache.get_or_compute("u1", key, compute) == ({"items": ["i1", "i2"]}, "l1")
        assert compute.calls == 1

        with pytest.raises(redis.ConnectionError):
            cache.get_or_compute("u1", keys.rec_list("u1", "pop", 10), compute)
        with pytest.raises(redis.ConnectionError):
            cache.invalidate_user("u1")
        assert cache.peek_l1(key) == (None, None), "L1 is dropped even when Redis is unreachable"
    finally:
        cache.close()
        client.close()


def test_listener_resubscribes_after_redis_restart(own_redis: EmbeddedRedis, keys: Keys,
                                                   settings: Settings) -> None:
    listening_client = redis.Redis.from_url(own_redis.url, decode_responses=True, socket_connect_timeout=1)
    sender_client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    listening = TieredCache(listening_client, keys, settings, rand=lambda: NEVER_EARLY,
                            listener_backoff=0.02, listener_max_backoff=0.2)
    sender = TieredCache(sender_client, keys, settings)
    try:
        assert listening.start_listener(wait_seconds=5)
        key = keys.rec_list("u1", "als", 10)
        listening.get_or_compute("u1", key, Counting())

        own_redis.stop()
        assert poll(lambda: not listening.listener_connected)
        own_redis.restart()
        assert poll(lambda: listening.listener_connected)
        assert listening.stats()["listener_resubscribes"] >= 1
        assert listening.peek_l1(key) == (None, None), "messages lost in the outage: L1 starts over"

        listening.get_or_compute("u1", key, Counting())  # back in L1
        assert listening.peek_l1(key)[1] == "l1"
        assert sender.invalidate_user("u1") == 1
        assert poll(lambda: listening.peek_l1(key) == (None, None))
        assert listening.stats()["remote_invalidations"] == 1
    finally:
        listening.close()
        sender.close()
        listening_client.close()
        sender_client.close()
    assert not listening.listener_connected


def test_a_listener_outage_logs_one_warning_and_its_retries_at_debug_level(
    own_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=listener_module.__name__)
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1)
    listener = InvalidationListener(client, "channel", on_message=lambda doc: None, on_resubscribe=lambda: None,
                                    backoff=0.02, max_backoff=0.05)

    def outage() -> None:
        assert listener.connected.wait(5)
        caplog.clear()
        failed_before = listener.errors
        own_redis.stop()
        assert poll(lambda: listener.errors >= failed_before + 3)
        own_redis.restart()
        assert poll(listener.connected.is_set)
        levels = [r.levelno for r in caplog.records if "lost Redis" in r.getMessage()]
        assert levels[0] == logging.WARNING and len(levels) >= 3
        assert set(levels[1:]) == {logging.DEBUG}
        [back] = [r for r in caplog.records if "subscribed again" in r.getMessage()]
        assert back.levelno == logging.INFO

    listener.start()
    try:
        outage()
        outage()  # the next outage warns again
    finally:
        listener.stop()
        client.close()


def test_listener_ignores_its_own_and_malformed_messages(make_cache: Callable[..., TieredCache], keys: Keys,
                                                         redis_client: redis.Redis) -> None:
    cache = make_cache()
    assert cache.start_listener(wait_seconds=5)
    key = keys.rec_list("u1", "als", 10)
    cache.invalidate_user("u1")  # before the fill: its echo must not drop what comes next
    cache.get_or_compute("u1", key, Counting())
    redis_client.publish(keys.invalidation_channel, "not json")
    redis_client.publish(keys.invalidation_channel, '{"user": "someone-else"}')
    assert poll(lambda: cache.stats()["remote_invalidations"] == 1)
    assert cache.peek_l1(key)[1] == "l1"
    assert cache.listener_connected
