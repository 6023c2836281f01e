"""Pre-exposure covariates for CUPED: each user's clicks and purchases in the dataset history, and
for user-defined metrics the count and value sum of every event type the history has (``custom``).

The history predates every exposure by construction, so the covariate cannot be moved by the
treatment — the condition for CUPED to stay unbiased.  It is looked up in process when a user is
exposed and stored with the exposure record; users without history get zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.data.schema import Dataset
from engine.experiments.metrics import COVARIATES

_EVENT_OF = {"clicks": "click", "purchases": "purchase"}


class PreExposure:
    def __init__(
        self,
        values: Mapping[str, tuple[float, ...]] | None = None,
        counters: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._values = dict(values or {})
        self._zero = tuple(0.0 for _ in COVARIATES)
        # custom counter (``count:<type>``, ``sum:<type>``) -> user -> pre-exposure value
        self._counters = {c: dict(v) for c, v in (counters or {}).items()}

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> PreExposure:
        events = dataset.events
        columns = []
        for covariate in COVARIATES:
            mask = (events["type"] == _EVENT_OF[covariate]).to_numpy()
            columns.append(events.loc[mask, "user_id"].astype(str).value_counts())
        users = sorted(set().union(*(c.index for c in columns)))
        table = np.column_stack([c.reindex(users, fill_value=0).to_numpy(dtype=np.float64) for c in columns])
        values = {u: tuple(float(x) for x in row) for u, row in zip(users, table, strict=True)}
        return cls(values, _counters_of(events))

    def get(self, user_id: str) -> tuple[float, ...]:
        """One value per name in ``COVARIATES``."""
        return self._values.get(user_id, self._zero)

    def custom(self, user_id: str, counters: tuple[str, ...]) -> tuple[float, ...]:
        """The user's pre-exposure value of each custom counter (0 for an event type never seen)."""
        return tuple(self._counters.get(c, {}).get(user_id, 0.0) for c in counters)

    def __len__(self) -> int:
        return len(self._values)


def _counters_of(events: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per event type, each user's count (``count:<type>``) and value sum (``sum:<type>``)."""
    users = events["user_id"].astype(str)
    values = pd.to_numeric(events["value"], errors="coerce").fillna(0.0) if "value" in events else None
    out: dict[str, dict[str, float]] = {}
    for event_type, index in events.groupby("type").groups.items():
        who = users.loc[index]
        out[f"count:{event_type}"] = {str(u): float(n) for u, n in who.value_counts().items()}
        if values is not None:
            sums = values.loc[index].groupby(who).sum()
            out[f"sum:{event_type}"] = {str(u): float(v) for u, v in sums.items() if v}
    return out
