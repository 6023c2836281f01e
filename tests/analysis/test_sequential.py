"""Sequential tests: Lan-DeMets boundaries (exact recursion vs known values and scipy's multivariate
normal), repeated p-values and intervals, the mSPRT formulas and its tuning to the plan, and the
peeking simulation that motivates both."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.frequentist import FrequentistSettings, excludes_zero, proportions_test
from analysis.group_sequential import (
    crossing_probabilities,
    group_sequential_readout,
    group_sequential_test,
    lan_demets_boundaries,
    repeated_p_value,
    spent_alpha,
)
from analysis.msprt import (
    msprt_halfwidth,
    msprt_log_lr,
    msprt_p_values,
    msprt_power,
    msprt_tau2,
    msprt_test,
    msprt_z_boundaries,
    power_optimal_ratio,
)
from analysis.power import sample_size_proportions
from analysis.sequential import SequentialPlan, look_fractions, planned_drift, sequential_test
from analysis.stats import Estimate, SampleStats

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]


def _mvn_reject_probability(info: np.ndarray, bounds: np.ndarray) -> float:
    """P(some |Z_k| >= b_k) under H0 by scipy's multivariate normal CDF (corr = sqrt(t_j / t_k))."""
    cov = np.sqrt(np.minimum.outer(info, info) / np.maximum.outer(info, info))
    finite = np.where(np.isfinite(bounds), bounds, 40.0)
    inside = stats.multivariate_normal(cov=cov).cdf(finite, lower_limit=-finite)
    return 1.0 - float(inside)


# --------------------------------------------------------------------------------- boundaries


def test_obrien_fleming_boundaries_for_five_looks() -> None:
    design = lan_demets_boundaries(FIVE, alpha=0.05)
    # gsDesign / ldbounds, Lan-DeMets O'Brien-Fleming, two-sided 0.05, K = 5 equally spaced:
    # 4.877, 3.357, 2.680, 2.290, 2.031.  (A final 2.041, sometimes quoted, spends only 0.0492.)
    np.testing.assert_allclose(design.boundaries, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=6e-4)
    assert design.cumulative_alpha[-1] == pytest.approx(0.05, abs=1e-12)
    assert _mvn_reject_probability(np.array(FIVE), np.array(design.boundaries)) == pytest.approx(
        0.05, abs=2e-4
    )
    quoted = np.array([4.877, 3.357, 2.680, 2.290, 2.041])
    assert _mvn_reject_probability(np.array(FIVE), quoted) < 0.0495


def test_each_look_spends_exactly_its_increment() -> None:
    info = np.array([0.15, 0.3, 0.55, 0.7, 0.9, 1.0])  # uneven looks
    design = lan_demets_boundaries(info, alpha=0.05)
    up, low = crossing_probabilities(design)
    spent = np.cumsum(up + low)
    np.testing.assert_allclose(spent, design.cumulative_alpha, atol=1e-7)
    for k in (2, 4, 6):  # a multivariate normal check of the cumulative alpha at intermediate looks
        assert _mvn_reject_probability(info[:k], np.array(design.boundaries[:k])) == pytest.approx(
            design.cumulative_alpha[k - 1], abs=2e-4
        )


def test_pocock_and_one_sided_designs() -> None:
    pocock = lan_demets_boundaries(FIVE, alpha=0.05, spending="pocock")
    np.testing.assert_allclose(pocock.boundaries, [2.4380, 2.4268, 2.4101, 2.3966, 2.3859], atol=6e-4)
    one_sided = lan_demets_boundaries(FIVE, alpha=0.025, two_sided=False)
    np.testing.assert_allclose(one_sided.boundaries, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=6e-4)
    single = lan_demets_boundaries([1.0])
    assert single.boundaries[0] == pytest.approx(stats.norm.ppf(0.975), abs=1e-9)


def test_spending_function_shape() -> None:
    t = np.array([0.0, 0.25, 0.5, 1.0, 1.3])
    spent = spent_alpha(t, 0.025)
    assert spent[0] == 0.0 and spent[-1] == pytest.approx(0.025) and spent[-2] == pytest.approx(0.025)
    assert np.all(np.diff(spent) >= 0)


def test_boundaries_reject_bad_fractions() -> None:
    for bad in ([], [0.5, 0.5], [0.0, 1.0], [0.6, 0.4]):
        with pytest.raises(ValueError):
            lan_demets_boundaries(bad)


