"""Two real processes on one Redis: pub/sub invalidation of L1, and the cross-process compute lock."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from engine.config import Settings
from engine.serving.cache import TieredCache
from engine.storage.keys import Keys
from tests.conftest import REPO_ROOT

PEER = REPO_ROOT / "tests" / "support" / "cache_peer.py"


class Peer:
    def __init__(self, url: str, mode: str, user: str, other: str = "nobody") -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), url, mode, user, other],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env,
        )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"peer exited ({self.proc.returncode}) without answering: {stderr[-2000:]}")
        doc = orjson.loads(line)
        assert "error" not in doc, doc
        return doc

    def finish(self) -> None:
        try:
            assert self.proc.wait(15) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def cache(redis_client: redis.Redis, settings: Settings) -> Iterator[TieredCache]:
    c = TieredCache(redis_client, Keys(settings.key_prefix), settings, rand=lambda: 1.0)
    yield c
    c.close()


def test_invalidation_reaches_another_process(cache: TieredCache, redis_url: str) -> None:
    peer = Peer(redis_url, "listen", "alice", "bob")
    try:
        assert peer.read() == {"ready": True}

        # the peer's lists are in L2 too, so our invalidation deletes them there as well
        assert cache.invalidate_user("alice", reason="purchase") == 1
        report = peer.read()
        assert report == {"dropped": True, "other_kept": True, "remote_invalidations": 1}

        assert cache.invalidate_all(reason="admin") == 1
        assert peer.read() == {"other_dropped": True}
    finally:
        peer.finish()


def test_second_process_waits_for_the_first_ones_computation(cache: TieredCache, redis_url: str,
                                                             settings: Settings) -> None:
    keys = Keys(settings.key_prefix)
    peer = Peer(redis_url, "compute", "carol")
    try:
        assert peer.read() == {"computing": True}
        calls = []
        value, tier = cache.get_or_compute("carol", keys.rec_list("carol", "als", 10),
                                           lambda: calls.append(1) or {"from": "test"})
        assert (value, tier) == ({"from": "peer"}, "l2")
        assert calls == []
        assert peer.read() == {"tier": "miss"}
    finally:
        peer.finish()
