"""Readout building blocks without Redis: summaries, prefix sums, bandit SRM shares, planning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.power import (
    expected_duration_days,
    sample_size_means,
    sample_size_proportions,
    sample_size_relative,
    sample_size_relative_proportions,
)
from analysis.readout import VariantSummary, analyze
from analysis.stats import RatioStats
from engine.experiments import METRICS, parse_experiment, plan_sample_size
from engine.experiments.arm_stats import ArmStats, cumulate, summaries, summaries_from_arrays
from engine.experiments.results import MetricResult, build_readout, expected_shares


def test_summaries_from_arrays_match_direct_sums() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 3, 5000)
    pre = rng.poisson(3.0, 5000).astype(float)
    y = pre + rng.normal(0.0, 1.0, 5000)
    got = summaries_from_arrays(y, groups, ["a", "b", "c"], pre)
    for i, s in enumerate(got):
        m = groups == i
        want = VariantSummary(s.name, int(m.sum()), y[m].sum(), (y[m] ** 2).sum(), pre[m].sum(), (pre[m] ** 2).sum(),
                              (y[m] * pre[m]).sum())
        assert s.users == want.users
        for field in ("sum", "sum_squares", "pre_sum", "pre_sum_squares", "sum_product"):
            assert getattr(s, field) == pytest.approx(getattr(want, field), rel=1e-12)
    readout = analyze(got, "mean")
    assert readout.cuped_theta == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match=r"group labels must be in 0\.\.2"):
        summaries_from_arrays([1.0], [3], ["a", "b", "c"])


def test_ratio_summary_carries_the_delta_method_estimate() -> None:
    arm = ArmStats({"n": 50, "s:clicks": 40, "ss:clicks": 90, "s:impressions": 500, "ss:impressions": 6000,
                    "si:clicks": 520})
    (s,) = summaries(METRICS["ctr"], ["a"], {"a": arm})
    est = RatioStats(50, 40, 90, 500, 6000, 520).estimate()
    assert s.sum / s.users == pytest.approx(est.mean)
    variance = (s.sum_squares - s.sum**2 / s.users) / (s.users - 1)  # type: ignore[operator]
    assert variance == pytest.approx(est.variance)
    assert s.pre_sum is None  # ratio metrics are not CUPED-adjusted


def test_cumulate_is_a_prefix_sum_per_arm() -> None:
    days = [{"a": ArmStats({"n": 2, "s:clicks": 1})}, {"b": ArmStats({"n": 1})}, {"a": ArmStats({"s:clicks": 3})}]
    out = cumulate(days)
    assert [d["a"].values for d in out] == [{"n": 2, "s:clicks": 1}, {"n": 2, "s:clicks": 1}, {"n": 2, "s:clicks": 4}]
    assert "b" not in out[0] and out[2]["b"].n == 1


def test_bandit_srm_shares_follow_the_epochs() -> None:
    exp = parse_experiment({"key": "b", "name": "b", "kind": "bandit",
                            "variants": [{"name": "x", "model": "als"}, {"name": "y", "model": "als"}]})
    arms = {"x": ArmStats({"n": 150, "n@0": 50, "n@1": 100}), "y": ArmStats({"n": 450, "n@0": 50, "n@1": 400})}
    shares, why = expected_shares(exp.variants, arms, {0: [0.5, 0.5], 1: [0.2, 0.8]})
    assert why is None
    assert shares == pytest.approx(((100 * 0.5 + 500 * 0.2) / 600, (100 * 0.5 + 500 * 0.8) / 600))
    shares, why = expected_shares(exp.variants, arms, {0: [0.5, 0.5]})
    assert shares == (0.5, 0.5) and why is not None and "epoch 1" in why


def test_bayesian_engine_readout_and_guardrail() -> None:
    rng = np.random.default_rng(2)
    exp = parse_experiment({"key": "e", "name": "e", "goal_metric": "converted", "guardrail_metrics": ["revenue"],
                            "engine": "bayesian", "phase": 1, "status": "running",
                            "variants": [{"name": "c", "model": "als"}, {"name": "t", "model": "als"}]})
    arms = {}
    for name, rate, price in (("c", 0.10, 50.0), ("t", 0.14, 20.0)):
        bought = rng.random(4000) < rate
        revenue = np.where(bought, price, 0.0)
        arms[name] = ArmStats({"n": 4000, "s:converted": float(bought.sum()), "s:revenue": revenue.sum(),
                               "ss:revenue": (revenue**2).sum()})
    r = build_readout(exp, arms)
    goal = r.goal.readout
    assert goal is not None and goal.decision_engine == "bayesian"
    assert goal.results[0].chance_to_win is not None and goal.results[0].chance_to_win > 0.99
    assert r.guardrails[0].worse() == ["t"]
    assert r.decision.action == "hold" and "revenue" in r.decision_text


def test_plan_sample_size() -> None:
    plan = plan_sample_size(0.05, 0.10)  # relative: sized for the readout's relative test
    assert plan.users_per_variant == sample_size_relative_proportions(0.05, 0.10)
    absolute = plan_sample_size(0.05, 0.005, relative=False)
    assert absolute.users_per_variant == sample_size_proportions(0.05, 0.005, 0.05, 0.8, relative=False)
    assert plan.total_users == 2 * plan.users_per_variant and plan.mde_abs == pytest.approx(0.005)
    three = plan_sample_size(0.05, 0.10, variants=3, users_per_day=1000, weights=(0.5, 0.25, 0.25))
    assert three.alpha_per_comparison == pytest.approx(0.025)
    assert three.total_users == 4 * three.users_per_variant  # the 25% arms are the bottleneck
    assert three.days == pytest.approx(expected_duration_days(three.users_per_variant, 1000, (0.5, 0.25, 0.25), 3))
    means = plan_sample_size(10.0, 0.5, metric_type="mean", std=4.0, relative=False)
    assert means.users_per_variant == sample_size_means(4.0, 0.5)
    relative_means = plan_sample_size(10.0, 0.05, metric_type="mean", std=4.0)
    assert relative_means.users_per_variant == sample_size_relative(10.0, 4.0, 0.05)
    assert math.isclose(means.to_dict()["mde_abs"], 0.5)
    with pytest.raises(ValueError, match="needs the per-user standard deviation"):
        plan_sample_size(10.0, 0.5, metric_type="mean")
    with pytest.raises(ValueError, match="at least 2 variants"):
        plan_sample_size(0.05, 0.1, variants=1)


def test_a_fixed_horizon_readout_does_not_ship_before_its_planned_size() -> None:
    """Peeking guard: significant at 5% of the planned users → keep running, not ship."""
    spec = {"key": "peek", "name": "peek", "goal_metric": "converted", "phase": 1, "status": "running",
            "variants": [{"name": "c", "model": "popularity"}, {"name": "t", "model": "als"}]}
    arms = {"c": ArmStats({"n": 1000, "s:converted": 100.0}), "t": ArmStats({"n": 1000, "s:converted": 160.0})}
    early = build_readout(parse_experiment({**spec, "planned_sample_size": 20_000}), arms)
    assert early.goal.readout is not None and early.goal.readout.results[0].p_value < 0.01  # relative test
    assert early.decision.action == "keep_running"
    assert "sequential" in early.decision_text and "5% reached" in early.decision_text
    done = build_readout(parse_experiment({**spec, "planned_sample_size": 1_000}), arms)
    assert done.decision.action == "ship" and done.decision.variant == "t"


def test_the_sequential_plan_is_accepted_returned_and_read() -> None:
    """The experiment's plan (method and looks; its planned size and MDE are the experiment's) drives
    the sequential engine's readout."""
    spec = {"key": "seq", "name": "seq", "goal_metric": "converted", "phase": 1, "status": "running",
            "engine": "sequential", "planned_sample_size": 20_000, "mde": 0.1,
            "variants": [{"name": "c", "model": "popularity"}, {"name": "t", "model": "als"}]}
    arms = {"c": ArmStats({"n": 5_000, "s:converted": 500.0}), "t": ArmStats({"n": 5_000, "s:converted": 590.0})}
    group = parse_experiment({**spec, "sequential": {"method": "group", "looks": 4}})
    assert parse_experiment(group.model_dump()).sequential == group.sequential  # stored and returned as given
    readout = build_readout(group, arms)
    result = readout.goal.readout.results[0]  # type: ignore[union-attr]
    assert result.method == "group-sequential" and result.group_sequential.info_fractions == (0.25,)
    assert readout.to_dict()["goal"]["readout"]["settings"]["sequential"] == {
        "method": "group", "planned_users_per_arm": 20_000, "looks": 4, "mde": 0.1, "spending": "obf"}
    msprt = build_readout(parse_experiment({**spec, "sequential": {"looks": 14}}), arms)
    m = msprt.goal.readout.results[0]  # type: ignore[union-attr]
    assert m.method == "msprt" and m.sequential.mixing_ratio is not None
    assert any("20,000 users per arm, 14 planned looks, most powerful at a +10.0% lift" in x for x in msprt.messages)
    assert msprt.decision.action in ("ship", "keep_running")  # the sequential engine may stop early: no peeking rule
    with pytest.raises(ValueError, match="group-sequential plan needs its number of looks"):
        parse_experiment({**spec, "sequential": {"method": "group"}})


@pytest.mark.parametrize("engine", ["sequential", "bayesian"])
def test_a_lower_is_better_guardrail_holds_back_a_treatment_that_raises_it(engine: str) -> None:
    readout = analyze([VariantSummary("control", 20_000, 2_000.0), VariantSummary("B", 20_000, 2_400.0)],
                      "binomial", engine)
    assert MetricResult("bounce_rate", "builtin", "guardrail", "", readout, direction="lower").worse() == ["B"]
    assert MetricResult("ctr", "builtin", "guardrail", "", readout, direction="higher").worse() == []
