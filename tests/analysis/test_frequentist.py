"""Fixed-horizon tests: agreement with scipy/statsmodels and gbstats, pinned numbers, the one rule
(p < alpha exactly when the interval excludes 0), exact small samples, A/A calibration, coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.corrections import adjust, adjusted_levels, benjamini_hochberg, holm
from analysis.frequentist import (
    FrequentistResult,
    FrequentistSettings,
    compare_to_control,
    cuped_ttest,
    excludes_zero,
    fisher_test,
    proportions_test,
    ratio_ttest,
    relative_lift,
    welch_ttest,
)
from analysis.stats import CupedStats, Estimate, RatioStats, SampleStats, cuped_estimates, cuped_theta

ALPHA = 0.05


def _binom(n: int, x: int) -> SampleStats:
    return SampleStats.binomial(n, x)


# ------------------------------------------------------------------------------- sufficient stats


def test_sample_stats_match_numpy() -> None:
    values = np.random.default_rng(0).gamma(2.0, 3.0, size=501)
    s = SampleStats.from_values(values)
    assert s.mean == pytest.approx(values.mean(), rel=1e-12)
    assert s.variance == pytest.approx(values.var(ddof=1), rel=1e-9)
    b = SampleStats.binomial(200, 50)
    assert b.proportion_variance == pytest.approx(0.25 * 0.75)
    assert SampleStats(0, 0.0, 0.0).mean == 0.0 and SampleStats(1, 3.0, 9.0).variance == 0.0


def test_ratio_variance_is_the_delta_method_on_raw_data() -> None:
    rng = np.random.default_rng(1)
    den = rng.poisson(3.0, 4000) + 1.0
    num = den * rng.gamma(2.0, 1.5, 4000)
    r = RatioStats(4000, num.sum(), (num**2).sum(), den.sum(), (den**2).sum(), (num * den).sum())
    mu_n, mu_d = num.mean(), den.mean()
    grad = np.array([1 / mu_d, -mu_n / mu_d**2])
    expected = grad @ np.cov(np.vstack([num, den])) @ grad
    assert r.mean == pytest.approx(num.sum() / den.sum())
    assert r.variance == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------- agreement with libraries


def _agrees(r: FrequentistResult) -> None:
    """The one rule, on both pairs and on the deciding one."""
    for p, ci in ((r.p_value_abs, r.ci_abs), (r.p_value_rel, r.ci_rel)):
        if p is not None:
            assert (p < r.alpha) == excludes_zero(ci), (p, ci)
    if r.p_value is not None:
        assert r.significant == excludes_zero(r.ci)


def test_gbstats_reference_numbers() -> None:
    """GrowthBook gbstats 0.8.0, TwoSidedTTest on ProportionStatistic 10000/500 vs 10000/560."""
    r = proportions_test(_binom(10_000, 500), _binom(10_000, 560))
    assert r.test == "welch-t" and r.difference == "relative"
    assert r.lift_rel == pytest.approx(0.12)
    assert r.p_value_rel == pytest.approx(0.07359, abs=5e-6) and r.p_value == r.p_value_rel
    assert r.ci_rel == pytest.approx((-0.01146, 0.25146), abs=5e-6)
    assert r.p_value_abs == pytest.approx(0.05825, abs=5e-6)
    assert not r.significant
    _agrees(r)


def test_issue_13_the_verdict_never_contradicts_its_interval() -> None:
    """10000/500 vs 10000/564 was announced as a significant +12.8% (pooled z p = 0.0438) beside a
    relative interval [-0.0042, 0.2602] that contains 0.  Now p and interval are one test's."""
    r = proportions_test(_binom(10_000, 500), _binom(10_000, 564))
    assert r.ci_rel[0] < 0 < r.ci_rel[1] and r.p_value_rel > 0.05 and not r.significant
    absolute = proportions_test(_binom(10_000, 500), _binom(10_000, 564), FrequentistSettings(difference="absolute"))
    assert absolute.difference == "absolute" and absolute.p_value == absolute.p_value_abs
    assert absolute.significant and absolute.ci_abs[0] > 0  # the absolute pair agrees with itself too
    _agrees(r)
    _agrees(absolute)


