"""Experiment readouts and statistics updates: speed, and Redis round trips per event.

    python -m bench experiments [--users 20000] [--repeat 50] [--cuped-users 1000000] [--days 4]

1. A readout of 10 variants × 10 metrics from the statistics stored in Redis (< 50 ms), and its
   report (health, quality, results over time), shown as a ratio to the readout.  Then the whole
   readout document as ``recops experiments readout --json`` and ``GET /experiments/{key}/readout``
   serve it (``engine.experiments.readout_document``: readout, health, quality, results over time,
   JSON) of the demo experiment with ``--users`` users exposed over ``--days`` days with served lists
   and user dimensions (< 50 ms), and the same with ``--by device`` (reads every unit's record).
2. CUPED from 1,000,000 users' raw arrays: sums per arm, then the CUPED-adjusted readout (< 1 s).
3. Round trips: an exposure costs at most one, repeated exposures none, and a batch of events one
   whatever its size (counted on the client's connections, so pipelining is visible).
4. Folding a batch of events in: an experiment with only the built-in metrics against the same
   experiment declaring four custom metrics (count, sum, indicator, ratio), measured in the same
   run; the built-in path runs no extra work, the custom one a second script (one more round trip).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.readout import analyze
from bench.harness import table, time_calls
from engine.events.tracker import Event
from engine.experiments import METRICS, ExperimentService, PreExposure
from engine.experiments.arm_stats import summaries_from_arrays
from engine.experiments.demo import demo_spec
from engine.experiments.dimensions import UserDimensions
from engine.experiments.quality import Catalog, ServedList
from engine.experiments.readout_document import readout_document
from engine.storage.embedded_redis import EmbeddedRedis
from engine.storage.keys import Keys
from tests.support.redis_roundtrips import counting_client

READOUT_TARGET_MS = 50.0
CUPED_TARGET_MS = 1000.0
MODELS = ("popularity", "item_item", "als")


def _ms(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000.0
    return float(np.median(arr)), float(np.percentile(arr, 95))


def _events(users: list[str], rng: np.random.Generator) -> list[Event]:
    out = []
    for u in users:
        for _ in range(int(rng.integers(1, 20))):
            out.append(Event(user_id=u, item_id="i1", type="impression", timestamp=time.time()))
            if rng.random() < 0.08:
                out.append(Event(user_id=u, item_id="i1", type="click"))
                if rng.random() < 0.1:
                    out.append(Event(user_id=u, item_id="i1", type="purchase", value=float(rng.integers(5, 80))))
    return out


def populate(service: ExperimentService, users: list[str], seed: int = 0) -> str:
    """A running 10-variant experiment with every user exposed and a few events each."""
    variants = [{"name": f"v{i}", "model": MODELS[i % 3]} for i in range(10)]
    key = "bench-10x10"
    service.create({"key": key, "name": "10 variants", "variants": variants,
                    "guardrail_metrics": ["revenue", "converted"]})
    service.start(key)
    for u in users:
        service.record_exposure(service.assign(u))
    events = _events(users, np.random.default_rng(seed))
    for start in range(0, len(events), 1000):
        service.observe(events[start : start + 1000])
    return key


def measure_readout(service: ExperimentService, key: str, repeat: int) -> list[float]:
    everything = list(METRICS)
    readout = service.readout(key, metrics=everything)
    assert len(readout.metrics) == 10 and len(readout.arms) == 10
    return time_calls(lambda: service.readout(key, metrics=everything), repeat)


def measure_report(service: ExperimentService, key: str, repeat: int) -> list[float]:
    """The readout's companions: health checks, quality per arm, results over time (no serving engine)."""
    report = service.report(key)
    assert report["health"] and report["timeseries"]
    return time_calls(lambda: service.report(key), repeat)


DAY = 86_400.0
DEVICES = ("mobile", "desktop", "tablet")


class BenchClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def demo_service(client: Any, users: list[str], clock: BenchClock) -> ExperimentService:
    """An experiment service with the demo world's kind of user dimensions and a 2,000-item catalogue."""
    items = [f"i{j:05d}" for j in range(2_000)]
    catalog = Catalog(len(items), {it: f"cat{j % 20}" for j, it in enumerate(items)},
                      {it: 1.0 / (j + 1) for j, it in enumerate(items)})
    dims = UserDimensions({u: {"device": DEVICES[i % 3], "country": f"c{i % 12}", "segment": f"s{i % 3}",
                               "tenure": "new" if i % 2 else "returning"} for i, u in enumerate(users)})
    return ExperimentService(client, Keys(prefix="bench-demo"), covariates=PreExposure(), clock=clock,
                             catalog=lambda: catalog, attributes=dims)


