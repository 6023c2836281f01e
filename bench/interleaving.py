"""Interleaving: what merging two rankers' lists costs a request, and reading the experiment out.

    python -m bench interleaving [--users 300] [--repeat 3] [--credited-users 20000]

1. Per request, in process, both lists already cached: an A/B arm's list (one cache hit) against an
   interleaved list (both rankers' cache hits, the team draft and the impression's one round trip),
   medians and the ratio, measured in the same run.
2. The readout of an interleaving experiment after ``--credited-users`` users were shown a merged
   list and clicked through the engine (it reads one hash of counters, never users or impressions).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.harness import bench_engine, table
from engine.api.interleaved_lists import serve_interleaved
from engine.events.tracker import Event
from engine.experiments import ExperimentService
from engine.experiments.assignment import Assignment
from engine.runtime import Engine

N_ITEMS, N_USERS = 1000, 2000


def _request_costs(engine: Engine, users: list[str], repeat: int) -> tuple[list[float], list[float]]:
    ab: list[float] = []
    merged: list[float] = []
    assignments: list[Assignment] = []
    for user in users:
        a = engine.experiments.assign(user)
        assert a is not None and a.rankers is not None
        assignments.append(a)
        serve_interleaved(engine, a, 10, "warm")  # both lists computed and cached
    for r in range(repeat):
        for k, a in enumerate(assignments):
            arm = a.rankers[k % 2] if a.rankers else None
            assert arm is not None
            t0 = time.perf_counter()
            engine.service.recommend(a.user_id, 10, arm.model, version=arm.version, serving=arm.serving)
            t1 = time.perf_counter()
            serve_interleaved(engine, a, 10, f"r{r}-{k}")
            merged.append(time.perf_counter() - t1)
            ab.append(t1 - t0)
    return ab, merged


def _credit_users(svc: ExperimentService, users: int) -> None:
    """``users`` synthetic users, each shown one merged list and clicking on one or two of its items."""
    rng = np.random.default_rng(0)
    ranker_a, ranker_b = [f"i{k}" for k in range(20)], [f"i{k}" for k in range(10, 30)]
    clicks: list[Event] = []
    for k in range(users):
        a = svc.assign(f"synthetic{k}")
        assert a is not None
        merged = svc.interleave(a, f"s{k}", ranker_a, ranker_b, 10)
        for item in rng.choice([str(i) for i in merged.items], size=int(rng.integers(1, 3)), replace=False):
            clicks.append(Event(user_id=a.user_id, item_id=str(item), type="click", request_id=f"s{k}"))
        if len(clicks) >= 1000:
            svc.observe(clicks)
            clicks = []
    svc.observe(clicks)


def run(users: int, repeat: int, credited_users: int) -> str:
    with bench_engine(N_ITEMS, N_USERS) as engine:
        svc = engine.experiments
        svc.create({"key": "bench-ilv", "name": "ALS vs item-item", "kind": "interleaving",
                    "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "item_item"}]})
        svc.start("bench-ilv")
        ab, merged = _request_costs(engine, engine.features.top_active_users(users), repeat)
        _credit_users(svc, credited_users)
        readouts = []
        for _ in range(5):
            t0 = time.perf_counter()
            svc.readout("bench-ilv")
            readouts.append(time.perf_counter() - t0)
    ab_ms, merged_ms = statistics.median(ab) * 1000, statistics.median(merged) * 1000
    rows = [["A/B arm list (1 cache hit)", len(ab), ab_ms, 1.0],
            ["interleaved list (2 hits + draft + 1 round trip)", len(merged), merged_ms, merged_ms / ab_ms],
            [f"readout, {credited_users:,} users credited", len(readouts), statistics.median(readouts) * 1000, "-"]]
    return table(["what", "n", "median ms", "ratio vs A/B"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench interleaving")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--credited-users", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(run(args.users, args.repeat, args.credited_users))
    return 0
