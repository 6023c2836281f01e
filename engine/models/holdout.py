"""The two holdouts ``recops train`` scores every model on.

* **time**: train on everything up to ``days`` before the newest interaction, test on what each
  user already known by then did afterwards — the question production asks ("what will they do
  next?"), and the one tuning optimises;
* **per-user**: Microsoft Recommenders' stratified 75/25 split with seed 42
  (``engine.data.split.stratified_split``), comparable with published tables.

Either may be impossible on a given dataset (no timestamps spread over more than ``days``, users
with too few items); it is then reported as unavailable with the reason, never silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine.data.schema import Dataset, DatasetError
from engine.data.split import interaction_events
from engine.models.evaluation import EvaluationSplit

SECONDS_PER_DAY = 86_400.0
PER_USER_SEED = 42
PER_USER_RATIO = 0.75
TIME = "time"
PER_USER = "per_user"


def time_split(events: pd.DataFrame, days: float) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """(train, test, cutoff): interaction events up to ``cutoff`` = newest − ``days``, and after it.

    The test half keeps one row per (user, item) pair, the latest, since each pair counts once.
    """
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    ev = interaction_events(events)
    if ev.empty:
        return ev.copy(), ev.copy(), float("nan")
    cutoff = float(ev["timestamp"].max()) - days * SECONDS_PER_DAY
    after = ev["timestamp"] > cutoff
    test = ev.loc[after].sort_values("timestamp", kind="stable").drop_duplicates(["user_id", "item_id"], keep="last")
    return ev.loc[~after].reset_index(drop=True), test.reset_index(drop=True), cutoff


@dataclass(frozen=True)
class Holdout:
    """One holdout: its split, or why there is none, and what defines it (recorded in lineage)."""

    kind: str
    split: EvaluationSplit | None
    definition: dict[str, float | int | str]
    unavailable: str | None = None


def time_holdout(dataset: Dataset, days: float) -> Holdout:
    train, test, cutoff = time_split(dataset.events, days)
    definition: dict[str, float | int | str] = {"days": days, "cutoff": cutoff}
    if test.empty:
        return Holdout(TIME, None, definition, f"no interactions in the last {days:g} days")
    if train.empty:
        return Holdout(TIME, None, definition, f"every interaction is in the last {days:g} days: none to train on")
    try:
        return Holdout(TIME, EvaluationSplit.from_halves(dataset, train, test), definition)
    except DatasetError as exc:
        return Holdout(TIME, None, definition, str(exc))


def per_user_holdout(dataset: Dataset, seed: int = PER_USER_SEED) -> Holdout:
    definition: dict[str, float | int | str] = {"seed": seed, "ratio": PER_USER_RATIO}
    try:
        return Holdout(PER_USER, EvaluationSplit.build(dataset, seed=seed), definition)
    except DatasetError as exc:
        return Holdout(PER_USER, None, definition, str(exc))
