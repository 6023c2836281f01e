"""A soak of the API: steady simulated traffic for minutes, with errors, hit ratio, latency and worker memory.

    python -m bench soak --minutes 10 --workers 2 --rate 40

Starts its own Redis (append-only, as shipped) and ``recops serve --workers N`` on the demo world,
warms the most active users through ``POST /admin/cache/warm`` as an operator would, lets
``--warmup-seconds`` of traffic through, then drives the simulator (open loop, ``--rate`` visits per
second, each a list request and an events batch) while sampling every API worker's RSS.  The hit
ratio is over the measured phase only.  ``tests/test_soak.py`` runs the same code for a minute.

Two hit ratios are reported.  A cart add or a purchase invalidates the user's lists (by design: the
next list must reflect it) and the API recomputes them in the background (refresh-ahead), and a
list older than its TTL (``RECOPS_REC_CACHE_TTL_SECONDS``, 30 min) is recomputed on the next
request; the *revisit* ratio counts only lists of users already listed (or warmed) in this soak,
with no such event since and a cached list younger than the TTL, i.e. the requests a working cache
must answer even without refresh-ahead.  The overall ratio counts every list request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import redis

from bench.harness import metric_total, table
from engine.cli.up import wait_http
from engine.config import Settings
from engine.data.demo import DemoWorld
from engine.events.tracker import INVALIDATING_TYPES
from engine.local_processes import free_port
from engine.runtime import prepare_models, prepare_world
from engine.simulator import SimulationConfig, SimulationSummary, run_simulation
from engine.storage.embedded_redis import EmbeddedRedis

# ------------------------------------------------------------------------------ processes


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; Linux only)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in task.read_text().split())
    return sorted(set(found))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(master_pid: int) -> list[int]:
    """The uvicorn workers under a ``recops serve --workers N`` master: its spawned children, less
    multiprocessing's resource tracker.  With one worker the master serves itself."""
    kids = [p for p in children(master_pid) if "resource_tracker" not in _cmdline(p)]
    return kids or [master_pid]


