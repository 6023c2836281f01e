"""The console's cache actions again (purges by per-node SCAN), on a three-master Redis Cluster."""

from tests.engine.console.test_cache_actions import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