def populate_demo(service: ExperimentService, users: list[str], days: int, clock: BenchClock, seed: int = 0) -> str:
    """The demo experiment (ALS vs item-item on CTR, two guardrails) with ``users`` exposed evenly over
    ``days`` UTC days, each with a served list of 10 and a few impressions, clicks, carts, purchases."""
    rng = np.random.default_rng(seed)
    spec = demo_spec()
    spec["variants"] = [{**v, "model": v["model"].split("@")[0]} for v in spec["variants"]]  # no registry here
    service.create(spec)
    service.start(spec["key"])
    start, per_day = clock.now, max(1, len(users) // days)
    for day in range(days):
        events = []
        batch = users[day * per_day:(day + 1) * per_day]
        for j, u in enumerate(batch):
            clock.now = start + day * DAY + j * (0.9 * DAY / len(batch))
            served = ServedList(tuple(f"i{k:05d}" for k in rng.integers(0, 2_000, 10)))
            service.record_exposure(service.assign(u), served)
            for _ in range(int(rng.integers(1, 8))):
                events.append(Event(user_id=u, item_id="i1", type="impression", timestamp=clock.now))
                if rng.random() < 0.1:
                    events.append(Event(user_id=u, item_id="i1", type="click", timestamp=clock.now))
                    if rng.random() < 0.2:
                        events.append(Event(user_id=u, item_id="i1", type="add_to_cart", timestamp=clock.now))
        for at in range(0, len(events), 1000):
            service.observe(events[at:at + 1000])
    clock.now = start + days * DAY - 3_600
    return str(spec["key"])


def measure_document(service: ExperimentService, key: str, repeat: int, by: Sequence[str] = ()) -> list[float]:
    """``recops experiments readout KEY --json [--by ...]``'s work: the document and its JSON."""
    document = readout_document(service, key, by=by)
    assert document["health"] and document["timeseries"] and len(document["breakdowns"]) == len(by)
    return time_calls(lambda: json.dumps(readout_document(service, key, by=by)), repeat)


def measure_cuped(n_users: int, repeat: int, seed: int = 1) -> tuple[list[float], float]:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 2, n_users)
    pre = rng.poisson(4.0, n_users).astype(np.float64)
    values = pre * 0.8 + rng.normal(0.0, 1.0, n_users) + 0.02 * groups

    def run() -> object:
        return analyze(summaries_from_arrays(values, groups, ["control", "treatment"], pre), "mean")

    theta = analyze(summaries_from_arrays(values, groups, ["control", "treatment"], pre), "mean").cuped_theta
    return time_calls(run, repeat), float(theta or 0.0)


def count_trips(url: str, users: list[str]) -> list[list[object]]:
    client, trips = counting_client(url)
    service = ExperimentService(client, Keys(prefix="bench-trips"), covariates=PreExposure())
    service.create({"key": "trips", "name": "trips", "variants": [{"name": "a", "model": "als"},
                                                                  {"name": "b", "model": "popularity"}]})
    service.start("trips")

    def trips_of(action: Callable[[], object]) -> int:
        trips.reset()
        action()
        return trips.count

    first = [trips_of(lambda u=u: service.record_exposure(service.assign(u))) for u in users[:200]]
    repeat = [trips_of(lambda u=u: service.record_exposure(service.assign(u))) for u in users[:200]]
    one = trips_of(lambda: service.observe([Event(user_id=users[0], item_id="i1", type="click")]))
    batch = _events(users[:200], np.random.default_rng(3))[:1000]
    started = time.perf_counter()
    many = trips_of(lambda: service.observe(batch))
    per_second = len(batch) / (time.perf_counter() - started)
    client.close()
    return [
        ["exposure, first request of a user", statistics.median(first), max(first), "<= 1", max(first) <= 1],
        ["exposure, repeated request", statistics.median(repeat), max(repeat), "0", max(repeat) == 0],
        ["observe, 1 event", one, one, "<= 1", one <= 1],
        [f"observe, batch of {len(batch)} events ({per_second:,.0f} events/s)", many, many, "<= 1", many <= 1],
    ]


CUSTOM = [
    {"name": "views", "kind": "count", "event_type": "view", "role": "secondary"},
    {"name": "spend", "kind": "sum", "event_type": "purchase", "role": "secondary"},
    {"name": "clicked_any", "kind": "indicator", "event_type": "click", "role": "secondary"},
    {"name": "click_rate", "kind": "ratio", "numerator": "clicks", "denominator": "impressions", "role": "secondary"},
]