def rss_mb(pid: int) -> float | None:
    """Resident set size in MiB, or None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


def server_errors(metrics_text: str) -> float:
    """5xx answers the API itself counted (every worker's, in multiprocess mode)."""
    return sum(metric_total(metrics_text, "recops_http_requests_total", status=str(code)) for code in range(500, 600))


# ------------------------------------------------------------------------------ the soak

WARM_CHUNK = 1_000


class CacheAudit(httpx.AsyncBaseTransport):
    """A transport that watches the simulator's traffic and counts the lists a cache must answer.

    A list is a *revisit* when an earlier list of the same user had been answered before it was
    asked for, no cart add or purchase of that user was sent after that earlier list was asked for,
    and the cached list is younger than the shortest L2 TTL (``ttl``): the list is still cached
    and nothing may have removed it.  Times are taken when requests are sent, so concurrent visits
    of one user only ever drop a list from the count, never count one an invalidation could touch.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, ttl: float = math.inf) -> None:
        self.inner = inner
        self.ttl = ttl
        self.answered_sent: dict[str, float] = {}  # user -> send time of their latest answered list
        self.invalidation_sent: dict[str, float] = {}  # user -> send time of their latest invalidating event
        self.computed: dict[str, float] = {}  # user -> when their cached list was computed (as far as seen)
        self.revisits = 0
        self.revisit_hits = 0

    def warmed(self, users: list[str], at: float) -> None:
        """``users``' lists were computed and cached from ``at`` on: their next list is a revisit."""
        self.computed.update(dict.fromkeys(users, at))
        self.answered_sent.update(dict.fromkeys(users, at))

    def reset_counts(self) -> None:
        self.revisits = self.revisit_hits = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        if request.url.path == "/events/batch":
            for event in orjson.loads(request.content):
                if event["type"] in INVALIDATING_TYPES:
                    self.invalidation_sent[event["user_id"]] = sent
            return await self.inner.handle_async_request(request)
        if request.url.path != "/recommendations":
            return await self.inner.handle_async_request(request)
        user = request.url.params["user_id"]
        earlier = self.answered_sent.get(user)
        response = await self.inner.handle_async_request(request)
        if response.status_code != 200:
            return response
        await response.aread()
        hit = orjson.loads(response.content)["cache_tier"] in ("l1", "l2")
        if (
            earlier is not None
            and self.invalidation_sent.get(user, -math.inf) < earlier
            and sent - self.computed.get(user, -math.inf) < self.ttl
        ):
            self.revisits += 1
            self.revisit_hits += hit
        if not hit:
            self.computed[user] = sent
        self.computed.setdefault(user, sent)
        self.answered_sent[user] = max(sent, self.answered_sent.get(user, -math.inf))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class RssSample:
    seconds: float  # since the measured phase started
    rss_mb: dict[int, float]  # worker pid -> RSS


@dataclass
class SoakReport:
    warmed_users: int
    warmup: SimulationSummary
    measured: SimulationSummary
    samples: list[RssSample] = field(default_factory=list)
    server_5xx: float = 0.0
    revisits: int = 0  # measured-phase lists of users listed before, with no invalidating event since
    revisit_hits: int = 0

    @property
    def errors(self) -> int:
        """Failed list requests and event posts, dropped visits and events not acknowledged."""
        s = self.measured
        return s.error_count + s.dropped + s.failed_events

    @property
    def hit_ratio(self) -> float:
        """Share of measured-phase lists answered from L1 or L2."""
        tiers = self.measured.cache_tiers
        return tiers.get("l1", 0.0) + tiers.get("l2", 0.0)

    @property
    def revisit_hit_ratio(self) -> float:
        return self.revisit_hits / self.revisits if self.revisits else 0.0

    def rss_at(self, fraction: float) -> dict[int, float]:
        """Each worker's RSS at the sample nearest ``fraction`` of the measured phase."""
        if not self.samples:
            return {}
        target = fraction * self.samples[-1].seconds
        return min(self.samples, key=lambda s: abs(s.seconds - target)).rss_mb

    def rss_growth_mb(self, start: float = 0.5) -> dict[int, float]:
        """RSS change of every worker alive from ``start`` (a fraction of the phase) to the end."""
        first, last = self.rss_at(start), self.rss_at(1.0)
        return {pid: last[pid] - first[pid] for pid in first if pid in last}

    def render(self) -> str:
        s = self.measured
        lat = s.latency_ms
        rows: list[list[object]] = [
            ["requests (lists)", s.requests],
            ["events acknowledged", sum(s.events.values())],
            ["errors (failed + dropped + unacknowledged events)", self.errors],
            *[[f"  {kind}", n] for kind, n in s.errors.items()],
            ["  dropped visits (in-flight bound reached)", s.dropped],
            ["  events not acknowledged", s.failed_events],
            ["5xx counted by the API", int(self.server_5xx)],
            ["achieved rate (lists/s)", f"{s.achieved_rate:.1f} (target {s.target_rate:g})"],
            ["users warmed before traffic", self.warmed_users],
            ["hit ratio after warm-up (L1 + L2)", f"{self.hit_ratio:.1%}"],
            ["hit ratio of revisits (no cart add / purchase since, list within its TTL)",
             f"{self.revisit_hit_ratio:.1%} of {self.revisits}"],
            ["cache tiers", ", ".join(f"{t} {v:.1%}" for t, v in s.cache_tiers.items())],
            ["fallback lists", s.fallbacks],
            *[[f"latency {k}", "-" if lat.get(k) is None else f"{lat[k]:.1f} ms"] for k in ("p50", "p95", "p99")],
        ]
        start, middle, end = self.rss_at(0.0), self.rss_at(0.5), self.rss_at(1.0)
        for pid in sorted(set(start) | set(middle) | set(end)):
            cells = [f"{d[pid]:.1f}" if pid in d else "-" for d in (start, middle, end)]
            rows.append([f"RSS MiB of worker {pid} (start / middle / end)", " / ".join(cells)])
        return table(["measured phase", "value"], rows)


def top_users(world: DemoWorld, n: int) -> list[str]:
    """The ``n`` users with the most history, most active first (what ``top_active_users`` ranks by)."""
    return [str(u) for u in world.events["user_id"].value_counts().index[:n]]


async def _sample(master_pid: int, every: float, started: float, out: list[RssSample], stop: asyncio.Event) -> None:
    while True:
        sizes = {pid: mb for pid in worker_pids(master_pid) if (mb := rss_mb(pid)) is not None}
        out.append(RssSample(time.monotonic() - started, sizes))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
            return


async def _traffic(
    world: DemoWorld,
    warmup: SimulationConfig,
    measured: SimulationConfig,
    audit: CacheAudit,
    master_pid: int,
    sample_every: float,
) -> tuple[SimulationSummary, SimulationSummary, list[RssSample]]:
    warm_summary = await run_simulation(world, warmup, transport=audit)
    audit.reset_counts()
    samples: list[RssSample] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(master_pid, sample_every, time.monotonic(), samples, stop))
    try:
        summary = await run_simulation(world, measured, transport=audit)
    finally:
        stop.set()
        await sampler
        await audit.aclose()
    return warm_summary, summary, samples


