"""What a model version learnt from, recorded beside it in the registry.

Every version's lineage has the same keys, whether ``recops train`` made it (with holdout metrics)
or the first start of the engine did (metrics empty):

    dataset, dataset_version     the stored dataset and its version
    interactions                 dataset rows learnt from (events that carry a preference)
    data_from, data_to           the time range of those rows (ISO 8601, UTC)
    events, events_from, events_to   logged live events learnt from (``engine.data.logged_events``):
                                 how many (of any type), the time range of their timestamps;
                                 0 and null without any (``--no-events``, nothing tracked)
    params                       the model's hyper-parameters
    metrics                      {"time": {...}, "per_user": {...}}, each a holdout's scores
    code_version                 ``git describe`` of the source, else the package version
    train_seconds                the final fit on everything
    trained_at                   when that fit ended (ISO 8601, UTC)
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from engine.data.logged_events import LoggedEvents
from engine.data.split import interaction_events

REPOSITORY = Path(__file__).resolve().parents[2]


def utc_iso(seconds: float | None = None) -> str:
    moment = datetime.now(timezone.utc) if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe --always --dirty`` of the checkout, else the installed package's version."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPOSITORY), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
        if done.returncode == 0 and done.stdout.strip():
            return f"git:{done.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"recops {metadata.version('recops')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def lineage(
    *,
    dataset: str,
    dataset_version: int | None,
    events: pd.DataFrame,
    params: dict[str, Any],
    train_seconds: float,
    metrics: dict[str, Any] | None = None,
    logged: LoggedEvents | None = None,
) -> dict[str, Any]:
    """The lineage record of a model fitted on the dataset's ``events`` and the ``logged`` ones
    (see the module docstring)."""
    rows = interaction_events(events)
    times = rows["timestamp"]
    first, last = (logged.first, logged.last) if logged is not None else (None, None)
    return {
        "dataset": dataset,
        "dataset_version": dataset_version,
        "interactions": len(rows),
        "data_from": utc_iso(float(times.min())) if len(rows) else None,
        "data_to": utc_iso(float(times.max())) if len(rows) else None,
        "events": logged.count if logged is not None else 0,
        "events_from": utc_iso(first) if first is not None else None,
        "events_to": utc_iso(last) if last is not None else None,
        "params": params,
        "metrics": metrics or {},
        "code_version": code_version(),
        "train_seconds": round(train_seconds, 4),
        "trained_at": utc_iso(),
    }
