"""The rehearsal's draws and decisions: exact click-count law, vectorised tests equal to the scalar readouts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from analysis.interleaving import InterleavingSettings, preference_test
from engine.simulator.rehearsal_designs import (
    Interleavings,
    ListClicks,
    RehearsalBench,
    VisitLaw,
    ab_decisions,
    ab_test,
    click_count_cdf,
    draw_clicks,
    interleaving_credits,
    interleaving_decisions,
    preference_counts_of,
)


def brute_force_pmf(p: np.ndarray, visits: int) -> np.ndarray:
    """P(total clicks = k) by enumerating every click pattern of every position on every visit."""
    probs = np.tile(p, visits)
    pmf = np.zeros(probs.size + 1)
    for pattern in itertools.product((0, 1), repeat=probs.size):
        clicked = np.array(pattern, dtype=bool)
        pmf[clicked.sum()] += np.prod(np.where(clicked, probs, 1 - probs))
    return pmf


@pytest.mark.parametrize("visits", [1, 2, 3])
def test_click_count_cdf_is_the_poisson_binomial_law(visits: int) -> None:
    p = np.array([[0.4, 0.25, 0.1, 0.0], [0.9, 0.05, 0.3, 0.2]])
    cdf = click_count_cdf(ListClicks(p), visits)
    for row in range(2):
        np.testing.assert_allclose(np.diff(cdf[row], prepend=0.0), brute_force_pmf(p[row], visits), atol=1e-12)


def test_drawn_counts_follow_the_law() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.05, 0.05, 0.6]])
    cdf = click_count_cdf(ListClicks(p), 2)
    rng = np.random.default_rng(3)
    draws = draw_clicks(cdf, np.repeat([0, 1], 100_000), rng).reshape(2, -1)
    for row in range(2):
        observed = np.bincount(draws[row], minlength=7) / draws.shape[1]
        expected = brute_force_pmf(p[row], 2)
        # a 100k-draw frequency is within 5 standard errors of its probability
        assert np.all(np.abs(observed - expected) <= 5 * np.sqrt(expected * (1 - expected) / 1e5) + 1e-9)


def test_vectorised_ab_decisions_are_the_welch_readouts() -> None:
    rng = np.random.default_rng(5)
    clicks_c = rng.poisson(1.0, size=(40, 150))
    clicks_t = rng.poisson(1.15, size=(40, 151))
    decisions = ab_decisions(clicks_c, clicks_t, 0.05)
    for row in range(40):
        result = ab_test(clicks_c[row], clicks_t[row], 0.05)
        assert decisions.p_value[row] == pytest.approx(result.p_value, rel=1e-9)
        assert decisions.significant[row] == result.significant
        assert decisions.direction[row] == (int(np.sign(result.lift_abs)) if result.significant else 0)
    assert 0 < decisions.significant.sum() < 40  # both outcomes were exercised


def test_vectorised_interleaving_decisions_are_the_preference_tests() -> None:
    rng = np.random.default_rng(6)
    credit_a = rng.poisson(0.6, size=(50, 120))
    credit_b = rng.poisson(0.75, size=(50, 120))
    decisions = interleaving_decisions(credit_a, credit_b, 0.05)
    for row in range(50):
        result = preference_test(preference_counts_of(credit_a[row], credit_b[row]), InterleavingSettings(alpha=0.05))
        assert decisions.p_value[row] == pytest.approx(result.p_value, rel=1e-9)
        expected = {"B preferred": 1, "A preferred": -1}.get(result.verdict, 0)
        assert decisions.direction[row] == expected and decisions.significant[row] == result.significant
    assert 0 < decisions.significant.sum() < 50
    # every user's difference equal (no t statistic): the signed-rank test still decides, as in the readout
    unanimous = interleaving_decisions(np.zeros((1, 8), dtype=int), np.ones((1, 8), dtype=int), 0.05)
    reference = stats.wilcoxon(np.ones(8), zero_method="wilcox", correction=False, method="approx").pvalue
    assert unanimous.p_value[0] == pytest.approx(reference) and unanimous.direction[0] == 1


def test_credits_go_to_the_team_of_the_clicked_position() -> None:
    # one user, one draft: A fills positions 0 and 2, B position 1; only position 1 is ever clicked
    merged = Interleavings(np.array([[[0.0, 1.0, 0.0]]]), np.array([[[False, True, False]]]), np.zeros((1, 1), int))
    a, b = interleaving_credits(merged, np.zeros(4, dtype=int), np.zeros((4, 3), dtype=int), np.random.default_rng(0))
    assert a.tolist() == [0, 0, 0, 0] and b.tolist() == [3, 3, 3, 3]  # three visits each
    # the same list with its top two positions the rankers' common prefix: the click there credits neither
    shared = Interleavings(merged.probability, merged.team_b, np.full((1, 1), 2))
    a, b = interleaving_credits(shared, np.zeros(4, dtype=int), np.zeros((4, 3), dtype=int), np.random.default_rng(0))
    assert a.tolist() == b.tolist() == [0, 0, 0, 0]


def test_clicks_blind_to_the_teams_are_calibrated() -> None:
    """The null the test must hold: which team fills a position is the draft's coin (as for identical
    rankers credited without the common-prefix rule), clicks depend on the position alone.  The t-test
    of the mean credit difference rejects at its level; crediting the common prefix to neither side
    (the whole list, for identical rankers) leaves nothing to reject on."""
    rng = np.random.default_rng(11)
    pool, drafts, n = 300, 8, 10
    p = rng.uniform(0, 0.3, size=(pool, n)) / np.log2(np.arange(n) + 2)
    team_b = np.zeros((pool, drafts, n), dtype=bool)
    for u, d in itertools.product(range(pool), range(drafts)):
        first_b = rng.random(n // 2) < 0.5  # each round one team picks first
        team_b[u, d, 0::2], team_b[u, d, 1::2] = first_b, ~first_b
    merged = Interleavings(np.repeat(p[:, None, :], drafts, axis=1), team_b, np.zeros((pool, drafts), int))
    bench = RehearsalBench(ListClicks(p), ListClicks(p), merged)
    rate = bench.run("interleaving", 300, 2_000, rng).significant.mean()
    assert abs(rate - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / 2_000)
    identical = Interleavings(merged.probability, team_b, np.full((pool, drafts), n))
    never = RehearsalBench(ListClicks(p), ListClicks(p), identical).run("interleaving", 300, 200, rng)
    assert not never.significant.any()


def test_visit_law_enrols_visitors_with_zero_truncated_poisson_visits() -> None:
    rng = np.random.default_rng(3)
    law = VisitLaw(np.array([0.2, 1.0, 4.0]))
    users, visits = law.draw((200_000,), rng)
    assert visits.min() >= 1
    enrol = 1 - np.exp(-law.rate)
    share = np.bincount(users, minlength=3) / users.size
    assert share == pytest.approx(enrol / enrol.sum(), abs=0.005)  # who never visits never enrols
    for u in range(3):
        seen = visits[users == u]
        assert seen.mean() == pytest.approx(law.rate[u] / enrol[u], rel=0.02)  # E[v | v ≥ 1]
        assert (seen == 1).mean() == pytest.approx(stats.poisson.pmf(1, law.rate[u]) / enrol[u], abs=0.01)
    weight, mean, second = law.moments()
    assert weight.sum() == pytest.approx(1.0) and second == pytest.approx(mean + law.rate * mean)


def test_both_designs_see_the_same_users_visit_by_visit() -> None:
    """Clicks are drawn one visit at a time and summed per user: with a visit law, a user's expected
    clicks are E[visits] times one view's, for A/B's arms and for the interleaved credits alike."""
    rng = np.random.default_rng(9)
    p_c, p_t = np.full((2, 10), 0.05), np.full((2, 10), 0.08)
    p_c[1] = p_t[1] = 0.02
    team_b = np.tile(np.arange(10) % 2 == 1, (2, 1, 1))
    merged = Interleavings(np.full((2, 1, 10), 0.1), team_b, np.array([[0], [4]]))
    law = VisitLaw(np.array([3.0, 0.5]))
    bench = RehearsalBench(ListClicks(p_c), ListClicks(p_t), merged, law)
    users, visits = bench.draw_users((400, 500), rng)
    clicks_c, clicks_t = bench.ab_clicks(users, visits, rng)
    expected_c = (visits[:, :250] * p_c.sum(1)[users[:, :250]]).mean()
    assert clicks_c.mean() == pytest.approx(expected_c, rel=0.02)
    assert clicks_t.mean() == pytest.approx((visits[:, 250:] * p_t.sum(1)[users[:, 250:]]).mean(), rel=0.02)
    a, b = bench.interleaving_credits(users, visits, rng)
    # user 0: 5 positions each side credited; user 1: its top 4 are the common prefix, 3 per side left
    credited = np.where(users == 0, 0.5, 0.3) * visits
    assert a.mean() == pytest.approx(credited.mean(), rel=0.02) and b.mean() == pytest.approx(credited.mean(), rel=0.02)
    weight, mean, _ = bench.visit_moments()
    view_weight = weight * mean
    assert bench.truth()[0] == pytest.approx(float(view_weight @ p_c.sum(1) / view_weight.sum()))
