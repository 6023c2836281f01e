"""Exploring lists: propensities against exact enumeration and against ``engine.serving.exploration``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.serving.exploration import epsilon_greedy_propensities, plackett_luce_propensities
from engine.serving.exploring_lists import (
    EPSILON_GREEDY,
    PLACKETT_LUCE,
    ExplorationPolicy,
    conditional_matrix,
    conditional_propensities,
    explore,
    marginal_propensities,
    sample_prefixes,
    scaled,
    shown_marginals,
)

SCORES = np.array([2.0, 1.5, 1.4, 0.3, -0.2, -1.0])
POLICIES = [ExplorationPolicy(PLACKETT_LUCE, temperature=0.4, pool=6),
            ExplorationPolicy(EPSILON_GREEDY, epsilon=0.3, pool=6)]


def exact_marginals(scores: np.ndarray, depth: int, policy: ExplorationPolicy) -> np.ndarray:
    """π(item at k) by enumerating every list of ``depth`` items with its probability."""
    out = np.zeros((scores.size, depth))
    for shown in itertools.permutations(range(scores.size), depth):
        p = float(np.prod(conditional_propensities(scores, np.array(shown), policy)))
        out[list(shown), np.arange(depth)] += p
    return out


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.method)
def test_marginals_match_enumeration(policy: ExplorationPolicy) -> None:
    exact = exact_marginals(SCORES, 3, policy)
    assert exact.sum(axis=0) == pytest.approx(np.ones(3))  # every slot holds one item
    estimated = marginal_propensities(SCORES, 3, policy, np.random.default_rng(0), samples=20_000)
    assert estimated[:, 0] == pytest.approx(exact[:, 0], abs=1e-12)  # the top slot has no prefix: exact
    assert np.abs(estimated - exact).max() < 0.01


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.method)
def test_sampled_lists_follow_the_marginals(policy: ExplorationPolicy) -> None:
    lists = sample_prefixes(SCORES, 3, policy, np.random.default_rng(1), 40_000)
    assert all(len(set(row)) == 3 for row in lists[:500])
    frequency = np.stack([np.bincount(lists[:, k], minlength=SCORES.size) for k in range(3)], axis=1) / len(lists)
    exact = exact_marginals(SCORES, 3, policy)
    # binomial standard error at 40k draws is below 0.0025
    assert np.abs(frequency - exact).max() < 0.01


def test_conditionals_are_explorations_own() -> None:
    lists = sample_prefixes(SCORES, 4, POLICIES[0], np.random.default_rng(2), 50)
    matrix = conditional_matrix(SCORES, lists, POLICIES[0])
    for row, shown in zip(matrix, lists, strict=True):
        assert row == pytest.approx(plackett_luce_propensities(scaled(SCORES), shown, 0.4), rel=1e-9)
    greedy = POLICIES[1]
    lists = sample_prefixes(SCORES, 4, greedy, np.random.default_rng(3), 50)
    matrix = conditional_matrix(SCORES, lists, greedy)
    for row, shown in zip(matrix, lists, strict=True):
        assert row == pytest.approx(epsilon_greedy_propensities(SCORES, shown, 0.3), rel=1e-9)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.method)
def test_explore_logs_the_three_propensities(policy: ExplorationPolicy) -> None:
    drawn = explore(SCORES, 3, policy, np.random.default_rng(4))
    assert drawn.propensity == pytest.approx(conditional_propensities(SCORES, drawn.items, policy))
    assert drawn.prefix_propensity == pytest.approx(np.cumprod(drawn.propensity))
    exact = exact_marginals(SCORES, 3, policy)[drawn.items, np.arange(3)]
    assert drawn.marginal_propensity == pytest.approx(exact, abs=0.02)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.method)
def test_shown_marginals_match_enumeration_for_every_list(policy: ExplorationPolicy) -> None:
    """The per-request shortcut (shown cells only) against enumeration, for every list of 3 of 6 items."""
    exact = exact_marginals(SCORES, 3, policy)
    worst = 0.0
    for shown in itertools.permutations(range(SCORES.size), 3):
        idx = np.array(shown)
        got = shown_marginals(SCORES, idx, policy, np.random.default_rng(5), samples=20_000)
        worst = max(worst, float(np.abs(got - exact[idx, np.arange(3)]).max()))
    assert worst < 0.01


def test_scaling_makes_the_temperature_model_free() -> None:
    a = conditional_propensities(SCORES, np.array([1, 0, 2]), POLICIES[0])
    b = conditional_propensities(SCORES * 40 + 7, np.array([1, 0, 2]), POLICIES[0])
    assert a == pytest.approx(b)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.method)
def test_shown_marginals_are_the_full_matrix_at_the_shown_cells(policy: ExplorationPolicy) -> None:
    shown = np.array([2, 0, 5, 1])
    exact = exact_marginals(SCORES, 4, policy)[shown, np.arange(4)]
    from engine.serving.exploring_lists import shown_marginals

    estimated = shown_marginals(SCORES, shown, policy, np.random.default_rng(5), samples=20_000)
    assert estimated[0] == pytest.approx(exact[0], abs=1e-12)
    assert np.abs(estimated - exact).max() < 0.01
