"""engine.console.keyspace: key families, counted with SCAN and sampled for memory and TTLs."""

from __future__ import annotations

import pytest
import redis

from engine.console import keyspace
from engine.storage.keys import Keys


@pytest.mark.parametrize(("key", "family"), [
    ("recops:rec:{u:42}:als:10:c3l0.7", "rec"),
    ("recops:rec:{u:42}:als:10:c3l0.7:lock", "rec:lock"),
    ("recops:recidx:{u:42}", "recidx"),
    ("recops:feat:user:{u:42}", "feat:user"),
    ("recops:feat:item:i00042", "feat:item"),
    ("recops:events", "events"),
    ("recops:events:count", "events:count"),
    ("recops:exp:cfg:{e:abc}", "exp:cfg"),
    ("other:thing", "(outside prefix)"),
])
def test_key_family(key: str, family: str) -> None:
    assert keyspace.key_family(key, "recops") == family


def test_scan_keyspace_counts_samples_memory_and_ttls(redis_client: redis.Redis) -> None:
    keys = Keys()
    pipe = redis_client.pipeline()
    for i in range(300):
        pipe.set(keys.rec_list(f"u{i}", "als", 10), "x" * 100, ex=600)
    for i in range(20):
        pipe.hset(keys.item_features(f"i{i}"), mapping={"title": "t", "category": "c"})
        pipe.expire(keys.item_features(f"i{i}"), 3600)
    pipe.set(keys.event_counts, 1)  # no TTL on purpose
    pipe.set("someone-else:key", 1)  # outside the prefix: not scanned
    pipe.execute()
    report = keyspace.scan_keyspace(redis_client, keys, sample_per_family=50)
    rec, items, counts = report.family("rec"), report.family("feat:item"), report.family("events:count")
    assert rec is not None and items is not None and counts is not None
    assert (rec.keys, items.keys, counts.keys) == (300, 20, 1)
    assert report.scanned == 321 and report.db_size == 322 and not report.truncated
    assert rec.sampled == 50 and rec.mean_bytes is not None and rec.mean_bytes > 100
    assert rec.est_bytes == pytest.approx(rec.mean_bytes * 300)
    assert all(590 <= t <= 600 for t in rec.ttls) and rec.no_ttl == 0
    assert items.sampled == 20 and all(3590 <= t <= 3600 for t in items.ttls)
    assert counts.no_ttl == 1 and counts.ttls == []
    table = report.table()
    assert list(table["family"][:2]) == ["rec", "feat:item"]  # most keys first
    assert set(report.ttl_frame()["family"]) == {"recommendation lists (L2)", "item features"}


def test_scan_keyspace_stops_at_max_keys(redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)  # one key per command: the same on a cluster
    for i in range(3000):
        pipe.set(f"recops:feat:item:i{i}", "1")
    pipe.execute()
    report = keyspace.scan_keyspace(redis_client, Keys(), max_keys=1000)
    assert report.truncated and 1000 <= report.scanned < 3000