def soak(
    api_url: str,
    world: DemoWorld,
    master_pid: int,
    *,
    rate: float,
    seconds: float,
    warmup_seconds: float,
    admin_token: str,
    warm_top: int,
    sample_every: float = 5.0,
    seed: int = 1,
    settings: Settings | None = None,
) -> SoakReport:
    """Warm the ``warm_top`` most active users, then run ``warmup_seconds`` and ``seconds`` of traffic at
    ``rate`` visits/s.  ``settings`` are the API's (for the cache TTL; the defaults when not given)."""
    settings = settings or Settings()
    ttl = settings.rec_cache_ttl_seconds * (1.0 - settings.rec_cache_ttl_jitter)
    warmup = SimulationConfig(api_url=api_url, rate=rate, duration=warmup_seconds, seed=seed)
    measured = SimulationConfig(api_url=api_url, rate=rate, duration=seconds, seed=seed + 1)
    limits = httpx.Limits(max_connections=measured.max_in_flight, max_keepalive_connections=measured.max_in_flight)
    audit = CacheAudit(httpx.AsyncHTTPTransport(limits=limits), ttl=ttl)
    with httpx.Client(base_url=api_url, timeout=300.0) as client:
        warmed, users = 0, top_users(world, warm_top)
        # in chunks, as the console's warm action does: one request per chunk keeps each call short
        for start in range(0, len(users), WARM_CHUNK):
            chunk = users[start:start + WARM_CHUNK]
            began = time.monotonic()
            r = client.post(
                "/admin/cache/warm", json={"user_ids": chunk, "n": 10},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            r.raise_for_status()
            warmed += int(r.json()["users"])
            audit.warmed(chunk, began)
        before = client.get("/metrics").text
        warm_summary, summary, samples = asyncio.run(
            _traffic(world, warmup, measured, audit, master_pid, sample_every)
        )
        after = client.get("/metrics").text
    return SoakReport(
        warmed, warm_summary, summary, samples, server_errors(after) - server_errors(before),
        revisits=audit.revisits, revisit_hits=audit.revisit_hits,
    )


# ------------------------------------------------------------------------------ command


@contextlib.contextmanager
def api_stack(
    settings: Settings, workers: int, token: str, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Its own Redis (emptied) and API for the soak (``extra_env`` added to the API's environment);
    yields the API's URL and master pid."""
    server = EmbeddedRedis(data_dir=settings.data_dir / "soak-redis").start()
    api: subprocess.Popen[bytes] | None = None
    try:
        # a previous run's lists would count as hits
        with redis.Redis.from_url(server.url) as client:
            client.flushdb()
        port = free_port()
        env = dict(
            os.environ, REDIS_URL=server.url, RECOPS_DATA_DIR=str(settings.data_dir), RECOPS_ADMIN_TOKEN=token,
            RECOPS_DEMO_USERS=str(settings.demo_users), RECOPS_DEMO_ITEMS=str(settings.demo_items),
            OPENBLAS_NUM_THREADS="1",
        )
        env.update(extra_env or {})
        cmd = [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers", str(workers)]
        log = (settings.data_dir / "soak-api.log").open("wb")
        api = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        if not wait_http(url + "/health", 180, api):
            raise RuntimeError(f"the API did not start; see {settings.data_dir / 'soak-api.log'}")
        deadline = time.monotonic() + 60
        while len(worker_pids(api.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        yield url, api.pid
    finally:
        if api is not None:
            api.terminate()
            try:
                api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the measured phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=40.0, help="visits per second (a list and an events batch)")
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--warm-top", type=int, default=10_000, help="most active users warmed before traffic")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    settings = Settings(
        data_dir=root / f"soak-{args.items}-{args.users}", demo_users=args.users, demo_items=args.items
    )
    world = prepare_world(settings)
    prepare_models(settings, world.dataset())
    token = secrets.token_urlsafe(24)
    with api_stack(settings, args.workers, token) as (url, master):
        print(f"soak: {args.workers} workers at {url}, {args.rate:g} visits/s, "
              f"{args.warmup_seconds:g} s warm-up + {args.minutes:g} min measured", flush=True)
        report = soak(
            url, world, master, rate=args.rate, seconds=args.minutes * 60, warmup_seconds=args.warmup_seconds,
            admin_token=token, warm_top=args.warm_top, sample_every=args.sample_every, settings=settings,
        )
    print(report.render())
    verdicts = [
        f"errors {report.errors} (target 0): {'ok' if report.errors == 0 and report.server_5xx == 0 else 'MISSED'}",
        f"hit ratio {report.hit_ratio:.1%} (target >= 90%): {'ok' if report.hit_ratio >= 0.9 else 'MISSED'}",
        f"revisit hit ratio {report.revisit_hit_ratio:.1%} (the misses a cache could have avoided: "
        f"{report.revisits - report.revisit_hits})",
        "RSS growth over the second half (MiB): "
        + ", ".join(f"{pid} {d:+.1f}" for pid, d in sorted(report.rss_growth_mb().items())),
    ]
    print("\n".join(verdicts))
    return 0
