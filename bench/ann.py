"""ANN candidate retrieval at a million items: build time, memory, recall@100 and latency, and the
full cache-miss recommendation through the service.

    python -m bench ann [--quick] [--items N ...] [--users N] [--queries 200] [--compare] [--json]

Vectors: ``bench.synthetic_factors`` (64 dims, low-rank clustered, popularity-skewed norms — shaped
like a trained ALS model's, not isotropic).  Recall@100 is the share of the exact top 100 (numpy,
every item scored) that the index path returns, over ``--queries`` user vectors; the exact search
is the baseline row, timed in the same run.  ``--compare`` adds hnswlib's HNSW (inner product) on
the same vectors — the measurement behind choosing faiss IVF-flat (slow to build at 1M: use it
with ``--quick``).

The miss rows build a ``RecommendationService`` (embedded Redis, synthetic catalogue and users) on
the synthetic ALS model, with and without the index, and time ``recommend`` for users never
requested: features read (and written) through Redis, retrieve → score → re-rank → reasons.
Goal: recall@100 ≥ 0.95 and miss p95 < 10 ms at 1,000,000 items.

``run(items, users, ...)["summary"]`` is the ANN part of a scaling row (``items``, ``users``,
``recall_at_100``, ``miss_p50_ms``, ``miss_p95_ms``, ``build_seconds``, ``memory_mb``): ``--items
10000 100000 1000000 --json`` prints one per catalogue size.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.harness import percentiles_ms, table, time_calls
from bench.synthetic_factors import synthetic_als
from engine.config import Settings
from engine.data.catalog import ItemCatalog
from engine.data.schema import Dataset
from engine.models.als import ALSRecommender
from engine.models.ann_index import AnnIndex, default_probe
from engine.serving.cache import TieredCache
from engine.serving.service import RecommendationService
from engine.storage.client import redis_client
from engine.storage.embedded_redis import EmbeddedRedis
from engine.storage.feature_store import FeatureSource, FeatureStore
from engine.storage.keys import Keys

K = 100
RECALL_GOAL = 0.95
MISS_P95_GOAL_MS = 10.0
CATEGORIES = 40


def exact_top(items: np.ndarray, queries: np.ndarray, k: int = K) -> tuple[list[np.ndarray], list[float]]:
    """The exact top ``k`` per query (every item scored) and the time each took."""
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        scores = items @ q
        top = np.argpartition(-scores, k - 1)[:k]
        out.append(top)
        times.append(time.perf_counter() - t0)
    return out, times


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def searched(search: Callable[[np.ndarray], np.ndarray], items: np.ndarray, queries: np.ndarray,
             ) -> tuple[list[np.ndarray], list[float]]:
    """The index path's top ``K``: retrieve, then score the candidates exactly (as ``recommend`` does)."""
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        cand = search(q)
        scores = items[cand] @ q
        out.append(cand[np.argpartition(-scores, min(K, len(cand)) - 1)[:K]])
        times.append(time.perf_counter() - t0)
    return out, times


def curve_row(label: str, setting: str, build: float, memory: float, found: list[np.ndarray],
              truth: list[np.ndarray], times: list[float], baseline_p50: float) -> list[Any]:
    ps = percentiles_ms(times)
    return [label, setting, build, memory, recall(found, truth), ps["p50"], ps["p95"], baseline_p50 / ps["p50"]]


def hnswlib_rows(items: np.ndarray, queries: np.ndarray, truth: list[np.ndarray], base: float) -> list[list[Any]]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=items.shape[1])
    index.init_index(max_elements=len(items), M=16, ef_construction=100, random_seed=1)
    index.set_num_threads(2)
    t0 = time.perf_counter()
    index.add_items(items)
    build = time.perf_counter() - t0
    index.set_num_threads(1)
    memory = len(items) * (items.shape[1] * 4 + 16 * 2 * 4 + 8) / 1e6  # vectors + level-0 links + labels
    rows = []
    for ef in (128, 256, 512):
        index.set_ef(ef)
        found, times = searched(lambda q: index.knn_query(q, K)[0][0].astype(np.int64), items, queries)
        rows.append(curve_row("hnswlib HNSW ip M16", f"ef {ef}", build, memory, found, truth, times, base))
    return rows


