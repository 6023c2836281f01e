"""analysis.ranking against hand-computed cases, edge cases, and a plain per-user reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.ranking import (
    catalog_coverage,
    hit_matrix,
    intra_list_diversity,
    jaccard,
    map_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    rbo,
    recall_at_k,
)

# One user: list a b c d, relevant {a, c, e}; hits at ranks 1 and 3.
RECS = [["a", "b", "c", "d"]]
REL = [{"a", "c", "e"}]


def test_precision_and_recall_by_hand() -> None:
    assert precision_at_k(RECS, REL, 4) == pytest.approx(2 / 4)
    assert recall_at_k(RECS, REL, 4) == pytest.approx(2 / 3)
    # only rank 1 is inside k = 2
    assert precision_at_k(RECS, REL, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RECS, REL, 2) == pytest.approx(1 / 3)


def test_ndcg_by_hand() -> None:
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG puts min(4, 3) = 3 hits first:
    # 1 + 1/log2(3) + 1/log2(4) = 2.130930   →   1.5 / 2.130930 = 0.703918
    assert ndcg_at_k(RECS, REL, 4) == pytest.approx(1.5 / (1 + 1 / math.log2(3) + 0.5))
    assert ndcg_at_k(RECS, REL, 4) == pytest.approx(0.703918, abs=1e-6)


def test_map_by_hand_and_both_denominators() -> None:
    # precision at the hit ranks: 1/1 and 2/3; k = 4 ≥ |relevant| = 3, so both denominators are 3
    assert map_at_k(RECS, REL, 4) == pytest.approx((1 + 2 / 3) / 3)
    assert map_at_k(RECS, REL, 4, denominator="relevant") == pytest.approx((1 + 2 / 3) / 3)
    # k = 2: one hit at rank 1; min(k, |rel|) = 2 but |rel| = 3
    assert map_at_k(RECS, REL, 2) == pytest.approx(1 / 2)
    assert map_at_k(RECS, REL, 2, denominator="relevant") == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        map_at_k(RECS, REL, 2, denominator="k")  # type: ignore[arg-type]


def test_mean_over_users_skips_users_with_nothing_relevant() -> None:
    recs = [["a", "b"], ["x", "y"], ["q"]]
    rel: list[set[str]] = [{"a"}, {"z"}, set()]
    # user 1: precision 1/2; user 2: 0; user 3 not scored
    assert precision_at_k(recs, rel, 2) == pytest.approx(0.25)
    assert recall_at_k(recs, rel, 2) == pytest.approx(0.5)
    assert ranking_metrics(recs, rel, 2)["ndcg"] == pytest.approx(0.5)


def test_k_larger_than_the_list() -> None:
    recs, rel = [["x"]], [{"x"}]
    assert precision_at_k(recs, rel, 5) == pytest.approx(1 / 5)  # still divided by k
    assert recall_at_k(recs, rel, 5) == 1.0
    assert ndcg_at_k(recs, rel, 5) == 1.0  # the ideal list has one hit too
    assert map_at_k(recs, rel, 5) == 1.0


def test_empty_inputs() -> None:
    assert ranking_metrics([[]], [{"x"}], 3) == {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0}
    assert ranking_metrics([], [], 3) == {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0}
    assert ranking_metrics([["a"]], [set()], 3)["precision"] == 0.0
    with pytest.raises(ValueError):
        precision_at_k([["a"]], [{"a"}], 0)
    with pytest.raises(ValueError):
        precision_at_k([["a"]], [{"a"}, {"b"}], 1)


def test_a_repeated_item_counts_once() -> None:
    assert hit_matrix([["a", "a", "b"]], [{"a"}], 3).tolist() == [[True, False, False]]
    assert precision_at_k([["a", "a"]], [{"a"}], 2) == pytest.approx(0.5)


def _reference(recs: list[int], rel: set[int], k: int) -> tuple[float, float, float, float]:
    hits = [i in rel for i in recs[:k]]
    dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
    ap, found = 0.0, 0
    for r, h in enumerate(hits):
        if h:
            found += 1
            ap += found / (r + 1)
    return sum(hits) / k, sum(hits) / len(rel), dcg / idcg, ap / min(k, len(rel))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 15), max_size=12, unique=True),
            st.sets(st.integers(0, 15), min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(1, 12),
)
def test_vectorised_metrics_match_a_per_user_reference(
    users: list[tuple[list[int], set[int]]], k: int
) -> None:
    recs = [u[0] for u in users]
    rel = [u[1] for u in users]
    expected = np.mean([_reference(r, s, k) for r, s in users], axis=0)
    got = ranking_metrics(recs, rel, k)
    assert [got["precision"], got["recall"], got["ndcg"], got["map"]] == pytest.approx(expected.tolist())


def test_catalog_coverage() -> None:
    assert catalog_coverage([["a", "b"], ["b", "c"]], 6) == pytest.approx(0.5)
    assert catalog_coverage([], 6) == 0.0
    assert catalog_coverage([["a"]], 0) == 0.0


def test_intra_list_diversity_by_category() -> None:
    cats = {"a": "x", "b": "x", "c": "y"}
    # list 1: pairs ab (same), ac, bc (different) → mean similarity 1/3 → diversity 2/3
    # list 2: ac → similarity 0 → diversity 1;  list 3 has one item and is not scored
    assert intra_list_diversity([["a", "b", "c"], ["a", "c"], ["a"]], categories=cats) == pytest.approx(
        (2 / 3 + 1) / 2
    )
    assert intra_list_diversity([["a", "b"]], categories=cats) == 0.0
    assert intra_list_diversity([["a"]], categories=cats) == 0.0


def test_intra_list_diversity_by_vectors() -> None:
    vecs = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([2.0, 0.0])}
    assert intra_list_diversity([["a", "b"]], vectors=vecs) == pytest.approx(1.0)  # orthogonal
    assert intra_list_diversity([["a", "c"]], vectors=vecs) == pytest.approx(0.0)  # same direction
    with pytest.raises(ValueError):
        intra_list_diversity([["a"]])


def test_novelty() -> None:
    # −log2(0.5) = 1, −log2(0.25) = 2; an item without a share is skipped
    assert novelty([["a", "b"], ["a", "zzz"]], {"a": 0.5, "b": 0.25}) == pytest.approx((1 + 2 + 1) / 3)
    assert novelty([], {"a": 0.5}) == 0.0


def test_jaccard() -> None:
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 4)
    assert jaccard([], []) == 1.0
    assert jaccard([1], []) == 0.0


def test_rbo_by_hand() -> None:
    # [1, 2] vs [2, 1], p = 0.5: X1 = 0, X2 = 2;  (1−p)/p · (0 + 2/2 · p²) + (2/2) · p² = 0.25 + 0.25
    assert rbo([1, 2], [2, 1], p=0.5) == pytest.approx(0.5)
    # uneven: S = [1, 2], L = [2, 3, 4], p = 0.5: X1 = 0, X2 = 1, X3 = 1 (s = 2, l = 3)
    #   Σ X_d/d p^d = 1/2·1/4 + 1/3·1/8 = 1/6;  tail Σ_{d=3} X_s (d−s)/(s d) p^d = 1/6 · 1/8 = 1/48
    #   (1−p)/p = 1  →  1/6 + 1/48 = 0.1875;  + ((X_l − X_s)/l + X_s/s) p^l = 1/2 · 1/8 = 0.0625
    assert rbo([1, 2], [2, 3, 4], p=0.5) == pytest.approx(0.25)
    assert rbo([2, 3, 4], [1, 2], p=0.5) == pytest.approx(0.25)


def test_rbo_edges() -> None:
    assert rbo(list(range(10)), list(range(10))) == pytest.approx(1.0)
    assert rbo([1, 2, 3], [4, 5, 6]) == 0.0
    assert rbo([1], [1, 2, 3]) == pytest.approx(1.0)  # a prefix is extrapolated as agreement
    assert rbo([], []) == 1.0
    assert rbo([1], []) == 0.0
    # agreement at the top weighs more than agreement at the bottom
    assert rbo([1, 2, 3, 4], [1, 2, 4, 3]) > rbo([1, 2, 3, 4], [2, 1, 3, 4])
    with pytest.raises(ValueError):
        rbo([1], [1], p=1.0)


def test_intra_list_diversity_by_category_is_the_one_hot_cosine_one() -> None:
    """Categories count shared-category pairs directly; the same lists scored through one-hot category
    vectors (cosine 1 within a category, 0 across) go through the similarity matrix: they must agree."""
    rng = np.random.default_rng(5)
    cats = {f"i{k}": int(rng.integers(0, 6)) for k in range(60)}
    one_hot = {item: np.eye(6)[c] for item, c in cats.items()}
    lists = [[f"i{k}" for k in rng.integers(0, 70, int(rng.integers(1, 15)))] for _ in range(300)]  # i60+: unknown
    by_category = intra_list_diversity(lists, categories=cats)
    assert by_category == pytest.approx(intra_list_diversity(lists, vectors=one_hot), rel=1e-12)
    assert 0.0 < by_category < 1.0
