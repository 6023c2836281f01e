"""Time-decayed popularity: the baseline every other model has to beat, and the cold-start fallback."""

from __future__ import annotations

import numpy as np

from engine.data.schema import InteractionMatrix
from engine.models.base import Recommender
from engine.models.matrix import time_decayed, top_n


class PopularityRecommender(Recommender):
    """Scores every item by its decayed total weight; the same list for everybody, strangers included."""

    name = "popularity"

    def __init__(self, half_life_days: float | None = 14.0) -> None:
        super().__init__()
        self.half_life_days = half_life_days
        self.item_scores = np.empty(0, dtype=np.float64)

    def fit(self, interactions: InteractionMatrix) -> PopularityRecommender:
        self._remember_index(interactions)
        decayed = time_decayed(interactions, self.half_life_days)
        self.item_scores = np.asarray(decayed.sum(axis=0), dtype=np.float64).ravel()
        return self

    def _score_indices(self, user_id: str, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return self.item_scores[candidates]

    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        # Without co-occurrence there is no notion of "like this item": the best a popularity
        # model can say is "also popular".
        item_ids = self._require_fitted()
        if item_id not in self.item_index:
            return []
        scores = self.item_scores.copy()
        scores[self.item_index[item_id]] = -np.inf
        return [(str(item_ids[i]), float(scores[i])) for i in top_n(scores, n)]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores = arrays["item_scores"]

    def params(self) -> dict[str, object]:
        return {"half_life_days": self.half_life_days}
