"""The engine against a real three-master Redis Cluster on loopback ports.

Serving, events (with the invalidation they trigger) and the experiment path run unchanged:
every multi-key operation keeps its keys in one slot through hash tags.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.events.tracker import Event
from engine.runtime import Engine, build_engine
from engine.storage.client import redis_client
from engine.storage.embedded_cluster import EmbeddedRedisCluster
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.polling import poll


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    c = EmbeddedRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3).start()
    yield c
    c.stop()


@pytest.fixture
def cluster_engine(cluster: EmbeddedRedisCluster, small_world_dir: Path) -> Iterator[Engine]:
    client = cluster.client()
    client.flushall()
    # no refresh-ahead: the test reads the miss that follows an invalidation
    eng = build_engine(
        Settings(data_dir=small_world_dir, redis_url=cluster.url, refresh_after_invalidation=False, **SMALL_WORLD)
    )
    yield eng
    eng.close()


def _buyer(engine: Engine) -> str:
    ev = engine.dataset.events
    return str(ev.loc[ev["type"] == "purchase", "user_id"].value_counts().index[0])


def test_the_cluster_has_three_masters(cluster: EmbeddedRedisCluster) -> None:
    assert len(cluster.client().get_primaries()) == 3


def test_serving_and_events_on_a_cluster(cluster_engine: Engine) -> None:
    eng = cluster_engine
    user = _buyer(eng)
    first = eng.service.recommend(user, n=10)
    assert not first.fallback and first.cache_tier == "miss" and len(first.items) == 10
    assert eng.service.recommend(user, n=10).cache_tier == "l1"
    eng.cache.l1.clear()
    assert eng.service.recommend(user, n=10).cache_tier == "l2"

    bought = first.items[0]["item_id"]
    result = eng.events.track(Event(user_id=user, item_id=bought, type="purchase", value=9.0))
    assert result.accepted
    assert eng.events.track(Event(event_id=result.event_id or "x", user_id=user, item_id=bought,
                                  type="purchase", value=9.0)).duplicate in (True, False)
    after = eng.service.recommend(user, n=10)
    assert after.cache_tier == "miss" and not after.fallback
    assert bought not in {i["item_id"] for i in after.items}
    assert bought in eng.features.get_user(user).purchased

    # lists of many users spread over the three masters; "invalidate all" reaches every node
    for uid in [f"u{i:05d}" for i in range(40)]:
        eng.service.recommend(uid, n=5)
    assert eng.cache.invalidate_all(reason="test") >= 40


def test_experiment_path_on_a_cluster(cluster_engine: Engine) -> None:
    eng = cluster_engine
    exps = eng.experiments
    assert exps is not None
    exps.create({"key": "cl", "name": "cluster", "goal_metric": "ctr",
                 "variants": [{"name": "control", "model": "popularity"}, {"name": "b", "model": "als"}]})
    exps.start("cl")
    exps.refresh(force=True)
    served = 0
    for i in range(60):
        uid = f"u{i:05d}"
        a = exps.assign(uid)
        assert a is not None and a.experiment == "cl"
        exps.record_exposure(a)
        items = eng.service.recommend(uid, n=3, model=a.model).items
        events = [Event(user_id=uid, item_id=it["item_id"], type="impression") for it in items]
        events.append(Event(user_id=uid, item_id=items[0]["item_id"], type="click"))
        eng.events.track_many(events)
        served += 1
    readout = exps.readout("cl")
    assert sum(arm.users for arm in readout.arms) == served
    assert sum(arm.totals["impressions"] for arm in readout.arms) == 3 * served
    assert sum(arm.totals["clicks"] for arm in readout.arms) == served


def test_invalidation_reaches_another_process_l1_through_cluster_pubsub(
    cluster: EmbeddedRedisCluster, cluster_engine: Engine
) -> None:

    from engine.serving.cache import TieredCache
    from engine.storage.client import redis_client

    other = TieredCache(redis_client(cluster.url), cluster_engine.keys, cluster_engine.settings)
    assert other.start_listener(wait_seconds=5.0)
    try:
        key = cluster_engine.keys.rec_list("u00001", "als", 5, "x")
        other.get_or_compute("u00001", key, lambda: {"items": [1]})
        assert other.peek_l1(key)[0] is not None
        cluster_engine.cache.invalidate_user("u00001", reason="test")
        assert poll(lambda: other.peek_l1(key)[0] is None, 5, every=0.05)
    finally:
        other.close()


# INCR, then keep the server busy for 0.8 s: the reply comes after the client's 0.3 s timeout
SLOW_INCR = """
redis.call('INCR', KEYS[1])
local t0 = redis.call('TIME')
local start = t0[1] * 1000000 + t0[2]
repeat
  local t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start > 800000
return 1
"""


def test_a_call_that_times_out_is_not_sent_again(cluster: EmbeddedRedisCluster) -> None:
    """A Lua update that ran but answered late must not run twice: the cluster client's own retry
    (on by default for timeouts) is off, as the single-server client's is."""
    key = "{timeout-test}:counter"
    cluster.client().delete(key)
    impatient = redis_client(cluster.url, socket_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        impatient.eval(SLOW_INCR, 1, key)
    # a re-sent call would queue behind the first and run once it ends; give three of them time
    time.sleep(max(0.0, started + 3.5 - time.monotonic()))
    assert cluster.client().get(key) == "1"
