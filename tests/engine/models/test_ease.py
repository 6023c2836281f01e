"""EASE against its closed form computed the textbook way, on data whose right answers are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from engine.models.ease import CatalogueTooLargeError, EASERecommender, check_catalogue, ease_weights
from engine.models.registry import MODEL_CLASSES
from tests.support.synthetic_data import two_taste_dataset


def textbook_ease(binary: np.ndarray, regularization: float, dropout: float) -> np.ndarray:
    """Steck's formula with numpy's general inverse: B = I − P·diag(1/diag(P)), P = (XᵀX + Λ)⁻¹."""
    gram = binary.T @ binary
    lam = regularization + dropout / (1.0 - dropout) * np.diag(gram)
    p = np.linalg.inv(gram + np.diag(lam))
    b = np.eye(len(p)) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)  # the formula's diagonal is 0 up to rounding
    return b


@pytest.mark.parametrize(("n_items", "regularization", "dropout"), [(30, 5.0, 0.0), (30, 1.0, 0.5), (1_100, 20.0, 0.3)])
def test_weights_match_the_closed_form(n_items: int, regularization: float, dropout: float) -> None:
    # 1,100 items crosses the 1,024-row blocks in which the inverse's triangle is mirrored
    rng = np.random.default_rng(n_items)
    dense = (rng.random((400, n_items)) < 0.08).astype(np.float64)
    got = ease_weights(sparse.csr_matrix(dense), regularization, dropout)
    want = textbook_ease(dense, regularization, dropout)
    assert got.dtype == np.float32 and got.shape == (n_items, n_items)
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(got, want, atol=1e-6 * float(np.abs(want).max()))


def test_fit_binarises_and_scores_from_the_history() -> None:
    ds = two_taste_dataset()
    interactions = ds.interactions()
    model = EASERecommender(regularization=5.0, dropout=0.0).fit(interactions)
    binary = (interactions.matrix.toarray() > 0).astype(np.float64)  # clicks and purchases weigh 1 too
    np.testing.assert_allclose(model.weights, textbook_ease(binary, 5.0, 0.0), atol=1e-5)
    # a known user's score is their row of X times B
    u = interactions.user_index["a00"]
    want = binary[u] @ model.weights.astype(np.float64)
    np.testing.assert_allclose(model.score("a00", list(interactions.item_ids)), want, rtol=1e-6)
    # a stranger is scored from the items given, and gets their own group's items
    recs = model.recommend("stranger", n=4, history=["A01", "A02", "A03"])
    assert len(recs) == 4 and all(item.startswith("A") for item, _ in recs)
    assert model.recommend("stranger", n=4) == []  # no history: the service's cold start answers
    similar = [item for item, _ in model.similar_items("B05", n=3)]
    assert "B05" not in similar and all(item.startswith("B") for item in similar)


def test_saved_and_loaded_scores_the_same(tmp_path: Path) -> None:
    model = EASERecommender().fit(two_taste_dataset().interactions())
    loaded = MODEL_CLASSES["ease"].load(model.save(tmp_path / "ease"))
    assert loaded.params() == {"regularization": 300.0, "dropout": 0.5}
    assert loaded.recommend("b03", n=5) == model.recommend("b03", n=5)


def test_catalogue_cap_and_bad_parameters() -> None:
    check_catalogue(100, 100)
    with pytest.raises(CatalogueTooLargeError, match="RECOPS_EASE_MAX_ITEMS") as caught:
        check_catalogue(50_000, 10_000)
    assert "50,000 items" in str(caught.value) and "50,000 MB" in str(caught.value)  # 20 bytes × 50,000²
    with pytest.raises(ValueError, match="dropout"):
        EASERecommender(dropout=1.0)
    with pytest.raises(ValueError, match="regularization"):
        EASERecommender(regularization=-1.0)
    with pytest.raises(ValueError, match="invertible"):
        ease_weights(sparse.csr_matrix(np.eye(3)), 0.0, 0.0)
