"""The open-loop driver: visits start on a fixed schedule whatever the API's speed.

A closed loop (next request when the last one answers) slows down with the server and hides its
latency; here visit ``i`` starts at ``i / rate`` seconds.  In-flight visits are bounded: when the
bound is reached the scheduled visit is dropped and counted, so an overloaded API shows up as
``dropped`` rather than as a silently lower rate.  The run ends at ``duration``, after a hard cap of
requests, or when ``stop`` is set (Ctrl-C / SIGTERM), and then waits a bounded time for in-flight visits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from engine.data.demo import DemoWorld
from engine.simulator.summary import Recorder, SimulationSummary
from engine.simulator.visits import Visitor, plan_users

CAP_FACTOR = 1.1  # hard cap on requests: rate · duration · 1.1
STOP_GRACE_SECONDS = 1.0  # after Ctrl-C, in-flight visits get this long before they are cancelled


@dataclass(frozen=True)
class SimulationConfig:
    api_url: str = "http://127.0.0.1:8000"
    rate: float = 10.0
    duration: float = 10.0
    users: int | None = None
    n: int = 10
    seed: int = 1
    max_in_flight: int = 64
    timeout: float = 5.0
    retries: int = 2

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError(f"duration must be a positive number of seconds, got {self.duration}")
        if self.users is not None and self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if not 1 <= self.n <= 100:
            raise ValueError(f"n must be within 1..100, got {self.n}")
        if self.max_in_flight < 1 or self.timeout <= 0 or self.retries < 0:
            raise ValueError("max_in_flight >= 1, timeout > 0 and retries >= 0 are required")

    @property
    def max_requests(self) -> int:
        # the epsilon keeps float noise (30 · 3 · 1.1 = 99.00000000000001) from adding a request
        return max(1, math.ceil(self.rate * self.duration * CAP_FACTOR - 1e-9))

    @property
    def drain_seconds(self) -> float:
        """Longest a visit can still take once started: the list, then every try of the event post."""
        backoff = sum(0.1 * 2**a for a in range(self.retries))
        return self.timeout * (self.retries + 2) + backoff


async def run_simulation(
    world: DemoWorld,
    config: SimulationConfig,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SimulationSummary:
    """Drive ``config.rate`` visits per second for ``config.duration`` seconds and summarise them."""
    stop = stop or asyncio.Event()
    plan_rng, behaviour_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(2))
    plan = plan_users(world, config.max_requests, plan_rng, config.users)
    recorder = Recorder()
    limits = httpx.Limits(max_connections=config.max_in_flight, max_keepalive_connections=config.max_in_flight)
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()
    interrupted = False
    async with httpx.AsyncClient(
        base_url=config.api_url, timeout=config.timeout, limits=limits, transport=transport
    ) as client:
        visitor = Visitor(client, world, recorder, behaviour_rng, n=config.n, retries=config.retries)
        start = loop.time()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            for i, user_id in enumerate(plan):
                due = i / config.rate
                if due >= config.duration:
                    break
                delay = start + due - loop.time()
                if delay > 0:
                    await asyncio.wait({stopper}, timeout=delay)
                else:
                    await asyncio.sleep(0)  # behind schedule: the visits in flight must still progress
                if stopper.done():
                    interrupted = True
                    break
                if len(in_flight) >= config.max_in_flight:
                    recorder.dropped += 1
                    continue
                task = asyncio.create_task(visitor.visit(str(user_id)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            stopper.cancel()
        # the schedule spans [0, duration) unless stopped earlier: the window the rate is measured over
        sending = loop.time() - start if interrupted else config.duration
        interrupted = await _drain(in_flight, stop, config.drain_seconds) or interrupted
        elapsed = loop.time() - start
    return recorder.summary(
        api_url=config.api_url,
        target_rate=config.rate,
        duration=config.duration,
        elapsed=elapsed,
        sending=sending,
        interrupted=interrupted,
    )


async def _drain(in_flight: set[asyncio.Task[None]], stop: asyncio.Event, grace: float) -> bool:
    """Let running visits finish within ``grace`` (a short one once stopped); cancel the rest.
    True when the run was stopped."""
    if in_flight:
        everything: asyncio.Future[Any] = asyncio.gather(*in_flight, return_exceptions=True)
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        if not stop.is_set():
            await asyncio.wait({everything, stopper}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        if not everything.done() and stop.is_set():
            await asyncio.wait({everything}, timeout=STOP_GRACE_SECONDS)
        stopper.cancel()
        if not everything.done():
            everything.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await everything
    return stop.is_set()
