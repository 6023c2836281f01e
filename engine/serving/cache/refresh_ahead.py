"""Refresh-ahead after invalidation: recompute a user's list in the background once an event has
dropped it, so that the user's next request is a cache hit instead of a full compute.

    >>> queue = RefreshQueue(lambda user: service.warm([user]))
    >>> queue.start()
    >>> queue.submit("u00042")        # after a purchase invalidated u00042's lists
    >>> queue.close()

Invalidation is what keeps lists correct (the next list must exclude what was just bought); this
only moves the recomputation off the user's next request.  Pending users are a set in arrival
order: a user invalidated several times before the worker gets to them is refreshed once.  The
queue is bounded; when it is full a refresh is dropped (counted), never blocking the event path —
the user's next request then computes the list as it would have without this queue.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from engine.monitoring.prometheus_metrics import CACHE_REFRESHES

log = logging.getLogger(__name__)


class ListRefresher(Protocol):
    """What the engine hands invalidated users to: a ``RefreshQueue`` or ``NoRefresh``."""

    def submit_all(self, user_ids: Iterable[str]) -> int: ...

    def wait_idle(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class NoRefresh:
    """The refresher of a process that does not refresh ahead (the console, tests): it drops
    every user, and their next request computes the list."""

    def submit_all(self, user_ids: Iterable[str]) -> int:
        return 0

    def wait_idle(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


class RefreshQueue:
    def __init__(self, refresh: Callable[[str], object], max_pending: int = 10_000) -> None:
        self._refresh = refresh
        self._max_pending = max_pending
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._results = {r: CACHE_REFRESHES.labels(result=r) for r in ("done", "failed", "dropped")}

    def start(self) -> RefreshQueue:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="recops-refresh", daemon=True)
            self._thread.start()
        return self

    def submit(self, user_id: str) -> bool:
        """Queue ``user_id`` for a refresh; False when the queue was full or closed (dropped)."""
        with self._cond:
            if self._closed or (user_id not in self._pending and len(self._pending) >= self._max_pending):
                self._results["dropped"].inc()
                return False
            self._pending[user_id] = None
            self._cond.notify()
            return True

    def submit_all(self, user_ids: Iterable[str]) -> int:
        """``submit`` each user (an event batch's invalidated users); returns how many were queued."""
        return sum(self.submit(u) for u in user_ids)

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or running (tests, orderly shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                user_id, _ = self._pending.popitem(last=False)
                self._busy = True
            try:
                self._refresh(user_id)
                self._results["done"].inc()
            except Exception as exc:  # the request path recomputes anyway; never kill the worker
                self._results["failed"].inc()
                log.warning("background refresh of %s failed: %r", user_id, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
