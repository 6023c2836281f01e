"""Synthetic factor-model vectors shaped like a trained ALS model's, for the ANN bench and tests.

Isotropic Gaussian vectors are the worst case for a graph or cluster index and not what a trained
model produces.  Factors fitted on interaction data are

* low-rank: a few taste directions carry most of the variance (ALS with λ shrinks the rest),
* clustered: items of one genre/category sit near each other,
* popularity-skewed in norm: popular items have long vectors (they explain many interactions),
  the long tail short ones — inner-product top lists favour them, which is what a MIPS index has
  to get right.

So items are ``norm_i · unit(c_k(i) + noise)`` where the cluster centres ``c_k`` live in a
``rank``-dimensional subspace of the ``dim``-dimensional space (plus a little full-rank noise),
cluster sizes follow a Zipf law, and ``norm_i`` grows with a Zipf popularity (log-normal spread).
A user mixes two or three clusters' centres (tastes span genres) plus noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models.als import ALSRecommender


@dataclass(frozen=True)
class FactorShape:
    dim: int = 64
    rank: int = 16  # taste directions carrying most of the variance
    clusters: int = 500
    item_noise: float = 0.6  # within-cluster spread relative to the centre's length
    full_rank_noise: float = 0.15  # share of variance outside the taste subspace
    popularity_exponent: float = 0.35  # norm ∝ popularity rank^-exponent
    user_noise: float = 0.5


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _centres(rng: np.random.Generator, shape: FactorShape) -> np.ndarray:
    basis = np.linalg.qr(rng.standard_normal((shape.dim, shape.rank)))[0]  # dim × rank, orthonormal
    low = rng.standard_normal((shape.clusters, shape.rank)) @ basis.T
    full = rng.standard_normal((shape.clusters, shape.dim)) * shape.full_rank_noise
    return _unit(low + full)


def item_factors(n_items: int, seed: int = 7, shape: FactorShape = FactorShape()) -> np.ndarray:
    """``n_items`` × ``dim`` float32 item vectors (see the module docstring)."""
    rng = np.random.default_rng(seed)
    centres = _centres(rng, shape)
    sizes = np.arange(1, shape.clusters + 1, dtype=np.float64) ** -1.0
    cluster = rng.choice(shape.clusters, size=n_items, p=sizes / sizes.sum())
    directions = _unit(centres[cluster] + rng.standard_normal((n_items, shape.dim)) * shape.item_noise
                       / np.sqrt(shape.dim))
    popularity_rank = rng.permutation(n_items) + 1.0
    norms = popularity_rank ** -shape.popularity_exponent * np.exp(rng.normal(0.0, 0.25, n_items))
    return (directions * (norms / norms.max())[:, None]).astype(np.float32)


def user_factors(n_users: int, seed: int = 7, shape: FactorShape = FactorShape()) -> np.ndarray:
    """``n_users`` × ``dim`` float32 user (query) vectors over the same taste clusters as ``item_factors``
    with the same ``seed``."""
    rng = np.random.default_rng(seed)
    centres = _centres(rng, shape)  # the same draws as item_factors made first
    rng = np.random.default_rng([seed, 1])
    tastes = rng.integers(2, 4, size=n_users)
    out = np.zeros((n_users, shape.dim))
    for u, k in enumerate(tastes):
        out[u] = centres[rng.choice(shape.clusters, size=k, replace=False)].sum(axis=0)
    out += rng.standard_normal((n_users, shape.dim)) * shape.user_noise / np.sqrt(shape.dim) * np.sqrt(tastes)[:, None]
    return out.astype(np.float32)


def synthetic_als(n_items: int, n_users: int, seed: int = 7, shape: FactorShape = FactorShape(),
                  history_length: int = 10) -> ALSRecommender:
    """An ``ALSRecommender`` holding these vectors as if fitted: items ``i0000000``…, users ``u0000000``…,
    each user with ``history_length`` items drawn by popularity (vector norm) as their history."""
    model = ALSRecommender(factors=shape.dim, weighting="none")
    items = item_factors(n_items, seed, shape)
    model.item_factors = items
    model.user_factors = user_factors(n_users, seed, shape)
    model.item_ids = np.asarray([f"i{i:07d}" for i in range(n_items)], dtype=object)
    model.item_index = {iid: i for i, iid in enumerate(model.item_ids)}
    model.user_index = {f"u{u:07d}": u for u in range(n_users)}
    weights = np.linalg.norm(items, axis=1).astype(np.float64) ** 2
    rng = np.random.default_rng([seed, 2])
    picks = rng.choice(n_items, size=(n_users, history_length), p=weights / weights.sum())
    model.user_items = [np.unique(row) for row in picks]
    model.idf = np.ones(n_items)
    model.avg_length = np.asarray([float(history_length)])
    return model
