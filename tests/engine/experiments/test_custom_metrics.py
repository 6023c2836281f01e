"""User-defined metrics on a real Redis: statistics kept by the Lua scripts match a direct
computation from the events; ratio CUPED; capping; the verdict's rule over declared metrics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from analysis.capping import percentile_cap
from analysis.frequentist import ratio_ttest
from analysis.ratio_cuped import RatioCupedStats, ratio_cuped_estimates, ratio_cuped_ttest
from engine.events.tracker import Event
from engine.experiments import ExperimentError, ExperimentService, PreExposure
from engine.experiments.arm_stats import parse_stats
from engine.experiments.custom_results import ratio_cuped_stats
from engine.storage.keys import Keys

T0 = 1_790_000_000.0
N = 600


def users(n: int = N) -> list[str]:
    return [f"u{i:04d}" for i in range(n)]


def pre_exposure(seed: int = 0) -> tuple[PreExposure, dict[str, float], dict[str, float]]:
    """Pre-period views and impressions per user: a user's taste for viewing carries over."""
    rng = np.random.default_rng(seed)
    imps = {u: float(rng.poisson(20)) for u in users()}
    rate = {u: float(rng.beta(2, 8)) for u in users()}
    views = {u: float(rng.binomial(int(imps[u]), rate[u])) for u in users()}
    pre = PreExposure({}, {"count:view": views, "count:impression": imps})
    return pre, views, rate


@pytest.fixture
def setup(redis_client: redis.Redis) -> Iterator[tuple[ExperimentService, dict[str, float]]]:
    pre, _, rate = pre_exposure()
    svc = ExperimentService(redis_client, Keys(), covariates=pre, clock=lambda: T0)
    yield svc, rate
    svc.close()


METRICS: list[dict[str, Any]] = [
    {"name": "views", "kind": "count", "event_type": "view", "role": "goal"},
    {"name": "spend", "kind": "sum", "event_type": "purchase", "role": "secondary"},
    {"name": "viewed", "kind": "indicator", "event_type": "view", "role": "secondary"},
    {"name": "view_rate", "kind": "ratio", "numerator": "views", "denominator": "impressions", "role": "secondary"},
]


def spec(metrics: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"key": "exp", "name": "custom", "goal_metric": "ctr",
            "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}],
            "metrics": metrics, **fields}


def run(svc: ExperimentService, rate: dict[str, float], lift: float = 0.0, seed: int = 1,
        spend_scale: float = 1.0) -> dict[str, list[tuple[float, ...]]]:
    """Expose every user, send impressions, views and purchases; per arm, each user's
    (views, impressions, spend, pre views, pre impressions) as sent."""
    rng = np.random.default_rng(seed)
    pre, _, _ = pre_exposure()
    out: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    events: list[Event] = []
    for u in users():
        a = svc.assign(u)
        assert a is not None
        svc.record_exposure(a)
        treated = a.variant == "als"
        imps = int(rng.poisson(10)) + 1
        views = int(rng.binomial(imps, min(1.0, rate[u] * (1 + lift if treated else 1))))
        spend = [float(rng.lognormal(3, 1)) * spend_scale for _ in range(int(rng.poisson(0.5)))]
        events += [Event(user_id=u, item_id="i", type="impression", timestamp=T0)] * imps
        events += [Event(user_id=u, item_id="i", type="view", timestamp=T0)] * views
        events += [Event(user_id=u, item_id="i", type="purchase", timestamp=T0, value=v) for v in spend]
        c = pre.custom(u, ("count:view", "count:impression"))
        out[a.variant].append((float(views), float(imps), sum(spend), *c))
    order = rng.permutation(len(events))  # any order, several batches: the update is exact
    for chunk in np.array_split(order, 7):
        svc.observe([events[i] for i in chunk])
    return out