@pytest.mark.parametrize(
    ("n_c", "x_c", "n_t", "x_t"),
    [(10_000, 1_000, 10_000, 1_100), (5_000, 250, 7_000, 301), (800, 700, 900, 820), (3000, 30, 3100, 52)],
)
def test_proportions_test_is_welch_on_binomial_variances(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    """The absolute pair is scipy's Welch t with standard deviations sqrt(p(1 - p)) (gbstats' variance)."""
    p_c, p_t = x_c / n_c, x_t / n_t
    for alternative in ("two-sided", "greater", "less"):
        r = proportions_test(_binom(n_c, x_c), _binom(n_t, x_t), FrequentistSettings(0.05, alternative, "absolute"))
        ref = stats.ttest_ind_from_stats(
            p_t, math.sqrt(p_t * (1 - p_t)), n_t, p_c, math.sqrt(p_c * (1 - p_c)), n_c,
            equal_var=False, alternative=alternative,
        )
        assert r.statistic == pytest.approx(ref.statistic, rel=1e-10)
        assert r.p_value_abs == pytest.approx(ref.pvalue, rel=1e-9)
        _agrees(r)


def test_pinned_numbers_and_delta_method_relative_interval() -> None:
    r = proportions_test(_binom(10_000, 1_000), _binom(10_000, 1_100))
    assert r.p_value_abs == pytest.approx(0.021068257, rel=1e-6)  # scipy Welch on sqrt(p(1-p))
    assert r.ci_abs == pytest.approx((0.001503544, 0.018496456), abs=1e-8)
    assert r.lift_rel == pytest.approx(0.1)
    assert r.ci_rel == pytest.approx((0.010864708, 0.189135292), abs=1e-8)
    assert r.p_value_rel == pytest.approx(0.027889529, rel=1e-6)
    # The delta-method interval includes the control mean's noise: wider than ci_abs / control mean.
    naive = (r.ci_abs[0] / 0.1, r.ci_abs[1] / 0.1)
    assert r.ci_rel[0] < naive[0] and r.ci_rel[1] > naive[1]
    _agrees(r)


def test_small_samples_use_fishers_exact_test() -> None:
    """At 20 users per arm a z or t test's p-value is about half the exact one (issue 13)."""
    c, t = _binom(20, 2), _binom(20, 7)
    r = proportions_test(c, t)
    assert r.test == "fisher-exact" and "Fisher's exact test" in r.message
    assert r.p_value == pytest.approx(stats.fisher_exact([[7, 13], [2, 18]]).pvalue, rel=1e-12)
    assert r.p_value_abs == r.p_value_rel == r.p_value  # one null: p_t = p_c
    welch = proportions_test(c, t, FrequentistSettings(exact=False))
    assert welch.test == "welch-t" and welch.p_value_abs < 0.6 * r.p_value
    for alternative in ("greater", "less"):
        one = proportions_test(c, t, FrequentistSettings(0.05, alternative))
        assert one.p_value == pytest.approx(stats.fisher_exact([[7, 13], [2, 18]], alternative=alternative).pvalue)
        _agrees(one)
    _agrees(r)
    # Test-based intervals stay in the parameter's range and agree with the exact p-value at any level.
    strong = proportions_test(_binom(15, 1), _binom(15, 8))  # expected conversions 4.5 per arm
    assert strong.test == "fisher-exact" and strong.significant and strong.ci_abs[0] > 0
    assert strong.ci_abs[0] >= -1 and strong.ci_abs[1] <= 1 and strong.ci_rel[0] >= -1
    for level in (0.01, 0.001, 0.0001):
        assert excludes_zero(strong.interval_at(level)) == (strong.p_value < level)


def test_exact_test_only_when_an_expected_count_is_small() -> None:
    assert proportions_test(_binom(100, 10), _binom(100, 14)).test == "welch-t"  # expected counts 12, 88
    assert proportions_test(_binom(100, 2), _binom(100, 5)).test == "fisher-exact"  # expected 3.5
    rare = proportions_test(_binom(100_000, 1), _binom(100_000, 6))  # rare events at a large n
    assert rare.test == "fisher-exact" and rare.p_value == pytest.approx(
        stats.fisher_exact([[6, 99_994], [1, 99_999]]).pvalue
    )
    assert fisher_test(_binom(0, 0), _binom(10, 1)).message.startswith("control has 0 users")


def test_zero_control_conversions_explain_the_missing_relative_interval() -> None:
    r = proportions_test(_binom(1000, 0), _binom(1000, 20))
    assert r.ci_rel is None and r.p_value_rel is None
    assert "control mean is 0" in r.message and "use the absolute difference" in r.message
    assert r.difference == "absolute" and r.p_value == r.p_value_abs and r.p_value < 1e-4
    _agrees(r)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy(alternative: str) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(10.0, 3.0, 120), rng.normal(10.8, 5.0, 90)
    c, t = SampleStats.from_values(a), SampleStats.from_values(b)
    r = welch_ttest(c, t, FrequentistSettings(ALPHA, alternative, "absolute"))  # type: ignore[arg-type]
    ref = stats.ttest_ind_from_stats(
        b.mean(),
        b.std(ddof=1),
        b.size,
        a.mean(),
        a.std(ddof=1),
        a.size,
        equal_var=False,
        alternative=alternative,
    )
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    ref_raw = stats.ttest_ind(b, a, equal_var=False, alternative=alternative)
    assert r.p_value == pytest.approx(ref_raw.pvalue, rel=1e-8)
    if alternative == "two-sided":
        ci = ref_raw.confidence_interval(0.95)
        assert r.ci_abs == pytest.approx((ci.low, ci.high), rel=1e-8)
        assert r.df == pytest.approx(ref_raw.df, rel=1e-9)


def test_welch_pinned_numbers() -> None:
    absolute = FrequentistSettings(difference="absolute")  # scipy's t is the difference's
    r = welch_ttest(SampleStats(1000, 5000.0, 45_000.0), SampleStats(1100, 5800.0, 52_000.0), absolute)
    # control: mean 5, var (45000 - 25000)/999; treatment: mean 5.2727.., var (52000 - 5800²/1100)/1099
    v_c, v_t = 20_000 / 999, (52_000 - 5800**2 / 1100) / 1099
    assert r.lift_abs == pytest.approx(5800 / 1100 - 5)
    assert r.statistic == pytest.approx((5800 / 1100 - 5) / math.sqrt(v_c / 1000 + v_t / 1100))
    assert r.statistic == pytest.approx(1.403926236, rel=1e-8)
    assert r.p_value == pytest.approx(0.160490573, rel=1e-7)  # scipy ttest_ind_from_stats, equal_var=False


def test_one_sided_intervals_are_half_open() -> None:
    c, t = _binom(5000, 500), _binom(5000, 560)
    greater = proportions_test(c, t, FrequentistSettings(0.05, "greater"))
    less = proportions_test(c, t, FrequentistSettings(0.05, "less"))
    assert greater.ci_abs[1] == math.inf and less.ci_abs[0] == -math.inf
    assert greater.ci_rel[1] == math.inf and less.ci_rel[0] == -math.inf
    assert greater.p_value + less.p_value == pytest.approx(1.0)
    _agrees(greater)
    _agrees(less)


def test_relative_lift_variance_formula() -> None:
    c = SampleStats(400, 800.0, 2400.0).estimate()
    t = SampleStats(500, 1100.0, 3300.0).estimate()
    lift, var = relative_lift(c, t)
    assert lift == pytest.approx(1100 / 500 / 2.0 - 1)
    assert var == pytest.approx(t.var_of_mean / 4 + (2.2**2) * c.var_of_mean / 16)
    # gbstats divides by |control|: a metric that rises from -2 to -1 has a positive lift.
    negative, _ = relative_lift(Estimate(100, -2.0, 1.0), Estimate(100, -1.0, 1.0))
    assert negative == pytest.approx(0.5)


# ---------------------------------------------------------------------------- ratio and CUPED


def test_ratio_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(3)
    reps, n = 1000, 400
    covered = 0
    for _ in range(reps):
        arms = []
        for lift in (1.0, 1.1):
            den = rng.poisson(2.0, n) + 1.0
            num = rng.gamma(2.0, lift, n) * den  # true ratio = 2 * lift
            arms.append(
                RatioStats(n, num.sum(), (num**2).sum(), den.sum(), (den**2).sum(), (num * den).sum())
            )
        r = ratio_ttest(arms[0], arms[1])
        covered += r.ci_abs[0] <= 0.2 <= r.ci_abs[1]
    assert 0.93 <= covered / reps <= 0.97


def _cuped_arm(rng: np.random.Generator, n: int, effect: float) -> tuple[CupedStats, np.ndarray, np.ndarray]:
    pre = rng.normal(10.0, 2.0, n)
    post = 0.8 * pre + rng.normal(2.0 + effect, 1.0, n)  # corr(pre, post) = 0.85
    return CupedStats(SampleStats.from_values(post), pre.sum(), (pre**2).sum(), (pre * post).sum()), pre, post


def test_cuped_theta_is_the_within_arm_ols_slope() -> None:
    rng = np.random.default_rng(4)
    (a, pre_a, post_a), (b, pre_b, post_b) = _cuped_arm(rng, 500, 0.0), _cuped_arm(rng, 600, 1.0)
    x = np.concatenate([pre_a - pre_a.mean(), pre_b - pre_b.mean()])
    y = np.concatenate([post_a - post_a.mean(), post_b - post_b.mean()])
    slope = float(np.linalg.lstsq(x[:, None], y, rcond=None)[0][0])
    assert cuped_theta([a, b]) == pytest.approx(slope, rel=1e-9)
    (est_a, est_b), _ = cuped_estimates([a, b])
    # ȳ - θ(x̄ - x̄_all): the adjusted difference removes the chance imbalance in the covariate.
    assert est_b.mean - est_a.mean == pytest.approx(
        (post_b.mean() - post_a.mean()) - slope * (pre_b.mean() - pre_a.mean()), rel=1e-9
    )


def test_cuped_narrows_the_interval_and_keeps_coverage() -> None:
    rng = np.random.default_rng(5)
    reps, covered, ratio = 600, 0, []
    for _ in range(reps):
        (a, _, _), (b, _, _) = _cuped_arm(rng, 300, 0.0), _cuped_arm(rng, 300, 0.3)
        adjusted = cuped_ttest(a, b)
        plain = welch_ttest(a.post, b.post)
        covered += adjusted.ci_abs[0] <= 0.3 <= adjusted.ci_abs[1]
        ratio.append(adjusted.se_abs / plain.se_abs)
    assert 0.93 <= covered / reps <= 0.97
    # Theory: sqrt(1 - ρ²) with ρ = 0.8·2/sqrt(0.64·4 + 1) = 0.848 → 0.530.
    assert np.mean(ratio) == pytest.approx(0.530, abs=0.01)


# --------------------------------------------------------------------------------- corrections


def test_holm_and_bh_match_statsmodels() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.20, 0.002, 0.049])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    np.testing.assert_allclose(adjust(p, None), p)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(p, "bonferroni")  # type: ignore[arg-type]


