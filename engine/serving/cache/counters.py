"""What the cache did, counted twice: Prometheus counters for the fleet, and in-process counts that
``TieredCache.stats`` reports for this process since it started."""

from __future__ import annotations

import threading
from collections import Counter

from engine.monitoring.prometheus_metrics import CACHE_INVALIDATIONS, CACHE_MISSES, CACHE_REQUESTS
from engine.serving.cache.miss_causes import CAUSES

TIERS = ("l1", "l2")
RESULTS = ("hit", "miss", "early_refresh")


class CacheCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        # labelled children looked up once: .labels() costs more than the increment
        self._requests = {(t, r): CACHE_REQUESTS.labels(tier=t, result=r) for t in TIERS for r in RESULTS}
        self._misses = {(t, c): CACHE_MISSES.labels(tier=t, cause=c) for t in TIERS for c in CAUSES}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def lookup(self, tier: str, result: str, n: int = 1) -> None:
        """``n`` look-ups of ``tier`` with ``result`` (one of ``RESULTS``)."""
        self._requests[tier, result].inc(n)
        self.add(f"{tier}:{result}", n)

    def miss(self, tier: str, cause: str) -> None:
        """A miss of ``tier`` and its cause (one of ``miss_causes.CAUSES``)."""
        self._misses[tier, cause].inc()
        self.add(f"miss:{tier}:{cause}")

    def invalidated(self, reason: str, removed: int) -> None:
        CACHE_INVALIDATIONS.labels(reason=reason).inc(removed)
        self.add(f"invalidated:{reason}", removed)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)
