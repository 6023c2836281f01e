"""Invalidation: dropping a user's lists (or every list) in Redis and in every process's L1.

The process that invalidates deletes in L2 and publishes, in one script, then drops its own L1
entries at once; every other process drops its entries when the message reaches its listener.
A process that lost its subscription may have missed messages, so it forgets its whole L1.
L1 drops go through the write guard, so a value computed before an invalidation cannot be put
back into L1 after it.
"""

from __future__ import annotations

import logging
import time

import orjson
import redis

from engine.serving.cache.coordination import WriteGuard
from engine.serving.cache.counters import CacheCounters
from engine.serving.cache.l1 import L1Cache
from engine.serving.cache.l2 import RedisTier
from engine.serving.cache.listener import InvalidationListener
from engine.serving.cache.miss_causes import Flush

log = logging.getLogger(__name__)


class CacheInvalidation:
    """``instance_id`` names this process in its messages so that it ignores its own."""

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        *,
        instance_id: str,
        l1: L1Cache,
        l2: RedisTier,
        guard: WriteGuard,
        counters: CacheCounters,
        listener_backoff: float = 0.05,
        listener_max_backoff: float = 2.0,
    ) -> None:
        self.instance_id = instance_id
        self._l1 = l1
        self._l2 = l2
        self._guard = guard
        self._counters = counters
        # the last flush of every list (ours or another process's): explains the misses after it
        self.last_flush: Flush | None = None
        self._listener = InvalidationListener(
            client,
            channel,
            on_message=self._on_message,
            on_resubscribe=self._on_resubscribe,
            backoff=listener_backoff,
            max_backoff=listener_max_backoff,
        )

    def invalidate_user(self, user_id: str, reason: str) -> int:
        message = orjson.dumps({"user": user_id, "sender": self.instance_id})
        try:
            removed = self._l2.delete_user(user_id, message, reason)
        finally:
            # after L2, so a concurrent reader cannot refill L1 from the old L2 value
            self.drop_local(user_id)
        self._counters.invalidated(reason, removed)
        return removed

    def invalidate_all(self, reason: str) -> int:
        try:
            removed = self._l2.delete_all(orjson.dumps({"all": True, "reason": reason, "sender": self.instance_id}))
        finally:
            self.drop_local(None)
            self.last_flush = Flush(reason, time.time())
        self._counters.invalidated(reason, removed)
        return removed

    def drop_local(self, user_id: str | None) -> None:
        """Drop ``user_id``'s L1 entries (every entry when None) and stale their computations."""
        if user_id is None:
            self._guard.invalidate(None, self._l1.clear)
        else:
            self._guard.invalidate(user_id, lambda: self._l1.drop_user(user_id))

    # --- the listener ---------------------------------------------------------------------

    def start(self, wait_seconds: float = 0.0) -> bool:
        """Start listening; returns whether it is subscribed after ``wait_seconds``."""
        self._listener.start()
        return self._listener.connected.wait(wait_seconds) if wait_seconds > 0 else self.connected

    @property
    def connected(self) -> bool:
        return self._listener.connected.is_set()

    def close(self) -> None:
        self._listener.stop()

    def _on_message(self, doc: dict[str, object]) -> None:
        if doc.get("sender") == self.instance_id:
            return  # dropped synchronously when we sent it
        user = doc.get("user")
        if doc.get("all") is True:
            self.drop_local(None)
            self.last_flush = Flush(str(doc.get("reason", "")), time.time())
        elif isinstance(user, str):
            self.drop_local(user)
        else:
            log.warning("ignoring invalidation message without user or all: %r", doc)
            return
        self._counters.add("remote_invalidations")

    def _on_resubscribe(self) -> None:
        # invalidations published while we were disconnected never reach us: forget everything
        self.drop_local(None)
        self._counters.add("resubscribes")
