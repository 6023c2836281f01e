"""Ratio-metric CUPED: the unadjusted ratio test when there is nothing to adjust on, gbstats' numbers
where the methods coincide, and by simulation: variance reduction, A/A false-positive rate, coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.frequentist import FrequentistSettings, ratio_ttest
from analysis.ratio_cuped import (
    RatioCupedStats,
    pooled_pre_ratio,
    ratio_cuped_estimate,
    ratio_cuped_theta,
    ratio_cuped_ttest,
)
from analysis.stats import RatioStats

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _users(rng: np.random.Generator, n: int, lift: float = 1.0, spread: float = 12.0) -> Arrays:
    """Clicks and impressions per user, now and in the pre-period, driven by one click propensity per
    user (Beta with mean 0.1; a larger ``spread`` means more between-user variation, hence a stronger
    pre/post correlation)."""
    rate = rng.beta(0.1 * spread, 0.9 * spread, n)
    imp = rng.poisson(30, n) + 1
    pre_imp = rng.poisson(30, n) + 1
    clicks = rng.binomial(imp, np.minimum(rate * lift, 1.0))
    pre_clicks = rng.binomial(pre_imp, rate)
    return clicks, imp, pre_clicks, pre_imp


def test_sufficient_statistics_add_like_the_users_they_summarise() -> None:
    rng = np.random.default_rng(1)
    a, b = _users(rng, 50), _users(rng, 70)
    both = tuple(np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
    assert RatioCupedStats.from_values(*a) + RatioCupedStats.from_values(*b) == RatioCupedStats.from_values(*both)


def test_without_pre_period_variation_it_is_the_unadjusted_ratio_test() -> None:
    rng = np.random.default_rng(2)
    arms = []
    for lift in (1.0, 1.2):
        clicks, imp, _, _ = _users(rng, 400, lift)
        # every user the same pre-period ratio: the covariate carries no information, θ is exactly 0
        arms.append(RatioCupedStats.from_values(clicks, imp, np.full(400, 3.0), np.full(400, 30.0)))
    assert ratio_cuped_theta(arms) == 0.0
    for difference in ("relative", "absolute"):
        settings = FrequentistSettings(difference=difference)
        adjusted = ratio_cuped_ttest(arms[0], arms[1], settings)
        plain = ratio_ttest(arms[0].post, arms[1].post, settings)
        for field in ("lift_abs", "se_abs", "ci_abs", "p_value_abs", "lift_rel", "se_rel", "ci_rel", "p_value", "df"):
            assert getattr(adjusted, field) == getattr(plain, field), field
        assert adjusted.message is not None and "theta = 0" in adjusted.message


def test_at_theta_zero_the_variance_is_the_ratio_delta_method() -> None:
    """The 4x4 gradient form with θ = 0 reduces to :class:`RatioStats`' closed-form variance."""
    arm = RatioCupedStats.from_values(*_users(np.random.default_rng(3), 300))
    plain = arm.post.estimate()
    est = ratio_cuped_estimate(arm, 0.0, pooled_pre_ratio([arm]))
    assert est.mean == plain.mean
    assert est.variance == pytest.approx(plain.variance, rel=1e-12)
    assert isinstance(arm.post, RatioStats)


def test_theta_is_the_variance_minimising_coefficient() -> None:
    """θ minimises Var(difference of adjusted ratios); checked on a grid around it."""
    rng = np.random.default_rng(4)
    arms = [RatioCupedStats.from_values(*_users(rng, 500)) for _ in range(2)]
    theta = ratio_cuped_theta(arms)
    grand = pooled_pre_ratio(arms)

    def var_of_difference(t: float) -> float:
        return sum(ratio_cuped_estimate(a, t, grand).var_of_mean for a in arms)

    best = var_of_difference(theta)
    for step in (-0.2, -0.01, 0.01, 0.2):
        assert var_of_difference(theta + step) > best


