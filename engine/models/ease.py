"""EASE: an item-item linear autoencoder with a closed form (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019).

With ``X`` the binarised users × items matrix and ``G = XᵀX``::

    P = (G + Λ)⁻¹,   B = I − P · diag(1 / diag(P)),   score(u) = X_u · B

whose diagonal is zero, so an item never explains itself.  ``Λ = λI`` in the paper; ``dropout``
``p > 0`` adds ``p / (1 − p) · diag(G)``, the dropout-emphasised regulariser of Steck's EDLAE
(NeurIPS 2020): a popular item's weights are shrunk harder, which is the popularity normalisation
that lifts EASE on MovieLens.  The defaults (λ = 300, p = 0.5) are the best of a grid on validation
folds carved out of ml-100k's training part (``python -m bench training --select``), not its test split.

The learned ``B`` is dense items × items, so memory — not time — limits the catalogue: solving
takes one float64 matrix of that size (the Cholesky factorisation and the inverse are done in place
by LAPACK) next to the sparse ``G``, and the float32 ``B`` kept for serving.  ``check_catalogue``
refuses a catalogue above the configured cap before any of it is allocated.

A user scores from the items of their history alone, so a user unseen at fit time is served from
``history`` with no fold-in step.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from engine.data.schema import InteractionMatrix
from engine.models.base import Recommender
from engine.models.matrix import top_n

# peak bytes per items² cell while solving: the dense float64 system is made from the sparse Gram
# matrix (12 bytes per stored cell, dense or nearly so on a real catalogue) and later copied into
# the float32 result, so at most 8 + 12 bytes live at once
PEAK_BYTES_PER_CELL = 8 + 12


class CatalogueTooLargeError(ValueError):
    """The catalogue is above the size EASE is allowed to invert in memory."""


def peak_bytes(n_items: int) -> int:
    return PEAK_BYTES_PER_CELL * n_items * n_items


def check_catalogue(n_items: int, max_items: int) -> None:
    """Raise ``CatalogueTooLargeError`` when ``n_items`` is above ``max_items``."""
    if n_items > max_items:
        raise CatalogueTooLargeError(
            f"EASE needs an items × items matrix: {n_items:,} items would take about "
            f"{peak_bytes(n_items) / 1e6:,.0f} MB while training, above the cap of {max_items:,} items "
            "(RECOPS_EASE_MAX_ITEMS); train another model or raise the cap on a machine with the memory"
        )


def ease_weights(binary: sparse.csr_matrix, regularization: float, dropout: float = 0.0) -> np.ndarray:
    """``B`` (float32, items × items, zero diagonal) for a binary users × items matrix."""
    if regularization <= 0 and dropout <= 0:
        raise ValueError("EASE needs regularization > 0 (or dropout > 0) to make XᵀX + Λ invertible")
    gram = (binary.T @ binary).tocsr()
    # a C-ordered symmetric matrix's transpose is Fortran-ordered and equal to it: LAPACK then
    # works on it in place instead of on a copy
    a = gram.toarray().T
    del gram
    counts = np.diag(a).copy()
    a[np.diag_indices_from(a)] += regularization + dropout / (1.0 - dropout) * counts
    _, info = lapack.dpotrf(a, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ValueError(f"XᵀX + Λ is not positive definite (LAPACK dpotrf info {info})")
    _, info = lapack.dpotri(a, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"XᵀX + Λ could not be inverted (LAPACK dpotri info {info})")
    _mirror_upper(a)
    diagonal = np.diag(a).copy()
    a /= -diagonal[None, :]
    np.fill_diagonal(a, 0.0)
    return np.ascontiguousarray(a, dtype=np.float32)


def _mirror_upper(a: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one in place, a block of rows at a time (no n² temporary)."""
    for start in range(0, a.shape[0], block):
        end = start + block
        a[start:end, :start] = a[:start, start:end].T
        diagonal_block = a[start:end, start:end]
        diagonal_block[:] = np.triu(diagonal_block) + np.triu(diagonal_block, 1).T


class EASERecommender(Recommender):
    """EASE; see the module docstring."""

    name = "ease"

    def __init__(self, regularization: float = 300.0, dropout: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if regularization < 0:
            raise ValueError(f"regularization must be non-negative, got {regularization}")
        self.regularization = regularization
        self.dropout = dropout
        self.weights = np.empty((0, 0), dtype=np.float32)

    def fit(self, interactions: InteractionMatrix) -> EASERecommender:
        self._remember_index(interactions)
        binary = sparse.csr_matrix(interactions.matrix, dtype=np.float64, copy=True)
        binary.eliminate_zeros()
        binary.data[:] = 1.0
        self.weights = ease_weights(binary, self.regularization, self.dropout)
        return self

    def _score_indices(self, user_id: str, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if len(history) == 0:
            # nothing to go on: an empty list, and the service falls back to its cold start
            return np.full(len(candidates), -np.inf)
        rows = self.weights[np.unique(history)]
        return rows.sum(axis=0, dtype=np.float64)[candidates]

    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        item_ids = self._require_fitted()
        i = self.item_index.get(item_id)
        if i is None:
            return []
        scores = self.weights[i].astype(np.float64)
        scores[i] = -np.inf
        return [(str(item_ids[j]), float(scores[j])) for j in top_n(scores, n)]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = arrays["weights"]

    def params(self) -> dict[str, object]:
        return {"regularization": self.regularization, "dropout": self.dropout}
