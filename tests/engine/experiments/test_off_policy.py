"""Off-policy evaluation from exploring logs, by simulation on a synthetic position-based click world
(fast, no Redis): coverage of the 95% intervals and the error against the exact truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.data.event_log import SCHEMA
from engine.events.consumer import entry_row
from engine.events.impressions import impression_events
from engine.experiments.off_policy import (
    NoLogsError,
    SimulatedList,
    estimate,
    logged_impressions,
    simulate_lists,
    simulated_rows,
    true_value,
)
from engine.serving.exploring_lists import PLACKETT_LUCE, ExplorationPolicy

USERS, POOL, DEPTH = 100, 30, 10
SAMPLES = 256  # Monte Carlo prefixes per marginal (serving's 1024 would quadruple the test's time)
POLICY = ExplorationPolicy(PLACKETT_LUCE, temperature=0.25, pool=POOL)


def bias(k: np.ndarray) -> np.ndarray:
    return 1.0 / np.log2(np.asarray(k) + 2.0)


class World:
    """Users with a pool of 30 items each: the logging model's scores, and a true attractiveness that
    the scores only partly know; P(click) = bias(slot) · attractiveness (position-based)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.users = [f"u{i}" for i in range(USERS)]
        self.items = {u: [f"{u}i{j}" for j in range(POOL)] for u in self.users}
        self.scores = {u: rng.normal(size=POOL) for u in self.users}
        self.attr = {u: 1 / (1 + np.exp(-(-2.0 + 0.6 * self.scores[u] + 0.8 * rng.normal(size=POOL))))
                     for u in self.users}
        self.lookup = {(u, item): a for u in self.users for item, a in zip(self.items[u], self.attr[u], strict=True)}

    def click_probability(self, user: str, items: list[str], positions: np.ndarray) -> np.ndarray:
        return bias(positions) * np.asarray([self.lookup[(user, i)] for i in items])

    def target(self) -> dict[str, list[str]]:
        """A better ranker than the logging one: by the attractiveness, seen through noise."""
        rng = np.random.default_rng(99)
        return {u: [self.items[u][j] for j in np.argsort(-(self.attr[u] + rng.normal(0, 0.05, POOL)))[:DEPTH]]
                for u in self.users}


def logged_table(world: World, lists: int, rng: np.random.Generator) -> pa.Table:
    users = [world.users[i] for i in rng.integers(USERS, size=lists)]
    pools = {u: (world.items[u], world.scores[u]) for u in world.users}
    shown = simulate_lists(pools, users, DEPTH, POLICY, rng, SAMPLES)
    clicks = [rng.random(len(s.items)) < world.click_probability(s.user_id, s.items, np.arange(len(s.items)))
              for s in shown]
    return pa.Table.from_pylist(simulated_rows(shown, clicks, "logging"), schema=SCHEMA)


def test_intervals_cover_the_truth_and_estimates_are_close() -> None:
    world = World(0)
    targets = world.target()
    covered = {"ipw": 0, "snips": 0, "dr": 0}
    errors: dict[str, list[float]] = {name: [] for name in covered}
    seeds = 10
    for seed in range(seeds):
        logged = logged_impressions(logged_table(world, 3_000, np.random.default_rng(seed)))
        truth = true_value(logged, targets, world.click_probability)
        result = estimate(logged, targets, "target", truth=truth, n_bootstrap=300, seed=seed)
        for name in covered:
            lo, hi = result.estimates[name]["ci"]
            covered[name] += lo <= truth <= hi
            errors[name].append(abs(result.estimates[name]["value"] - truth) / truth)
        assert result.truth == truth
        assert result.logging_value < truth  # the target is the better ranker
    for name in ("snips", "dr"):
        assert covered[name] >= 0.75 * seeds, (name, covered)
        assert np.median(errors[name]) <= 0.10, (name, errors[name])


def test_clicks_are_joined_by_request_and_item() -> None:
    shown = [SimulatedList("u1", ["a", "b"], [0.5, 0.5], [0.5, 0.25], [0.5, 0.4]),
             SimulatedList("u1", ["b", "a"], [0.5, 0.5], [0.5, 0.25], [0.5, 0.4])]
    table = pa.Table.from_pylist(simulated_rows(shown, [[False, True], [False, False]], "p"), schema=SCHEMA)
    logged = logged_impressions(table)
    assert logged.requests == 2
    assert logged.reward.tolist() == [0.0, 1.0, 0.0, 0.0]  # b clicked in the first list only
    assert logged.marginal.tolist() == [0.5, 0.4, 0.5, 0.4]
    result = estimate(logged, {"u1": ["a", "b"]}, "t", n_bootstrap=50, seed=0)
    # the target shows a then b: it agrees with the first list only; weights 1/0.5 and 1/0.4
    assert result.estimates["ipw"]["value"] == pytest.approx((0 / 0.5 + 1 / 0.4) / 2)
    assert result.logging_value == pytest.approx(0.5)


def test_simulated_rows_are_the_consumers_rows_of_the_same_events() -> None:
    shown = [SimulatedList("u1", ["a", "b"], [0.5, 0.25], [0.5, 0.125], [0.5, 0.3])]
    rows = simulated_rows(shown, [[True, False]], "pol", now=1_800_000_000.0)
    request_id = rows[0]["request_id"]
    events = impression_events("u1", [{"item_id": "a"}, {"item_id": "b"}],
                               {"propensity": [0.5, 0.25], "prefix_propensity": [0.5, 0.125],
                                "marginal_propensity": [0.5, 0.3]}, request_id, "pol", 1_800_000_000.0)
    via_consumer = [entry_row("x", {k: str(v) for k, v in e.stream_fields().items()}) for e in events]
    impressions = [r for r in rows if r["type"] == "impression"]
    assert [{**r, "stream_id": "x"} for r in impressions] == via_consumer
    assert [r["item_id"] for r in rows if r["type"] == "click"] == ["a"]


def test_no_exploring_impressions_is_refused() -> None:
    plain = pa.Table.from_pylist([{"stream_id": "1-0", "event_id": "e", "user_id": "u", "item_id": "i",
                                   "type": "impression", "timestamp": 1.0, "request_id": "r"}], schema=SCHEMA)
    with pytest.raises(NoLogsError):
        logged_impressions(plain)
