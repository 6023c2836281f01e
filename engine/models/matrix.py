"""Array operations the models share: time decay, top-n selection, CSR (de)serialisation."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from engine.data.schema import InteractionMatrix

SECONDS_PER_DAY = 86_400.0


def time_decayed(interactions: InteractionMatrix, half_life_days: float | None) -> sparse.csr_matrix:
    """The confidence matrix with each cell × 0.5^(age / half-life), age counted back from the newest event.

    ``None`` or a non-positive half-life leaves the weights as they are.
    """
    weights = sparse.csr_matrix(interactions.matrix, dtype=np.float64)
    if not half_life_days or half_life_days <= 0 or weights.nnz == 0:
        return weights
    factor = sparse.csr_matrix(interactions.last_seen, dtype=np.float64, copy=True)
    newest = float(factor.data.max()) if factor.nnz else 0.0
    factor.data = 0.5 ** ((newest - factor.data) / (half_life_days * SECONDS_PER_DAY))
    return sparse.csr_matrix(weights.multiply(factor))


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest finite scores, best first (ties keep index order)."""
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, n - 1)[:n]
    return top[np.argsort(-scores[top], kind="stable")]


def csr_to_arrays(prefix: str, matrix: sparse.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sparse.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return sparse.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )
