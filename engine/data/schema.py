"""The internal tables every loader produces and every model consumes.

``items``:  item_id (str), title (str), category (str), popularity (float, share of interactions),
            avg_rating (float, NaN when unrated).
``events``: user_id (str), item_id (str), type (one of ``EVENT_TYPES``), timestamp (float, Unix
            seconds), value (float: the rating for ``rating`` events, the price for ``purchase``,
            else 1.0); optionally ``weight`` (float >= 0: how much the event says about the user's
            taste; imported datasets have it, see ``interaction_weights``).

Ids are strings everywhere outside a model's internal index so that Redis keys, the API and the
console never disagree on what ``"42"`` means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

EVENT_TYPES: tuple[str, ...] = ("impression", "view", "click", "add_to_cart", "purchase", "rating")

# How much an event says about a user's taste, for implicit-feedback training.  An impression
# says nothing on its own (the user only saw the item), so it does not count.
EVENT_WEIGHTS: dict[str, float] = {
    "impression": 0.0,
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
    "rating": 1.0,
}

ITEM_COLUMNS = ("item_id", "title", "category", "popularity", "avg_rating")
EVENT_COLUMNS = ("user_id", "item_id", "type", "timestamp", "value")
WEIGHT_COLUMN = "weight"


def interaction_weights(events: pd.DataFrame) -> np.ndarray:
    """How much each event says about its user's taste (float64; 0 = nothing, not an interaction).

    An imported dataset carries its own ``weight`` column (the file's weight, else its rating,
    else the event label's weight: ``engine.data.interaction_rows``), which wins; events without
    one — the demo world, MovieLens read by ``evaluate`` — are weighted by type (``EVENT_WEIGHTS``).
    """
    if WEIGHT_COLUMN in events.columns:
        return events[WEIGHT_COLUMN].to_numpy(dtype=np.float64, na_value=0.0)
    return events["type"].map(EVENT_WEIGHTS).fillna(0.0).to_numpy(dtype=np.float64)


class DatasetError(ValueError):
    """A dataset directory or table is missing or malformed; the message says what and where."""


@dataclass
class Dataset:
    items: pd.DataFrame
    events: pd.DataFrame
    name: str = "dataset"
    _interactions: InteractionMatrix | None = field(default=None, repr=False)
    # optional user attributes: user_id and one string column per dimension (device, country...), for
    # experiment breakdowns; the demo world has them, an imported dataset when imported with --users
    users: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        missing = [c for c in ITEM_COLUMNS if c not in self.items.columns]
        if missing:
            raise DatasetError(f"items table lacks columns {missing}")
        missing = [c for c in EVENT_COLUMNS if c not in self.events.columns]
        if missing:
            raise DatasetError(f"events table lacks columns {missing}")

    @property
    def n_users(self) -> int:
        return int(self.events["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return len(self.items)

    def interactions(self) -> InteractionMatrix:
        if self._interactions is None:
            self._interactions = InteractionMatrix.from_events(self.events, self.items["item_id"])
        return self._interactions

    def with_events(self, events: pd.DataFrame, name: str | None = None) -> Dataset:
        """Same catalogue, other events (a train or test split)."""
        return Dataset(items=self.items, events=events.reset_index(drop=True), name=name or self.name,
                       users=self.users)


@dataclass
class InteractionMatrix:
    """Users × items confidence matrix (CSR) with the id ↔ index maps.

    ``matrix[u, i]`` is the summed ``interaction_weights`` of user u's events on item i; ``last_seen``
    the timestamp of the latest such event, which time-decayed models use.
    """

    matrix: sparse.csr_matrix
    last_seen: sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_index: dict[str, int]
    item_index: dict[str, int]

    @classmethod
    def from_events(cls, events: pd.DataFrame, item_ids: pd.Series | np.ndarray) -> InteractionMatrix:
        item_ids = np.asarray(item_ids, dtype=object)
        item_index = {iid: i for i, iid in enumerate(item_ids)}
        weights = interaction_weights(events).astype(np.float32)
        keep = (weights > 0) & events["item_id"].isin(item_index).to_numpy()
        ev = events.loc[keep]
        weights = weights[keep]
        user_ids = np.asarray(pd.unique(ev["user_id"]), dtype=object)
        user_index = {uid: u for u, uid in enumerate(user_ids)}
        rows = ev["user_id"].map(user_index).to_numpy(dtype=np.int64)
        cols = ev["item_id"].map(item_index).to_numpy(dtype=np.int64)
        shape = (len(user_ids), len(item_ids))
        matrix = sparse.csr_matrix((weights, (rows, cols)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        # max timestamp per cell: sort so the latest write wins when duplicates are dropped
        order = np.argsort(ev["timestamp"].to_numpy())
        ts = sparse.coo_matrix(
            (ev["timestamp"].to_numpy(dtype=np.float64)[order], (rows[order], cols[order])), shape=shape
        )
        last = pd.DataFrame({"r": ts.row, "c": ts.col, "t": ts.data}).groupby(["r", "c"], sort=False)["t"].max()
        last_seen = sparse.csr_matrix(
            (last.to_numpy(), (last.index.get_level_values(0), last.index.get_level_values(1))), shape=shape
        )
        return cls(matrix, last_seen, user_ids, item_ids, user_index, item_index)
