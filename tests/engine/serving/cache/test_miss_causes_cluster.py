"""Miss causes, the guarded write (after a purchase and after a purge of every list) and warming,
again on a three-master Redis Cluster."""

from tests.engine.serving.cache.test_miss_causes import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
