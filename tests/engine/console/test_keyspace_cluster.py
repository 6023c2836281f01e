"""The keyspace scan's tests again (SCAN on every primary), on a three-master Redis Cluster."""

from tests.engine.console.test_keyspace import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
