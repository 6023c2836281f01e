"""Refresh-ahead's tests again, on a three-master Redis Cluster."""

from tests.engine.serving.cache.test_refresh_ahead import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
