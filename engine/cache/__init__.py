"""Recommendation-list cache: in-process L1, Redis L2, pub/sub invalidation, XFetch, warming, refresh-ahead."""

from engine.cache.entry import CachedValue, xfetch_due
from engine.cache.l1 import L1Cache
from engine.cache.refresh import RefreshQueue
from engine.cache.tiered import TieredCache, WarmReport

__all__ = ["CachedValue", "L1Cache", "RefreshQueue", "TieredCache", "WarmReport", "xfetch_due"]
