"""MMR re-ranking and the category cap (pure, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.serving.diversity import DiversitySettings, mmr_rerank


def test_lambda_one_without_cap_is_relevance_order() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    cats = np.array(["a", "a", "a", "a"])
    order = mmr_rerank(scores, cats, 4, DiversitySettings(category_cap=None, mmr_lambda=1.0))
    assert order.tolist() == [1, 3, 2, 0]


def test_category_cap_is_never_exceeded() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(200)
    cats = rng.choice(list("abcdef"), size=200, p=[0.7, 0.1, 0.05, 0.05, 0.05, 0.05])
    order = mmr_rerank(scores, cats, 12, DiversitySettings(category_cap=2, mmr_lambda=0.9))
    assert len(order) == 12
    _, counts = np.unique(cats[order], return_counts=True)
    assert counts.max() <= 2


def test_cap_shortens_the_list_rather_than_breaking_it() -> None:
    scores = np.array([3.0, 2.0, 1.0])
    cats = np.array(["a", "a", "a"])
    order = mmr_rerank(scores, cats, 3, DiversitySettings(category_cap=1, mmr_lambda=1.0))
    assert order.tolist() == [0]


def test_low_lambda_prefers_a_new_category_over_a_slightly_better_same_one() -> None:
    scores = np.array([1.0, 0.95, 0.5])
    cats = np.array(["a", "a", "b"])
    relevance_first = mmr_rerank(scores, cats, 2, DiversitySettings(category_cap=None, mmr_lambda=1.0))
    diverse = mmr_rerank(scores, cats, 2, DiversitySettings(category_cap=None, mmr_lambda=0.3))
    assert relevance_first.tolist() == [0, 1]
    assert diverse.tolist() == [0, 2]


def test_vector_similarity_is_used_when_given() -> None:
    scores = np.array([1.0, 0.99, 0.9])
    cats = np.array(["a", "b", "c"])  # categories all differ: only the vectors say 0 and 1 are alike
    vectors = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0]])
    order = mmr_rerank(scores, cats, 2, DiversitySettings(category_cap=None, mmr_lambda=0.5), vectors)
    assert order.tolist() == [0, 2]


def test_mmr_matches_a_brute_force_greedy_reference() -> None:
    rng = np.random.default_rng(7)
    scores = rng.normal(size=60)
    cats = rng.choice(list("abcd"), size=60)
    lam = 0.6
    got = mmr_rerank(scores, cats, 10, DiversitySettings(category_cap=None, mmr_lambda=lam)).tolist()
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    picked: list[int] = []
    for _ in range(10):
        best, best_val = -1, -np.inf
        for i in range(60):
            if i in picked:
                continue
            penalty = max((1.0 if cats[i] == cats[j] else 0.0) for j in picked) if picked else 0.0
            val = lam * rel[i] - (1 - lam) * penalty
            if val > best_val:
                best, best_val = i, val
        picked.append(best)
    assert got == picked


@pytest.mark.parametrize("kwargs", [{"mmr_lambda": 1.5}, {"mmr_lambda": -0.1}, {"category_cap": 0}])
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DiversitySettings(**kwargs)  # type: ignore[arg-type]


def test_empty_candidates() -> None:
    assert mmr_rerank(np.array([]), np.array([]), 5, DiversitySettings()).tolist() == []
