"""The spool's replay tests again, on a three-master Redis Cluster."""

from tests.engine.events.test_spool import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
