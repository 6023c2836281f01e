"""Running totals of an interaction table fed batch by batch: rows, distinct users and items, time range, events.

Memory grows with the number of *distinct* ids, never with the number of rows: each batch's
distinct ids are set aside and merged into the running set once they add up to
``compact_after`` values.  The same totals describe an imported dataset and the demo world, so
both manifests are computed by this one class.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class _DistinctValues:
    """Distinct values in first-seen order."""

    def __init__(self, compact_after: int) -> None:
        self._known = pa.array([], pa.string())
        self._pending: list[pa.Array] = []
        self._pending_size = 0
        self._compact_after = compact_after

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        fresh = pc.unique(values)
        if isinstance(fresh, pa.ChunkedArray):
            fresh = fresh.combine_chunks()
        if fresh.type != pa.string():
            fresh = fresh.cast(pa.string())  # large_string (pandas), integer ids...
        self._pending.append(fresh)
        self._pending_size += len(fresh)
        if self._pending_size >= self._compact_after:
            self._compact()

    def _compact(self) -> None:
        if self._pending:  # merging is the costly part: once per ``compact_after`` new values
            merged = pa.concat_arrays([self._known, *self._pending])
            self._known = pc.unique(merged)
            self._pending, self._pending_size = [], 0

    def values(self) -> pa.Array:
        self._compact()
        return self._known.drop_null()


class InteractionStats:
    def __init__(self, compact_after: int = 2_000_000) -> None:
        self.rows = 0
        self._users = _DistinctValues(compact_after)
        self._items = _DistinctValues(compact_after)
        self._events: Counter[str] = Counter()
        self._min: int | None = None
        self._max: int | None = None

    def add(
        self,
        user_ids: pa.Array | pa.ChunkedArray,
        item_ids: pa.Array | pa.ChunkedArray,
        events: pa.Array | pa.ChunkedArray,
        timestamps: pa.Array | pa.ChunkedArray,
    ) -> None:
        """One batch: string ids and event labels, int64 Unix seconds (null when unknown)."""
        self.rows += len(user_ids)
        self._users.add(user_ids)
        self._items.add(item_ids)
        for entry in pc.value_counts(events).to_pylist():
            self._events[str(entry["values"])] += int(entry["counts"])
        bounds = pc.min_max(timestamps).as_py()
        if bounds["min"] is not None:
            low, high = int(bounds["min"]), int(bounds["max"])
            self._min = low if self._min is None else min(self._min, low)
            self._max = high if self._max is None else max(self._max, high)

    def add_table(self, table: pa.Table) -> None:
        self.add(table["user_id"], table["item_id"], table["event"], table["timestamp"])

    def user_ids(self) -> pa.Array:
        """Every user id seen, in order of first appearance."""
        return self._users.values()

    def item_ids(self) -> pa.Array:
        """Every item id seen, in order of first appearance."""
        return self._items.values()

    def summary(self) -> dict[str, Any]:
        """Distinct users and items, time range and event counts (the rows are ``self.rows``)."""
        return {
            "users": len(self._users.values()),  # values() after a compaction costs nothing
            "items_with_interactions": len(self._items.values()),
            "time_range": None
            if self._min is None or self._max is None
            else {
                "min": self._min,
                "max": self._max,
                "min_utc": _iso(self._min),
                "max_utc": _iso(self._max),
            },
            "events": dict(sorted(self._events.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