# ---- the service on a synthetic catalogue -----------------------------------------------------


def synthetic_dataset(model: ALSRecommender, seed: int = 3) -> Dataset:
    """Items (category by vector cluster proxy, popularity by norm) and one view per history item."""
    assert model.item_ids is not None
    rng = np.random.default_rng(seed)
    n = len(model.item_ids)
    norms = np.linalg.norm(model.item_factors, axis=1)
    items = pd.DataFrame({
        "item_id": model.item_ids.astype(str),
        "title": [f"Item {i}" for i in range(n)],
        "category": np.asarray([f"c{c:02d}" for c in range(CATEGORIES)])[rng.integers(0, CATEGORIES, n)],
        "popularity": norms.astype(np.float64),
        "avg_rating": rng.uniform(2.5, 5.0, n),
    })
    users = np.repeat(np.asarray(list(model.user_index), dtype=object), [len(h) for h in model.user_items])
    hist = np.concatenate(model.user_items)
    events = pd.DataFrame({
        "user_id": users, "item_id": model.item_ids[hist].astype(str), "type": "view",
        "timestamp": 1.7e9 + rng.uniform(0, 86_400 * 30, len(hist)), "value": 1.0,
    })
    return Dataset(items=items, events=events, name="ann-bench")


@contextmanager
def service_over(model: ALSRecommender, dataset: Dataset, root: Path) -> Iterator[RecommendationService]:
    server = EmbeddedRedis(data_dir=root / "redis", appendonly=False).start()
    settings = Settings(data_dir=root, redis_url=server.url)
    client = redis_client(server.url)
    keys = Keys("annbench")
    cache = TieredCache(client, keys, settings)
    try:
        client.flushdb()
        yield RecommendationService(
            models={"als": model}, default_model="als", catalog=ItemCatalog.from_items(dataset.items),
            features=FeatureStore(client, keys, settings, FeatureSource.from_dataset(dataset, keys=keys)),
            cache=cache, keys=keys, candidate_pool=settings.candidate_pool,
        )
    finally:
        cache.close()
        client.close()
        server.stop()


def miss_times(service: RecommendationService, users: list[str]) -> list[float]:
    it = iter(users)
    return time_calls(lambda: service.recommend(next(it)), len(users))


# ---- the run ------------------------------------------------------------------------------------


