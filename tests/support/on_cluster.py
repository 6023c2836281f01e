"""Run a test module against a real three-master Redis Cluster instead of the one test Redis.

A module imports these fixtures (they override tests/conftest.py's ``redis_url`` and
``redis_client`` for that module only) and may import other modules' tests to run them again,
unchanged, on the cluster:

    from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
    from tests.engine.events.test_tracker import test_duplicates_are_dropped      # noqa: F401

One cluster per module (three redis-server processes and ``redis-cli --cluster create``: about
two seconds), flushed on every primary before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from engine.storage.client import redis_client as open_client
from engine.storage.embedded_cluster import EmbeddedRedisCluster


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    cluster = EmbeddedRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(redis_cluster: EmbeddedRedisCluster) -> str:
    return redis_cluster.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = open_client(redis_url)
    client.flushall()  # a cluster client sends it to every primary
    yield client
    client.close()
