"""The event log: tracked events at rest, one Parquet file per durable batch, partitioned by UTC day.

    <data_dir>/events/<dataset>/day=2026-12-02/<batch>.parquet
    <data_dir>/events/<dataset>/day=2026-12-02/_manifest.json   {"files": {"<batch>.parquet": {"rows", "sha256"}}}

    >>> log = EventLog.for_dataset(settings, "shop")
    >>> log.append([{"stream_id": "1733-0", "event_id": "e1", "user_id": "u1", "item_id": "i9",
    ...              "type": "purchase", "timestamp": 1733100000.0, "value": 19.9}], batch="1733-0")
    1
    >>> log.read().num_rows                     # every event once, oldest first
    1
    >>> log.training_events(until=time.time())  # the ``events`` table models train on

The stream consumer (``engine.events.consumer``) writes it; training (``engine.models.training``)
and the console read it.

Durability.  A batch is written under a temporary name, flushed, renamed, its directory flushed,
and only then listed in its day's manifest (itself replaced atomically).  Readers list files from
the manifests, so a crash leaves a batch either complete and listed or not there at all; the
consumer acknowledges stream entries only after ``append`` returned.

Delivery is at least once: a consumer that dies after ``append`` and before its acknowledgement
has its entries re-delivered, and they are written again.  ``read`` therefore keeps one row per
(user_id, event_id) — the tracker's definition of one event (idempotency is per user) — so a
re-delivered batch never counts twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.config import Settings
from engine.data.durable_files import fsync_dir, write_text_atomic
from engine.data.schema import DatasetError

SCHEMA = pa.schema([
    ("stream_id", pa.string()),
    ("event_id", pa.string()),
    ("user_id", pa.string()),
    ("item_id", pa.string()),
    ("type", pa.string()),
    ("timestamp", pa.float64()),
    ("value", pa.float64()),  # null when the event carried none
    ("request_id", pa.string()),
    # an exploring arm's impressions (engine.serving.exploring_lists); null on every other event, and
    # read as null from logs written before these columns existed
    ("position", pa.int32()),
    ("propensity", pa.float64()),
    ("prefix_propensity", pa.float64()),
    ("marginal_propensity", pa.float64()),
    ("policy", pa.string()),
])  # fmt: skip
MANIFEST = "_manifest.json"
LOCK = ".event-log.lock"
_DAY = re.compile(r"day=(\d{4}-\d{2}-\d{2})")
_BATCH = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# the ``value`` of an event that carried none, in the training table (schema.py: "else 1.0")
DEFAULT_VALUE = 1.0


class EventLogError(DatasetError):
    """The log on disk is not what its manifests say (a file missing, or its checksum differs)."""


def event_log_root(settings: Settings) -> Path:
    return settings.data_dir / "events"


def day_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EventLog:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_dataset(cls, settings: Settings, dataset: str) -> EventLog:
        return cls(event_log_root(settings) / dataset)

    # ---- writing ----------------------------------------------------------------------
    def append(self, rows: Iterable[Mapping[str, Any]], batch: str) -> int:
        """Write ``rows`` durably (one file per UTC day they fall on) and return how many.

        ``batch`` names the files (the consumer passes the first stream id of the batch); a batch
        written again after a crash gets new files, and ``read`` drops the repeated events.
        """
        if not _BATCH.fullmatch(batch):
            raise ValueError(f"batch name {batch!r} must match {_BATCH.pattern}")
        table = pa.Table.from_pylist([dict(r) for r in rows], schema=SCHEMA)
        if table.num_rows == 0:
            return 0
        seconds = table["timestamp"].to_numpy().astype("datetime64[s]")
        days = pa.array(np.datetime_as_string(seconds, unit="D"))
        with self._locked():
            for day in sorted(set(days.to_pylist())):
                self._write_part(day, table.filter(pc.equal(days, day)), batch)
        return table.num_rows

    def _write_part(self, day: str, table: pa.Table, batch: str) -> None:
        folder = self.root / f"day={day}"
        folder.mkdir(parents=True, exist_ok=True)
        # the same batch re-written after a crash may hold other entries: never overwrite a listed file
        content = hashlib.sha256("\n".join(table["stream_id"].to_pylist()).encode()).hexdigest()[:12]
        name = f"{batch}-{content}.parquet"
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(folder)
        manifest = self._manifest(folder)
        manifest["files"][name] = {"rows": table.num_rows, "sha256": _sha256(folder / name)}
        write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # consumers in several processes may write the same day: the manifest update is serialised
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- reading ----------------------------------------------------------------------
    @staticmethod
    def _manifest(folder: Path) -> dict[str, Any]:
        path = folder / MANIFEST
        if not path.exists():
            return {"format": 1, "files": {}}
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def days(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(m.group(1) for p in self.root.iterdir() if p.is_dir() and (m := _DAY.fullmatch(p.name)))

    def files(self, until_day: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
        """Every listed batch file with its manifest entry, by day."""
        out = []
        for day in self.days():
            if until_day is not None and day > until_day:
                break
            folder = self.root / f"day={day}"
            for name, entry in sorted(self._manifest(folder)["files"].items()):
                out.append((folder / name, entry))
        return out

    def read(self, until: float | None = None, since: float | None = None) -> pa.Table:
        """Every logged event once (its first copy), with ``since <= timestamp <= until``,
        ordered by timestamp (ties in the order they were written)."""
        listed = self.files(day_of(until) if until is not None else None)
        if not listed:
            return SCHEMA.empty_table()
        missing = [str(p) for p, _ in listed if not p.exists()]
        if missing:
            raise EventLogError(f"event log {self.root}: listed files are missing: {', '.join(missing[:5])}")
        table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p, _ in listed])
        if until is not None:
            table = table.filter(pc.less_equal(table["timestamp"], until))
        if since is not None:
            table = table.filter(pc.greater_equal(table["timestamp"], since))
        return _deduplicated(table)

    def count(self) -> int:
        return self.read().num_rows

    def training_events(self, until: float | None = None) -> pd.DataFrame:
        """The logged events as a ``schema`` events table (user_id, item_id, type, timestamp, value),
        with each event's ``event_id`` beside."""
        table = self.read(until=until)
        frame = table.select(["user_id", "item_id", "type", "timestamp", "value", "event_id"]).to_pandas()
        frame["value"] = frame["value"].fillna(DEFAULT_VALUE).astype(np.float64)
        return frame

    def summary(self) -> dict[str, Any]:
        """Sizes for the console and ``recops consume --status``: events (deduplicated), files, days."""
        table = self.read()
        times = table["timestamp"]
        return {
            "root": str(self.root),
            "events": table.num_rows,
            "files": len(self.files()),
            "days": self.days(),
            "first": float(pc.min(times).as_py()) if table.num_rows else None,
            "last": float(pc.max(times).as_py()) if table.num_rows else None,
        }

    def verify(self) -> list[str]:
        """Problems found checking every listed file's row count and checksum (empty when sound)."""
        problems = []
        for path, entry in self.files():
            if not path.exists():
                problems.append(f"{path}: listed but missing")
            elif _sha256(path) != entry["sha256"]:
                problems.append(f"{path}: checksum differs from the manifest")
            elif pq.ParquetFile(path).metadata.num_rows != entry["rows"]:
                problems.append(f"{path}: row count differs from the manifest")
        return problems


def _deduplicated(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    frame = table.to_pandas()
    frame = frame.drop_duplicates(["user_id", "event_id"], keep="first").sort_values("timestamp", kind="stable")
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