def test_compare_to_control_adjusts_the_family() -> None:
    control = _binom(10_000, 1_000)
    treatments = [_binom(10_000, 1_100), _binom(10_000, 1_010), _binom(10_000, 1_060)]
    raw = [proportions_test(control, t).p_value for t in treatments]
    out = compare_to_control(control, treatments, proportions_test, correction="holm")
    np.testing.assert_allclose([r.p_value_adjusted for r in out], multipletests(raw, method="holm")[1])
    assert [r.significant for r in out] == [p < ALPHA for p in multipletests(raw, method="holm")[1]]
    bh = compare_to_control(control, treatments, proportions_test, correction="bh")
    np.testing.assert_allclose([r.p_value_adjusted for r in bh], multipletests(raw, method="fdr_bh")[1])
    for r in (*out, *bh):  # the adjusted interval agrees with the adjusted p-value
        assert r.significant == excludes_zero(r.ci) and r.ci == r.ci_adjusted


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_adjusted_levels_agree_with_adjusted_p_values(method: str) -> None:
    """For any family, p_i < level_i exactly when the adjusted p_i < alpha (so the interval at level_i
    excludes 0 exactly when the corrected test rejects)."""
    rng = np.random.default_rng(7)
    for _ in range(2000):
        m = int(rng.integers(1, 7))
        p = np.where(rng.random(m) < 0.5, rng.random(m) * 0.05, rng.random(m))
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        levels = adjusted_levels(p, method, alpha)  # type: ignore[arg-type]
        adjusted = adjust(p, method)  # type: ignore[arg-type]
        np.testing.assert_array_equal(p < levels, adjusted < alpha)


