"""Pre-exposure covariates for CUPED: each user's clicks and purchases in the dataset history.

The history predates every exposure by construction, so the covariate cannot be moved by the
treatment — the condition for CUPED to stay unbiased.  It is looked up in process when a user is
exposed and stored with the exposure record; users without history get zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.data.schema import Dataset
from engine.experiments.metrics import COVARIATES

_EVENT_OF = {"clicks": "click", "purchases": "purchase"}


class PreExposure:
    def __init__(self, values: Mapping[str, tuple[float, ...]] | None = None) -> None:
        self._values = dict(values or {})
        self._zero = tuple(0.0 for _ in COVARIATES)

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> PreExposure:
        events = dataset.events
        columns = []
        for covariate in COVARIATES:
            mask = (events["type"] == _EVENT_OF[covariate]).to_numpy()
            columns.append(events.loc[mask, "user_id"].astype(str).value_counts())
        users = sorted(set().union(*(c.index for c in columns)))
        table = np.column_stack([c.reindex(users, fill_value=0).to_numpy(dtype=np.float64) for c in columns])
        return cls({u: tuple(float(x) for x in row) for u, row in zip(users, table, strict=True)})

    def get(self, user_id: str) -> tuple[float, ...]:
        """One value per name in ``COVARIATES``."""
        return self._values.get(user_id, self._zero)

    def __len__(self) -> int:
        return len(self._values)
