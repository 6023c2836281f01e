"""Online quality signals of served lists: intra-list diversity and recent catalogue coverage.

Diversity uses category co-membership (1 − share of same-category pairs), the same definition
the offline evaluation reports, so the live number and the offline one can be compared.  It is
computed once when a list is built and cached with it; serving a cached list only observes it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from engine.monitoring import prometheus_metrics as metrics
from engine.monitoring.batched_observations import observe_many


def category_diversity(categories: Sequence[str]) -> float:
    """1 − (same-category pairs / all pairs); 1.0 for lists shorter than two."""
    n = len(categories)
    if n < 2:
        return 1.0
    same = sum(c * (c - 1) // 2 for c in Counter(categories).values())
    return 1.0 - same / (n * (n - 1) / 2)


class QualityWindow:
    """Share of the catalogue served within the last ``window_seconds``.

    A last-served timestamp per catalogue position makes an observation a fancy-index write;
    the share is recounted at most once per ``refresh_seconds``, not per request.
    """

    def __init__(self, catalog_size: int, window_seconds: float = 600.0, refresh_seconds: float = 1.0) -> None:
        self._last_served = np.full(max(catalog_size, 1), -np.inf)
        self.window_seconds = window_seconds
        self.refresh_seconds = refresh_seconds
        self._next_refresh = 0.0
        self._lock = threading.Lock()

    def observe(self, positions: Sequence[int] | np.ndarray, diversity: float) -> None:
        metrics.LIST_DIVERSITY.observe(diversity)
        now = time.monotonic()
        self._last_served[np.asarray(positions, dtype=np.int64)] = now
        self._refresh(now)

    def observe_many(self, lists: Sequence[tuple[np.ndarray, float, int]]) -> None:
        """``(positions, diversity, times served)`` per list: ``observe`` for each time, in one pass."""
        if not lists:
            return
        observe_many(metrics.LIST_DIVERSITY, [d for _, d, _ in lists], [k for _, _, k in lists])
        now = time.monotonic()
        for positions, _, _ in lists:
            self._last_served[positions] = now
        self._refresh(now)

    def _refresh(self, now: float) -> None:
        if now >= self._next_refresh:
            with self._lock:
                self._next_refresh = now + self.refresh_seconds
                metrics.CATALOG_COVERAGE.set(self.coverage)

    @property
    def coverage(self) -> float:
        now = time.monotonic()
        return float(np.count_nonzero(self._last_served >= now - self.window_seconds) / len(self._last_served))
