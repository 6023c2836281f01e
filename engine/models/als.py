"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) trained with ``implicit``'s ALS.

Confidence ``c_ui = 1 + alpha · w_ui`` where ``w`` is the event-weight matrix, optionally
re-weighted by BM25 first (``weighting="bm25"``: frequent items and heavy users count less).
``implicit`` reads a positive cell as the confidence itself, so the matrix handed to it already
holds ``1 + alpha · w`` and its own ``alpha`` stays 1.

A user not seen at fit time but given a ``history`` is folded in: the closed-form least-squares
user factor against the fixed item factors, ``x = (YᵀY + Yₕᵀ(Cₕ − I)Yₕ + λI)⁻¹ Yₕᵀ cₕ`` — one ALS
half-step for that user alone, so no retraining.

Defaults (48 factors, BM25 k1 100 / b 0.75, λ = 30, alpha = 0.6, 14 iterations) are the best mean
NDCG@10 on validation folds carved out of ml-100k's *training* part (per-user 75/25 of seed 42's
training half, seeds 1–4; ``python -m bench training --select`` shows every candidate), never on its
test split.  On that test split they give precision@10 0.430 and NDCG@10 0.496 (the published best,
BiVAE, is 0.412 / 0.475 on Recommenders' per-item split, where these defaults give 0.429 / 0.499).
On the demo world's ground truth they also beat the previous defaults (expected clicks 0.657 of the
ideal lists against 0.637).  ``implicit`` does not scale λ by the data, so a much larger or denser
dataset may want it retuned (``recops train --tune``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from engine.data.schema import InteractionMatrix
from engine.models.base import Recommender
from engine.models.matrix import top_n

Weighting = Literal["none", "bm25"]
WEIGHTINGS: tuple[str, ...] = ("none", "bm25")
BM25_K1 = 100.0
BM25_B = 0.75


def bm25_weights(
    matrix: sparse.csr_matrix, idf: np.ndarray, avg_length: float, k1: float = BM25_K1, b: float = BM25_B
) -> sparse.csr_matrix:
    """Okapi BM25 of a users × items matrix: saturating term weight × item idf, user-length normalised."""
    out = sparse.csr_matrix(matrix, dtype=np.float64, copy=True)
    lengths = np.asarray(out.sum(axis=1), dtype=np.float64).ravel()
    norm = (1.0 - b) + b * lengths / max(avg_length, 1e-12)
    row_of = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    out.data = out.data * (k1 + 1.0) / (k1 * norm[row_of] + out.data) * idf[out.indices]
    return out


class ALSRecommender(Recommender):
    """ALS matrix factorisation; see the module docstring."""

    name = "als"

    def __init__(
        self,
        factors: int = 48,
        regularization: float = 30.0,
        alpha: float = 0.6,
        iterations: int = 14,
        random_state: int = 42,
        weighting: Weighting = "bm25",
        bm25_k1: float = BM25_K1,
        bm25_b: float = BM25_B,
    ) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if factors < 1 or iterations < 1:
            raise ValueError(f"factors and iterations must be at least 1, got {factors} and {iterations}")
        if regularization < 0 or alpha < 0 or bm25_k1 < 0 or not 0.0 <= bm25_b <= 1.0:
            raise ValueError("regularization, alpha and bm25_k1 must be non-negative and bm25_b in [0, 1]")
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.weighting: str = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.user_factors = np.empty((0, factors), dtype=np.float32)
        self.item_factors = np.empty((0, factors), dtype=np.float32)
        self.idf = np.empty(0, dtype=np.float64)
        self.avg_length = np.zeros(1, dtype=np.float64)
        self._gram: np.ndarray | None = None
        self._unit_items: np.ndarray | None = None

    # ---- training -------------------------------------------------------------
    def _weigh(self, matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        if self.weighting == "bm25":
            return bm25_weights(matrix, self.idf, float(self.avg_length[0]), self.bm25_k1, self.bm25_b)
        return sparse.csr_matrix(matrix, dtype=np.float64, copy=True)

    def _confidence(self, matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        conf = self._weigh(matrix)
        conf.data = 1.0 + self.alpha * conf.data
        return conf.astype(np.float32)

    def fit(self, interactions: InteractionMatrix) -> ALSRecommender:
        # imported here, not at module level, so that serving a saved model never loads implicit;
        # and before the limit below, which only reaches BLAS libraries already loaded
        from implicit.cpu.als import AlternatingLeastSquares

        # implicit parallelises over users itself; a BLAS thread pool underneath only fights it
        # (the env var is too late once numpy has loaded OpenBLAS, threadpoolctl is not)
        with threadpool_limits(1, "blas"):
            return self._fit(interactions, AlternatingLeastSquares)

    def _fit(self, interactions: InteractionMatrix, als_class: type) -> ALSRecommender:
        self._remember_index(interactions)
        matrix = sparse.csr_matrix(interactions.matrix, dtype=np.float64)
        matrix.eliminate_zeros()
        n_users = max(matrix.shape[0], 1)
        item_users = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
        self.idf = np.log(n_users) - np.log1p(item_users) + np.log(2.0)  # shifted so every idf stays positive
        self.avg_length = np.asarray([matrix.sum() / n_users], dtype=np.float64)
        model = als_class(
            factors=self.factors,
            regularization=self.regularization,
            alpha=1.0,
            iterations=self.iterations,
            random_state=self.random_state,
        )
        model.fit(self._confidence(matrix), show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._gram = self._unit_items = None
        return self

    # ---- scoring --------------------------------------------------------------
    @property
    def gram(self) -> np.ndarray:
        if self._gram is None:
            y = self.item_factors.astype(np.float64)
            self._gram = y.T @ y
        return self._gram

    def fold_in(self, history: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Least-squares user factor for item indices ``history`` (each weight 1 unless given)."""
        if len(history) == 0:
            return np.zeros(self.item_factors.shape[1], dtype=np.float64)
        w = np.ones(len(history)) if weights is None else np.asarray(weights, dtype=np.float64)
        row = sparse.csr_matrix((w, (np.zeros(len(history), dtype=np.int64), history)),
                                shape=(1, self.item_factors.shape[0]))
        row.sum_duplicates()
        conf = self._confidence(row)
        items, c = conf.indices, conf.data.astype(np.float64)
        y = self.item_factors[items].astype(np.float64)
        a = self.gram + (y.T * (c - 1.0)) @ y + self.regularization * np.eye(y.shape[1])
        return np.linalg.solve(a, y.T @ c)

    def _user_vector(self, user_id: str, history: np.ndarray) -> np.ndarray:
        u = self.user_index.get(user_id)
        if u is not None and np.array_equal(history, self.user_items[u]):
            return self.user_factors[u].astype(np.float64)
        return self.fold_in(history)

    def query_vector(self, user_id: str, history: np.ndarray) -> np.ndarray | None:
        return self._user_vector(user_id, history) if len(history) else None

    def index_vectors(self) -> np.ndarray:
        return self.item_factors

    def _score_indices(self, user_id: str, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if len(history) == 0:
            # nothing to go on: an empty list, and the service falls back to its cold start
            return np.full(len(candidates), -np.inf)
        return self.item_factors[candidates] @ self._user_vector(user_id, history).astype(np.float32)

    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        item_ids = self._require_fitted()
        i = self.item_index.get(item_id)
        if i is None:
            return []
        if self._unit_items is None:
            norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
            self._unit_items = self.item_factors / np.where(norms > 0, norms, 1.0)
        scores = (self._unit_items @ self._unit_items[i]).astype(np.float64)
        scores[i] = -np.inf
        return [(str(item_ids[j]), float(scores[j])) for j in top_n(scores, n)]

    # ---- persistence ----------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "idf": self.idf,
            "avg_length": self.avg_length,
        }

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors = arrays["user_factors"]
        self.item_factors = arrays["item_factors"]
        self.idf = arrays["idf"]
        self.avg_length = arrays["avg_length"]
        self._gram = self._unit_items = None

    def params(self) -> dict[str, object]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "random_state": self.random_state,
            "weighting": self.weighting,
            "bm25_k1": self.bm25_k1,
            "bm25_b": self.bm25_b,
        }
