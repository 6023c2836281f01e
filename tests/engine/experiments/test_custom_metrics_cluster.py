"""Custom metrics' tests again (OBSERVE_CUSTOM), on a three-master Redis Cluster."""

from tests.engine.experiments.test_custom_metrics import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
