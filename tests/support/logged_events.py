"""Events written straight into a dataset's event log, as the stream consumer writes them."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from engine.config import Settings
from engine.data.event_log import EventLog, event_log_root

_IDS = itertools.count()


def log_events(data_dir: Path, dataset: str, events: list[tuple[str, str, str]], at: float | None = None,
               step: float = 1.0) -> int:
    """Append (user_id, item_id, type) events to ``dataset``'s log under ``data_dir``, one ``step``
    apart and ending at ``at`` (default: a second ago, so that a training started now includes them);
    returns how many were written."""
    end = (time.time() - 1.0) if at is None else at
    first = end - step * (len(events) - 1)
    n = next(_IDS)
    rows = [{"stream_id": f"{n}-{i}", "event_id": f"t{n}-{i}", "user_id": user, "item_id": item, "type": kind,
             "timestamp": first + i * step, "value": 19.9 if kind == "purchase" else None}
            for i, (user, item, kind) in enumerate(events)]
    log = EventLog(event_log_root(Settings(data_dir=data_dir)) / dataset)
    return log.append(rows, batch=f"test-{n}")