def test_matches_gbstats_absolute_difference() -> None:
    """Pinned from gbstats' ``TwoSidedTTest`` on ``RegressionAdjustedRatioStatistic`` (theta=None, so
    gbstats computes it with ``compute_theta_regression_adjusted_ratio``), difference_type="absolute":
    growthbook/growthbook commit 8f1db4456915a8e7b7faf23d5632ca7219d2f469,
    packages/stats/gbstats/models/statistics.py and packages/stats/gbstats/frequentist/tests.py.
    gbstats gave: estimate 0.018635871870557125, se 0.008092271784130347, dof 417.87385866365014,
    CI (0.0027292396820977026, 0.03454250405901654), p 0.02177364597528264, theta 0.5051607512469857."""
    control = RatioCupedStats(
        200, (391, 4140, 404, 4149),
        ((1519, 8412, 1196, 8110), (8412, 90048, 8532, 86278), (1196, 8532, 1680, 8883), (8110, 86278, 8883, 90459)),
    )
    treatment = RatioCupedStats(
        220, (523, 4561, 468, 4656),
        ((2215, 11267, 1560, 10980), (11267, 98845, 9701, 96315), (1560, 9701, 1946, 10442),
         (10980, 96315, 10442, 103006)),
    )
    assert ratio_cuped_theta([control, treatment]) == pytest.approx(0.5051607512469857, rel=1e-10)
    r = ratio_cuped_ttest(control, treatment, FrequentistSettings(difference="absolute"))
    assert r.test == "ratio-cuped-t"
    assert r.lift_abs == pytest.approx(0.018635871870557125, rel=1e-10)
    assert r.se_abs == pytest.approx(0.008092271784130347, rel=1e-10)
    assert r.df == pytest.approx(417.87385866365014, rel=1e-10)
    assert r.ci_abs == pytest.approx((0.0027292396820977026, 0.03454250405901654), rel=1e-9)
    assert r.p_value == pytest.approx(0.02177364597528264, rel=1e-8)
    # The relative lift divides by the adjusted control ratio (this project's CUPED convention) where
    # gbstats divides by the unadjusted one (gbstats: 0.19732, se 0.09443): first-order equal.
    assert r.lift_rel == pytest.approx(0.19732099627648722, rel=0.02)
    assert r.se_rel == pytest.approx(0.09442685284805571, rel=0.02)


def test_undefined_ratio_is_a_message() -> None:
    ok = RatioCupedStats.from_values([1, 2], [3, 4], [1, 1], [2, 2])
    empty_den = RatioCupedStats.from_values([0, 0], [0, 0], [1, 1], [2, 2])
    r = ratio_cuped_ttest(ok, empty_den)
    assert r.p_value is None and r.message is not None and "treatment denominator" in r.message


def _simulate(reps: int, n: int, lift: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {k: [] for k in ("adj", "plain", "p", "lo", "hi", "corr")}
    for _ in range(reps):
        a_raw, b_raw = _users(rng, n), _users(rng, n, lift)
        a, b = RatioCupedStats.from_values(*a_raw), RatioCupedStats.from_values(*b_raw)
        r = ratio_cuped_ttest(a, b, FrequentistSettings(difference="absolute"))
        plain = ratio_ttest(a.post, b.post, FrequentistSettings(difference="absolute"))
        assert r.lift_abs is not None and r.ci_abs is not None and r.p_value is not None
        assert plain.lift_abs is not None
        out["adj"].append(r.lift_abs)
        out["plain"].append(plain.lift_abs)
        out["p"].append(r.p_value)
        out["lo"].append(r.ci_abs[0])
        out["hi"].append(r.ci_abs[1])
        if len(out["corr"]) < 20:  # per-user correlation of the post and pre ratios, a few samples
            clicks, imp, pre_clicks, pre_imp = a_raw
            out["corr"].append(float(np.corrcoef(clicks / imp, pre_clicks / pre_imp)[0, 1]))
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def null_runs() -> dict[str, np.ndarray]:
    return _simulate(1200, 400, 1.0, seed=11)


def test_variance_reduction_on_correlated_data(null_runs: dict[str, np.ndarray]) -> None:
    corr = float(np.mean(null_runs["corr"]))
    assert 0.6 <= corr <= 0.8, corr
    reduction = 1.0 - np.var(null_runs["adj"]) / np.var(null_runs["plain"])
    assert reduction >= 0.30, reduction


def test_aa_false_positive_rate_is_calibrated(null_runs: dict[str, np.ndarray]) -> None:
    fpr = float(np.mean(null_runs["p"] < 0.05))
    assert 0.03 <= fpr <= 0.07, fpr
    # p-values are uniform under the null, not just right at 0.05
    assert stats.kstest(null_runs["p"], "uniform").pvalue > 0.001


def test_interval_covers_the_true_difference() -> None:
    """With a real effect the interval covers the true difference of ratios ~95% of the time.  The
    true difference is E[clicks]/E[imp] in each arm: E[rate·lift]·31/31 - E[rate] = 0.1·(lift - 1)."""
    runs = _simulate(1000, 400, 1.3, seed=12)
    truth = 0.1 * 0.3
    coverage = float(np.mean((runs["lo"] <= truth) & (truth <= runs["hi"])))
    assert 0.93 <= coverage <= 0.97, coverage
    assert math.isclose(float(np.mean(runs["adj"])), truth, rel_tol=0.05)
