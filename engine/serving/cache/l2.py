"""The shared tier: recommendation lists in Redis, with a per-user index, compute locks and TTLs.

Every user-scoped key carries the user's hash tag, so the list, the user's index set and the
lock sit in one Redis Cluster slot and the Lua scripts below touch a single slot.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import redis

from engine.config import Settings
from engine.serving.cache.entry import CachedValue
from engine.storage.client import as_text, eval_script, eval_script_batch
from engine.storage.keys import Keys
from engine.storage.scanning import scan_keys

log = logging.getLogger(__name__)

SCAN_COUNT = 1000

# KEYS: list, user index, lock.  ARGV: envelope, ttl ms, index ttl ms, lock token ("" = none)
STORE_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
return 1
"""

# KEYS: lock.  ARGV: token.  Deletes the lock only if it is still ours.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: user index.  ARGV: channel, message.  Returns the number of list keys deleted.
# The index members share the index's hash tag, hence its slot.
INVALIDATE_USER_LUA = """
local members = redis.call('SMEMBERS', KEYS[1])
local removed = 0
for i = 1, #members, 500 do
  removed = removed + redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return removed
"""


@dataclass(frozen=True, slots=True)
class ListWrite:
    key: str
    user: str
    entry: CachedValue
    ttl: float  # seconds
    token: str = ""  # the compute lock released with the write ("" = none held)


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class RedisTier:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._jitter_rng = random.Random()
        self._store = client.register_script(STORE_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._invalidate_user = client.register_script(INVALIDATE_USER_LUA)
        self._lock_ms = max(1, int(settings.compute_lock_seconds * 1000))
        # the index outlives every list it names: each write resets it to the longest possible list TTL
        longest = settings.rec_cache_ttl_seconds * (1 + settings.rec_cache_ttl_jitter)
        self._index_ttl_ms = math.ceil(longest * 1000) + 1000
        self._index_prefix = keys.rec_index("").split("{", 1)[0]
        self._lock_suffix = keys.rec_lock("")

    # --- reads ----------------------------------------------------------------------------

    def read(self, key: str) -> CachedValue | None:
        return _decode(key, self._client.get(key))

    def wait_for_other_compute(self, key: str) -> tuple[CachedValue | None, str | None]:
        """Another process holds ``key``'s compute lock: poll, backing off, for its value, but never
        longer than its lock.  ``(value, None)`` when it wrote one; ``(None, token)`` when its lock
        went away and we took it; ``(None, None)`` when the wait timed out."""
        lock_key = self._keys.rec_lock(key)
        deadline = time.monotonic() + self._settings.compute_lock_seconds
        pause = 0.005
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.1)
            raw, holder = self._client.mget(key, lock_key)
            entry = _decode(key, raw)
            if entry is not None:
                return entry, None
            if holder is None and (token := self.try_lock(key)) is not None:
                return None, token
        return None, None

    # --- compute locks --------------------------------------------------------------------

    def try_lock(self, key: str) -> str | None:
        """The token of ``key``'s compute lock when we took it, None when another process holds it."""
        token = uuid.uuid4().hex
        if self._client.set(self._keys.rec_lock(key), token, nx=True, px=self._lock_ms):
            return token
        return None

    def unlock(self, key: str, token: str) -> None:
        if token:
            # best effort: the lock expires by itself, and the caller's own error matters more
            with contextlib.suppress(redis.RedisError):
                eval_script(self._client, self._release, [self._keys.rec_lock(key)], [token])

    # --- writes ---------------------------------------------------------------------------

    def ttl(self) -> float:
        """A new list's TTL in seconds: the configured one with jitter, so lists written together
        do not all expire together."""
        j = self._settings.rec_cache_ttl_jitter
        return self._settings.rec_cache_ttl_seconds * (1.0 + self._jitter_rng.uniform(-j, j))

    def write(self, writes: Sequence[ListWrite]) -> None:
        """List + index + lock release, one script call each, pipelined for a batch (per node on a cluster)."""
        eval_script_batch(self._client, self._store, [
            ([w.key, self._keys.rec_index(w.user), self._keys.rec_lock(w.key)],
             [w.entry.envelope(), max(1, int(w.ttl * 1000)), self._index_ttl_ms, w.token])
            for w in writes
        ])

    # --- deletes --------------------------------------------------------------------------

    def delete_user(self, user_id: str, message: bytes) -> int:
        """Delete the user's lists and index and publish ``message``, in one atomic script;
        returns the lists deleted."""
        return int(eval_script(self._client, self._invalidate_user, [self._keys.rec_index(user_id)],
                               [self._keys.invalidation_channel, message]))

    def delete_all(self, message: bytes) -> int:
        """SCAN + pipelined UNLINK of every recommendation-cache key, then publish ``message``.
        Returns the lists deleted (index sets and locks are deleted but not counted)."""
        removed = 0
        # every primary of a cluster, and the one server otherwise; a cluster pipeline sends each
        # node the deletes of its own slots
        for batch in _chunks(scan_keys(self._client, self._keys.rec_scan_pattern, count=SCAN_COUNT), SCAN_COUNT):
            pipe = self._client.pipeline(transaction=False)
            for key in batch:
                pipe.unlink(key)  # one key per command: valid in Redis Cluster too
            for key, n in zip(batch, pipe.execute(), strict=True):
                removed += int(n) if self._is_list_key(key) else 0
        self._client.publish(self._keys.invalidation_channel, message)
        return removed

    def _is_list_key(self, key: str | bytes) -> bool:
        k = as_text(key)
        return not k.startswith(self._index_prefix) and not k.endswith(self._lock_suffix)


def _decode(key: str, raw: str | bytes | None) -> CachedValue | None:
    if raw is None:
        return None
    try:
        return CachedValue.from_envelope(raw)
    except (ValueError, KeyError, TypeError):
        # not ours or from an older layout: treat as a miss, the next write replaces it
        log.warning("unreadable cache entry at %s; recomputing", key)
        return None
