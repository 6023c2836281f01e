"""`recops experiments` (create, start, readout, interleaving readout) again, on a three-master Redis Cluster."""

from tests.engine.cli.test_experiments import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401
