"""Walking and counting the keyspace of one Redis or of every primary of a Redis Cluster.

    for key in scan_keys(client, "recops:rec*"):   # SCAN on the server, or on each cluster primary
        ...
    total = key_count(client)                       # DBSIZE, summed over the primaries of a cluster

A cluster's SCAN cursor is per node (redis-py answers a dict of cursors) and DBSIZE answers for one
node only, so code that loops on ``client.scan`` or reads ``client.dbsize()`` goes through here.
Replicas are left out: they hold copies of their primary's keys, which would count twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from redis.cluster import RedisCluster

from engine.storage.client import as_text, is_cluster

SCAN_COUNT = 1000


def scan_keys(client: redis.Redis, match: str, count: int = SCAN_COUNT) -> Iterator[str]:
    """Every key matching ``match`` (as text), visiting every primary of a cluster; a key written or
    deleted during the walk may or may not appear (SCAN's guarantee)."""
    if is_cluster(client):
        raw: Iterator[Any] = client.scan_iter(match=match, count=count, target_nodes=RedisCluster.PRIMARIES)
    else:
        raw = client.scan_iter(match=match, count=count)
    for key in raw:
        yield as_text(key)


def key_count(client: redis.Redis) -> int:
    """DBSIZE of the server, or the sum over the cluster's primaries."""
    if is_cluster(client):
        sizes: Any = client.dbsize(target_nodes=RedisCluster.PRIMARIES)
        return int(sum(sizes.values())) if isinstance(sizes, dict) else int(sizes)
    return int(client.dbsize())
