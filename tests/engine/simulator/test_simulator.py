"""The traffic simulator against a real API process: rate, event accounting, ground truth, shutdown."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from engine.cli.simulate import add_simulate_arguments, run_until_signalled, simulate_command
from engine.config import Settings, get_settings
from engine.data.demo import DemoWorld
from engine.data.demo.history import MEAN_SESSIONS
from engine.local_processes import free_port
from engine.runtime import prepare_world
from engine.simulator import (
    SimulationConfig,
    SimulationSummary,
    behave,
    event_id,
    format_summary,
    plan_users,
    run_simulation,
    visit_rates,
)
from engine.storage.keys import Keys
from tests.support.api import ApiProcess
from tests.support.engine_fixtures import small_world_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api_world(api: ApiProcess) -> DemoWorld:
    return prepare_world(api.settings())


def test_run_against_the_api_accounts_for_every_event(
    api: ApiProcess, api_world: DemoWorld, redis_client: redis.Redis
) -> None:
    config = SimulationConfig(api_url=api.url, rate=30, duration=3, seed=1)
    started = time.monotonic()
    summary = asyncio.run(run_simulation(api_world, config))
    wall = time.monotonic() - started

    expected = config.rate * config.duration
    assert 0.8 * expected <= summary.requests <= 1.1 * expected
    assert summary.errors == {}, api.log.read_text()[-2000:]
    assert summary.ok == summary.requests
    # fixed spacing: exactly rate · duration slots, each either sent or dropped at the in-flight bound
    assert summary.requests + summary.dropped == expected
    assert summary.failed_events == 0 and not summary.interrupted
    assert summary.items_shown == summary.ok * config.n
    assert summary.events["impression"] == summary.items_shown
    # the funnel nests: every purchase was carted, every cart was clicked
    assert summary.events["impression"] >= summary.events["click"] >= summary.events["add_to_cart"]
    assert summary.events["add_to_cart"] >= summary.events["purchase"]
    # a run stops by itself: the schedule ends at `duration`, stragglers are bounded by the drain
    assert wall < config.duration + config.drain_seconds + 5

    stream = Keys(api.env.get("RECOPS_KEY_PREFIX", "recops")).event_stream
    assert redis_client.xlen(stream) == sum(summary.events.values())
    entries = redis_client.xrange(stream, count=10_000)
    types = {t: sum(1 for _, f in entries if f["type"] == t) for t in summary.events}
    assert types == summary.events
    for _, fields in entries:
        assert fields["event_id"] == event_id(fields["request_id"], fields["item_id"], fields["type"])

    # Observed clicks are a sum of independent Bernoulli draws with the ground-truth probabilities:
    # their variance is at most their mean, so 4 standard deviations is a generous band.
    assert summary.expected_ctr is not None and 0 < summary.expected_ctr < 1
    clicks, mean = summary.events["click"], summary.expected_clicks
    assert abs(clicks - mean) <= 4 * math.sqrt(mean) + 2, (clicks, mean)

    assert sum(summary.cache_tiers.values()) == pytest.approx(1.0)
    p50, p95, p99 = (summary.latency_ms[k] for k in ("p50", "p95", "p99"))
    assert p50 is not None and p95 is not None and p99 is not None and 0 < p50 <= p95 <= p99
    assert sum(v.requests for v in summary.variants) == summary.ok
    assert sum(v.impressions for v in summary.variants) == summary.events["impression"]
    assert sum(v.clicks for v in summary.variants) == summary.events["click"]

    report = format_summary(summary)
    assert "CTR" in report and str(summary.requests) in report


def test_purchases_are_priced_and_retries_are_idempotent(
    api: ApiProcess, api_world: DemoWorld, redis_client: redis.Redis
) -> None:
    # Heavy users and long lists so that a short run surely sees purchases.
    config = SimulationConfig(api_url=api.url, rate=20, duration=1.5, n=50, users=20, seed=3)
    summary = asyncio.run(run_simulation(api_world, config))
    assert summary.errors == {}
    stream = Keys().event_stream
    entries = redis_client.xrange(stream, count=100_000)
    purchases = [f for _, f in entries if f["type"] == "purchase"]
    assert len(purchases) == summary.events["purchase"] > 0
    for fields in purchases:
        price = api_world.price[api_world.item_index(fields["item_id"])]
        assert float(fields["value"]) == pytest.approx(float(price))
    # users=20 restricts visitors to the first 20 ids of the world
    assert {f["user_id"] for _, f in entries} <= set(api_world.user_ids[:20])

    # Event ids derive from (request, item, type): re-sending a visit's events adds nothing.
    before = redis_client.xlen(stream)
    with httpx.Client(base_url=api.url, timeout=10) as client:
        listing = client.post("/recommendations", params={"user_id": "u00003", "n": 10}).json()
        items = [i["item_id"] for i in listing["items"]]
        behaviour = behave(api_world, "u00003", items, listing["request_id"], np.random.default_rng(0))
        first = client.post("/events/batch", json=behaviour.events).json()
        again = client.post("/events/batch", json=behaviour.events).json()
    assert all(r["accepted"] for r in first)
    assert all(r["duplicate"] and not r["accepted"] for r in again)
    assert redis_client.xlen(stream) == before + len(behaviour.events)


def test_an_unreachable_api_is_counted_not_raised(api_world_small: DemoWorld) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = SimulationConfig(api_url=url, rate=20, duration=1, timeout=0.5)
    started = time.monotonic()
    summary = asyncio.run(run_simulation(api_world_small, config))
    assert time.monotonic() - started < config.duration + config.drain_seconds + 2
    assert summary.ok == 0 and summary.requests > 0
    assert summary.error_count == summary.requests
    assert set(summary.errors) == {"recommendations ConnectError"}
    assert summary.ctr is None and summary.expected_ctr is None
    assert summary.latency_ms["p50"] is None
    format_summary(summary)  # an empty run still prints


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port whose kernel completes TCP handshakes but that never answers: requests hang in flight."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_sigterm_stops_the_run_and_cancels_hung_requests(api_world_small: DemoWorld, silent_server: str) -> None:
    config = SimulationConfig(api_url=silent_server, rate=20, duration=60, timeout=30)

    async def run_and_terminate() -> SimulationSummary:
        asyncio.get_running_loop().call_later(0.8, os.kill, os.getpid(), signal.SIGTERM)
        return await run_until_signalled(api_world_small, config)

    started = time.monotonic()
    summary = asyncio.run(run_and_terminate())
    # stopped at 0.8 s, then at most STOP_GRACE_SECONDS for the hung requests before they are cancelled
    assert time.monotonic() - started < 5
    assert summary.interrupted
    assert 10 <= summary.requests <= 20
    assert summary.ok == 0
    assert summary.errors == {"client cancelled": summary.requests}
    # the handler is removed afterwards: SIGTERM's disposition is back to the default
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_users_are_drawn_by_activity(api_world_small: DemoWorld) -> None:
    world = api_world_small
    plan = plan_users(world, 20_000, np.random.default_rng(0))
    visits = {u: 0 for u in world.user_ids}
    for u in plan:
        visits[u] += 1
    activity = world.events["user_id"].value_counts().reindex(world.user_ids, fill_value=0).to_numpy()
    counts = np.array([visits[u] for u in world.user_ids])
    heavy = activity >= np.quantile(activity, 0.9)
    light = activity <= np.quantile(activity, 0.1)
    # the busiest tenth of users gets many times the visits of the quietest tenth
    assert counts[heavy].mean() > 5 * counts[light].mean()
    assert np.corrcoef(activity, counts)[0, 1] > 0.9
    subset = plan_users(world, 1_000, np.random.default_rng(0), users=25)
    assert set(subset) <= set(world.user_ids[:25])


def test_visit_rates_share_the_worlds_sessions_by_activity(api_world_small: DemoWorld) -> None:
    """Over an experiment of D days the world's users make MEAN_SESSIONS · D / (history days) visits on
    average, shared as the simulator's traffic is (by activity)."""
    world = api_world_small
    rates = visit_rates(world, world.user_ids, 14)
    assert rates.mean() == pytest.approx(MEAN_SESSIONS * 14 / world.params["days"])
    activity = world.events["user_id"].value_counts().reindex(world.user_ids, fill_value=0).to_numpy() + 1.0
    assert rates / rates.sum() == pytest.approx(activity / activity.sum())
    assert visit_rates(world, world.user_ids[:3], 28) == pytest.approx(2 * rates[:3])


