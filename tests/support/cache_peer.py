"""A second process for tests/engine/serving/cache/test_multiprocess.py: its own TieredCache on the same Redis.

Usage: ``python cache_peer.py REDIS_URL MODE USER OTHER_USER``; it prints one JSON object per line.

MODE ``listen``: fill L1 with one list of USER and one of OTHER_USER, print ``{"ready": true}``,
then report when the USER entry leaves L1 and when the OTHER_USER entry does (each within 10 s).
MODE ``compute``: compute USER's list slowly, printing ``{"computing": true}`` when it starts and
``{"tier": ...}`` when done, so that the test process can miss the same key meanwhile.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

from engine.config import Settings
from engine.serving.cache import TieredCache
from engine.storage.keys import Keys
from tests.support.polling import poll


def say(**doc: object) -> None:
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    sys.stdout.flush()


def main(url: str, mode: str, user: str, other: str) -> None:
    settings = Settings(redis_url=url, data_dir=Path(tempfile.mkdtemp(prefix="cache-peer-")))
    keys = Keys(settings.key_prefix)
    client = redis.Redis.from_url(url, decode_responses=True)
    cache = TieredCache(client, keys, settings, rand=lambda: 1.0)
    mine, theirs = keys.rec_list(user, "als", 10), keys.rec_list(other, "als", 10)
    try:
        if mode == "listen":
            if not cache.start_listener(wait_seconds=10):
                say(error="listener did not subscribe")
                return
            cache.get_or_compute(user, mine, lambda: {"from": "peer", "user": user})
            cache.get_or_compute(other, theirs, lambda: {"from": "peer", "user": other})
            say(ready=True)
            dropped = poll(lambda: cache.peek_l1(mine) == (None, None))
            say(dropped=dropped, other_kept=cache.peek_l1(theirs)[1] == "l1",
                remote_invalidations=cache.stats()["remote_invalidations"])
            say(other_dropped=poll(lambda: cache.peek_l1(theirs) == (None, None)))
        elif mode == "compute":
            def slow() -> dict[str, str]:
                say(computing=True)
                time.sleep(0.5)
                return {"from": "peer"}

            say(tier=cache.get_or_compute(user, mine, slow)[1])
        else:
            say(error=f"unknown mode {mode}")
    finally:
        cache.close()
        client.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
