"""A Redis Cluster master that dies while serving: its users fall back, the others keep serving.

The cluster's masters run without full coverage (``EmbeddedRedisCluster``), so a master that is
down takes out only its own slots.  Through the engine and through the HTTP API: no request
fails; lists of users whose keys live on the dead master are fallbacks, events are spooled (202)
like during a single-Redis outage, and everything is back once the master restarts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.config import Settings
from engine.events.tracker import Event
from engine.runtime import Engine, build_engine
from engine.storage.embedded_cluster import EmbeddedRedisCluster
from engine.storage.embedded_redis import EmbeddedRedis
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.polling import poll


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedRedisCluster]:
    c = EmbeddedRedisCluster(tmp_path / "cluster", masters=3).start()  # its own: a test kills a node
    yield c
    c.stop()


@pytest.fixture
def cluster_engine(cluster: EmbeddedRedisCluster, small_world_dir: Path, tmp_path: Path) -> Iterator[Engine]:
    # a data dir of its own: events spooled here must not be replayed by another test's engine;
    # refresh-ahead off, so that a miss is a plain miss
    data_dir = tmp_path / "data"
    shutil.copytree(small_world_dir, data_dir)
    settings = Settings(data_dir=data_dir, redis_url=cluster.url, refresh_after_invalidation=False, **SMALL_WORLD)
    eng = build_engine(settings)
    yield eng
    eng.close()


def _master_of(cluster: EmbeddedRedisCluster, key: str) -> EmbeddedRedis:
    port = cluster.client().get_node_from_key(key).port
    return next(n for n in cluster.nodes if n.port == port)


def _users_by_master(eng: Engine, cluster: EmbeddedRedisCluster, victim: EmbeddedRedis,
                     users: list[str]) -> tuple[list[str], list[str]]:
    on = [u for u in users if _master_of(cluster, eng.keys.user_features(u)) is victim]
    return on, [u for u in users if u not in on]


def test_a_dead_master_makes_its_users_fall_back_and_the_others_keep_serving(
    cluster: EmbeddedRedisCluster, cluster_engine: Engine
) -> None:
    eng = cluster_engine
    # not the master of the event stream: the events of users elsewhere would spool too (see below)
    stream_master = _master_of(cluster, eng.keys.event_stream)
    victim = next(n for n in cluster.nodes if n is not stream_master)
    cached, fresh = [f"u{i:05d}" for i in range(60)], [f"u{i:05d}" for i in range(100, 160)]
    cached_on, cached_off = _users_by_master(eng, cluster, victim, cached)
    fresh_on, fresh_off = _users_by_master(eng, cluster, victim, fresh)
    assert cached_on and cached_off and fresh_on and fresh_off
    before = {u: eng.service.recommend(u, n=5) for u in cached}
    assert not any(r.fallback for r in before.values())

    victim.kill()
    eng.cache.l1.clear()  # from now on every list comes from Redis (or its fallback)
    for u in cached_off:  # their lists live on the masters still up
        r = eng.service.recommend(u, n=5)
        assert r.cache_tier == "l2" and r.items == before[u].items
    for u in fresh_off:  # computed: their features live on the masters still up
        r = eng.service.recommend(u, n=5)
        assert r.cache_tier == "miss" and not r.fallback
    for u in cached_on + fresh_on:
        r = eng.service.recommend(u, n=5)
        assert r.fallback and r.fallback_reason == "redis_unavailable" and len(r.items) == 5

    # events of a user on the dead master cannot be deduplicated there: spooled, not lost
    item = str(eng.dataset.items["item_id"].iloc[0])
    spooled = eng.ingest.track(Event(user_id=cached_on[0], item_id=item, type="click"))
    assert spooled.accepted and spooled.spooled

    victim.restart()
    assert poll(lambda: not eng.service.recommend(cached_on[0], n=5).fallback, 30, every=0.2)
    # the spool is replayed into the stream once every master answers again
    assert poll(lambda: not eng.ingest.spool.holds_events(), 30, every=0.2)
    assert spooled.event_id in {e["event_id"] for e in eng.events.recent(50)}


def test_over_http_a_dead_master_gives_fallbacks_and_202s_never_a_5xx(
    cluster: EmbeddedRedisCluster, cluster_engine: Engine
) -> None:
    eng = cluster_engine
    victim = cluster.nodes[0]  # the node named in REDIS_URL: the client knows the others by then
    users = [f"u{i:05d}" for i in range(200, 240)]
    on, off = _users_by_master(eng, cluster, victim, users)
    item = str(eng.dataset.items["item_id"].iloc[0])
    with TestClient(create_app(engine=eng)) as http:
        assert http.get("/health").json()["redis"] == {"status": "ok", "detail": "3 primaries"}
        victim.kill()
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["redis"]["status"] == "degraded"
        assert health.json()["redis"]["detail"].startswith(f"1 of 3 primaries unreachable: 127.0.0.1:{victim.port}")
        for u in users:
            got = http.post("/recommendations", params={"user_id": u, "n": 5})
            assert got.status_code == 200, got.text
            assert got.json()["fallback"] is (u in on)
        for u in users[:10]:
            posted = http.post("/events", json={"user_id": u, "item_id": item, "type": "click"})
            assert posted.status_code in (200, 201, 202), posted.text
            if u in on:
                assert posted.status_code == 202 and posted.json()["spooled"] is True
        assert off  # some users were served normally all along


def test_a_listener_whose_node_died_subscribes_on_another_and_hears_invalidations(
    cluster: EmbeddedRedisCluster, cluster_engine: Engine
) -> None:
    from engine.serving.cache import TieredCache
    from engine.storage.client import redis_client

    eng = cluster_engine
    client = redis_client(cluster.url)
    other = TieredCache(client, eng.keys, eng.settings)  # another serving process's cache
    try:
        assert other.start_listener(wait_seconds=5.0)
        first = client.get_primaries()[0]  # type: ignore[attr-defined]
        victim = next(n for n in cluster.nodes if n.port == first.port)  # where the listener subscribed
        user = next(f"u{i:05d}" for i in range(300, 400)
                    if _master_of(cluster, eng.keys.rec_index(f"u{i:05d}")) is not victim)
        key = eng.keys.rec_list(user, "als", 5, "x")
        victim.kill()
        assert poll(lambda: not other.listener_connected, 10, every=0.05)
        assert poll(lambda: other.listener_connected, 20, every=0.1)  # on a live master now
        other.get_or_compute(user, key, lambda: {"items": [1]})
        assert other.peek_l1(key)[0] is not None
        eng.cache.invalidate_user(user, reason="test")  # published from the user's master
        assert poll(lambda: other.peek_l1(key)[0] is None, 5, every=0.05)
    finally:
        other.close()
        client.close()
