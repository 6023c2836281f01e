"""The feature store's tests again (batch reads over many slots), on a three-master Redis Cluster."""

from tests.engine.storage.test_feature_store import *  # noqa: F403
from tests.support.on_cluster import redis_client, redis_cluster, redis_url  # noqa: F401

# these count round trips (or open a bytes client) on one server's connection pool; a cluster
# client has one pool per node
del test_a_cached_batch_is_one_round_trip  # noqa: F821
del test_get_items_batches_caches_and_leaves_out_unknown_ids  # noqa: F821
del test_works_with_a_client_returning_bytes  # noqa: F821
