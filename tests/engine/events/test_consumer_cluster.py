"""The event-log consumer group's tests again (XREADGROUP, XAUTOCLAIM, XTRIM), on a three-master Redis Cluster."""

from tests.engine.events.test_consumer import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401

# waits on a single server's INFO blocked_clients; a cluster answers INFO per node
del test_two_consumers_of_one_group_share_the_stream_without_overlap  # noqa: F821
