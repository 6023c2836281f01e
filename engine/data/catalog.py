"""The item catalogue held in process: titles, categories and ratings as arrays.

Serving reads item metadata from here rather than from Redis: it is static between model
releases, and an in-process array look-up costs nanoseconds where a Redis read costs a round
trip.  The feature store still publishes item features in Redis for other consumers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

HIGHLY_RATED = 4.0


@dataclass
class ItemCatalog:
    item_ids: np.ndarray
    titles: np.ndarray
    categories: np.ndarray
    avg_rating: np.ndarray
    popularity: np.ndarray
    index: dict[str, int]

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> ItemCatalog:
        ids = items["item_id"].astype(str).to_numpy(dtype=object)
        return cls(
            item_ids=ids,
            titles=items["title"].astype(str).to_numpy(dtype=object),
            categories=items["category"].astype(str).to_numpy(dtype=object),
            avg_rating=items["avg_rating"].to_numpy(dtype=np.float64),
            popularity=items["popularity"].to_numpy(dtype=np.float64),
            index={iid: i for i, iid in enumerate(ids)},
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.index

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Catalogue positions of known ids (unknown ids are dropped)."""
        return np.asarray([self.index[i] for i in item_ids if i in self.index], dtype=np.int64)

    def most_popular(self, n: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[int]:
        order = np.argsort(-self.popularity, kind="stable")
        out: list[int] = []
        for pos in order:
            if self.item_ids[pos] not in exclude:
                out.append(int(pos))
                if len(out) == n:
                    break
        return out

    def is_highly_rated(self, pos: int) -> bool:
        rating = self.avg_rating[pos]
        return bool(np.isfinite(rating) and rating >= HIGHLY_RATED)
