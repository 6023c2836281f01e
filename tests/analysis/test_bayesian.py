"""Bayesian engine and Thompson weights: quadrature against big Monte Carlo and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.bandit import thompson_weights
from analysis.bayesian import (
    BetaPrior,
    GaussianPrior,
    beta_binomial_test,
    beta_posterior,
    expected_losses,
    gaussian_test,
    normal_losses,
    prob_best,
)
from analysis.stats import Estimate, SampleStats

MC_DRAWS = 1_000_000


def _mc(dists: list, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([d.rvs(MC_DRAWS, random_state=rng) for d in dists])


@pytest.fixture(scope="module")
def four_arms() -> list:
    # A vague arm next to sharp ones, and one far behind: the cases a fixed grid gets wrong.
    return [
        beta_posterior(100, 1000),
        beta_posterior(110, 1000),
        beta_posterior(1, 6),
        beta_posterior(120, 11_000),
    ]


def test_prob_best_sums_to_one_and_matches_monte_carlo(four_arms: list) -> None:
    p = prob_best(four_arms)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    draws = _mc(four_arms)
    mc = np.bincount(draws.argmax(axis=1), minlength=4) / MC_DRAWS
    np.testing.assert_allclose(p, mc, atol=0.01)
    np.testing.assert_allclose(p, [0.040787, 0.141413, 0.817800, 0.0], atol=1e-5)  # pinned
    lowest = prob_best(four_arms, lower_is_better=True)
    assert lowest.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(lowest, np.bincount(draws.argmin(axis=1), minlength=4) / MC_DRAWS, atol=0.01)


def test_expected_loss_matches_monte_carlo(four_arms: list) -> None:
    draws = _mc(four_arms, seed=1)
    mc = (draws.max(axis=1)[:, None] - draws).mean(axis=0)
    np.testing.assert_allclose(expected_losses(four_arms), mc, rtol=0.01, atol=1e-5)


def test_symmetric_arms_split_evenly() -> None:
    same = [beta_posterior(57, 1000)] * 2
    assert prob_best(same) == pytest.approx([0.5, 0.5], abs=1e-9)
    assert prob_best([stats.beta(1, 1)] * 3) == pytest.approx([1 / 3] * 3, abs=1e-9)
    r = beta_binomial_test(SampleStats.binomial(1000, 57), SampleStats.binomial(1000, 57))
    assert r.chance_to_win == pytest.approx(0.5, abs=1e-9)
    assert r.expected_loss == pytest.approx(r.expected_loss_control, rel=1e-9)
    assert r.ci_abs[0] == pytest.approx(-r.ci_abs[1], abs=1e-9)


def test_beta_binomial_test_against_monte_carlo() -> None:
    c, t = SampleStats.binomial(1000, 100), SampleStats.binomial(1000, 120)
    r = beta_binomial_test(c, t)
    rng = np.random.default_rng(2)
    pc = stats.beta(101, 901).rvs(MC_DRAWS, random_state=rng)
    pt = stats.beta(121, 881).rvs(MC_DRAWS, random_state=rng)
    assert r.chance_to_win == pytest.approx(np.mean(pt > pc), abs=0.003)
    assert r.chance_to_win == pytest.approx(0.92318, abs=1e-4)  # pinned
    assert r.expected_loss == pytest.approx(np.mean(np.maximum(pc - pt, 0)), rel=0.02)
    assert r.expected_loss_control == pytest.approx(np.mean(np.maximum(pt - pc, 0)), rel=0.01)
    np.testing.assert_allclose(r.ci_abs, np.quantile(pt - pc, [0.025, 0.975]), atol=5e-4)
    np.testing.assert_allclose(r.ci_rel, np.quantile(pt / pc - 1, [0.025, 0.975]), atol=5e-3)
    assert r.ci_rel[1] - r.lift_rel > r.lift_rel - r.ci_rel[0]  # a ratio's posterior is right-skewed


def test_informative_prior_pulls_towards_the_prior() -> None:
    c, t = SampleStats.binomial(200, 20), SampleStats.binomial(200, 30)
    flat = beta_binomial_test(c, t)
    strong = beta_binomial_test(c, t, prior=BetaPrior(100, 900))  # 10% with the weight of 1,000 users
    assert strong.chance_to_win < flat.chance_to_win
    assert abs(strong.lift_abs) < abs(flat.lift_abs)


def test_extreme_conversion_rates_give_finite_results() -> None:
    for x in (0, 1000):
        r = beta_binomial_test(SampleStats.binomial(1000, x), SampleStats.binomial(1000, x))
        assert r.chance_to_win == pytest.approx(0.5, abs=1e-6) and r.message is None
        assert all(math.isfinite(v) for v in (*r.ci_abs, *r.ci_rel, r.expected_loss))
    assert (
        beta_binomial_test(SampleStats.binomial(0, 0), SampleStats.binomial(10, 1)).message
        == "control has no users"
    )


def test_gaussian_model_flat_prior_is_the_normal_approximation() -> None:
    c, t = Estimate(5000, 10.0, 25.0), Estimate(5000, 10.3, 26.0)
    r = gaussian_test(c, t, difference="absolute")
    se = math.sqrt(25 / 5000 + 26 / 5000)
    assert r.chance_to_win == pytest.approx(stats.norm.cdf(0.3 / se))
    # Read on the relative scale (the default), the chance to win is the relative posterior's, so it
    # agrees with the relative credible interval shown beside it.
    rel = gaussian_test(c, t, ci_level=0.90)
    se_log = math.sqrt(26 / 5000 / 10.3**2 + 25 / 5000 / 10.0**2)  # on the log scale: log(10.3 / 10)
    assert rel.chance_to_win == pytest.approx(stats.norm.cdf(math.log(1.03) / se_log))
    assert rel.lift_rel == pytest.approx(0.03) and rel.ci_rel[1] - 0.03 > 0.03 - rel.ci_rel[0]  # exp(): skewed
    assert (rel.chance_to_win >= 0.95) == (rel.ci_rel[0] > 0)
    draws = np.random.default_rng(3).normal(0.3, se, MC_DRAWS)
    assert r.expected_loss == pytest.approx(np.mean(np.maximum(-draws, 0)), rel=0.02)
    assert r.expected_loss_control == pytest.approx(np.mean(np.maximum(draws, 0)), rel=0.01)
    assert r.ci_abs == pytest.approx((0.3 - 1.959964 * se, 0.3 + 1.959964 * se), rel=1e-6)
    # The generic quadrature agrees with the closed form for two normal posteriors.
    quad = expected_losses([stats.norm(10.0, math.sqrt(25 / 5000)), stats.norm(10.3, math.sqrt(26 / 5000))])
    assert quad[1] == pytest.approx(r.expected_loss, rel=1e-6)


def test_gaussian_prior_shrinks_the_lift() -> None:
    c, t = Estimate(300, 10.0, 25.0), Estimate(300, 11.0, 25.0)
    flat = gaussian_test(c, t)
    tight = gaussian_test(c, t, GaussianPrior(0.0, 0.01**2, proper=True))
    assert 0 < tight.lift_rel < 0.5 * flat.lift_rel and tight.chance_to_win < flat.chance_to_win
    assert normal_losses(0.0, 1.0)[0] == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert "zero variance" in gaussian_test(Estimate(10, 1.0, 0.0), Estimate(10, 1.0, 0.0)).message


# ------------------------------------------------------------------------------------ bandit


def test_thompson_weights_exact_and_monte_carlo() -> None:
    conversions, users = [100, 120, 90], [1000, 1000, 1000]
    exact = thompson_weights(conversions, users, min_weight=0.05)
    mc = thompson_weights(conversions, users, min_weight=0.05, method="mc", draws=400_000, seed=7)
    assert sum(exact.weights) == pytest.approx(1.0, abs=1e-12)
    assert min(exact.weights) >= 0.05
    np.testing.assert_allclose(exact.prob_best, mc.prob_best, atol=0.01)
    assert np.argmax(exact.weights) == 1
    assert exact.weights == pytest.approx(tuple(0.05 + 0.85 * p for p in exact.prob_best))


def test_thompson_weights_edge_cases() -> None:
    fresh = thompson_weights([0, 0, 0, 0], [0, 0, 0, 0])
    assert fresh.weights == pytest.approx((0.25,) * 4) and fresh.message
    dominant = thompson_weights([500, 10], [1000, 1000], min_weight=0.1)
    assert dominant.weights == pytest.approx((0.9, 0.1), abs=1e-9)
    with pytest.raises(ValueError, match="min_weight"):
        thompson_weights([1, 2, 3], [10, 10, 10], min_weight=0.4)
    with pytest.raises(ValueError, match="not a proportion"):
        thompson_weights([11, 2], [10, 10])


def test_huge_lifts_do_not_leak_root_finder_errors() -> None:
    """A lift beyond the old [-1, 1e12] brackets raised scipy's "f(a) and f(b) must have different signs"."""
    for control, treatment in (((10**13, 0), (10**13, 10**13)), ((10**14, 0), (10**6, 10**6)), ((10**15, 1), (10, 10))):
        r = beta_binomial_test(SampleStats.binomial(*control), SampleStats.binomial(*treatment))
        assert r.chance_to_win == pytest.approx(1.0)
        assert r.ci_rel is None or (r.ci_rel[0] > 1e6 and math.isfinite(r.ci_rel[1]))
        assert r.ci_rel is not None or "not computable" in r.message