def test_custom_metrics_match_a_direct_computation(setup: tuple[ExperimentService, dict[str, float]]) -> None:
    svc, rate = setup
    svc.create(spec(METRICS))
    svc.start("exp")
    truth = run(svc, rate)
    readout = svc.readout("exp")
    assert readout.goal.metric == "views" and readout.goal.role == "goal"
    by_name = readout.metrics
    assert by_name["ctr"].role == "secondary"  # the built-in goal is still read, as a secondary
    for m, column in (("views", 0), ("spend", 2)):
        result = by_name[m].readout
        assert result is not None
        for arm in result.arms:
            values = np.array([row[column] for row in truth[arm.name]])
            assert arm.users == values.size
            assert arm.mean == pytest.approx(values.mean(), rel=1e-9)
    viewed = by_name["viewed"].readout
    assert viewed is not None
    for arm in viewed.arms:
        assert arm.mean == pytest.approx(np.mean([row[0] > 0 for row in truth[arm.name]]))
    # the ratio's stored sufficient statistics are exactly those of the per-user arrays
    arms = parse_stats(svc.store.read_stats("exp", 1), ["control", "als"])
    for name in ("control", "als"):
        rows = np.array(truth[name])
        direct = RatioCupedStats.from_values(rows[:, 0], rows[:, 1], rows[:, 3], rows[:, 4])
        stored = ratio_cuped_stats("count:view", "count:impression", arms[name])
        assert stored.n == direct.n
        np.testing.assert_allclose(stored.sums, direct.sums, rtol=1e-12)
        np.testing.assert_allclose(stored.products, direct.products, rtol=1e-12)
    ratio = by_name["view_rate"].readout
    assert ratio is not None
    direct_est, _ = ratio_cuped_estimates([RatioCupedStats.from_values(*np.array(truth[n])[:, [0, 1, 3, 4]].T)
                                           for n in ("control", "als")])
    assert [a.mean for a in ratio.arms] == pytest.approx([e.mean for e in direct_est], rel=1e-9)


def test_ratio_cuped_reduces_the_variance(setup: tuple[ExperimentService, dict[str, float]]) -> None:
    svc, rate = setup
    svc.create(spec(METRICS))
    svc.start("exp")
    truth = run(svc, rate)
    result = svc.readout("exp").metrics["view_rate"].readout
    assert result is not None
    adjusted = result.results[0].frequentist
    assert adjusted is not None and adjusted.se_abs is not None
    direct = [RatioCupedStats.from_values(*np.array(truth[n])[:, [0, 1, 3, 4]].T) for n in ("control", "als")]
    assert adjusted.se_abs == pytest.approx(ratio_cuped_ttest(direct[0], direct[1]).se_abs, rel=1e-9)
    plain = ratio_ttest(direct[0].post, direct[1].post)
    assert plain.se_abs is not None
    # users keep their taste for viewing: the pre-period ratio explains part of the post-period noise
    # (here about a third of the variance)
    assert adjusted.se_abs**2 < 0.8 * plain.se_abs**2
    assert any("ratio CUPED" in m for m in result.messages)


def test_capping_is_applied_and_recorded(setup: tuple[ExperimentService, dict[str, float]]) -> None:
    svc, rate = setup
    capped = {"name": "spend", "kind": "sum", "event_type": "purchase", "cap": {"percentile": 0.95}}
    svc.create(spec([{**METRICS[0]}, capped]))
    svc.start("exp")
    truth = run(svc, rate)
    result = svc.readout("exp").metrics["spend"]
    pooled = [np.array([row[2] for row in truth[n]]) for n in ("control", "als")]
    expected = percentile_cap(pooled, 0.95)
    assert result.cap is not None and result.cap["cap"] == pytest.approx(expected)
    assert result.cap["capped_users"] == sum(int((p > expected).sum()) for p in pooled)
    assert result.readout is not None
    for arm, values in zip(result.readout.arms, pooled, strict=True):
        assert arm.mean == pytest.approx(np.minimum(values, expected).mean())
    assert "capped at" in result.cap["text"]


