"""Recommendation-list cache: in-process L1, Redis L2, pub/sub invalidation, XFetch, warming, refresh-ahead."""

from engine.serving.cache.entry import CachedValue, xfetch_due
from engine.serving.cache.l1 import L1Cache
from engine.serving.cache.refresh_ahead import ListRefresher, NoRefresh, RefreshQueue
from engine.serving.cache.tiered import DEFAULT_LISTS, TieredCache, WarmReport
from engine.serving.cache.warming import BackgroundWarmer

__all__ = [
    "DEFAULT_LISTS", "BackgroundWarmer", "CachedValue", "L1Cache",
    "ListRefresher", "NoRefresh", "RefreshQueue", "TieredCache", "WarmReport", "xfetch_due",
]
