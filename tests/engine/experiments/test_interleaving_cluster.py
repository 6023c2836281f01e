"""Interleaving's tests again (impression and credit scripts), on a three-master Redis Cluster."""

from tests.engine.experiments.test_interleaving import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401

# counts round trips on one server's connection pool; a cluster client has one pool per node
del test_merged_list_keeps_each_rankers_order_and_its_impression_costs_one_round_trip  # noqa: F821
