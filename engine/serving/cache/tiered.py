"""The recommendation-list cache: L1 in process, L2 in Redis, kept coherent by pub/sub.

Read path of ``get_or_compute``: L1 → (single-flight per key) L2 → (Redis lock per key) compute.
XFetch may refresh a value early on an L1 or L2 read; the early refresh is done by whoever takes
the Redis lock, and everyone else keeps serving the current, still valid, value meanwhile.

Every user-scoped key carries the user's hash tag, so the list, the user's index set and the
lock sit in one Redis Cluster slot and the Lua scripts below touch a single slot.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis.typing import EncodableT

from engine.config import Settings
from engine.monitoring.prometheus_metrics import CACHE_INVALIDATIONS, CACHE_REQUESTS
from engine.serving.cache.coordination import SingleFlight, WriteGuard, WriteTicket
from engine.serving.cache.entry import CachedValue, xfetch_due
from engine.serving.cache.l1 import L1Cache
from engine.serving.cache.listener import InvalidationListener
from engine.storage.client import is_cluster
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

TIERS = ("l1", "l2")
RESULTS = ("hit", "miss", "early_refresh")
SCAN_COUNT = 1000
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)

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


@dataclass(frozen=True)
class WarmReport:
    users: int  # users whose lists were computed and written
    keys_written: int
    seconds: float
    failed: int = 0  # users whose compute_for_user raised (logged and skipped)


@dataclass(frozen=True, slots=True)
class _Row:
    ticket: WriteTicket  # names the user
    key: str
    entry: CachedValue
    ttl: float
    token: str = ""


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class TieredCache:
    """L1 + L2 cache of recommendation lists; see the module docstring for the read path.

    ``rand`` (values in (0, 1]) drives XFetch and is injectable for tests; ``instance_id`` names
    this process in invalidation messages so that it ignores its own.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        settings: Settings,
        *,
        rand: Callable[[], float] | None = None,
        instance_id: str | None = None,
        listener_backoff: float = 0.05,
        listener_max_backoff: float = 2.0,
    ) -> None:
        self._client = client
        self._keys = keys
        self._settings = settings
        self._rand = rand or (lambda: 1.0 - random.random())
        self._jitter_rng = random.Random()
        self.instance_id = instance_id or uuid.uuid4().hex
        self.l1 = L1Cache(settings.l1_max_entries, settings.l1_ttl_seconds)
        self._flights: SingleFlight[tuple[CachedValue, str]] = SingleFlight()
        self._guard = WriteGuard()
        self._stats = _Stats()
        self._started = time.time()
        self._metric = {(t, r): CACHE_REQUESTS.labels(tier=t, result=r) for t in TIERS for r in RESULTS}
        self._store = client.register_script(STORE_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._invalidate_user = client.register_script(INVALIDATE_USER_LUA)
        self._lock_ms = max(1, int(settings.compute_lock_seconds * 1000))
        # the index outlives every list it names: each write resets it to the longest possible list TTL
        longest = settings.rec_cache_ttl_seconds * (1 + settings.rec_cache_ttl_jitter)
        self._index_ttl_ms = math.ceil(longest * 1000) + 1000
        self._index_prefix = keys.rec_index("").split("{", 1)[0]
        self._lock_suffix = keys.rec_lock("")
        self._listener = InvalidationListener(
            client,
            keys.invalidation_channel,
            on_message=self._on_message,
            on_resubscribe=self._on_resubscribe,
            backoff=listener_backoff,
            max_backoff=listener_max_backoff,
        )

    # --- reads ----------------------------------------------------------------------------

    def get_or_compute(self, user_id: str, key: str, compute: Callable[[], Any]) -> tuple[Any, str]:
        """``(value, tier)`` with tier ``"l1"``, ``"l2"`` or ``"miss"`` (computed here or by a
        concurrent caller in this process).  Redis errors propagate, except on an L1 hit."""
        entry = self.l1.get(key)
        if entry is not None and not self._due(entry):
            self._count("l1", "hit")
            return entry.value(), "l1"
        if entry is not None:
            self._count("l1", "early_refresh")
            current = entry
            try:
                (result, tier), shared = self._flights.do(
                    key, lambda: self._guarded(user_id, lambda t: self._refresh(t, key, compute, current, "l1"))
                )
            except REDIS_DOWN:
                # refreshing early is optional and the L1 value is still valid: serve it
                return current.value(), "l1"
        else:
            self._count("l1", "miss")
            (result, tier), shared = self._flights.do(
                key, lambda: self._guarded(user_id, lambda t: self._load(t, key, compute))
            )
        if shared:
            self._stats.add("coalesced")
        return result.value(), tier

    def peek_l1(self, key: str) -> tuple[Any, str] | tuple[None, None]:
        """L1 only, never blocks on I/O; ``(None, None)`` on a miss or when XFetch says refresh.

        Only hits are counted: the ``get_or_compute`` that follows a miss counts the look-up.
        """
        entry = self.l1.get(key)
        if entry is None or self._due(entry):
            return None, None
        self._count("l1", "hit")
        return entry.value(), "l1"

    def _guarded(
        self, user_id: str, body: Callable[[WriteTicket], tuple[CachedValue, str]]
    ) -> tuple[CachedValue, str]:
        with self._guard.ticket(user_id) as ticket:
            return body(ticket)

    def _load(self, ticket: WriteTicket, key: str, compute: Callable[[], Any]) -> tuple[CachedValue, str]:
        entry = self.l1.get(key)
        if entry is not None:  # filled by a flight that ended between our L1 miss and now
            return entry, "l1"
        entry = self._decode(key, self._client.get(key))
        if entry is None:
            self._count("l2", "miss")
            return self._compute_under_lock(ticket, key, compute)
        if self._due(entry):
            self._count("l2", "early_refresh")
            return self._refresh(ticket, key, compute, entry, "l2")
        self._count("l2", "hit")
        self._remember(ticket, key, entry)
        return entry, "l2"

    @staticmethod
    def _decode(key: str, raw: str | bytes | None) -> CachedValue | None:
        if raw is None:
            return None
        try:
            return CachedValue.from_envelope(raw)
        except (ValueError, KeyError, TypeError):
            # not ours or from an older layout: treat as a miss, the next write replaces it
            log.warning("unreadable cache entry at %s; recomputing", key)
            return None

    def _refresh(
        self, ticket: WriteTicket, key: str, compute: Callable[[], Any], current: CachedValue, tier: str
    ) -> tuple[CachedValue, str]:
        token = self._try_lock(key)
        if token is None:  # another process is refreshing it; ours is still valid
            if tier == "l2":
                self._remember(ticket, key, current)
            return current, tier
        self._stats.add("early_refreshes")
        return self._compute_and_store(ticket, key, compute, token)

    def _compute_under_lock(
        self, ticket: WriteTicket, key: str, compute: Callable[[], Any]
    ) -> tuple[CachedValue, str]:
        token = self._try_lock(key)
        if token is not None:
            return self._compute_and_store(ticket, key, compute, token)
        # another process computes this key: wait for its value, but never longer than its lock
        self._stats.add("lock_waits")
        lock_key = self._keys.rec_lock(key)
        deadline = time.monotonic() + self._settings.compute_lock_seconds
        pause = 0.005
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.1)
            raw, holder = self._client.mget(key, lock_key)
            entry = self._decode(key, raw)
            if entry is not None:
                self._count("l2", "hit")
                self._remember(ticket, key, entry)
                return entry, "l2"
            if holder is None and (token := self._try_lock(key)) is not None:
                return self._compute_and_store(ticket, key, compute, token)
        self._stats.add("lock_timeouts")
        return self._compute_and_store(ticket, key, compute, "")

    def _compute_and_store(
        self, ticket: WriteTicket, key: str, compute: Callable[[], Any], token: str
    ) -> tuple[CachedValue, str]:
        started = time.perf_counter()
        try:
            value = compute()
        except BaseException:
            self._unlock(key, token)
            raise
        delta = time.perf_counter() - started
        self._stats.add("computes")
        ttl = self._ttl()
        entry = CachedValue.from_value(value, delta, time.time() + ttl)
        if ticket.stale:  # invalidated while computing: serve this caller, cache nothing
            self._unlock(key, token)
            return entry, "miss"
        self._write([_Row(ticket, key, entry, ttl, token)])
        return entry, "miss"

    # --- writes ---------------------------------------------------------------------------

    def _write(self, rows: list[_Row]) -> int:
        """Write rows to L2 (list + index + lock release, one script call each, pipelined for a
        batch) and then to L1; rows whose ticket went stale are skipped."""
        rows = [r for r in rows if not r.ticket.stale]
        if not rows:
            return 0
        # one script call per row, pipelined for a batch (not on a cluster: it refuses scripts there)
        pipelined = len(rows) > 1 and not is_cluster(self._client)
        target: Any = self._client.pipeline(transaction=False) if pipelined else self._client
        for r in rows:
            args: list[EncodableT] = [r.entry.envelope(), max(1, int(r.ttl * 1000)), self._index_ttl_ms, r.token]
            self._store(keys=[r.key, self._keys.rec_index(r.ticket.user), self._keys.rec_lock(r.key)], args=args,
                        client=target)
        if target is not self._client:
            target.execute()
        for r in rows:
            self._remember(r.ticket, r.key, r.entry)
        return len(rows)

    def _remember(self, ticket: WriteTicket, key: str, entry: CachedValue) -> None:
        self._guard.commit(ticket, lambda: self.l1.put(ticket.user, key, entry))

    def _try_lock(self, key: str) -> str | None:
        token = uuid.uuid4().hex
        if self._client.set(self._keys.rec_lock(key), token, nx=True, px=self._lock_ms):
            return token
        return None

    def _unlock(self, key: str, token: str) -> None:
        if token:
            # best effort: the lock expires by itself, and the caller's own error matters more
            with contextlib.suppress(redis.RedisError):
                self._release(keys=[self._keys.rec_lock(key)], args=[token])

    def _ttl(self) -> float:
        j = self._settings.rec_cache_ttl_jitter
        return self._settings.rec_cache_ttl_seconds * (1.0 + self._jitter_rng.uniform(-j, j))

    def _due(self, entry: CachedValue) -> bool:
        return xfetch_due(entry, time.time(), self._settings.xfetch_beta, self._rand)

    # --- warming --------------------------------------------------------------------------

    def warm(
        self,
        user_ids: Iterable[str],
        compute_for_user: Callable[[str], list[tuple[str, Any]]],
        progress: Callable[[int, int], None] | None = None,
        batch: int = 100,
    ) -> WarmReport:
        """Compute every user's lists and write them to L2 and L1, one pipeline per ``batch`` users.

        A user whose ``compute_for_user`` raises is logged and skipped (``failed``); Redis errors
        abort the warm-up.  Each list's XFetch delta is its share of the user's compute time.
        """
        users = list(user_ids)
        total, ok, failed, written = len(users), 0, 0, 0
        started = time.perf_counter()
        for first in range(0, total, max(1, batch)):
            chunk = users[first:first + max(1, batch)]
            with contextlib.ExitStack() as tickets:
                rows: list[_Row] = []
                for user in chunk:
                    ticket = tickets.enter_context(self._guard.ticket(user))
                    t0 = time.perf_counter()
                    try:
                        lists = compute_for_user(user)
                    except REDIS_DOWN:
                        raise
                    except Exception:
                        log.exception("cache warm-up: computing user %s failed", user)
                        failed += 1
                        continue
                    ok += 1
                    delta = (time.perf_counter() - t0) / max(1, len(lists))
                    for key, value in lists:
                        ttl = self._ttl()
                        rows.append(_Row(ticket, key, CachedValue.from_value(value, delta, time.time() + ttl),
                                         ttl))
                n = self._write(rows)
            written += n
            self._stats.add("warmed_keys", n)
            if progress is not None:
                progress(first + len(chunk), total)
        return WarmReport(users=ok, keys_written=written, seconds=time.perf_counter() - started, failed=failed)

    # --- invalidation ---------------------------------------------------------------------

    def invalidate_user(self, user_id: str, reason: str = "purchase") -> int:
        """Delete the user's cached lists in L2 (one atomic script, which also publishes the
        invalidation to every process) and in this process's L1.  Returns the lists deleted."""
        message = orjson.dumps({"user": user_id, "sender": self.instance_id})
        try:
            removed = int(self._invalidate_user(
                keys=[self._keys.rec_index(user_id)], args=[self._keys.invalidation_channel, message]
            ))
        finally:
            # after L2, so a concurrent reader cannot refill L1 from the old L2 value
            self._drop_local(user_id)
        self._record_invalidation(reason, removed)
        return removed

    def invalidate_all(self, reason: str = "admin") -> int:
        """SCAN + pipelined UNLINK of every recommendation-cache key, then tell every process.
        Returns the lists deleted (index sets and locks are deleted but not counted)."""
        removed = 0
        try:
            # scan_iter visits every primary of a cluster, and the one server otherwise
            for batch in _chunks(self._client.scan_iter(match=self._keys.rec_scan_pattern, count=SCAN_COUNT),
                                 SCAN_COUNT):
                pipe = self._client.pipeline(transaction=False)
                for key in batch:
                    pipe.unlink(key)  # one key per command: valid in Redis Cluster too
                for key, n in zip(batch, pipe.execute(), strict=True):
                    removed += int(n) if self._is_list_key(key) else 0
            self._client.publish(
                self._keys.invalidation_channel, orjson.dumps({"all": True, "sender": self.instance_id})
            )
        finally:
            self._drop_local(None)
        self._record_invalidation(reason, removed)
        return removed

    def _is_list_key(self, key: str | bytes) -> bool:
        k = key.decode() if isinstance(key, bytes) else key
        return not k.startswith(self._index_prefix) and not k.endswith(self._lock_suffix)

    def _record_invalidation(self, reason: str, removed: int) -> None:
        CACHE_INVALIDATIONS.labels(reason=reason).inc(removed)
        self._stats.add(f"invalidated:{reason}", removed)

    def _drop_local(self, user_id: str | None) -> None:
        if user_id is None:
            self._guard.invalidate(None, self.l1.clear)
        else:
            self._guard.invalidate(user_id, lambda: self.l1.drop_user(user_id))

    def _on_message(self, doc: dict[str, object]) -> None:
        if doc.get("sender") == self.instance_id:
            return  # dropped synchronously when we sent it
        user = doc.get("user")
        if doc.get("all") is True:
            self._drop_local(None)
        elif isinstance(user, str):
            self._drop_local(user)
        else:
            log.warning("ignoring invalidation message without user or all: %r", doc)
            return
        self._stats.add("remote_invalidations")

    def _on_resubscribe(self) -> None:
        # invalidations published while we were disconnected never reach us: forget everything
        self._drop_local(None)
        self._stats.add("resubscribes")

    # --- lifecycle and reporting ----------------------------------------------------------

    def start_listener(self, wait_seconds: float = 0.0) -> bool:
        """Start the invalidation listener; returns whether it is subscribed after ``wait_seconds``."""
        self._listener.start()
        return self._listener.connected.wait(wait_seconds) if wait_seconds > 0 else self.listener_connected

    @property
    def listener_connected(self) -> bool:
        return self._listener.connected.is_set()

    def stats(self) -> dict[str, Any]:
        c = self._stats.snapshot()
        tiers: dict[str, dict[str, float | None]] = {}
        for t in TIERS:
            counts = {r: c[f"{t}:{r}"] for r in RESULTS}
            looked = sum(counts.values())
            tiers[t] = {**counts, "hit_ratio": counts["hit"] / looked if looked else None}
        return {
            "instance_id": self.instance_id,
            "since": self._started,
            **tiers,
            "computes": c["computes"],
            "early_refreshes": c["early_refreshes"],
            "coalesced": c["coalesced"],
            "lock_waits": c["lock_waits"],
            "lock_timeouts": c["lock_timeouts"],
            "warmed_keys": c["warmed_keys"],
            "invalidated": {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("invalidated:")},
            "remote_invalidations": c["remote_invalidations"],
            "l1_entries": len(self.l1),
            "l1_max_entries": self.l1.max_entries,
            "l1_evictions": self.l1.evictions,
            "listener_connected": self.listener_connected,
            "listener_resubscribes": c["resubscribes"],
        }

    def _count(self, tier: str, result: str) -> None:
        self._metric[tier, result].inc()
        self._stats.add(f"{tier}:{result}")

    def close(self) -> None:
        """Stop the listener (the Redis client belongs to the caller and stays open)."""
        self._listener.stop()

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