def test_overrunning_information_has_nothing_left_to_spend() -> None:
    design = lan_demets_boundaries([0.5, 1.0, 1.2])
    assert math.isinf(design.boundaries[2])
    decision = group_sequential_test(5.0, [0.5, 1.0, 1.2])
    assert not decision.reject and decision.final


def test_group_sequential_decision_at_a_look() -> None:
    early = group_sequential_test(3.0, FIVE[:2])
    assert not early.reject and not early.final and early.boundary == pytest.approx(3.3569, abs=6e-4)
    crossed = group_sequential_test(-3.5, FIVE[:2])
    assert crossed.reject and "stop and reject" in crossed.message
    last = group_sequential_test(2.0, FIVE)
    assert not last.reject and last.final and "no detectable difference" in last.message
    assert group_sequential_test(None, FIVE[:1]).message == "no test statistic at this look"


def test_power_of_the_design_by_recursion_matches_the_fixed_test_at_one_look() -> None:
    drift = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    up, low = crossing_probabilities(lan_demets_boundaries([1.0]), drift=drift)
    assert up.sum() + low.sum() == pytest.approx(0.8, abs=1e-6)
    up14, _ = crossing_probabilities(lan_demets_boundaries(np.arange(1, 15) / 14), drift=drift)
    assert up14.sum() == pytest.approx(0.7834, abs=5e-4)  # OBF over 14 looks loses ~2 points of power


# -------------------------------------------------------------------------------------- mSPRT


def test_msprt_formula_and_confidence_sequence_are_consistent() -> None:
    v, tau2, alpha = 0.01, 0.02, 0.05
    d = 0.25
    expected = 0.5 * math.log(v / (v + tau2)) + tau2 * d**2 / (2 * v * (v + tau2))
    assert float(msprt_log_lr(d, v, tau2)) == pytest.approx(expected)
    half = float(msprt_halfwidth(v, tau2, alpha))
    # The edge of the confidence sequence is exactly where Λ(θ0) = 1/α.
    assert float(msprt_log_lr(d, v, tau2, null=d + half)) == pytest.approx(math.log(1 / alpha), rel=1e-10)
    p = msprt_p_values(np.array([0.3, 0.1, 0.2]), np.array([0.04, 0.02, 0.01]), tau2)
    assert np.all(np.diff(p) <= 0) and np.all((p > 0) & (p <= 1))


def test_msprt_tau2_minimises_the_width_at_the_horizon() -> None:
    v = 0.004
    best = msprt_tau2(v, 0.05)
    grid = best * np.array([0.5, 0.8, 1.25, 2.0])
    assert all(float(msprt_halfwidth(v, best, 0.05)) < float(msprt_halfwidth(v, g, 0.05)) for g in grid)


def test_msprt_test_on_estimates() -> None:
    c, t = Estimate(20_000, 0.10, 0.09), Estimate(20_000, 0.11, 0.0979)
    r = msprt_test(c, t, 0.05, horizon_per_arm=20_000, difference="absolute")
    # v = (0.09 + 0.0979)/20000, τ²/v = 2 ln 20 + ln(2 ln 20 + 1) = 7.936, d²/v = 10.644 → log Λ = 3.6314
    assert r.p_value == r.p_value_abs == pytest.approx(math.exp(-3.6314), rel=1e-4)
    assert r.ci_abs[0] > 0 and r.ci_rel[0] > 0 and r.significant
    assert r.p_value == msprt_test(c, t, 0.05, tau2=r.tau2, difference="absolute").p_value
    rel = msprt_test(c, t, 0.05, horizon_per_arm=20_000)
    assert rel.difference == "relative" and rel.p_value == rel.p_value_rel != rel.p_value_abs
    # The relative pair is the same mixture on the log-ratio scale: its own τ², p and sequence, mapped back.
    log_rel = rel.relative
    assert log_rel.scale == "log" and log_rel.estimate == pytest.approx(math.log(1.1))
    assert log_rel.var == pytest.approx(0.0979 / 20_000 / 0.11**2 + 0.09 / 20_000 / 0.10**2)
    assert rel.tau2_rel == pytest.approx(rel.mixing_ratio * log_rel.var)
    edge = math.log1p(rel.ci_rel[0])
    assert float(msprt_log_lr(log_rel.estimate, log_rel.var, rel.tau2_rel, null=edge)) == pytest.approx(
        math.log(20), rel=1e-9
    )
    with pytest.raises(ValueError, match="tau2"):
        msprt_test(c, t)
    assert msprt_test(Estimate(0, 0.0, 0.0), t, tau2=1.0).message.startswith("control has 0 users")
    assert "zero variance" in msprt_test(Estimate(50, 1.0, 0.0), Estimate(50, 1.0, 0.0), tau2=1.0).message