def measure_observe(url: str, users: list[str], repeat: int) -> list[list[object]]:
    """Median ms to fold a 1,000-event batch in, without and with custom metrics (same events)."""
    client, trips = counting_client(url)
    batch = _events(users[:300], np.random.default_rng(4))[:1000]
    rows, medians = [], []
    for label, metrics in (("built-in metrics only", []), ("+ 4 custom metrics", CUSTOM)):
        service = ExperimentService(client, Keys(prefix=f"bench-obs-{len(metrics)}"), covariates=PreExposure())
        service.create({"key": "obs", "name": "obs", "metrics": metrics,
                        "variants": [{"name": "a", "model": "als"}, {"name": "b", "model": "popularity"}]})
        service.start("obs")
        for u in users[:300]:
            service.record_exposure(service.assign(u))
        service.observe(batch)  # loads the scripts (the first call of a script costs extra trips)
        trips.reset()
        service.observe(batch)
        round_trips = trips.count
        p50, p95 = _ms(time_calls(lambda s=service: s.observe(batch), repeat))
        medians.append(p50)
        rows.append([f"observe 1,000 events, {label}", p50, p95, round_trips,
                     f"{p50 / medians[0]:.2f}x"])
        service.close()
    client.close()
    return rows


def run(users: int, repeat: int, cuped_users: int, days: int = 4) -> str:
    ids = [f"u{i:07d}" for i in range(users)]
    with tempfile.TemporaryDirectory(prefix="recops-bench-exp-") as tmp:
        server = EmbeddedRedis(data_dir=Path(tmp), appendonly=False).start()
        try:
            client_, _ = counting_client(server.url)
            service = ExperimentService(client_, Keys(prefix="bench-exp"), covariates=PreExposure(
                {u: (float(i % 7), float(i % 3)) for i, u in enumerate(ids)}))
            t0 = time.perf_counter()
            key = populate(service, ids)
            fill = time.perf_counter() - t0
            readout_p50, readout_p95 = _ms(measure_readout(service, key, repeat))
            report_p50, report_p95 = _ms(measure_report(service, key, repeat))
            clock = BenchClock(time.time() - days * DAY)
            demo = demo_service(client_, ids, clock)
            t0 = time.perf_counter()
            demo_key = populate_demo(demo, ids, days, clock)
            demo_fill = time.perf_counter() - t0
            doc_p50, doc_p95 = _ms(measure_document(demo, demo_key, repeat))
            by_p50, by_p95 = _ms(measure_document(demo, demo_key, max(5, repeat // 5), ["device"]))
            trip_rows = count_trips(server.url, ids)
            observe_rows = measure_observe(server.url, ids, max(5, repeat // 5))
            client_.close()
        finally:
            server.stop()
    cuped_samples, theta = measure_cuped(cuped_users, max(3, repeat // 10))
    cuped_p50, cuped_p95 = _ms(cuped_samples)
    timing = table(
        ["measurement", "median ms", "p95 ms", "target", "verdict"],
        [
            [f"readout 10 variants x 10 metrics ({users:,} users, filled in {fill:.1f} s)", readout_p50,
             readout_p95, f"< {READOUT_TARGET_MS:g} ms", "ok" if readout_p50 < READOUT_TARGET_MS else "MISSED"],
            ["report: health, quality, timeseries (same experiment)", report_p50, report_p95,
             f"{report_p50 / readout_p50:.1f}x the readout", "-"],
            [f"readout --json: demo experiment, {users:,} users over {days} days (filled in {demo_fill:.1f} s)",
             doc_p50, doc_p95, f"< {READOUT_TARGET_MS:g} ms ({doc_p50 / readout_p50:.1f}x the 10x10 readout)",
             "ok" if doc_p50 < READOUT_TARGET_MS else "MISSED"],
            ["readout --json --by device (same experiment)", by_p50, by_p95,
             f"{by_p50 / doc_p50:.1f}x without --by", "-"],
            [f"CUPED over {cuped_users:,} users' raw arrays (theta {theta:.3f})", cuped_p50, cuped_p95,
             f"< {CUPED_TARGET_MS:g} ms", "ok" if cuped_p50 < CUPED_TARGET_MS else "MISSED"],
        ],
    )
    trips = table(
        ["Redis round trips", "median", "max", "target", "verdict"],
        [[*row[:4], "ok" if row[4] else "MISSED"] for row in trip_rows],
    )
    observe = table(["folding events in", "median ms", "p95 ms", "round trips", "vs built-in only"], observe_rows)
    return timing + "\n\n" + trips + "\n\n" + observe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench experiments")
    parser.add_argument("--users", type=int, default=20_000, help="exposed users behind the readout")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--cuped-users", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=4, help="days the demo experiment's users are exposed over")
    args = parser.parse_args(argv)
    print(run(args.users, args.repeat, args.cuped_users, args.days))
    return 0
