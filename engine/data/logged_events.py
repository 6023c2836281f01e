"""The event log's events a training run learns from, merged into its dataset's events table.

``recops train`` (and ``POST /admin/train``, the console's train action, the retrain schedule)
reads the dataset's event log up to the moment training starts and trains on the dataset's
events plus those:

    >>> logged = read_logged_events(EventLog.for_dataset(settings, "shop"), stored.dataset, until=time.time())
    >>> logged.count, logged.unknown_items        # included, and dropped (item not in the catalogue)
    >>> dataset = logged.merged_into(stored.dataset)

Merging keeps one definition of every rule:

* weights: a logged event weighs what its type weighs (``interaction_weights`` of a table without
  a ``weight`` column, i.e. ``EVENT_WEIGHTS``).  An imported dataset's events carry their own
  ``weight`` column (the file's weight wins there), so the logged rows get that column filled with
  their type's weight — without it, ``interaction_weights`` would read them as weight 0;
* the other columns of the stored layout (``engine.data.dataset_store.to_dataset``) are filled as
  an import fills them: ``event`` is the type, ``rating`` the value of a ``rating`` event;
* an event whose item is not in the dataset's catalogue is dropped and counted: the API refuses
  those, but a log written while another dataset version was served may hold some;
* users who exist only in the log are new rows like any other: the model learns them.

The log is deduplicated by (user, event id) when read (``EventLog.read``); a logged event is not
matched against the dataset's rows, which come from an import and are not events of the log — with
one exception: ``recops replay`` sends a dataset version's own rows as live traffic, under ids
``replay_id_prefix(name, version)`` + row.  Those are interactions the version already holds, so
training on that version leaves them out (counted as ``replayed``) instead of learning them twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.data.event_log import EventLog
from engine.data.schema import EVENT_COLUMNS, WEIGHT_COLUMN, Dataset, interaction_weights

# stored-layout columns of an imported dataset's events beyond ``EVENT_COLUMNS`` (see to_dataset)
EVENT_LABEL_COLUMN = "event"
RATING_COLUMN = "rating"


def replay_id_prefix(name: str, version: int) -> str:
    """The event ids ``recops replay`` gives the rows of dataset ``name`` at ``version`` it sends."""
    return f"replay:{name}:v{version}:"


@dataclass(frozen=True)
class LoggedEvents:
    """Logged events checked against a catalogue: those a model may learn from, and how many were not."""

    events: pd.DataFrame  # ``EVENT_COLUMNS``, items in the catalogue, oldest first
    unknown_items: int = 0  # dropped: their item is not in the dataset's catalogue
    replayed: int = 0  # dropped: ``recops replay`` of the dataset version's own rows, already in it
    until: float | None = None  # the log was read up to this moment (Unix seconds)

    @classmethod
    def none(cls) -> LoggedEvents:
        """No logged events (``--no-events``, or a dataset nothing was tracked for)."""
        return cls(pd.DataFrame({c: pd.Series(dtype=object if c in ("user_id", "item_id", "type") else np.float64)
                                 for c in EVENT_COLUMNS}))

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def first(self) -> float | None:
        return float(self.events["timestamp"].min()) if self.count else None

    @property
    def last(self) -> float | None:
        return float(self.events["timestamp"].max()) if self.count else None

    @property
    def users(self) -> int:
        return int(self.events["user_id"].nunique())

    def merged_into(self, dataset: Dataset) -> Dataset:
        """``dataset`` with these events added (same catalogue), ordered by time; itself when there are none."""
        if not self.count:
            return dataset
        rows = _in_layout(self.events, dataset.events.columns)
        events = pd.concat([dataset.events, rows], ignore_index=True).sort_values("timestamp", kind="stable")
        return dataset.with_events(events)


def checked_events(logged: pd.DataFrame, dataset: Dataset, until: float | None = None,
                   replayed_ids: str | None = None) -> LoggedEvents:
    """``logged`` (a schema events table) without the events of items outside ``dataset``'s catalogue,
    nor, given ``replayed_ids`` (a ``replay_id_prefix``) and an ``event_id`` column, the replayed rows."""
    replayed = np.zeros(len(logged), dtype=bool)
    if replayed_ids is not None and "event_id" in logged:
        replayed = logged["event_id"].astype(str).str.startswith(replayed_ids).to_numpy()
    known = logged["item_id"].isin(set(dataset.items["item_id"])).to_numpy()
    kept = logged.loc[known & ~replayed, list(EVENT_COLUMNS)].sort_values("timestamp", kind="stable")
    return LoggedEvents(kept.reset_index(drop=True), unknown_items=int((~known & ~replayed).sum()),
                        replayed=int(replayed.sum()), until=until)


def read_logged_events(log: EventLog, dataset: Dataset, until: float, replayed_ids: str | None = None) -> LoggedEvents:
    """The events ``log`` holds with a timestamp up to ``until``, checked against ``dataset``'s catalogue
    (and without the rows of ``replayed_ids``, see ``checked_events``)."""
    return checked_events(log.training_events(until=until), dataset, until, replayed_ids)


def _in_layout(events: pd.DataFrame, columns: pd.Index) -> pd.DataFrame:
    """Logged ``events`` with the extra columns ``columns`` has filled (see the module docstring)."""
    rows = events.copy()
    if WEIGHT_COLUMN in columns:
        rows[WEIGHT_COLUMN] = interaction_weights(events)  # no weight column yet: weighted by type
    if EVENT_LABEL_COLUMN in columns:
        rows[EVENT_LABEL_COLUMN] = events["type"]
    if RATING_COLUMN in columns:
        rows[RATING_COLUMN] = events["value"].where(events["type"] == "rating", np.nan).astype(np.float64)
    return rows
