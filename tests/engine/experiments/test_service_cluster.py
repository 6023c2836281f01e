"""The experiment service's tests again (OBSERVE, bandits, day and hour statistics), on a three-master Redis Cluster."""

from tests.engine.experiments.test_service import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401

# counts round trips on one server's connection pool; a cluster client has one pool per node
del test_one_round_trip_per_batch_and_per_exposure  # noqa: F821
