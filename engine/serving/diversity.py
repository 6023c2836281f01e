"""Diversity re-ranking: Maximal Marginal Relevance with a per-category cap.

Pure numpy over candidate arrays, so it is testable without a model or Redis.  MMR picks, one
at a time, the candidate maximising ``λ·rel(i) − (1−λ)·max_j∈picked sim(i, j)``; λ = 1 is the
plain relevance order, λ = 0 maximal spread.  Relevance is min-max scaled to [0, 1] first so
that λ means the same for every model whatever the range of its scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class DiversitySettings:
    category_cap: int | None = 3  # at most this many items of one category; None = no cap
    mmr_lambda: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError("mmr_lambda must be within [0, 1]")
        if self.category_cap is not None and self.category_cap < 1:
            raise ValueError("category_cap must be at least 1 (or None for no cap)")

    @cached_property
    def signature(self) -> str:
        """Short stable text for cache keys: lists re-ranked differently are cached apart."""
        return f"c{self.category_cap or 0}l{self.mmr_lambda:g}"


def _scaled(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    out = np.zeros(len(scores), dtype=np.float64)
    if not finite.any():
        return out
    lo, hi = scores[finite].min(), scores[finite].max()
    out[finite] = (scores[finite] - lo) / (hi - lo) if hi > lo else 1.0
    return out


def mmr_rerank(
    scores: np.ndarray,
    categories: np.ndarray,
    n: int,
    settings: DiversitySettings,
    vectors: np.ndarray | None = None,
) -> np.ndarray:
    """Positions (into the candidate arrays) of the re-ranked top ``n``.

    Similarity is the cosine of ``vectors`` when given (rows L2-normalised here), else 1 for two
    items of one category and 0 otherwise.  When the cap leaves fewer than ``n`` eligible
    candidates the list is shorter rather than breaking the cap.
    """
    m = len(scores)
    n = min(n, m)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    rel = _scaled(np.asarray(scores, dtype=np.float64))
    lam = settings.mmr_lambda
    cats = np.asarray(categories)
    if vectors is not None:
        v = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = v / np.where(norms == 0, 1.0, norms)
    max_sim = np.zeros(m, dtype=np.float64)
    available = np.ones(m, dtype=bool)
    per_category: dict[object, int] = {}
    picked: list[int] = []
    cap = settings.category_cap
    while len(picked) < n and available.any():
        objective = np.where(available, lam * rel - (1.0 - lam) * max_sim, -np.inf)
        best = int(np.argmax(objective))
        if not np.isfinite(objective[best]):
            break
        picked.append(best)
        available[best] = False
        cat = cats[best]
        per_category[cat] = per_category.get(cat, 0) + 1
        if cap is not None and per_category[cat] >= cap:
            available &= cats != cat
        sim = v @ v[best] if vectors is not None else (cats == cat).astype(np.float64)
        np.maximum(max_sim, sim, out=max_sim)
    return np.asarray(picked, dtype=np.int64)