# ------------------------------------------------------------------------------ A/A calibration


def _check_calibration(p_values: np.ndarray) -> None:
    fpr = float(np.mean(p_values < ALPHA))
    assert 0.03 <= fpr <= 0.07, fpr
    assert stats.kstest(p_values, "uniform").pvalue > 0.01


@pytest.mark.parametrize("difference", ["relative", "absolute"])
def test_aa_calibration_proportions_test(difference: str) -> None:
    rng = np.random.default_rng(11)
    # Binomial p-values live on a lattice (e.g. ~2% sit exactly at 1 when the counts tie at n = 2,000),
    # which KS against a continuous uniform detects; at 50,000 users per arm the lattice is fine enough.
    sims, n, p = 4000, 50_000, 0.1
    xs = rng.binomial(n, p, size=(sims, 2))
    settings = FrequentistSettings(difference=difference)  # type: ignore[arg-type]
    p_values = np.array([proportions_test(_binom(n, int(c)), _binom(n, int(t)), settings).p_value for c, t in xs])
    _check_calibration(p_values)


@pytest.mark.parametrize("distribution", ["normal", "exponential"])
def test_aa_calibration_welch_t(distribution: str) -> None:
    rng = np.random.default_rng(12)
    sims, n_c, n_t = 4000, 150, 110  # unequal sizes: the case Welch is for
    draw = rng.normal if distribution == "normal" else (lambda loc, scale, size: rng.exponential(scale, size))
    a = draw(3.0, 2.0, (sims, n_c))
    b = draw(3.0, 2.0, (sims, n_t))
    p_values = np.array(
        [
            welch_ttest(
                SampleStats(n_c, a[i].sum(), (a[i] ** 2).sum()),
                SampleStats(n_t, b[i].sum(), (b[i] ** 2).sum()),
            ).p_value
            for i in range(sims)
        ]
    )
    _check_calibration(p_values)