def test_config_rejects_nonsense() -> None:
    for bad in ({"rate": 0}, {"duration": -1}, {"users": 0}, {"n": 101}, {"max_in_flight": 0}):
        with pytest.raises(ValueError):
            SimulationConfig(**bad)  # type: ignore[arg-type]
    assert SimulationConfig(rate=30, duration=3).max_requests == 99


def test_simulate_command_prints_json(
    api: ApiProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("RECOPS_DATA_DIR", "REDIS_URL", *small_world_env()):
        monkeypatch.setenv(name, api.env[name])
    get_settings.cache_clear()
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    args = parser.parse_args(["--rate", "10", "--duration", "1", "--api", api.url, "--json", "--users", "50"])
    try:
        assert simulate_command(args) == 0
    finally:
        get_settings.cache_clear()
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] == out["requests"] > 0
    assert out["events"]["impression"] == out["items_shown"]
    assert set(out) >= {"ctr", "expected_ctr", "latency_ms", "cache_tiers", "variants", "achieved_rate"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "0", "--duration", "1"])


@pytest.fixture
def api_world_small(small_world_dir: Path) -> DemoWorld:
    from tests.support.engine_fixtures import SMALL_WORLD

    return prepare_world(Settings(data_dir=small_world_dir, redis_url="redis://unused", **SMALL_WORLD))