# ------------------------------------------------------------------------------------ peeking

BASELINE, LOOKS, SIMS = 0.10, 14, 4000


def _simulate(treatment_rate: float, seed: int, n: int) -> dict[str, float]:
    """Binomial counts per look increment: sufficient statistics, so 4,000 × 14 looks cost nothing."""
    rng = np.random.default_rng(seed)
    looks = np.round(np.arange(1, LOOKS + 1) / LOOKS * n).astype(int)
    inc = np.diff(np.concatenate([[0], looks]))
    xc = np.cumsum(rng.binomial(inc, BASELINE, size=(SIMS, LOOKS)), axis=1)
    xt = np.cumsum(rng.binomial(inc, treatment_rate, size=(SIMS, LOOKS)), axis=1)
    pc, pt = xc / looks, xt / looks
    var = (pc * (1 - pc) + pt * (1 - pt)) / looks
    z = (pt - pc) / np.sqrt(var)
    # The vectorised z is the library's (absolute) statistic:
    absolute = FrequentistSettings(difference="absolute")
    for i, k in ((0, 0), (7, 5), (SIMS - 1, LOOKS - 1)):
        ref = proportions_test(
            SampleStats.binomial(looks[k], xc[i, k]), SampleStats.binomial(looks[k], xt[i, k]), absolute
        )
        assert z[i, k] == pytest.approx(ref.statistic, rel=1e-10)
    crit = stats.norm.ppf(0.975)
    bounds = np.array(lan_demets_boundaries(looks / n).boundaries)
    tau2 = msprt_tau2(2 * BASELINE * (1 - BASELINE) / n)
    always_valid = msprt_p_values(pt - pc, var, tau2)
    return {
        "naive": float(np.mean(np.any(np.abs(z) >= crit, axis=1))),
        "fixed": float(np.mean(np.abs(z[:, -1]) >= crit)),
        "group_sequential": float(np.mean(np.any(np.abs(z) >= bounds, axis=1))),
        "msprt": float(np.mean(always_valid[:, -1] < 0.05)),
    }


@pytest.fixture(scope="module")
def planned_n() -> int:
    return sample_size_proportions(BASELINE, 0.10, alpha=0.05, power=0.8)  # 14,749 per arm


def test_peeking_inflates_the_naive_test_but_not_the_sequential_ones(planned_n: int) -> None:
    rates = _simulate(BASELINE, seed=21, n=planned_n)
    # Monte Carlo sd of a 5% rate over 4,000 runs is 0.0034, so 0.06 is ~3 sd above a valid 0.05.
    assert rates["naive"] >= 0.17, rates  # ~0.22 (Armitage et al.); measured 0.217 with this seed
    assert 0.035 <= rates["fixed"] <= 0.065, rates
    assert rates["group_sequential"] <= 0.06, rates
    assert rates["msprt"] <= 0.06, rates


def test_group_sequential_keeps_the_power_of_the_fixed_test(planned_n: int) -> None:
    rates = _simulate(BASELINE * 1.10, seed=22, n=planned_n)
    assert rates["fixed"] == pytest.approx(0.80, abs=0.03), rates
    assert rates["group_sequential"] >= 0.85 * rates["fixed"], rates
    assert rates["group_sequential"] == pytest.approx(0.7834, abs=0.025), rates  # exact recursion value


# ------------------------------------------------------------------------------- tuned to the plan


def test_msprt_power_by_recursion_matches_simulation() -> None:
    rng = np.random.default_rng(31)
    looks, drift, ratio = 14, 2.8, 10.0
    t = np.arange(1, looks + 1) / looks
    scores = np.cumsum(rng.standard_normal((100_000, looks)), axis=1) / math.sqrt(looks) + drift * t
    simulated = np.mean(np.any(np.abs(scores / np.sqrt(t)) >= msprt_z_boundaries(ratio, t, 0.05), axis=1))
    assert msprt_power(ratio, drift, looks) == pytest.approx(simulated, abs=0.005)


def test_power_optimal_ratio_beats_other_tunings() -> None:
    drift = float(stats.norm.ppf(0.975) + stats.norm.ppf(0.8))  # a plan sized for 80% power
    best = power_optimal_ratio(drift, 14)
    top = msprt_power(best, drift, 14)
    for other in (best / 3, best / 1.5, best * 1.5, best * 3, msprt_tau2(1.0)):
        assert msprt_power(other, drift, 14) <= top + 1e-9
    assert top >= 0.60 * 0.80  # about 61% of the fixed test's 80%: the price of looking at any time
    # Issue 13: tuned at the size a 5% MDE needs (about 9x the plan), as the CLI did, the test is weak.
    assert msprt_power(msprt_tau2(1.0) / 9, drift, 14) < 0.6 * top


