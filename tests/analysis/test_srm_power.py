"""SRM check against scipy's chi-square, and power / sample size against statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power

from analysis.frequentist import delta_relative
from analysis.power import (
    daily_rate,
    expected_duration_days,
    mde_means,
    mde_proportions,
    power_means,
    power_proportions,
    sample_size_means,
    sample_size_proportions,
    sample_size_relative,
    sample_size_relative_proportions,
)
from analysis.srm import srm_test

# ------------------------------------------------------------------------------------------ SRM


def test_srm_flags_a_51_49_split_at_20000_users_per_arm() -> None:
    r = srm_test([20_400, 19_600])
    assert r.flagged and r.p_value == pytest.approx(stats.chisquare([20_400, 19_600]).pvalue, rel=1e-12)
    assert r.chi2 == pytest.approx(16.0) and r.p_value == pytest.approx(6.334248e-5, rel=1e-6)
    assert "sample ratio mismatch" in r.message
    # The same 51/49 split over 20,000 users *in total* is chi2 = 8, p = 0.0047: suspicious, but not
    # past the field's p < 0.001 convention.
    total = srm_test([10_200, 9_800])
    assert total.p_value == pytest.approx(0.004677735, rel=1e-6) and not total.flagged


@pytest.mark.parametrize(("counts", "weights"), [
    ([20_400, 19_600], None), ([5, 0], None), ([1, 2, 3_000_000], [0.2, 0.3, 0.5]),
    ([7_012, 2_988, 0], [0.7, 0.3, 0.0]), ([333, 334, 333, 0], [1, 1, 1, 0]), ([10**12, 10**12 + 10**7], None),
])
def test_srm_statistic_and_p_value_are_scipys(counts: list[int], weights: list[float] | None) -> None:
    """The statistic is computed directly (scipy's wrappers cost ms a call): it must stay scipy's."""
    r = srm_test(counts, weights)
    w = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=float)
    live = w > 0
    expected = w[live] / w.sum() * sum(counts)
    ref = stats.chisquare(np.asarray(counts, dtype=float)[live], expected)
    assert r.chi2 == pytest.approx(ref.statistic, rel=1e-12) and r.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_srm_accepts_a_correct_split() -> None:
    rng = np.random.default_rng(0)
    counts = rng.multinomial(20_000, [0.5, 0.5])
    r = srm_test(counts)
    assert not r.flagged and r.message is None
    flags = [srm_test(rng.multinomial(20_000, [0.2, 0.3, 0.5]), [2, 3, 5]).flagged for _ in range(2000)]
    assert np.mean(flags) <= 0.004  # the 0.001 threshold: ~2 false alarms in 2,000


def test_srm_against_configured_weights_matches_scipy() -> None:
    counts, weights = [2_050, 2_900, 5_050], [0.2, 0.3, 0.5]
    r = srm_test(counts, weights)
    ref = stats.chisquare(counts, np.array(weights) * sum(counts))
    assert r.chi2 == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)
    assert r.expected == pytest.approx((2000.0, 3000.0, 5000.0))
    assert srm_test([5000, 5000], [0.7, 0.3]).flagged  # equal counts are a mismatch for a 70/30 plan


def test_srm_edge_cases() -> None:
    assert srm_test([0, 0]).p_value == 1.0 and not srm_test([0, 0]).flagged
    starved = srm_test([100, 5], [1.0, 0.0])
    assert starved.flagged and starved.p_value == 0.0 and "weight of 0" in starved.message
    assert not srm_test([100, 0], [1.0, 0.0]).flagged
    with pytest.raises(ValueError, match="at least two"):
        srm_test([10])
    with pytest.raises(ValueError, match="weights"):
        srm_test([10, 10], [1.0])


# ----------------------------------------------------------------------------------------- power


@pytest.mark.parametrize(("baseline", "mde"), [(0.10, 0.10), (0.05, 0.20), (0.30, 0.03), (0.5, -0.05)])
def test_sample_size_for_proportions_matches_statsmodels(baseline: float, mde: float) -> None:
    p1, p2 = baseline, baseline * (1 + mde)
    n = sample_size_proportions(baseline, mde)
    formula = (
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2
    )
    assert n == math.ceil(formula)
    effect = (p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    ref = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)
    assert 0 <= n - ref < 1  # statsmodels also counts the wrong-tail rejections: a hair smaller
    assert power_proportions(n, p1, p2) == pytest.approx(0.8, abs=2e-4)


def test_sample_size_pinned_numbers() -> None:
    assert sample_size_proportions(0.10, 0.10) == 14_749
    assert sample_size_proportions(0.10, 0.01, relative=False) == 14_749
    assert sample_size_proportions(0.10, 0.10, power=0.9, alpha=0.01) == 27_959
    assert sample_size_means(std=10.0, mde=1.0) == 1_570


def test_relative_sample_size_limits() -> None:
    # a positive lift needs more users for the relative test than for the absolute one
    assert sample_size_relative_proportions(0.05, 0.10) > sample_size_proportions(0.05, 0.10)
    # with a fixed sd and a tiny lift the statistic is the absolute one's: the same size, to 1%
    assert sample_size_relative(10.0, 4.0, 0.001) == pytest.approx(sample_size_means(4.0, 0.01), rel=0.01)
    with pytest.raises(ValueError, match="non-zero control mean"):
        sample_size_relative(0.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="mde"):
        sample_size_relative(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="baseline"):
        sample_size_relative_proportions(0.5, 1.5)


def _relative_test_power(n: int, p1: float, p2: float, sims: int, rng: np.random.Generator) -> float:
    """Share of simulated experiments in which the readout's relative test (delta method) rejects."""
    x_c, x_t = rng.binomial(n, p1, sims), rng.binomial(n, p2, sims)
    m_c, m_t = x_c / n, x_t / n
    lift, var = delta_relative(m_c, m_c * (1 - m_c) / n, m_t, m_t * (1 - m_t) / n)
    return float(np.mean(np.abs(lift / np.sqrt(var)) > stats.norm.ppf(0.975)))


@pytest.mark.parametrize(("baseline", "lift"), [(0.05, 0.10), (0.20, 0.05), (0.10, -0.10)])
def test_relative_sample_size_gives_the_planned_power_by_simulation(baseline: float, lift: float) -> None:
    rng = np.random.default_rng(20261202)
    n = sample_size_relative_proportions(baseline, lift)
    # 20,000 simulated experiments: a standard error of 0.003 on the power
    assert _relative_test_power(n, baseline, baseline * (1 + lift), 20_000, rng) == pytest.approx(0.80, abs=0.011)


def test_sizing_for_the_absolute_test_underpowers_the_relative_one() -> None:
    rng = np.random.default_rng(7)
    n = sample_size_proportions(0.05, 0.10)  # what planning used before
    assert _relative_test_power(n, 0.05, 0.055, 20_000, rng) < 0.79  # ~0.78


def test_relative_means_sample_size_by_simulation() -> None:
    rng = np.random.default_rng(11)
    n = sample_size_relative(10.0, 4.0, 0.05)
    sims = 20_000
    # means of n normal draws, simulated through their sampling distribution; sd estimated per arm
    m_c = rng.normal(10.0, 4.0 / math.sqrt(n), sims)
    m_t = rng.normal(10.5, 4.0 / math.sqrt(n), sims)
    v_c = 16.0 * rng.chisquare(n - 1, sims) / (n - 1) / n
    v_t = 16.0 * rng.chisquare(n - 1, sims) / (n - 1) / n
    lift, var = delta_relative(m_c, v_c, m_t, v_t)
    assert float(np.mean(np.abs(lift / np.sqrt(var)) > stats.norm.ppf(0.975))) == pytest.approx(0.80, abs=0.011)


def test_means_match_zt_ind_solve_power() -> None:
    n = sample_size_means(std=4.0, mde=0.5, alpha=0.05, power=0.9)
    ref = zt_ind_solve_power(effect_size=0.5 / 4.0, alpha=0.05, power=0.9, ratio=1.0)
    assert n == math.ceil(ref) or n == pytest.approx(ref, rel=1e-4)
    one_sided = sample_size_means(std=4.0, mde=0.5, two_sided=False)
    ref1 = zt_ind_solve_power(effect_size=0.5 / 4.0, alpha=0.05, power=0.8, alternative="larger")
    assert one_sided == math.ceil(ref1)
    assert power_means(n, 4.0, 0.5) == pytest.approx(0.9, abs=1e-3)
    assert NormalIndPower().power(effect_size=0.5 / 4.0, nobs1=n, alpha=0.05) == pytest.approx(
        power_means(n, 4.0, 0.5), rel=1e-9
    )


def test_mde_inverts_the_sample_size() -> None:
    assert mde_means(1_570, std=10.0) == pytest.approx(1.0, rel=1e-3)
    rel = mde_proportions(14_749, baseline=0.10)
    assert rel == pytest.approx(0.10, abs=1e-4)
    assert mde_proportions(14_749, baseline=0.10, relative=False) == pytest.approx(0.01, abs=1e-5)
    assert mde_proportions(2, baseline=0.5) is None  # two users cannot detect anything


def test_duration() -> None:
    assert daily_rate(7_000, 3.5) == 2_000
    assert expected_duration_days(14_749, 2_000) == pytest.approx(14.749)
    assert expected_duration_days(10_000, 1_000, weights=[0.8, 0.2]) == pytest.approx(50.0)
    assert expected_duration_days(10_000, 1_000, current_users=[9_000, 7_000]) == pytest.approx(6.0)
    assert expected_duration_days(100, 1_000, current_users=[100, 150]) == 0.0
    assert expected_duration_days(100, 0.0) == math.inf


def test_invalid_planning_inputs_raise() -> None:
    with pytest.raises(ValueError, match="baseline"):
        sample_size_proportions(0.0, 0.1)
    with pytest.raises(ValueError, match="baseline with the mde"):
        sample_size_proportions(0.95, 0.10)
    with pytest.raises(ValueError, match="power"):
        sample_size_means(1.0, 0.1, power=1.0)
