"""Fixed-horizon tests: agreement with scipy/statsmodels, pinned numbers, A/A calibration, coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from analysis.corrections import adjust, benjamini_hochberg, holm
from analysis.frequentist import (
    FrequentistSettings,
    compare_to_control,
    cuped_ttest,
    ratio_ttest,
    relative_lift,
    welch_ttest,
    ztest_proportions,
)
from analysis.stats import CupedStats, RatioStats, SampleStats, cuped_estimates, cuped_theta

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


@pytest.mark.parametrize(
    ("n_c", "x_c", "n_t", "x_t"),
    [(10_000, 1_000, 10_000, 1_100), (5_000, 250, 7_000, 301), (800, 790, 900, 880), (300, 0, 310, 4)],
)
def test_z_test_matches_statsmodels(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    r = ztest_proportions(_binom(n_c, x_c), _binom(n_t, x_t))
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
    assert r.statistic == pytest.approx(z, rel=1e-10)
    assert r.p_value == pytest.approx(p, rel=1e-9)
    for alternative in ("greater", "less"):
        one = ztest_proportions(_binom(n_c, x_c), _binom(n_t, x_t), FrequentistSettings(0.05, alternative))
        _, p1 = proportions_ztest(
            [x_t, x_c], [n_t, n_c], alternative="larger" if alternative == "greater" else "smaller"
        )
        assert one.p_value == pytest.approx(p1, rel=1e-9)


def test_z_test_pinned_numbers_and_delta_method_relative_interval() -> None:
    r = ztest_proportions(_binom(10_000, 1_000), _binom(10_000, 1_100))
    assert r.statistic == pytest.approx(2.306634774, rel=1e-8)
    assert r.p_value == pytest.approx(0.021075189, rel=1e-6)
    assert r.ci_abs == pytest.approx((0.001504059, 0.018495941), abs=1e-8)
    assert r.lift_rel == pytest.approx(0.1)
    assert r.ci_rel == pytest.approx((0.010870113, 0.189129887), abs=1e-8)
    # The delta-method interval includes the control mean's noise: wider than ci_abs / control mean.
    naive = (r.ci_abs[0] / 0.1, r.ci_abs[1] / 0.1)
    assert r.ci_rel[0] < naive[0] and r.ci_rel[1] > naive[1]


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy(alternative: str) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(10.0, 3.0, 120), rng.normal(10.8, 5.0, 90)
    c, t = SampleStats.from_values(a), SampleStats.from_values(b)
    r = welch_ttest(c, t, FrequentistSettings(ALPHA, alternative))  # type: ignore[arg-type]
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
    r = welch_ttest(SampleStats(1000, 5000.0, 45_000.0), SampleStats(1100, 5800.0, 52_000.0))
    # control: mean 5, var (45000 - 25000)/999; treatment: mean 5.2727.., var (52000 - 5800²/1100)/1099
    v_c, v_t = 20_000 / 999, (52_000 - 5800**2 / 1100) / 1099
    assert r.lift_abs == pytest.approx(5800 / 1100 - 5)
    assert r.statistic == pytest.approx((5800 / 1100 - 5) / math.sqrt(v_c / 1000 + v_t / 1100))
    assert r.statistic == pytest.approx(1.403926236, rel=1e-8)
    assert r.p_value == pytest.approx(0.160490573, rel=1e-7)  # scipy ttest_ind_from_stats, equal_var=False


def test_one_sided_intervals_are_half_open() -> None:
    c, t = _binom(5000, 500), _binom(5000, 560)
    greater = ztest_proportions(c, t, FrequentistSettings(0.05, "greater"))
    less = ztest_proportions(c, t, FrequentistSettings(0.05, "less"))
    assert greater.ci_abs[1] == math.inf and less.ci_abs[0] == -math.inf
    assert greater.p_value + less.p_value == pytest.approx(1.0)


def test_relative_lift_variance_formula() -> None:
    c = SampleStats(400, 800.0, 2400.0).estimate()
    t = SampleStats(500, 1100.0, 3300.0).estimate()
    lift, var = relative_lift(c, t)
    assert lift == pytest.approx(1100 / 500 / 2.0 - 1)
    assert var == pytest.approx(t.var_of_mean / 4 + (2.2**2) * c.var_of_mean / 16)


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
    raw = [ztest_proportions(control, t).p_value for t in treatments]
    out = compare_to_control(control, treatments, ztest_proportions, correction="holm")
    np.testing.assert_allclose([r.p_value_adjusted for r in out], multipletests(raw, method="holm")[1])
    assert [r.significant for r in out] == [p < ALPHA for p in multipletests(raw, method="holm")[1]]
    bh = compare_to_control(control, treatments, ztest_proportions, correction="bh")
    np.testing.assert_allclose([r.p_value_adjusted for r in bh], multipletests(raw, method="fdr_bh")[1])


# ------------------------------------------------------------------------------ A/A calibration


def _check_calibration(p_values: np.ndarray) -> None:
    fpr = float(np.mean(p_values < ALPHA))
    assert 0.03 <= fpr <= 0.07, fpr
    assert stats.kstest(p_values, "uniform").pvalue > 0.01


def test_aa_calibration_z_test() -> None:
    rng = np.random.default_rng(11)
    # Binomial p-values live on a lattice (e.g. ~2% sit exactly at 1 when the counts tie at n = 2,000),
    # which KS against a continuous uniform detects; at 50,000 users per arm the lattice is fine enough.
    sims, n, p = 4000, 50_000, 0.1
    xs = rng.binomial(n, p, size=(sims, 2))
    p_values = np.array([ztest_proportions(_binom(n, int(c)), _binom(n, int(t))).p_value for c, t in xs])
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
    empty = ztest_proportions(_binom(0, 0), _binom(100, 5))
    assert empty.p_value is None and "control has 0 users" in (empty.message or "")
    zeros = ztest_proportions(_binom(1000, 0), _binom(1000, 0))
    assert zeros.p_value is None and zeros.lift_rel is None
    assert "zero variance" in zeros.message and "relative lift is undefined" in zeros.message
    ones = ztest_proportions(_binom(1000, 1000), _binom(1000, 1000))
    assert ones.p_value is None and ones.lift_abs == 0.0 and ones.lift_rel == 0.0
    from_zero = ztest_proportions(_binom(1000, 0), _binom(1000, 20))
    assert from_zero.p_value is not None and from_zero.p_value < 1e-4 and from_zero.ci_rel is None
    flat = welch_ttest(SampleStats(50, 100.0, 200.0), SampleStats(60, 120.0, 240.0))
    assert flat.p_value is None and "zero variance" in flat.message
    single = welch_ttest(SampleStats(1, 3.0, 9.0), SampleStats(60, 120.0, 300.0))
    assert single.p_value is None and "at least 2" in single.message
    bad = ztest_proportions(_binom(10, 11), _binom(10, 1))
    assert bad.p_value is None and "not a proportion" in bad.message
    no_den = ratio_ttest(RatioStats(10, 5.0, 5.0, 0.0, 0.0, 0.0), RatioStats(10, 5.0, 5.0, 4.0, 4.0, 4.0))
    assert "denominator" in no_den.message
    for r in (empty, zeros, ones, from_zero, flat, single, bad, no_den):
        for value in (r.p_value, r.statistic, r.lift_abs, r.lift_rel):
            assert value is None or math.isfinite(value)
