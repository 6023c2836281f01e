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
from redis.typing import EncodableT

from engine.config import Settings
from engine.serving.cache.entry import CachedValue
from engine.serving.cache.miss_causes import (
    GENERATION_FIELD,
    INVALIDATION_FIELD,
    Flush,
    Written,
    invalidation_record,
    list_slot,
    parse_invalidation,
    slot_record,
)
from engine.storage.client import as_text, eval_script, eval_script_batch
from engine.storage.keys import Keys
from engine.storage.scanning import scan_keys

log = logging.getLogger(__name__)

SCAN_COUNT = 1000

# KEYS: list, user index, lock, user ledger.  ARGV: envelope, ttl ms, index ttl ms, lock token
# ("" = none), ledger slot, slot record, ledger ttl ms, expected generation ("" = write regardless).
# The list is written only while the user's invalidation generation is still the one read before
# computing it: a list computed from data an event has since changed (in any process) is dropped.
STORE_LUA = """
local owns_lock = ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4]
if ARGV[8] ~= '' and (redis.call('HGET', KEYS[4], 'gen') or '0') ~= ARGV[8] then
  if owns_lock then redis.call('DEL', KEYS[3]) end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
if owns_lock then redis.call('DEL', KEYS[3]) end
return 1
"""

# KEYS: lock.  ARGV: token.  Deletes the lock only if it is still ours.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: user index, user ledger.  ARGV: channel, message, invalidation record, ledger ttl ms.
# Returns the number of list keys deleted.  The index members share the index's hash tag, hence
# its slot.  The ledger notes why (for miss causes) and bumps the generation (see STORE_LUA).
INVALIDATE_USER_LUA = """
local members = redis.call('SMEMBERS', KEYS[1])
local removed = 0
for i = 1, #members, 500 do
  removed = removed + redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'gen', 1)
redis.call('HSET', KEYS[2], 'inv', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
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
    generation: str = ""  # the user's invalidation generation read before computing ("" = no check)
    written: float = 0.0  # wall-clock seconds of the write (recorded in the ledger)


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
        self._ledger_ttl_ms = max(self._index_ttl_ms, settings.cache_ledger_seconds * 1000)
        self._index_prefix = keys.rec_index("").split("{", 1)[0]
        self._lock_suffix = keys.rec_lock("")

    # --- reads ----------------------------------------------------------------------------

    def read(self, key: str) -> CachedValue | None:
        return _decode(key, self._client.get(key))

    def miss_record(self, key: str, user: str) -> tuple[Written | None, Flush | None, str]:
        """What the user's ledger says of ``key``'s slot: its last write, the user's last
        invalidation, and the current invalidation generation (to pass back with the write)."""
        slot, _ = list_slot(key)
        raw_slot, raw_inv, gen = self._client.hmget(
            self._keys.rec_ledger(user), [slot, INVALIDATION_FIELD, GENERATION_FIELD]
        )
        written = Written.parse(as_text(raw_slot)) if raw_slot is not None else None
        invalidation = parse_invalidation(as_text(raw_inv)) if raw_inv is not None else None
        return written, invalidation, as_text(gen) if gen is not None else "0"

    def generations(self, users: Sequence[str]) -> dict[str, str]:
        """Each user's current invalidation generation (one pipeline)."""
        pipe = self._client.pipeline(transaction=False)
        for user in users:
            pipe.hget(self._keys.rec_ledger(user), GENERATION_FIELD)
        return {u: as_text(g) if g is not None else "0" for u, g in zip(users, pipe.execute(), strict=True)}

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

    def write(self, writes: Sequence[ListWrite]) -> list[bool]:
        """List + index + ledger + lock release, one script call each, pipelined for a batch (per
        call on a cluster).  Returns, per write, whether it was stored (False: the user was
        invalidated since its generation was read)."""
        calls = []
        for w in writes:
            slot, version = list_slot(w.key)
            args: list[EncodableT] = [
                w.entry.envelope(), max(1, int(w.ttl * 1000)), self._index_ttl_ms, w.token,
                slot, slot_record(version, w.entry.expiry, w.written or time.time()), self._ledger_ttl_ms,
                w.generation,
            ]
            keys = [w.key, self._keys.rec_index(w.user), self._keys.rec_lock(w.key), self._keys.rec_ledger(w.user)]
            calls.append((keys, args))
        return [int(r) == 1 for r in eval_script_batch(self._client, self._store, calls)]

    # --- deletes --------------------------------------------------------------------------

    def delete_user(self, user_id: str, message: bytes, reason: str = "") -> int:
        """Delete the user's lists and index, note ``reason`` in their ledger and publish
        ``message``, in one atomic script; returns the lists deleted."""
        return int(eval_script(
            self._client, self._invalidate_user,
            [self._keys.rec_index(user_id), self._keys.rec_ledger(user_id)],
            [self._keys.invalidation_channel, message, invalidation_record(reason, time.time()),
             self._ledger_ttl_ms],
        ))

    def delete_all(self, message: bytes) -> int:
        """Bump every user's invalidation generation, then SCAN + pipelined UNLINK of every
        recommendation-cache key, then publish ``message``.  Returns the lists deleted (index sets
        and locks are deleted but not counted).

        The bump comes first so that a list computed before the purge, in any process, is refused
        when it is written after it (as after a purchase, ``STORE_LUA``), and one written before the
        bump is deleted by the walk that follows.  Only users with a ledger are bumped: a first-seen
        user's list computed during the purge may still be stored after it.
        """
        self._bump_generations()
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

    def _bump_generations(self) -> None:
        # one key per command, pipelined (a cluster pipeline sends each primary its own slots'); a
        # ledger that expired between the SCAN and the HINCRBY is created again, so each gets the
        # ledger TTL anew (a bumped ledger lives one TTL from the purge: it only lives longer).
        # Not PEXPIRE NX, which would keep live TTLs: Redis 7.0 has it, the bundled 6.2 refuses it
        for batch in _chunks(scan_keys(self._client, self._keys.rec_ledger_scan_pattern, count=SCAN_COUNT),
                             SCAN_COUNT):
            pipe = self._client.pipeline(transaction=False)
            for key in batch:
                pipe.hincrby(key, GENERATION_FIELD, 1)
                pipe.pexpire(key, self._ledger_ttl_ms)
            pipe.execute()

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
