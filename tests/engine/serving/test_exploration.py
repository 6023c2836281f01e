"""Exploring rankers: Plackett-Luce and ε-greedy propensities sum to one over every possible list
(enumerated), match the sampler's empirical frequencies (chi-square, scipy), and the target-policy
propensities OPE reads."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from engine.serving.exploration import (
    deterministic_propensities,
    epsilon_greedy_propensities,
    greedy_order,
    plackett_luce_propensities,
    plackett_luce_target,
    sample_epsilon_greedy,
    sample_plackett_luce,
)

SCORES = np.array([1.2, -0.3, 0.8, 2.0, 0.1])


def _all_lists(candidates: int, n: int) -> list[tuple[int, ...]]:
    return list(itertools.permutations(range(candidates), n))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
def test_plackett_luce_list_probabilities_sum_to_one(n: int, temperature: float) -> None:
    total = sum(np.prod(plackett_luce_propensities(SCORES, np.array(s), temperature)) for s in _all_lists(5, n))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_plackett_luce_first_slot_is_the_softmax() -> None:
    for item in range(5):
        expected = np.exp(SCORES[item] / 0.7) / np.exp(SCORES / 0.7).sum()
        assert plackett_luce_propensities(SCORES, np.array([item]), 0.7)[0] == pytest.approx(expected)


def test_plackett_luce_is_stable_at_extreme_temperatures() -> None:
    sharp = plackett_luce_propensities(np.array([0.0, 50.0, 100.0]), np.array([2, 1, 0]), 0.01)
    assert np.allclose(sharp, 1.0) and np.isfinite(sharp).all()
    flat = plackett_luce_propensities(SCORES, np.array([0, 1]), 1e6)
    assert flat == pytest.approx([1 / 5, 1 / 4], rel=1e-5)


def _chi_square_vs_propensities(lists: list[tuple[int, ...]], probability: dict[tuple[int, ...], float]) -> float:
    counts = {s: 0 for s in probability}
    for s in lists:
        counts[s] += 1
    observed = np.array([counts[s] for s in probability])
    expected = np.array(list(probability.values())) * len(lists)
    return float(stats.chisquare(observed, expected).pvalue)


def test_plackett_luce_sampler_matches_its_propensities() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_plackett_luce(SCORES, 2, 1.0, rng) for _ in range(20_000)]
    lists = [tuple(int(i) for i in d.items) for d in draws]
    probability = {s: float(np.prod(plackett_luce_propensities(SCORES, np.array(s), 1.0))) for s in _all_lists(5, 2)}
    assert _chi_square_vs_propensities(lists, probability) > 0.001
    # the sampled list carries exactly the propensities of its own items
    d = draws[0]
    assert d.propensities == pytest.approx(plackett_luce_propensities(SCORES, d.items, 1.0))
    assert d.list_propensity == pytest.approx(probability[lists[0]])
    assert d.prefix_propensities[-1] == pytest.approx(d.list_propensity)


@pytest.mark.parametrize("epsilon", [0.0, 0.2, 1.0])
def test_epsilon_greedy_list_probabilities_sum_to_one(epsilon: float) -> None:
    total = sum(np.prod(epsilon_greedy_propensities(SCORES, np.array(s), epsilon)) for s in _all_lists(5, 3))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_epsilon_greedy_propensities_match_empirical_frequencies() -> None:
    rng = np.random.default_rng(1)
    epsilon = 0.3
    draws = [sample_epsilon_greedy(SCORES, 2, epsilon, rng) for _ in range(20_000)]
    lists = [tuple(int(i) for i in d.items) for d in draws]
    probability = {
        s: float(np.prod(epsilon_greedy_propensities(SCORES, np.array(s), epsilon))) for s in _all_lists(5, 2)
    }
    assert _chi_square_vs_propensities(lists, probability) > 0.001
    greedy = tuple(int(i) for i in greedy_order(SCORES)[:2])
    top_slot = (1 - epsilon) + epsilon / 5
    assert probability[greedy] == pytest.approx(top_slot * ((1 - epsilon) + epsilon / 4))


def test_epsilon_zero_is_the_model_ranking_and_one_a_uniform_draw() -> None:
    rng = np.random.default_rng(2)
    greedy = sample_epsilon_greedy(SCORES, 3, 0.0, rng)
    assert greedy.items.tolist() == [3, 0, 2] and greedy.list_propensity == 1.0
    uniform = sample_epsilon_greedy(SCORES, 3, 1.0, rng)
    assert uniform.propensities == pytest.approx([1 / 5, 1 / 4, 1 / 3])


def test_samplers_are_deterministic_given_the_generator_and_clip_n() -> None:
    for sample, setting in ((sample_plackett_luce, 1.0), (sample_epsilon_greedy, 0.5)):
        a = sample(SCORES, 3, setting, np.random.default_rng(9))
        b = sample(SCORES, 3, setting, np.random.default_rng(9))
        assert a.items.tolist() == b.items.tolist()
        assert sample(SCORES, 50, setting, np.random.default_rng(9)).items.size == 5
        assert sample(SCORES, 0, setting, np.random.default_rng(9)).list_propensity == 1.0


def test_target_propensities_of_logged_lists() -> None:
    target = np.array([3, 0, 2])
    agree = deterministic_propensities(target, np.array([3, 2, 0]))
    assert agree.marginal.tolist() == [1, 0, 0] and agree.prefix.tolist() == [1, 0, 0]
    agree = deterministic_propensities(target, np.array([1, 0, 2, 4]))  # deeper than the target's list
    assert agree.marginal.tolist() == [0, 1, 1, 0] and agree.prefix.tolist() == [0, 0, 0, 0]
    prefix = plackett_luce_target(SCORES, np.array([3, 0]), 2.0)
    first = math.exp(2.0 / 2.0) / np.exp(SCORES / 2.0).sum()
    assert prefix[0] == pytest.approx(first)
    assert prefix[1] == pytest.approx(first * math.exp(1.2 / 2.0) / np.exp(np.delete(SCORES, 3) / 2.0).sum())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plackett_luce_propensities(SCORES, np.array([0]), 0.0), "temperature must be a positive"),
        (lambda: plackett_luce_propensities(SCORES, np.array([0, 0]), 1.0), "at most once"),
        (lambda: plackett_luce_propensities(SCORES, np.array([7]), 1.0), "indices below 5"),
        (lambda: epsilon_greedy_propensities(SCORES, np.array([0]), 1.5), "epsilon must be between"),
        (lambda: sample_plackett_luce(np.array([]), 3, 1.0, np.random.default_rng()), "non-empty"),
        (lambda: sample_epsilon_greedy(np.array([1.0, np.nan]), 1, 0.1, np.random.default_rng()), "finite"),
    ],
)
def test_bad_settings_are_value_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
