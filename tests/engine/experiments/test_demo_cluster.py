"""The demo experiment's tests again, on a three-master Redis Cluster."""

from tests.engine.experiments.test_demo import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
