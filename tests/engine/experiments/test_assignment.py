"""Assignment without Redis: the hash, coverage, layers, holdout, forced users, and config validation."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from scipy import stats

from engine.experiments import (
    AssignmentTable,
    Experiment,
    ExperimentError,
    Holdout,
    bucket,
    parse_experiment,
)

USERS = [f"u{i:06d}" for i in range(20_000)]


def running(key: str, weights: tuple[float, ...] = (0.5, 0.5), start: float = 1.0, **fields: Any) -> Experiment:
    variants = [
        {"name": f"v{i}", "model": "popularity" if i == 0 else "als", "weight": w} for i, w in enumerate(weights)
    ]
    data = {"key": key, "name": key, "variants": variants, "status": "running", "phase": 1, "start_time": start}
    return parse_experiment({**data, **fields})


def test_bucket_is_blake2b_and_stable_across_processes() -> None:
    expected = int.from_bytes(hashlib.blake2b(b"salt:u1", digest_size=8).digest(), "big") / 2**64
    assert bucket("salt", "u1") == expected
    code = "from engine.experiments import bucket; print(repr(bucket('salt', 'u1')))"
    # a different PYTHONHASHSEED would change hash(): the bucket must not move
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) == expected


def test_buckets_are_uniform() -> None:
    values = np.array([bucket("exp-a", u) for u in USERS])
    assert values.min() >= 0.0 and values.max() < 1.0
    counts = np.bincount((values * 50).astype(int), minlength=50)
    assert stats.chisquare(counts).pvalue > 0.001


def test_buckets_of_different_salts_are_independent() -> None:
    a = np.array([bucket("exp-a", u) for u in USERS])
    b = np.array([bucket("exp-b", u) for u in USERS])
    table = np.histogram2d(a, b, bins=10, range=[[0, 1], [0, 1]])[0]
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03


def test_variants_follow_their_weights() -> None:
    table = AssignmentTable([running("w", weights=(0.2, 0.3, 0.5))])
    names = [table.assign(u).variant for u in USERS]  # type: ignore[union-attr]
    counts = [names.count(f"v{i}") for i in range(3)]
    assert stats.chisquare(counts, np.array([0.2, 0.3, 0.5]) * len(USERS)).pvalue > 0.001
    # deterministic: the same user always lands in the same variant
    assert [table.assign(u).variant for u in USERS[:200]] == names[:200]  # type: ignore[union-attr]


def test_raising_coverage_only_adds_users() -> None:
    low = AssignmentTable([running("c", coverage_pct=30)])
    high = AssignmentTable([running("c", coverage_pct=60)])
    in_low = {u: a.variant for u in USERS if (a := low.assign(u))}
    in_high = {u: a.variant for u in USERS if (a := high.assign(u))}
    assert abs(len(in_low) / len(USERS) - 0.30) < 0.015
    assert abs(len(in_high) / len(USERS) - 0.60) < 0.015
    assert all(in_high.get(u) == v for u, v in in_low.items())


def test_a_new_phase_re_randomises() -> None:
    one = AssignmentTable([running("p")])
    two = AssignmentTable([running("p", phase=2)])
    moved = sum(one.assign(u).variant != two.assign(u).variant for u in USERS)  # type: ignore[union-attr]
    assert abs(moved / len(USERS) - 0.5) < 0.02


def test_experiments_of_one_layer_never_share_a_user() -> None:
    a = running("la", layer="home", layer_range=(0.0, 0.4), start=1.0)
    b = running("lb", layer="home", layer_range=(0.4, 1.0), start=2.0)
    table = AssignmentTable([a, b])
    seen = [table.assign(u) for u in USERS]
    by_exp = {"la": 0, "lb": 0}
    for s in seen:
        by_exp[s.experiment] += 1  # type: ignore[union-attr]
    assert abs(by_exp["la"] / len(USERS) - 0.4) < 0.015
    # eligibility is disjoint, not merely "first wins": b alone still skips a's slice
    only_b = AssignmentTable([b])
    a_users = {u for u, s in zip(USERS, seen, strict=True) if s.experiment == "la"}  # type: ignore[union-attr]
    assert all(only_b.assign(u) is None for u in a_users)


def test_first_started_experiment_wins_and_others_keep_a_random_subset() -> None:
    first = running("first", coverage_pct=50, start=1.0)
    second = running("second", start=2.0)
    table = AssignmentTable([second, first])
    seen = [table.assign(u) for u in USERS]
    second_users = [s for s in seen if s.experiment == "second"]  # type: ignore[union-attr]
    assert abs(len(second_users) / len(USERS) - 0.5) < 0.015
    counts = [sum(s.variant == v for s in second_users) for v in ("v0", "v1")]  # type: ignore[union-attr]
    assert stats.chisquare(counts).pvalue > 0.001


def test_holdout_and_forced_users() -> None:
    exp = running("h", forced={"qa-anna": "v1", "u000001": "v0"})
    table = AssignmentTable([exp], Holdout(pct=10.0))
    held = sum(table.assign(u) is None for u in USERS)
    assert abs(held / len(USERS) - 0.10) < 0.01
    qa = table.assign("qa-anna")
    assert qa is not None and qa.forced and qa.variant == "v1" and qa.model == "als"
    # a forced user gets the forced variant even when the holdout would take them
    held_user = next(u for u in USERS if Holdout(pct=10.0).contains(u))
    forced_in_holdout = AssignmentTable([running("h2", forced={held_user: "v1"})], Holdout(pct=10.0))
    assert forced_in_holdout.assign(held_user).variant == "v1"  # type: ignore[union-attr]


def test_only_running_experiments_assign() -> None:
    for status in ("draft", "paused", "stopped"):
        assert AssignmentTable([running("s", status=status)]).assign("u1") is None


# ----------------------------------------------------------------------------- validation


def spec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": "exp-1",
        "name": "Experiment",
        "variants": [{"name": "control", "model": "popularity"}, {"name": "treatment", "model": "als"}],
    }
    return {**base, **fields}


def test_a_minimal_spec_gets_equal_weights_and_defaults() -> None:
    exp = parse_experiment(spec())
    assert exp.weights == [0.5, 0.5] and exp.status == "draft" and exp.goal_metric == "ctr"
    assert exp.effective_salt == "exp-1" and exp.bandit is None
    three = parse_experiment(spec(variants=[{"name": n, "model": "als"} for n in "abc"]))
    assert sum(three.weights) == pytest.approx(1.0)
    assert parse_experiment(spec(kind="bandit")).bandit is not None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"variants": [{"name": "a", "model": "als", "weight": 1.0}]}, "at least 2 variants, got 1"),
        ({"variants": [{"name": "a", "model": "als"}, {"name": "a", "model": "popularity"}]}, "repeated: ['a']"),
        (
            {"variants": [{"name": "a", "model": "als", "weight": 0.5}, {"name": "b", "model": "als", "weight": 0.4}]},
            "must sum to 1, got 0.9 (a=0.5, b=0.4)",
        ),
        (
            {"variants": [{"name": "a", "model": "als", "weight": 1.0}, {"name": "b", "model": "als", "weight": 0}]},
            "variants.1.weight: Input should be greater than 0",
        ),
        ({"variants": [{"name": "a", "model": "gpt"}, {"name": "b", "model": "als"}]}, "unknown model 'gpt'"),
        ({"alpha": 0.7}, "alpha: Input should be less than 0.5"),
        ({"alpha": 0}, "alpha: Input should be greater than 0"),
        ({"power": 1.0}, "power: Input should be less than 1"),
        ({"goal_metric": "happiness"}, "unknown metric 'happiness'"),
        ({"guardrail_metrics": ["ctr"]}, "cannot also be a guardrail"),
        ({"forced": {"qa": "nope"}}, "forced user 'qa': no variant 'nope'"),
        ({"kind": "bandit", "goal_metric": "revenue"}, "a bandit needs a rate"),
        ({"key": "bad key!"}, "key: String should match pattern"),
        ({"coverage_pct": 0}, "coverage_pct: Input should be greater than 0"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_validation_messages(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ExperimentError, match="invalid experiment") as err:
        parse_experiment(spec(**fields))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_every_problem_is_reported_at_once() -> None:
    bad = spec(
        variants=[{"name": "a", "model": "als", "weight": 0.7}, {"name": "a", "model": "als", "weight": 0.7}],
        goal_metric="nope",
    )
    with pytest.raises(ExperimentError) as err:
        parse_experiment(bad)
    text = str(err.value)
    assert "repeated" in text and "sum to 1" in text and "unknown metric 'nope'" in text
