"""Prometheus metrics of the engine and the API, defined once.

Conventions: base units (seconds), ``_total`` counters, ``_seconds`` histograms, and never a user
or item id in a label (unbounded cardinality).  With ``PROMETHEUS_MULTIPROC_DIR`` set before this
module is imported, prometheus_client keeps values in per-process files and ``/metrics``
aggregates every worker (see ``engine.api``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)

RECOMMENDATION_REQUESTS = Counter(
    "recops_recommendation_requests_total",
    "Recommendation requests served, by outcome and model",
    ["status", "model"],
)
RECOMMENDATION_LATENCY = Histogram(
    "recops_recommendation_latency_seconds",
    "Time to produce a recommendation list, by the cache tier that answered",
    ["tier"],
    buckets=LATENCY_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "recops_cache_requests_total",
    "Cache look-ups by tier (l1, l2) and result (hit, miss)",
    ["tier", "result"],
)
CACHE_MISSES = Counter(
    "recops_cache_misses_total",
    "Cache misses by tier and cause: first_seen, invalidated, model_changed, expired, evicted "
    "(l2 misses are the lists computed; see engine/serving/cache/miss_causes.py)",
    ["tier", "cause"],
)
CACHE_WARMED_USERS = Counter(
    "recops_cache_warmed_users_total",
    "Users whose lists the background warmer computed (at start and after a model switch)",
)
CACHE_INVALIDATIONS = Counter(
    "recops_cache_invalidations_total",
    "Cache entries removed, by reason",
    ["reason"],
)
CACHE_REFRESHES = Counter(
    "recops_cache_refreshes_total",
    "Background recomputations of a list after its invalidation, by result (done, failed, dropped)",
    ["result"],
)
EVENTS = Counter("recops_events_total", "Events accepted, by type", ["type"])
EVENTS_REJECTED = Counter("recops_events_rejected_total", "Events refused, by reason", ["reason"])
SPOOLED = Counter(
    "recops_events_spooled_total",
    "Events written to the local spool because Redis was unreachable (or the spool still held events)",
)
SPOOL_REPLAYED = Counter(
    "recops_events_spool_replayed_total",
    "Spooled events handed back to the tracker once Redis answered (duplicates of a repeated replay included)",
)
SPOOL_DEPTH = Gauge(
    "recops_events_spool_depth",
    "Events waiting in the local spool for Redis",
    multiprocess_mode="livesum",
)
FALLBACKS = Counter("recops_fallbacks_total", "Lists served from the fallback snapshot, by reason", ["reason"])
LIST_DIVERSITY = Histogram(
    "recops_list_diversity_ratio",
    "Intra-list diversity (1 - mean pairwise similarity) of each served list",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
CATALOG_COVERAGE = Gauge(
    "recops_catalog_coverage_ratio",
    "Share of the catalogue recommended over the recent window",
    multiprocess_mode="max",
)
FEATURE_REQUESTS = Counter(
    "recops_feature_requests_total",
    "Feature-store reads by entity (user, item) and result (hit, miss)",
    ["entity", "result"],
)

# ---- the stream consumer (``recops consume``; its own process, its own /metrics port) ----------
CONSUMER_EVENTS = Counter(
    "recops_consumer_events_total", "Tracked events the stream consumer wrote to the event log"
)
CONSUMER_DEAD_LETTERED = Counter(
    "recops_consumer_dead_lettered_total", "Malformed stream entries set aside (dead-letter file) and acknowledged"
)
CONSUMER_FLUSH_SECONDS = Histogram(
    "recops_consumer_flush_seconds",
    "Time to write one buffered batch durably to the event log",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONSUMER_LAG = Gauge(
    "recops_consumer_lag",
    "Stream entries the event-log group has not acknowledged yet (pending + not delivered)",
    multiprocess_mode="max",
)
