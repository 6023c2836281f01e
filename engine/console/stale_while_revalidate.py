"""A value recomputed in the background once it is older than its time to live (stale-while-revalidate).

For reads that cost seconds — the keyspace scan visits every key of a Redis holding 100k+ keys —
on console pages that must render in well under two: once a first value exists, a reader never
waits for a recomputation.  The first reader after ``max_age`` gets the last value, with its age,
and starts one refresh in a thread.  A refresh that fails drops the value, so the next reader
computes afresh and sees the error itself instead of an ever older value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Aged(Generic[T]):
    value: T
    age_seconds: float  # since the value was computed


class StaleWhileRevalidate(Generic[T]):
    def __init__(self, compute: Callable[[], T], max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._compute = compute
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._value: Aged[T] | None = None  # age_seconds holds the clock reading when computed
        self._refreshing: threading.Thread | None = None
        self._generation = 0  # bumped by clear(): a refresh begun before it must not store its result

    @property
    def has_value(self) -> bool:
        return self._value is not None

    def get(self) -> Aged[T]:
        """The current value (computed here when there is none); past ``max_age``, a refresh starts."""
        with self._lock:
            current = self._value
            start = (current is not None and self._clock() - current.age_seconds > self.max_age
                     and self._refreshing is None)
            if start:
                self._refreshing = threading.Thread(target=self._refresh_in_background, daemon=True,
                                                    name="stale-while-revalidate")
                self._refreshing.start()
        if current is None:
            return self.refresh()
        return Aged(current.value, max(0.0, self._clock() - current.age_seconds))

    def refresh(self) -> Aged[T]:
        """Compute now (an operator's explicit rescan, or the first read)."""
        generation = self._generation
        value = self._compute()
        with self._lock:
            if generation == self._generation:
                self._value = Aged(value, self._clock())
        return Aged(value, 0.0)

    def clear(self) -> None:
        """Forget the value (after a write that changed it): the next reader computes afresh."""
        with self._lock:
            self._value = None
            self._generation += 1

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background refresh in progress, if any (for tests and shutdown)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.exception("background refresh failed; the next reader recomputes")
            self.clear()
        finally:
            with self._lock:
                self._refreshing = None
