"""Background warming of the lists of the users likely to come, bounded and rate-limited.

A serving process that starts (or switches model versions) has an empty cache for the version it
serves: every user's first list of it would be computed on their request.  The users who visit
most are the ones with the most history (the demo's simulator draws visitors that way, and real
traffic is as skewed), so the warmer computes the lists of the ``limit`` most active users, most
active first, at most ``per_second`` users a second, in a daemon thread, so requests keep the
CPU they need.  ``restart`` (after a model switch) abandons a pass under way and starts over.

    >>> warmer = BackgroundWarmer(lambda n: features.top_active_users(n), engine.warm_lists,
    ...                           limit=10_000, per_second=150, claim=claim_for_versions)
    >>> warmer.restart()

``claim`` lets one process of a fleet warm a given set of served versions: it is called with
nothing before a pass and returns False when another process already claimed it (each process
still refreshes its own users ahead after invalidations).

Warm writes go through the same guarded write as every other list: one whose user was
invalidated while it was being computed is not stored (``l2.STORE_LUA``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from engine.monitoring.prometheus_metrics import CACHE_WARMED_USERS

log = logging.getLogger(__name__)

# users per warm call: one Redis pipeline each, and the unit of rate limiting; small, so the
# requests of the process warming wait for the interpreter lock no longer than a few computes
BATCH = 10


class BackgroundWarmer:
    def __init__(
        self,
        users: Callable[[int], list[str]],
        warm: Callable[[list[str]], object],
        *,
        limit: int,
        per_second: float,
        claim: Callable[[], bool] = lambda: True,
        batch: int = BATCH,
    ) -> None:
        self._users = users
        self._warm = warm
        self._limit = limit
        self._per_second = per_second
        self._claim = claim
        self._batch = max(1, batch)
        self._cond = threading.Condition()
        self._generation = 0  # bumped by restart: a pass of an older generation stops
        self._closed = False
        self._running = False
        self._done_generation = 0  # the generation of the latest pass that ended
        self._thread: threading.Thread | None = None
        self.warmed = 0  # users warmed by the latest pass
        self.passes = 0  # passes completed

    def restart(self) -> None:
        """Start a pass from the most active user (abandoning one under way)."""
        if self._limit <= 0:
            return
        with self._cond:
            if self._closed:
                return
            self._generation += 1
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="recops-cache-warming", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no pass is running or pending (tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and self._done_generation == self._generation,
                                       timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._done_generation != self._generation)
                if self._closed:
                    return
                generation = self._generation
                self._running = True
            try:
                self._pass(generation)
            except Exception as exc:  # warming is an optimisation: requests compute what it did not
                log.warning("cache warming stopped: %r", exc)
            finally:
                with self._cond:
                    self._running = False
                    self._done_generation = generation
                    self._cond.notify_all()

    def _current(self, generation: int) -> bool:
        with self._cond:
            return not self._closed and self._generation == generation

    def _pass(self, generation: int) -> None:
        if not self._claim():
            log.info("cache warming: another process warms these versions")
            return
        users = self._users(self._limit)
        self.warmed = 0
        started = time.monotonic()
        for first in range(0, len(users), self._batch):
            if not self._current(generation):
                return
            chunk = users[first:first + self._batch]
            self._warm(chunk)
            self.warmed += len(chunk)
            CACHE_WARMED_USERS.inc(len(chunk))
            # rate limit: the pass so far may not be ahead of per_second users a second
            ahead = self.warmed / self._per_second - (time.monotonic() - started)
            if ahead > 0:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._generation != generation, ahead)
        self.passes += 1
        log.info("cache warming: %d users in %.1f s", self.warmed, time.monotonic() - started)