# ---------------------------------------------------------------------------------- degenerate


def test_degenerate_cases_return_messages_not_exceptions() -> None:
    empty = proportions_test(_binom(0, 0), _binom(100, 5))
    assert empty.p_value is None and "control has 0 users" in (empty.message or "")
    zeros = proportions_test(_binom(1000, 0), _binom(1000, 0))
    assert zeros.p_value is None and zeros.lift_rel is None
    assert "zero variance" in zeros.message and "relative lift" in zeros.message and "undefined" in zeros.message
    ones = proportions_test(_binom(1000, 1000), _binom(1000, 1000))
    assert ones.p_value is None and ones.lift_abs == 0.0 and ones.lift_rel == 0.0
    from_zero = proportions_test(_binom(1000, 0), _binom(1000, 20))
    assert from_zero.p_value is not None and from_zero.p_value < 1e-4 and from_zero.ci_rel is None
    flat = welch_ttest(SampleStats(50, 100.0, 200.0), SampleStats(60, 120.0, 240.0))
    assert flat.p_value is None and "zero variance" in flat.message
    single = welch_ttest(SampleStats(1, 3.0, 9.0), SampleStats(60, 120.0, 300.0))
    assert single.p_value is None and "at least 2" in single.message
    bad = proportions_test(_binom(10, 11), _binom(10, 1))
    assert bad.p_value is None and "not a proportion" in bad.message
    no_den = ratio_ttest(RatioStats(10, 5.0, 5.0, 0.0, 0.0, 0.0), RatioStats(10, 5.0, 5.0, 4.0, 4.0, 4.0))
    assert "denominator" in no_den.message
    for r in (empty, zeros, ones, from_zero, flat, single, bad, no_den):
        for value in (r.p_value, r.statistic, r.lift_abs, r.lift_rel):
            assert value is None or math.isfinite(value)


def test_sums_beyond_a_float_give_a_message_not_an_overflow_error() -> None:
    """A sum of squares of 1e308 made welch_df raise OverflowError (issue 13)."""
    huge = welch_ttest(SampleStats(100, 10.0, 1e308), SampleStats(100, 12.0, 1e308))
    assert huge.p_value is not None and 0 <= huge.p_value <= 1  # a huge variance: nothing detectable
    overflow = welch_ttest(SampleStats(2, 1e308, 1e308), SampleStats(2, 1e308, 1e308))
    assert overflow.p_value is None and "beyond a float's range" in overflow.message
    for r in (huge, overflow):
        for value in (r.p_value, r.statistic, r.lift_abs, r.lift_rel, r.df):
            assert value is None or math.isfinite(value)