def test_the_verdict_names_the_rule_that_decided(redis_client: redis.Redis) -> None:
    pre, _, rate = pre_exposure()
    # ship: views clearly up, the spend guardrail (lower is not better: higher) unchanged within 50%
    ship = [METRICS[0], {"name": "spend", "kind": "sum", "event_type": "purchase", "role": "guardrail",
                         "margin": 0.5, "cap": {"value": 200}}]
    svc = ExperimentService(redis_client, Keys(), covariates=pre, clock=lambda: T0)
    svc.create(spec(ship, planned_sample_size=100))
    svc.start("exp")
    run(svc, rate, lift=0.6)
    decision = svc.readout("exp").decision
    assert (decision.rule, decision.action, decision.variant, decision.metric) == ("ship", "ship", "als", "views")
    assert "views is significantly better" in decision.reason
    svc.close()

    # stop_guardrail: a "lower is better" guardrail (views, say, of an error page) rises far beyond its margin
    guard = [{"name": "cart", "kind": "count", "event_type": "impression", "role": "goal"},
             {"name": "views", "kind": "count", "event_type": "view", "role": "guardrail", "direction": "lower",
              "margin": 0.05}]
    svc = ExperimentService(redis_client, Keys(prefix="second"), covariates=pre, clock=lambda: T0)
    svc.create(spec(guard, planned_sample_size=100))
    svc.start("exp")
    run(svc, rate, lift=0.8)
    readout = svc.readout("exp")
    assert readout.decision.rule == "stop_guardrail" and readout.decision.action == "hold"
    assert readout.decision.metric == "views" and readout.decision.variant == "als"
    assert readout.to_dict()["decision"]["rule"] == "stop_guardrail"
    svc.close()


@pytest.mark.parametrize(("metrics", "message"), [
    ([{"name": "v", "kind": "count"}], "names an event_type"),
    ([{"name": "v", "kind": "count", "event_type": "nope"}], "unknown event_type 'nope'"),
    ([{"name": "r", "kind": "ratio", "numerator": "x", "denominator": "impressions"}], "'x' is neither"),
    ([{"name": "v", "kind": "indicator", "event_type": "view", "cap": {"value": 1}}], "cannot be capped"),
    ([{"name": "v", "kind": "count", "event_type": "view", "margin": 0.1}], "only a guardrail has a margin"),
    ([{"name": "ctr", "kind": "count", "event_type": "view"}], "the name of a built-in metric"),
    ([{"name": "v", "kind": "count", "event_type": "view"}] * 2, "declared twice"),
])
def test_bad_metric_declarations_name_the_field(redis_client: redis.Redis, metrics: list[dict[str, Any]],
                                                message: str) -> None:
    svc = ExperimentService(redis_client, Keys())
    with pytest.raises(ExperimentError, match=message) as caught:
        svc.create(spec(metrics))
    assert caught.value.field == "metrics"
    svc.close()


def test_the_declared_correction_scope_reaches_the_decision(setup: tuple[ExperimentService, dict[str, float]]
                                                            ) -> None:
    svc, rate = setup
    svc.create(spec(METRICS, correction="bh", correction_scope="all"))
    svc.start("exp")
    run(svc, rate, lift=0.3)
    outcomes = svc.readout("exp").decision.outcomes
    assert {o.metric for o in outcomes} == {"ctr", "views", "spend", "viewed", "view_rate"}
    assert all(o.in_scope for o in outcomes if o.p_value is not None)  # secondaries too, under "all"
    svc.update("exp", {"correction_scope": "goals"})
    narrow = svc.readout("exp").decision.outcomes
    assert [o.metric for o in narrow if o.in_scope] == ["views"]
    assert all(o.p_value_adjusted == o.p_value for o in narrow if not o.in_scope)
