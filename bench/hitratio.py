"""The cache's hit ratio on the simulator's traffic from a cold start, minute by minute, without and
with background warming, and why lists were computed (``recops_cache_misses_total`` by cause).

    python -m bench hitratio --minutes 5 --rate 40 --workers 2

Each phase starts its own Redis (emptied) and ``recops serve --workers N`` on the demo world and
sends the simulator's open-loop traffic (``--rate`` visits per second, each a list request and an
events batch, users drawn by activity) from the moment the API answers ``/health``: the first
phase with background warming off (``RECOPS_WARM_ON_START_USERS=0``), the second with it on
(``--warm-top`` most active users, at ``RECOPS_WARM_USERS_PER_SECOND``).  Refresh-ahead after
invalidation is on in both, as shipped.  Per minute it prints the share of lists served from L1,
from L2 and computed, and the computed lists (L2 misses) by cause, read from ``/metrics`` at each
minute's end; then the first minute whose hit ratio (L1 + L2) reached the target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.harness import metric_total, table
from bench.soak import api_stack
from engine.config import Settings
from engine.data.demo import DemoWorld
from engine.runtime import prepare_models, prepare_world
from engine.serving.cache.miss_causes import CAUSES
from engine.simulator import SimulationConfig, run_simulation

TARGET = 0.80
TIERS = ("l1", "l2", "miss")  # "miss": computed for the request (fallback lists count here too)


class TierLog(httpx.AsyncBaseTransport):
    """Notes the cache tier of every list answered, with the seconds since ``started``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, started: float) -> None:
        self.inner = inner
        self.started = started
        self.answers: list[tuple[float, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/recommendations" and response.status_code == 200:
            await response.aread()
            tier = str(orjson.loads(response.content)["cache_tier"])
            self.answers.append((time.monotonic() - self.started, tier if tier in TIERS else "miss"))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Minute:
    index: int  # 1-based
    tiers: dict[str, int] = field(default_factory=dict)
    causes: dict[str, float] = field(default_factory=dict)  # L2 misses (lists computed) by cause

    @property
    def lists(self) -> int:
        return sum(self.tiers.values())

    def share(self, tier: str) -> float:
        return self.tiers.get(tier, 0) / self.lists if self.lists else 0.0

    @property
    def hit_ratio(self) -> float:
        return self.share("l1") + self.share("l2")


@dataclass
class Phase:
    name: str
    minutes: list[Minute]

    def first_minute_at(self, target: float) -> int | None:
        return next((m.index for m in self.minutes if m.hit_ratio >= target), None)

    def total(self) -> Minute:
        whole = Minute(0)
        for m in self.minutes:
            for t, n in m.tiers.items():
                whole.tiers[t] = whole.tiers.get(t, 0) + n
            for c, n in m.causes.items():
                whole.causes[c] = whole.causes.get(c, 0.0) + n
        return whole


def misses_by_cause(metrics_text: str) -> dict[str, float]:
    return {c: metric_total(metrics_text, "recops_cache_misses_total", tier="l2", cause=c) for c in CAUSES}


async def _sample_causes(api_url: str, started: float, minutes: int, out: list[dict[str, float]]) -> None:
    """``/metrics``'s miss causes at the start and at the end of every minute."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30.0) as client:
        out.append(misses_by_cause((await client.get("/metrics")).text))
        for m in range(1, minutes + 1):
            await asyncio.sleep(max(0.0, started + 60.0 * m - time.monotonic()))
            out.append(misses_by_cause((await client.get("/metrics")).text))


async def _drive(api_url: str, world: DemoWorld, rate: float, minutes: int, seed: int) -> Phase:
    config = SimulationConfig(api_url=api_url, rate=rate, duration=60.0 * minutes, seed=seed)
    limits = httpx.Limits(max_connections=config.max_in_flight, max_keepalive_connections=config.max_in_flight)
    started = time.monotonic()
    log = TierLog(httpx.AsyncHTTPTransport(limits=limits), started)
    samples: list[dict[str, float]] = []
    sampler = asyncio.create_task(_sample_causes(api_url, started, minutes, samples))
    try:
        await run_simulation(world, config, transport=log)
    finally:
        await log.aclose()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(sampler, timeout=90.0)
    rows = [Minute(i + 1) for i in range(minutes)]
    for at, tier in log.answers:
        row = rows[min(int(at // 60), minutes - 1)]
        row.tiers[tier] = row.tiers.get(tier, 0) + 1
    for row, (before, after) in zip(rows, itertools.pairwise(samples), strict=False):
        row.causes = {c: after[c] - before[c] for c in CAUSES}
    return Phase("", rows)


def run_phase(
    name: str, settings: Settings, world: DemoWorld, *, workers: int, rate: float, minutes: int, warm_top: int,
    seed: int,
) -> Phase:
    token = secrets.token_urlsafe(24)
    env = {"RECOPS_WARM_ON_START_USERS": str(warm_top)}
    with api_stack(settings, workers, token, extra_env=env) as (url, _):
        phase = asyncio.run(_drive(url, world, rate, minutes, seed))
    phase.name = name
    return phase


def render(phases: list[Phase]) -> str:
    headers = ["phase", "minute", "lists", "L1", "L2", "computed", "hit ratio", *[f"miss: {c}" for c in CAUSES]]
    rows: list[list[object]] = []
    for p in phases:
        for m in [*p.minutes, p.total()]:
            rows.append([
                p.name, m.index or "all", m.lists, f"{m.share('l1'):.1%}", f"{m.share('l2'):.1%}",
                f"{m.share('miss'):.1%}", f"{m.hit_ratio:.1%}", *[int(m.causes.get(c, 0)) for c in CAUSES],
            ])
    lines = [table(headers, rows)]
    for p in phases:
        first = p.first_minute_at(TARGET)
        lines.append(f"{p.name}: hit ratio >= {TARGET:.0%} first in minute "
                     f"{first if first is not None else '- (never)'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hitratio")
    parser.add_argument("--minutes", type=int, default=5, help="minutes of traffic per phase")
    parser.add_argument("--rate", type=float, default=40.0, help="visits per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warm-top", type=int, default=Settings().warm_on_start_users,
                        help="most active users warmed in the background in the second phase")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("off", "on"), help="run one phase only")
    args = parser.parse_args(argv)
    if args.minutes < 1 or args.rate <= 0 or args.workers < 1:
        parser.error("--minutes >= 1, --rate > 0 and --workers >= 1 are required")
    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    settings = Settings(data_dir=root / f"items-{args.items}-users-{args.users}", demo_users=args.users,
                        demo_items=args.items)
    world = prepare_world(settings)
    prepare_models(settings, world.dataset())
    phases: list[Phase] = []
    for name, warm in (("warming off", 0), ("warming on", args.warm_top)):
        if args.only is not None and name != f"warming {args.only}":
            continue
        print(f"hitratio: {name}: {args.workers} workers, {args.rate:g} visits/s for {args.minutes} min", flush=True)
        phases.append(run_phase(name, settings, world, workers=args.workers, rate=args.rate, minutes=args.minutes,
                                warm_top=warm, seed=args.seed))
    print(render(phases))
    return 0
