"""Experiments end to end: a real API process, the traffic simulator, statistics in Redis, a readout.

The simulator sends a fixed number of visits (``rate · duration``, none dropped: the in-flight bound
is above it) as fast as the API answers, so the sample size does not depend on the machine's load
and each readout is a single fixed-horizon look.  Lists are 3 items long: short lists are where the
demo world's models differ most, so a bounded run has ample power.

Ground truth: a transport wrapped around the simulator's HTTP client sees every list served, with
its variant, and sums the world's true click probabilities for it — the expected CTR per variant.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from engine.data.demo import DemoWorld
from engine.experiments import ExperimentReadout, ExperimentService
from engine.runtime import prepare_world
from engine.simulator import SimulationConfig, SimulationSummary, run_simulation
from engine.storage.keys import Keys
from tests.support.api import ApiProcess
from tests.support.polling import poll

# one xdist worker runs both, so they share one API process
pytestmark = [pytest.mark.timeout(240), pytest.mark.slow, pytest.mark.xdist_group("experiments-e2e")]

VISITS = 1_500
LIST_LENGTH = 3
QA_USER = "qa-probe"  # forced into the control: probing the API never enters the statistics


class TruthTransport(httpx.AsyncBaseTransport):
    """Forwards to the network and records, per variant, the users served and their true click odds."""

    def __init__(self, world: DemoWorld) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.world = world
        self.click_probability: dict[str, float] = defaultdict(float)
        self.shown: dict[str, int] = defaultdict(int)
        self.users: dict[str, set[str]] = defaultdict(set)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/recommendations" and response.status_code == 200:
            body = json.loads(await response.aread())
            items = [item["item_id"] for item in body["items"]]
            variant = str(body.get("variant"))
            user = str(request.url.params["user_id"])
            if items:
                p = self.world.click_probability(
                    self.world.user_index(user), self.world.item_index(items), np.arange(len(items))
                )
                self.click_probability[variant] += float(p.sum())
                self.shown[variant] += len(items)
            self.users[variant].add(user)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def expected_ctr(self, variant: str) -> float:
        return self.click_probability[variant] / self.shown[variant]


@dataclass
class Run:
    summary: SimulationSummary
    truth: TruthTransport
    readout: ExperimentReadout


def wait_until_served(api: ApiProcess, key: str, timeout: float = 20.0) -> None:
    """The API reloads configs when it sees the version change; wait for it to serve ``key``."""
    with httpx.Client(base_url=api.url, timeout=10) as client:

        def served() -> dict[str, Any] | None:
            body: dict[str, Any] = client.post("/recommendations", params={"user_id": QA_USER, "n": LIST_LENGTH}).json()
            return body if body.get("experiment") == key else None

        body = poll(served, timeout, every=0.1)
    assert body is not None, f"the API did not pick up experiment {key!r} within {timeout}s"
    assert body["variant"] == "control"


def run_experiment(api: ApiProcess, redis_client: redis.Redis, spec: dict[str, Any], seed: int) -> Run:
    service = ExperimentService(redis_client, Keys())
    service.create({**spec, "forced": {QA_USER: "control"}})
    service.start(spec["key"])
    wait_until_served(api, spec["key"])
    world = prepare_world(api.settings())  # the world the API serves
    truth = TruthTransport(world)
    rate = 200.0
    config = SimulationConfig(
        api_url=api.url, rate=rate, duration=VISITS / rate, n=LIST_LENGTH, seed=seed,
        max_in_flight=VISITS + 1, timeout=60.0,
    )
    summary = asyncio.run(run_simulation(world, config, transport=truth))
    return Run(summary, truth, service.readout(spec["key"]))


def check_accounting(run: Run) -> None:
    """Every visit served, every event counted once, in the arm the simulator saw it in."""
    s = run.summary
    assert s.ok == s.requests == VISITS and s.dropped == 0, (s.errors, s.dropped)
    assert s.errors == {} and s.failed_events == 0 and s.duplicate_events == 0
    by_variant = {v.variant: v for v in s.variants}
    assert set(by_variant) == {a.name for a in run.readout.arms}
    for arm in run.readout.arms:
        assert arm.users == len(run.truth.users[arm.name])
        assert arm.totals["impressions"] == by_variant[arm.name].impressions
        assert arm.totals["clicks"] == by_variant[arm.name].clicks
    assert not run.readout.srm_flag


def test_als_beats_popularity_on_ctr(api: ApiProcess, redis_client: redis.Redis) -> None:
    spec = {
        "key": "pop-vs-als",
        "name": "Popularity vs matrix factorisation",
        "hypothesis": "Personal ALS lists earn more clicks per impression than best-sellers",
        "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}],
        "goal_metric": "ctr",
        # no revenue guardrail: a guardrail must be shown within its margin (non-inferiority,
        # analysis.decision_rules) before a ship, and 120 users' revenue has a relative interval
        # of about ±100%; the guardrail rule is checked in test_custom_metrics
        "alpha": 0.05,
        # a fixed-horizon readout may decide only at its planned size (the console refuses to
        # "ship" earlier: that would be peeking); the bounded run reaches this size
        "planned_sample_size": 120,
    }
    run = run_experiment(api, redis_client, spec, seed=11)
    assert run.readout.progress.fraction == 1.0
    check_accounting(run)
    # the ground truth of what was shown: ALS really is the better model
    assert run.truth.expected_ctr("als") > 1.2 * run.truth.expected_ctr("control")

    goal = run.readout.goal.readout
    assert goal is not None
    result = goal.results[0]
    assert result.variant == "als" and result.p_value is not None and result.p_value < 0.05
    assert result.lift_rel is not None and result.lift_rel > 0
    assert run.readout.decision.action == "ship" and run.readout.decision.variant == "als"
    assert run.readout.decision.rule == "ship" and run.readout.decision.metric == "ctr"
    assert run.readout.decision_text.startswith("ship als")


def test_an_a_a_experiment_declares_no_winner(api: ApiProcess, redis_client: redis.Redis) -> None:
    # alpha 0.01: the check's own false-positive rate is 1% by construction, while a broken
    # pipeline (events credited to the wrong arm, double counting) would give a far smaller p
    spec = {
        "key": "a-a",
        "name": "A/A",
        "variants": [{"name": "control", "model": "als"}, {"name": "also-als", "model": "als"}],
        "goal_metric": "ctr",
        "alpha": 0.01,
    }
    run = run_experiment(api, redis_client, spec, seed=12)
    check_accounting(run)
    goal = run.readout.goal.readout
    assert goal is not None
    result = goal.results[0]
    assert result.p_value is not None and result.p_value >= 0.01
    assert result.significant is False
    assert run.readout.decision.action in ("keep_running", "no_difference")
    assert not run.readout.decision_text.startswith("ship")
