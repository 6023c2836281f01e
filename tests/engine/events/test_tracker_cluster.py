"""The event tracker's tests again, on a three-master Redis Cluster (tests/support/on_cluster.py)."""

from tests.engine.events.test_tracker import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401

# counts round trips on one server's connection pool; a cluster client has one pool per node
del test_a_batch_costs_two_round_trips_whatever_its_size  # noqa: F821