def run(n_items: int, n_users: int, n_queries: int, compare: bool, probes: list[int] | None) -> dict[str, Any]:
    model = synthetic_als(n_items, n_users)
    items = model.item_factors
    queries = model.user_factors[:n_queries]
    truth, exact_times = exact_top(items, queries)
    base = percentiles_ms(exact_times)["p50"]
    curve = [["exact (numpy, every item)", "-", 0.0, items.nbytes / 1e6, 1.0, base,
              percentiles_ms(exact_times)["p95"], 1.0]]
    t0 = time.perf_counter()
    index = AnnIndex.build(items, threads=2)
    build = time.perf_counter() - t0
    chosen = index.probe
    for probe in sorted({*(probes or [chosen // 4, chosen // 2, chosen, 2 * chosen]), chosen}):
        found, times = searched(lambda q, p=probe: index.search(q, K, probe=p), items, queries)
        mark = " (default)" if probe == chosen else ""
        curve.append(curve_row(f"faiss IVF-flat {index.cells} cells", f"nprobe {probe}{mark}", build,
                               index.memory_mb(), found, truth, times, base))
    if compare:
        curve += hnswlib_rows(items, queries, truth, base)
    default_recall = next(r[4] for r in curve if "(default)" in str(r[1]))

    dataset = synthetic_dataset(model)
    n_miss = min(n_queries, n_users // 3)
    users = list(model.user_index)
    with tempfile.TemporaryDirectory(prefix="recops-ann-bench-") as tmp, \
            service_over(model, dataset, Path(tmp)) as service:
        model.gram  # noqa: B018 — the fold-in's Gram matrix is computed once per model, at the first request
        service.recommend(users[-1])
        exact_miss = percentiles_ms(miss_times(service, users[:max(20, n_miss // 4)]))
        model.attach_index(index)
        ann_miss = percentiles_ms(miss_times(service, users[n_miss: 2 * n_miss]))
    # the model's part alone (retrieve + exact scores of the pool, history folded in), without Redis
    pool = Settings().candidate_pool
    histories = iter([model.item_ids[h].tolist() for h in model.user_items[2 * n_miss: 3 * n_miss]])  # type: ignore[index]
    model_only = percentiles_ms(time_calls(lambda: model.recommend("someone", n=pool, history=next(histories)),
                                           n_miss))
    misses = [["exact scoring (baseline)", exact_miss["p50"], exact_miss["p95"], exact_miss["p99"], 1.0],
              ["ANN retrieval", ann_miss["p50"], ann_miss["p95"], ann_miss["p99"], exact_miss["p50"] / ann_miss["p50"]],
              ["  of which model.recommend (ANN, no Redis)", model_only["p50"], model_only["p95"], model_only["p99"],
               exact_miss["p50"] / model_only["p50"]]]
    summary = {
        "items": n_items, "users": n_users, "dim": items.shape[1], "queries": n_queries,
        "recall_at_100": default_recall, "probe": chosen, "cells": index.cells,
        "miss_p50_ms": ann_miss["p50"], "miss_p95_ms": ann_miss["p95"],
        "exact_miss_p50_ms": exact_miss["p50"], "exact_miss_p95_ms": exact_miss["p95"],
        "model_p95_ms": model_only["p95"], "build_seconds": build, "memory_mb": index.memory_mb(),
        "load_average": os.getloadavg()[0],
    }
    return {"summary": summary, "curve": curve, "misses": misses}


def report(result: dict[str, Any]) -> str:
    s = result["summary"]
    curve = table(["index", "setting", "build s", "memory MB", "recall@100", "query p50 ms", "query p95 ms",
                   "speed-up vs exact p50"], result["curve"])
    misses = table(["cache miss (retrieve, score, re-rank, reasons)", "p50 ms", "p95 ms", "p99 ms",
                    "speed-up vs exact p50"], result["misses"])
    verdict = (f"recall@100 {s['recall_at_100']:.3f} (goal >= {RECALL_GOAL}: "
               f"{'ok' if s['recall_at_100'] >= RECALL_GOAL else 'MISSED'}), "
               f"miss p95 {s['miss_p95_ms']:.2f} ms (goal < {MISS_P95_GOAL_MS} ms: "
               f"{'ok' if s['miss_p95_ms'] < MISS_P95_GOAL_MS else 'MISSED'})")
    return (f"{s['items']:,} items × {s['dim']} dims, {s['users']:,} users, {s['queries']} queries, "
            f"load average {s['load_average']:.1f} on {os.cpu_count()} cores\n"
            f"{curve}\n\n{misses}\n\n{verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ann")
    parser.add_argument("--quick", action="store_true", help="100,000 items instead of 1,000,000")
    parser.add_argument("--items", type=int, nargs="+", help="catalogue sizes, one row each (default 1,000,000)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--probes", type=int, nargs="*", help="nprobe settings of the curve (default: around "
                        f"the index's own, e.g. {default_probe(4000)} at 1M items)")
    parser.add_argument("--compare", action="store_true", help="also hnswlib HNSW (inner product)")
    parser.add_argument("--json", action="store_true", help="one JSON row per configuration")
    args = parser.parse_args(argv)
    for n_items in args.items or [100_000 if args.quick else 1_000_000]:
        result = run(n_items, args.users, args.queries, args.compare, args.probes)
        print(json.dumps(result["summary"]) if args.json else report(result), flush=True)
    return 0
