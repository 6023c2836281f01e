"""The recommendation-list cache: L1 in process, L2 in Redis, kept coherent by pub/sub.

Read path of ``get_or_compute``: L1 → (single-flight per key) L2 → (Redis lock per key) compute.
XFetch may refresh a value early on an L1 or L2 read; the early refresh is done by whoever takes
the Redis lock, and everyone else keeps serving the current, still valid, value meanwhile.

The parts: ``l1`` (the in-process LRU), ``l2`` (Redis: lists, index, locks), ``coordination``
(single-flight and the write guard), ``invalidation`` (L2 deletes and every process's L1),
``counters``.  This module is the read and write path over them, and cache warming.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from engine.config import Settings
from engine.serving.cache.coordination import SingleFlight, WriteGuard, WriteTicket
from engine.serving.cache.counters import RESULTS, TIERS, CacheCounters
from engine.serving.cache.entry import CachedValue, xfetch_due
from engine.serving.cache.invalidation import CacheInvalidation
from engine.serving.cache.l1 import L1Cache
from engine.serving.cache.l2 import ListWrite, RedisTier
from engine.serving.cache.miss_causes import CAUSES, l2_miss_cause, list_slot
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


DEFAULT_LISTS = "default"  # the arm label of the lists of users in no experiment


@dataclass(frozen=True)
class WarmReport:
    users: int  # users whose lists were computed and written
    keys_written: int
    seconds: float
    failed: int = 0  # users whose compute_for_user raised (logged and skipped)
    # lists computed per arm label, for a warm that names them (``RecommendationService.warm_each``)
    lists: dict[str, int] = field(default_factory=dict)

    def arms_text(self) -> str:
        """The lists computed per arm ("default 90, ab/treatment 10"), for the operator; empty when
        they were all the default lists (nothing to tell apart)."""
        if set(self.lists) <= {DEFAULT_LISTS}:
            return ""
        return ", ".join(f"{label} {count:,}" for label, count in sorted(self.lists.items()))


@dataclass(frozen=True, slots=True)
class _Row:
    ticket: WriteTicket  # names the user; a stale ticket means the row must not be written
    write: ListWrite


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
        self._settings = settings
        self._rand = rand or (lambda: 1.0 - random.random())
        self.l1 = L1Cache(settings.l1_max_entries, settings.l1_ttl_seconds)
        self._l2 = RedisTier(client, keys, settings)
        self._flights: SingleFlight[tuple[CachedValue, str]] = SingleFlight()
        self._guard = WriteGuard()
        self._counters = CacheCounters()
        self._started = time.time()
        self._invalidation = CacheInvalidation(
            client,
            keys.invalidation_channel,
            instance_id=instance_id or uuid.uuid4().hex,
            l1=self.l1,
            l2=self._l2,
            guard=self._guard,
            counters=self._counters,
            listener_backoff=listener_backoff,
            listener_max_backoff=listener_max_backoff,
        )
        self.instance_id = self._invalidation.instance_id

    # --- reads ----------------------------------------------------------------------------

    def get_or_compute(self, user_id: str, key: str, compute: Callable[[], Any]) -> tuple[Any, str]:
        """``(value, tier)`` with tier ``"l1"``, ``"l2"`` or ``"miss"`` (computed here or by a
        concurrent caller in this process).  Redis errors propagate, except on an L1 hit."""
        entry = self.l1.get(key)
        if entry is not None and not self._due(entry):
            self._counters.lookup("l1", "hit")
            return entry.value(), "l1"
        if entry is not None:
            self._counters.lookup("l1", "early_refresh")
            current = entry
            try:
                (result, tier), shared = self._flights.do(
                    key, lambda: self._guarded(user_id, lambda t: self._refresh(t, key, compute, current, "l1"))
                )
            except REDIS_DOWN:
                # refreshing early is optional and the L1 value is still valid: serve it
                return current.value(), "l1"
        else:
            self._counters.lookup("l1", "miss")
            self._counters.miss("l1", self.l1.miss_cause(key))
            (result, tier), shared = self._flights.do(
                key, lambda: self._guarded(user_id, lambda t: self._load(t, key, compute))
            )
        if shared:
            self._counters.add("coalesced")
        return result.value(), tier

    def peek_l1_entry(self, key: str, count: bool = True) -> CachedValue | None:
        """L1 only, never blocks on I/O, not decoded; None on a miss or when XFetch says refresh.

        Only hits are counted (unless ``count`` is off: the caller's ``count_l1_hits`` will): the
        ``get_or_compute`` that follows a miss counts the look-up.
        """
        entry = self.l1.get(key)
        if entry is None or self._due(entry):
            return None
        if count:
            self._counters.lookup("l1", "hit")
        return entry

    def count_l1_hits(self, n: int) -> None:
        """``n`` hits of ``peek_l1_entry(count=False)``, counted at once."""
        if n:
            self._counters.lookup("l1", "hit", n)

    def peek_l1(self, key: str) -> tuple[Any, str] | tuple[None, None]:
        """``peek_l1_entry`` decoded, with its tier: ``(None, None)`` on a miss."""
        entry = self.peek_l1_entry(key)
        return (entry.value(), "l1") if entry is not None else (None, None)

    def _guarded(
        self, user_id: str, body: Callable[[WriteTicket], tuple[CachedValue, str]]
    ) -> tuple[CachedValue, str]:
        with self._guard.ticket(user_id) as ticket:
            return body(ticket)

    def _load(self, ticket: WriteTicket, key: str, compute: Callable[[], Any]) -> tuple[CachedValue, str]:
        entry = self.l1.get(key)
        if entry is not None:  # filled by a flight that ended between our L1 miss and now
            return entry, "l1"
        entry = self._l2.read(key)
        if entry is None:
            self._counters.lookup("l2", "miss")
            written, invalidation, generation = self._l2.miss_record(key, ticket.user)
            _, version = list_slot(key)
            cause = l2_miss_cause(written, invalidation, self._invalidation.last_flush, version, time.time())
            self._counters.miss("l2", cause)
            return self._compute_under_lock(ticket, key, compute, generation)
        if self._due(entry):
            self._counters.lookup("l2", "early_refresh")
            return self._refresh(ticket, key, compute, entry, "l2")
        self._counters.lookup("l2", "hit")
        self._remember(ticket, key, entry)
        return entry, "l2"

    def _refresh(
        self, ticket: WriteTicket, key: str, compute: Callable[[], Any], current: CachedValue, tier: str
    ) -> tuple[CachedValue, str]:
        token = self._l2.try_lock(key)
        if token is None:  # another process is refreshing it; ours is still valid
            if tier == "l2":
                self._remember(ticket, key, current)
            return current, tier
        self._counters.add("early_refreshes")
        generation = self._l2.generations([ticket.user])[ticket.user]
        return self._compute_and_store(ticket, key, compute, token, generation)

    def _compute_under_lock(
        self, ticket: WriteTicket, key: str, compute: Callable[[], Any], generation: str
    ) -> tuple[CachedValue, str]:
        token = self._l2.try_lock(key)
        if token is not None:
            return self._compute_and_store(ticket, key, compute, token, generation)
        # another process computes this key: wait for its value, but never longer than its lock
        self._counters.add("lock_waits")
        entry, token = self._l2.wait_for_other_compute(key)
        if entry is not None:
            self._counters.lookup("l2", "hit")
            self._remember(ticket, key, entry)
            return entry, "l2"
        if token is None:
            self._counters.add("lock_timeouts")
        return self._compute_and_store(ticket, key, compute, token or "", generation)

    def _compute_and_store(
        self, ticket: WriteTicket, key: str, compute: Callable[[], Any], token: str, generation: str
    ) -> tuple[CachedValue, str]:
        started = time.perf_counter()
        try:
            value = compute()
        except BaseException:
            self._l2.unlock(key, token)
            raise
        delta = time.perf_counter() - started
        self._counters.add("computes")
        ttl = self._l2.ttl()
        entry = CachedValue.from_value(value, delta, time.time() + ttl)
        if ticket.stale:  # invalidated while computing: serve this caller, cache nothing
            self._l2.unlock(key, token)
            return entry, "miss"
        self._write([_Row(ticket, ListWrite(key, ticket.user, entry, ttl, token, generation))])
        return entry, "miss"

    def _due(self, entry: CachedValue) -> bool:
        return xfetch_due(entry, time.time(), self._settings.xfetch_beta, self._rand)

    # --- writes ---------------------------------------------------------------------------

    def _write(self, rows: list[_Row]) -> int:
        """Write rows to L2 and then to L1; rows whose ticket went stale, or whose user another
        process invalidated since their generation was read, are skipped."""
        rows = [r for r in rows if not r.ticket.stale]
        if not rows:
            return 0
        stored = self._l2.write([r.write for r in rows])
        kept = [r for r, ok in zip(rows, stored, strict=True) if ok]
        for r in kept:
            self._remember(r.ticket, r.write.key, r.write.entry)
        if len(kept) < len(rows):
            self._counters.add("writes_overtaken", len(rows) - len(kept))
        return len(kept)

    def _remember(self, ticket: WriteTicket, key: str, entry: CachedValue) -> None:
        self._guard.commit(ticket, lambda: self.l1.put(ticket.user, key, entry))

    def warm(
        self,
        user_ids: Iterable[str],
        compute_for_user: Callable[[str], list[tuple[str, Any]]],
        progress: Callable[[int, int], None] | None = None,
        batch: int = 100,
        prepare: Callable[[list[str]], object] | None = None,
    ) -> WarmReport:
        """Compute every user's lists and write them to L2 and L1, one pipeline per ``batch`` users.

        A user whose ``compute_for_user`` raises is logged and skipped (``failed``); Redis errors
        abort the warm-up.  Each list's XFetch delta is its share of the user's compute time.
        ``prepare(chunk)`` runs before a chunk's lists are computed (to read their inputs in one
        batch), after the users' invalidation generations are read, so a list computed from inputs
        an event changed since is still refused.
        """
        users = list(user_ids)
        total, ok, failed, written = len(users), 0, 0, 0
        started = time.perf_counter()
        for first in range(0, total, max(1, batch)):
            chunk = users[first:first + max(1, batch)]
            generations = self._l2.generations(chunk)  # before computing: see ListWrite.generation
            if prepare is not None:
                prepare(chunk)
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
                        ttl = self._l2.ttl()
                        entry = CachedValue.from_value(value, delta, time.time() + ttl)
                        rows.append(_Row(ticket, ListWrite(key, user, entry, ttl, generation=generations[user])))
                n = self._write(rows)
            written += n
            self._counters.add("warmed_keys", n)
            if progress is not None:
                progress(first + len(chunk), total)
        return WarmReport(users=ok, keys_written=written, seconds=time.perf_counter() - started, failed=failed)

    # --- invalidation (see ``invalidation``) ----------------------------------------------

    def invalidate_user(self, user_id: str, reason: str = "purchase") -> int:
        """Delete the user's cached lists in L2 (one atomic script, which also publishes the
        invalidation to every process) and in this process's L1.  Returns the lists deleted."""
        return self._invalidation.invalidate_user(user_id, reason)

    def invalidate_all(self, reason: str = "admin") -> int:
        """SCAN + pipelined UNLINK of every recommendation-cache key, then tell every process.
        Returns the lists deleted (index sets and locks are deleted but not counted)."""
        return self._invalidation.invalidate_all(reason)

    def start_listener(self, wait_seconds: float = 0.0) -> bool:
        """Start the invalidation listener; returns whether it is subscribed after ``wait_seconds``."""
        return self._invalidation.start(wait_seconds)

    @property
    def listener_connected(self) -> bool:
        return self._invalidation.connected

    # --- lifecycle and reporting ----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        c = self._counters.snapshot()
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
            "writes_overtaken": c["writes_overtaken"],
            "misses": {t: {cause: c[f"miss:{t}:{cause}"] for cause in CAUSES} for t in TIERS},
            "invalidated": {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("invalidated:")},
            "remote_invalidations": c["remote_invalidations"],
            "l1_entries": len(self.l1),
            "l1_max_entries": self.l1.max_entries,
            "l1_evictions": self.l1.evictions,
            "listener_connected": self.listener_connected,
            "listener_resubscribes": c["resubscribes"],
        }

    def close(self) -> None:
        """Stop the listener (the Redis client belongs to the caller and stays open)."""
        self._invalidation.close()

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
