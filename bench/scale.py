"""Scaling curves: what each part costs as the catalogue and the user base grow, and how the cache-hit
throughput grows with API workers against one Redis.

    python -m bench scale [--quick] [--sizes 10000x100000 ...] [--workers 1 2 4] [--json] [--plot FILE]

Catalogues (default 10^4 items × 10^5 users, 10^5 × 10^5, 10^6 × 10^6; ``--quick`` 10^4 × 2·10^4 and
10^5 × 5·10^4), each measured in a fresh child process so that its peak RSS is its own:

* **interactions** — ``bench.synthetic_factors``: item and user vectors shaped like a trained ALS
  model's (64 dims, low-rank clustered, popularity-skewed norms) and 10 history items per user
  drawn by popularity; the histories are the interaction matrix.
* **training** — the in-process ALS trainer (``engine.models.als``, ``implicit``, 64 factors, the
  default λ / alpha / BM25 / 14 iterations) fitted on that matrix; wall-clock seconds on this
  machine's 2 cores.  Spark's figure is ``python -m bench training --spark`` (not repeated here).
* **index** — faiss IVF-flat (``AnnIndex.build``, as training builds it) over the item vectors:
  build seconds, and recall@100 of the index path (retrieve, exact scores of the candidates)
  against numpy's exact top 100 over ``--queries`` user vectors.  Built at every size so recall is
  known everywhere; serving uses it from ``RECOPS_ANN_MIN_ITEMS`` (50,000) items — the ``served``
  column says which path the size gets, and the miss columns are that path's.
* **memory** — ``memory_mb``: what a serving process holds for the model (item and user factors,
  plus the index when served), from the arrays' sizes; ``peak_rss_mb``: the child process's peak
  resident set (``getrusage``), which includes generation, the training matrices and the service.
* **miss** — ``RecommendationService.recommend`` for users never requested (features read and
  written through an embedded Redis, retrieve → score → MMR re-rank → reasons), p50 / p95, with
  exact scoring and with the index (``bench.ann``'s service and timing functions).
* **hits** — the same service: L1 hits per second in process, and L2 hits (L1 emptied before
  each call, untimed) against the real Redis.

Workers (``--workers``, default 1 2 4; none with ``--workers`` alone): ``recops serve --workers N``
on the 5,000-item demo world against one embedded Redis, the cache-hit path over HTTP with ``wrk``
(one thread, ``--connections``, 200 warmed users; ``bench.http``'s ``wrk`` and process helpers),
once with the L1 (every request answered in the worker) and once with it disabled
(``RECOPS_L1_MAX_ENTRIES=0``: every hit is a Redis GET) — req/s, p99, the ratio to one worker,
Redis's CPU share over the run (``INFO cpu``) and the load average.

``--json`` prints one row per configuration (``kind`` ``catalogue`` with at least ``items``,
``users``, ``recall_at_100``, ``miss_p50_ms``, ``miss_p95_ms``, ``build_seconds``, ``memory_mb``;
``kind`` ``workers`` with ``workers``, ``mode``, ``rps``).  ``--plot FILE`` writes an SVG.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from scipy import sparse

from bench.ann import K, exact_top, miss_times, recall, searched, service_over, synthetic_dataset
from bench.harness import percentiles_ms, table, time_calls
from bench.svg_chart import Panel, Series, line_chart_svg
from bench.synthetic_factors import FactorShape, synthetic_als
from engine.config import Settings
from engine.data.schema import InteractionMatrix
from engine.models.als import ALSRecommender
from engine.models.ann_index import AnnIndex, wants_index
from engine.storage.client import redis_client

SIZES = ((10_000, 100_000), (100_000, 100_000), (1_000_000, 1_000_000))
QUICK_SIZES = ((10_000, 20_000), (100_000, 50_000))
HISTORY = 10
# ALS costs the same every iteration: above this many users + items only a few are run and the
# fit time is scaled to the default's iterations (the table marks it "est.")
FULL_TRAIN_ROWS = 250_000
SHORT_TRAIN_ITERATIONS = 3
HOT_USERS = 200


def parse_size(text: str) -> tuple[int, int]:
    """``ITEMSxUSERS`` (``100000x100000``, ``1e6x1e6``)."""
    try:
        items, users = (int(float(part)) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be ITEMSxUSERS, e.g. 100000x100000; got {text!r}") from None
    if items < 2 * K or users < 30:
        raise argparse.ArgumentTypeError(f"at least {2 * K} items and 30 users; got {text!r}")
    return items, users


# ---- one catalogue, in its own process ----------------------------------------------------------


def interaction_matrix(model: ALSRecommender) -> InteractionMatrix:
    """The synthetic histories as a users × items matrix of ones (what ``fit`` reads)."""
    assert model.item_ids is not None
    lengths = [len(h) for h in model.user_items]
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.concatenate(model.user_items)
    shape = (len(lengths), len(model.item_ids))
    matrix = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=shape)
    user_ids = np.asarray(list(model.user_index), dtype=object)
    return InteractionMatrix(matrix, sparse.csr_matrix(shape, dtype=np.float64), user_ids, model.item_ids,
                             dict(model.user_index), dict(model.item_index))


def throughput(seconds: list[float]) -> float:
    return len(seconds) / sum(seconds)


def measure_catalogue(n_items: int, n_users: int, n_queries: int, n_hits: int,
                      train_iterations: int | None = None) -> dict[str, Any]:
    """One ``catalogue`` row (see the module docstring)."""
    full = ALSRecommender().iterations
    iterations = train_iterations or (full if n_items + n_users <= FULL_TRAIN_ROWS else SHORT_TRAIN_ITERATIONS)
    t0 = time.perf_counter()
    model = synthetic_als(n_items, n_users, history_length=HISTORY)
    generate = time.perf_counter() - t0

    interactions = interaction_matrix(model)
    t0 = time.perf_counter()
    ALSRecommender(factors=FactorShape().dim, iterations=iterations).fit(interactions)
    train = time.perf_counter() - t0
    del interactions

    items = model.item_factors
    queries = model.user_factors[:n_queries]
    truth, _ = exact_top(items, queries)
    t0 = time.perf_counter()
    index = AnnIndex.build(items, threads=2)
    build = time.perf_counter() - t0
    found, _ = searched(lambda q: index.search(q, K), items, queries)
    served_ann = wants_index(n_items, Settings().ann_min_items)

    users = list(model.user_index)
    n_miss = min(n_queries, n_users // 3)
    n_exact = n_miss if not served_ann else max(20, n_miss // 4)
    with tempfile.TemporaryDirectory(prefix="recops-scale-bench-") as tmp, \
            service_over(model, synthetic_dataset(model), Path(tmp)) as service:
        model.gram  # noqa: B018 — computed once per model, at the first request
        service.recommend(users[-1])
        exact_miss = percentiles_ms(miss_times(service, users[:n_exact]))
        model.attach_index(index)
        ann_miss = percentiles_ms(miss_times(service, users[n_miss: 2 * n_miss]))
        if not served_ann:
            model.ann = None  # hits below are served as this size is: exactly
        hot = users[-2]
        service.recommend(hot)
        l1 = throughput(time_calls(lambda: service.recommend(hot), n_hits))
        l2 = throughput(time_calls(lambda: service.recommend(hot), n_hits, before=service.cache.l1.clear))
    miss = ann_miss if served_ann else exact_miss
    factors_mb = (model.item_factors.nbytes + model.user_factors.nbytes) / 1e6
    return {
        "kind": "catalogue", "items": n_items, "users": n_users, "interactions": int(sum(map(len, model.user_items))),
        "served": "ann" if served_ann else "exact",
        "recall_at_100": recall(found, truth) if served_ann else 1.0, "index_recall_at_100": recall(found, truth),
        "miss_p50_ms": miss["p50"], "miss_p95_ms": miss["p95"],
        "exact_miss_p50_ms": exact_miss["p50"], "exact_miss_p95_ms": exact_miss["p95"],
        "ann_miss_p50_ms": ann_miss["p50"], "ann_miss_p95_ms": ann_miss["p95"],
        "generate_seconds": generate, "train_iterations": iterations, "train_measured_seconds": train,
        "train_seconds": train * full / iterations, "build_seconds": build,
        "memory_mb": factors_mb + (index.memory_mb() if served_ann else 0.0), "index_mb": index.memory_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "l1_hits_per_s": l1, "l2_hits_per_s": l2, "load_average": os.getloadavg()[0],
    }


def catalogue_row(n_items: int, n_users: int, n_queries: int, n_hits: int,
                  train_iterations: int | None) -> dict[str, Any]:
    """``measure_catalogue`` in a child process (its peak RSS and memory are its own)."""
    cmd = [sys.executable, "-m", "bench", "scale", "--one", f"{n_items}x{n_users}", "--queries", str(n_queries),
           "--hits", str(n_hits), *(["--train-iterations", str(train_iterations)] if train_iterations else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---- API workers against one Redis --------------------------------------------------------------


def _redis_cpu_seconds(url: str) -> float:
    client = redis_client(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


def worker_rows(workers: list[int], duration: int, connections: int) -> list[dict[str, Any]]:
    """Cache-hit req/s over HTTP for each worker count, with and without the L1 (module docstring)."""
    # imported on use: bench.http is being reworked; only its stable helpers are used here
    from bench.http import USERS_LUA, _start, _wrk
    from engine.local_processes import free_port
    from engine.runtime import prepare_models, prepare_world
    from engine.storage.embedded_redis import EmbeddedRedis

    if not workers or shutil.which("wrk") is None:
        return []
    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    data_dir = root / "scale-workers-5000"  # its own: `bench http` may run at the same time on its dir
    settings = Settings(data_dir=data_dir, demo_items=5_000, demo_users=10_000)
    world = prepare_world(settings)
    prepare_models(settings, world.dataset())
    hot = [str(u) for u in world.events["user_id"].value_counts().index[:HOT_USERS]]
    script = USERS_LUA % ",".join(f'"{u}"' for u in hot)
    redis = EmbeddedRedis(data_dir=data_dir / "bench-redis", appendonly=False).start()
    rows: list[dict[str, Any]] = []
    try:
        for mode, l1_entries in (("L1 hit", str(settings.l1_max_entries)), ("L2 hit (L1 off)", "0")):
            env = dict(os.environ, REDIS_URL=redis.url, RECOPS_DATA_DIR=str(data_dir), OPENBLAS_NUM_THREADS="1",
                       RECOPS_L1_MAX_ENTRIES=l1_entries, RECOPS_WARM_ON_START_USERS="0")  # as in bench http
            for n in workers:
                port = free_port()
                api = f"http://127.0.0.1:{port}"
                try:
                    proc = _start([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers",
                                   str(n)], env, f"{api}/health")
                except RuntimeError:  # on a loaded machine N workers may take longer than the wait allows
                    rows.append({"kind": "workers", "mode": mode, "workers": n, "items": world.n_items,
                                 "users": world.n_users, "rps": None, "error": "did not start within 120 s",
                                 "load_average": os.getloadavg()[0]})
                    continue
                try:
                    with httpx.Client(base_url=api) as client:
                        for u in hot:
                            client.post("/recommendations", params={"user_id": u, "n": 10})
                    _wrk(api, script, 2, connections)  # every worker's L1 warms; not counted
                    cpu0, t0 = _redis_cpu_seconds(redis.url), time.perf_counter()
                    result = _wrk(api, script, duration, connections)
                    redis_share = (_redis_cpu_seconds(redis.url) - cpu0) / (time.perf_counter() - t0)
                    rows.append({"kind": "workers", "mode": mode, "workers": n, "items": world.n_items,
                                 "users": world.n_users, "rps": result["rps"],
                                 "p50_ms": result.get("p50", float("nan")), "p99_ms": result.get("p99", float("nan")),
                                 "non2xx": int(result["non2xx"]),
                                 "redis_cpu": redis_share, "load_average": os.getloadavg()[0]})
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    finally:
        redis.stop()
    for mode in {r["mode"] for r in rows}:
        base = next((r["rps"] for r in rows if r["mode"] == mode and r["workers"] == min(workers)), None)
        for r in rows:
            if r["mode"] == mode:
                r["ratio_to_one"] = r["rps"] / base if r["rps"] and base else None
    return rows


# ---- output -------------------------------------------------------------------------------------


def _train_cell(row: dict[str, Any]) -> str:
    seconds = f"{row['train_seconds']:.1f}"
    return seconds if row["train_iterations"] == ALSRecommender().iterations else \
        f"{seconds} est. ({row['train_iterations']} it. {row['train_measured_seconds']:.1f})"


def report(rows: list[dict[str, Any]]) -> str:
    cats = [r for r in rows if r["kind"] == "catalogue"]
    out = []
    if cats:
        out.append(table(
            ["items", "users", "served", "train s", "index build s", "memory MB", "peak RSS MB", "recall@100",
             "miss p50 ms", "miss p95 ms", "exact miss p50 ms", "L1 hits/s", "L2 hits/s", "load avg"],
            [[f"{r['items']:,}", f"{r['users']:,}", r["served"], _train_cell(r), r["build_seconds"],
              r["memory_mb"], r["peak_rss_mb"], f"{r['index_recall_at_100']:.3f}", r["miss_p50_ms"],
              r["miss_p95_ms"], r["exact_miss_p50_ms"], r["l1_hits_per_s"], r["l2_hits_per_s"],
              f"{r['load_average']:.1f}"] for r in cats]))
        out.append("recall@100: the index path against exact search (served only from RECOPS_ANN_MIN_ITEMS items); "
                   "miss: the served path; memory: factors (+ index when served)")
    workers = [r for r in rows if r["kind"] == "workers"]
    if workers:
        out.append(table(["cache hit over HTTP", "workers", "req/s", "p50 ms", "p99 ms", "ratio to 1 worker",
                          "Redis CPU", "non-2xx", "load avg"],
                         [[r["mode"], r["workers"], r["rps"], r["p50_ms"], r["p99_ms"], f"{r['ratio_to_one']:.2f}",
                           f"{r['redis_cpu']:.0%}", r["non2xx"], f"{r['load_average']:.1f}"] if r["rps"] else
                          [r["mode"], r["workers"], r["error"], "", "", "", "", "", f"{r['load_average']:.1f}"]
                          for r in workers]))
    out.append(f"{os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}")
    return "\n\n".join(out)


def plot(rows: list[dict[str, Any]]) -> str:
    cats = sorted((r for r in rows if r["kind"] == "catalogue"), key=lambda r: r["items"])
    workers = [r for r in rows if r["kind"] == "workers"]
    panels = [
        Panel("Cache miss p95 vs catalogue", "items", "ms (log)", log_x=True, log_y=True, series=[
            Series("exact scoring", [(r["items"], r["exact_miss_p95_ms"]) for r in cats]),
            Series("ANN (faiss IVF)", [(r["items"], r["ann_miss_p95_ms"]) for r in cats])]),
        Panel("Build and training time", "items", "seconds (log)", log_x=True, log_y=True, series=[
            Series("ALS training", [(r["items"], r["train_seconds"]) for r in cats]),
            Series("index build", [(r["items"], r["build_seconds"]) for r in cats])]),
    ]
    if workers:
        panels.append(Panel("Cache hits over HTTP, one Redis", "API workers", "req/s", series=[
            Series(mode, [(r["workers"], r["rps"]) for r in workers if r["mode"] == mode and r["rps"]])
            for mode in dict.fromkeys(r["mode"] for r in workers)]))
    return line_chart_svg(panels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 3 s wrk runs")
    parser.add_argument("--sizes", type=parse_size, nargs="*",
                        help="ITEMSxUSERS, e.g. 100000x100000 (none: only the workers)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4], help="API worker counts (none: skip)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10, 3 with --quick)")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200, help="users for recall and misses")
    parser.add_argument("--hits", type=int, default=2_000, help="in-process hits per tier")
    parser.add_argument("--train-iterations", type=int, help="ALS iterations run (default: 14, or "
                        f"{SHORT_TRAIN_ITERATIONS} above {FULL_TRAIN_ROWS:,} users + items, the time scaled to 14)")
    parser.add_argument("--json", action="store_true", help="one JSON row per configuration")
    parser.add_argument("--plot", type=Path, help="write an SVG of the curves here")
    parser.add_argument("--one", type=parse_size, help=argparse.SUPPRESS)  # the child process's size
    args = parser.parse_args(argv)
    if any(w < 1 for w in args.workers) or min(args.queries, args.hits, args.train_iterations or 1) < 1:
        print("--workers, --queries, --hits and --train-iterations must be at least 1", file=sys.stderr)
        return 2
    if args.one:
        n_items, n_users = args.one
        print(json.dumps(measure_catalogue(n_items, n_users, args.queries, args.hits, args.train_iterations)))
        return 0
    rows = []
    for n_items, n_users in args.sizes if args.sizes is not None else (QUICK_SIZES if args.quick else SIZES):
        rows.append(catalogue_row(n_items, n_users, args.queries, args.hits, args.train_iterations))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    duration = args.duration or (3 if args.quick else 10)
    for row in worker_rows(sorted(set(args.workers)), duration, args.connections):
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(report(rows))
    if args.plot:
        args.plot.write_text(plot(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
