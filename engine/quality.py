"""Online quality signals of served lists: intra-list diversity and recent catalogue coverage.

Diversity uses category co-membership (1 − share of same-category pairs), the same definition
the offline evaluation reports, so the live number and the offline one can be compared.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Sequence

from engine import metrics


def category_diversity(categories: Sequence[str]) -> float:
    """1 − (same-category pairs / all pairs); 1.0 for lists shorter than two."""
    n = len(categories)
    if n < 2:
        return 1.0
    same = sum(c * (c - 1) // 2 for c in Counter(categories).values())
    return 1.0 - same / (n * (n - 1) / 2)


class QualityWindow:
    """Distinct items over the last ``window`` served lists, as a share of the catalogue."""

    def __init__(self, catalog_size: int, window: int = 5_000) -> None:
        self.catalog_size = max(catalog_size, 1)
        self._lists: deque[tuple[str, ...]] = deque()
        self._counts: Counter[str] = Counter()
        self._window = window
        self._lock = threading.Lock()

    def observe(self, item_ids: Sequence[str], categories: Sequence[str]) -> None:
        metrics.LIST_DIVERSITY.observe(category_diversity(categories))
        with self._lock:
            items = tuple(item_ids)
            self._lists.append(items)
            self._counts.update(items)
            if len(self._lists) > self._window:
                old = self._lists.popleft()
                self._counts.subtract(old)
                for item in old:
                    if self._counts[item] <= 0:
                        del self._counts[item]
            coverage = len(self._counts) / self.catalog_size
        metrics.CATALOG_COVERAGE.set(coverage)

    @property
    def coverage(self) -> float:
        with self._lock:
            return len(self._counts) / self.catalog_size