def test_planned_drift_and_look_fractions() -> None:
    z80 = float(stats.norm.ppf(0.975) + stats.norm.ppf(0.8))
    assert planned_drift(None, 0.01, 1_000, 4_000, 0.05, 0.8) == pytest.approx(z80)
    # se of the relative lift at the plan: sqrt(0.01 * 1000 / 4000) = 0.05, so a 10% MDE is a z of 2.
    assert planned_drift(0.10, 0.01, 1_000, 4_000, 0.05, 0.8) == pytest.approx(2.0)
    assert look_fractions(3_000, 10_000, 5) == pytest.approx((0.2, 0.3))
    assert look_fractions(4_000, 10_000, 5) == pytest.approx((0.2, 0.4))
    assert look_fractions(12_000, 10_000, 5) == pytest.approx((0.2, 0.4, 0.6, 0.8, 1.2))
    assert look_fractions(500, 10_000, None) == (0.05,)
    with pytest.raises(ValueError, match="looks"):
        SequentialPlan(method="group", looks=0)
    with pytest.raises(ValueError, match="mde"):
        SequentialPlan(mde=float("nan"))


def test_sequential_test_follows_the_plan() -> None:
    c, t = Estimate(14_000, 0.05, 0.0475), Estimate(14_000, 0.056, 0.052864)
    msprt = sequential_test(c, t, SequentialPlan(looks=14), planned_users_per_arm=28_000)
    drift = planned_drift(None, None, 14_000, 28_000, 0.05, 0.8)
    assert msprt.mixing_ratio == pytest.approx(power_optimal_ratio(drift, 14))
    group = sequential_test(c, t, SequentialPlan(method="group", looks=4), planned_users_per_arm=28_000)
    assert group.info_fractions == pytest.approx((0.25, 0.5))
    missing = sequential_test(c, t, SequentialPlan(method="group", looks=4), planned_users_per_arm=None)
    assert missing.p_value is None and "needs a planned sample size" in missing.message


# ------------------------------------------------------------------------------- repeated p and CI


def test_repeated_p_value_is_the_alpha_whose_boundary_the_statistic_meets() -> None:
    for z, info in ((2.7, FIVE[:3]), (-3.1, FIVE[:2]), (2.05, FIVE), (3.0, FIVE[:1])):
        p = repeated_p_value(z, info)
        assert lan_demets_boundaries(info, p).boundaries[-1] == pytest.approx(abs(z), rel=1e-3)
    single = repeated_p_value(2.2, [1.0])  # one look at the full information: the fixed test's p
    assert single == pytest.approx(2 * stats.norm.sf(2.2), rel=1e-3)
    assert repeated_p_value(0.0, FIVE[:2]) == 1.0 and repeated_p_value(60.0, FIVE[:2]) == pytest.approx(1e-12)


def test_group_sequential_readout_agrees_with_its_boundary() -> None:
    c = Estimate(6_000, 0.10, 0.09)
    for rate, info in ((0.115, (0.2, 0.4)), (0.115, (0.5, 1.0)), (0.103, (0.5, 1.0)), (0.085, (0.3,))):
        t = Estimate(6_000, rate, rate * (1 - rate))
        for difference in ("relative", "absolute"):
            r = group_sequential_readout(c, t, info, difference=difference)  # type: ignore[arg-type]
            z = r.z_rel if difference == "relative" else r.z_abs
            assert r.significant == (abs(z) >= r.boundary)
            for p, ci in ((r.p_value_abs, r.ci_abs), (r.p_value_rel, r.ci_rel)):
                assert (p < 0.05) == excludes_zero(ci)
            assert r.ci_abs == pytest.approx((r.lift_abs - r.boundary * r.se_abs, r.lift_abs + r.boundary * r.se_abs))
    early = group_sequential_readout(c, Estimate(6_000, 0.115, 0.101775), (0.2, 0.4))
    assert not early.significant and early.boundary == pytest.approx(3.3569, abs=6e-4) and "continue" in early.message
    one_sided = group_sequential_readout(c, Estimate(6_000, 0.085, 0.077775), (0.5, 1.0), alternative="greater")
    assert one_sided.ci_abs[1] == math.inf and one_sided.p_value == 1.0
