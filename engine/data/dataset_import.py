"""``recops import``: stream an interactions file (and an item and a user file) into a new dataset version.

Steps, each able to stop the import before anything is published:

1. every file is opened and checked (``import_sources``): a file that cannot be read at all
   raises ``SourceError`` before a byte is written;
2. the item file, when given, is read whole (it is the catalogue: the interactions are checked
   against its ids) and its bad rows set aside; so is the user file (user_id and attributes to
   break experiment results down by; users of the interactions it lacks are simply unknown);
3. the interactions are streamed batch by batch: checked (``interaction_rows``), the good rows
   appended to ``interactions.parquet``, the bad ones to ``interactions.rejects.csv``, totals
   kept (``InteractionStats``) — memory stays bounded by a batch plus the distinct ids;
4. when a file's share of rejected rows is above ``max_reject_share`` the import is refused
   (``ImportRefused``): its rejects are kept under ``NAME/failed/STAMP/`` and no version appears;
5. otherwise the manifest is written and the staging directory becomes ``vN`` in one rename.

The source files are hashed (SHA-256) in a background thread while they are being read.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engine.data.dataset_store import (
    DEMO,
    INTERACTIONS_FILE,
    ITEMS_FILE,
    MANIFEST_FORMAT,
    USERS_FILE,
    DatasetStore,
    check_name,
)
from engine.data.import_sources import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_BLOCK_BYTES,
    MalformedRecord,
    SourceError,
    SourceFile,
    iter_batches,
    open_source,
)
from engine.data.interaction_rows import (
    INTERACTION_OPTIONAL,
    INTERACTION_REQUIRED,
    ITEM_OPTIONAL,
    ITEM_REQUIRED,
    MALFORMED,
    STORED_INTERACTIONS,
    TIMESTAMP_UNITS,
    USER_REQUIRED,
    CheckedItems,
    CheckedUsers,
    check_interactions,
    check_items,
    check_users,
)
from engine.data.interaction_stats import InteractionStats
from engine.data.schema import DatasetError

INTERACTION_REJECTS = "interactions.rejects.csv"
ITEM_REJECTS = "items.rejects.csv"
USER_REJECTS = "users.rejects.csv"
# a dimension is written as name=value pairs joined by tabs (engine.experiments.dimensions)
_UNSAFE_ATTRIBUTE_NAME = ("=", "\t")
PARQUET_COMPRESSION = "zstd"
# Dictionary pages pay off for the few event labels; for ids they cost more time than they save space.
DICTIONARY_COLUMNS = ["event"]
ROW_GROUP_ROWS = 1 << 19  # ~30 MB of stored rows: large enough for fast scans, small enough to hold twice
EXAMPLES = 5
DEFAULT_MAX_REJECT_SHARE = 0.01
_HASH_CHUNK = 1 << 20
_Checked = TypeVar("_Checked", CheckedItems, CheckedUsers)


def _package_version() -> str:
    """The installed recops package's version (the data layer does not import the engine's top)."""
    try:
        return metadata.version("recops")
    except metadata.PackageNotFoundError:
        return "unknown"



@dataclass(frozen=True)
class ImportOptions:
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE
    timestamp_unit: str = "s"
    encoding: str = "utf-8"
    # canonical column → the name the files use for it, e.g. {"item_id": "movieId"}
    columns: Mapping[str, str] = field(default_factory=dict)
    block_bytes: int = DEFAULT_BLOCK_BYTES
    batch_rows: int = DEFAULT_BATCH_ROWS

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_reject_share <= 1.0:
            raise DatasetError(f"--max-reject-share must be within 0..1, not {self.max_reject_share}")
        if self.timestamp_unit not in TIMESTAMP_UNITS:
            raise DatasetError(f"timestamp unit must be one of {', '.join(TIMESTAMP_UNITS)}")
        known = (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL, *ITEM_OPTIONAL)
        unknown = sorted(set(self.columns) - set(known))
        if unknown:
            raise DatasetError(f"cannot map column {unknown[0]!r}: the columns are {', '.join(known)}")


@dataclass(frozen=True)
class RejectedRow:
    row: int | None  # 1-based data row (header excluded, well-formed rows only); None for a malformed record
    reason: str
    values: dict[str, Any]


@dataclass
class Rejects:
    """Rows read and rejected from one file, with the first examples and where all of them were written."""

    source: Path
    read: int = 0
    rejected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[RejectedRow] = field(default_factory=list)
    file: Path | None = None

    @property
    def share(self) -> float:
        return self.rejected / self.read if self.read else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected": self.rejected,
            "share": round(self.share, 6),
            "by_reason": dict(self.by_reason.most_common()),
            "file": self.file.name if self.file else None,
        }


@dataclass(frozen=True)
class ImportResult:
    name: str
    version: int
    path: Path
    manifest: dict[str, Any]
    interactions: Rejects
    items: Rejects | None
    users: Rejects | None = None


class ImportRefused(DatasetError):
    """Too many rows were rejected (or none was left); nothing was published."""

    def __init__(self, message: str, rejects: list[Rejects]) -> None:
        super().__init__(message)
        self.rejects = rejects


class _RejectsWriter:
    """Rejected rows as CSV: row, reason, the file's own columns as text, and the raw text of malformed records."""

    def __init__(self, path: Path, rejects: Rejects, columns: list[str]) -> None:
        self.path = path
        self.rejects = rejects
        self.columns = columns
        self.schema = pa.schema(
            [("row", pa.int64()), ("reason", pa.string())]
            + [(c, pa.string()) for c in columns]
            + [("raw", pa.string())]
        )
        self._writer: pa_csv.CSVWriter | None = None

    def add(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pa_csv.CSVWriter(self.path, self.schema)
            self.rejects.file = self.path
        self._writer.write_table(table)
        for reason, count in Counter(table.column("reason").to_pylist()).items():
            self.rejects.by_reason[reason] += count
        self.rejects.rejected += table.num_rows
        room = EXAMPLES - len(self.rejects.examples)
        for record in table.slice(0, max(room, 0)).to_pylist():
            values = {c: record[c] for c in self.columns} if record["raw"] is None else {"raw": record["raw"]}
            self.rejects.examples.append(RejectedRow(record["row"], record["reason"], values))

    def rows(self, batch: pa.RecordBatch | pa.Table, positions: np.ndarray, reasons: pa.Array, offset: int) -> None:
        if len(positions) == 0:
            return
        taken = batch.take(pa.array(positions, pa.int64()))
        arrays = [pa.array(positions + offset + 1, pa.int64()), reasons]
        arrays += [pc.cast(taken.column(c), pa.string()) for c in self.columns]
        arrays.append(pa.nulls(len(positions), pa.string()))
        self.add(pa.Table.from_arrays(arrays, schema=self.schema))

    def malformed(self, records: list[MalformedRecord]) -> None:
        if not records:
            return
        n = len(records)
        arrays = [
            pa.nulls(n, pa.int64()),
            pa.array([f"{MALFORMED} (expected {r.expected}, found {r.actual})" for r in records], pa.string()),
        ]
        arrays += [pa.nulls(n, pa.string()) for _ in self.columns]
        arrays.append(pa.array([r.text for r in records], pa.string()))
        self.add(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _BackgroundWriter:
    """``interactions.parquet`` written by a thread of its own while the next batches are read.

    Batches are gathered into row groups of ``ROW_GROUP_ROWS``; encoding and compressing one
    takes about as long as parsing and checking the rows of the next, and pyarrow releases the
    GIL for both, so the two overlap.  Waiting for the previous row group before handing over the
    next keeps at most two in memory.
    """

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(
            path, STORED_INTERACTIONS, compression=PARQUET_COMPRESSION, use_dictionary=DICTIONARY_COLUMNS
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
        self._pending: Future[None] | None = None
        self._gathered: list[pa.Table] = []
        self._gathered_rows = 0

    def write(self, table: pa.Table) -> None:
        self._gathered.append(table)
        self._gathered_rows += table.num_rows
        if self._gathered_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        self._wait()
        if self._gathered:
            group = pa.concat_tables(self._gathered)
            self._gathered, self._gathered_rows = [], 0
            self._pending = self._thread.submit(self._writer.write_table, group, row_group_size=group.num_rows)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises the writer's exception here

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._flush()
                self._wait()
        finally:
            self._thread.shutdown(wait=True)
            self._writer.close()


def sha256_file(path: Path, stop: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            if stop is not None and stop.is_set():
                return ""
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(path: Path, rows: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if rows is not None:
        entry["rows"] = rows
    return entry


def import_dataset(
    store: DatasetStore,
    name: str,
    interactions: Path,
    items: Path | None = None,
    options: ImportOptions | None = None,
    *,
    users: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import the files as the next version of ``name``.

    Raises ``SourceError`` (a file is unusable), ``ImportRefused`` (too many bad rows) or
    ``DatasetError`` (a bad name or option); in every case no version is added or changed.
    ``progress`` is called with the running count of interaction rows read.
    """
    options = options or ImportOptions()
    check_name(name)
    if name == DEMO:
        raise DatasetError(f"{DEMO!r} is the built-in demo world; import under another name")
    interaction_source = open_source(
        Path(interactions), required=INTERACTION_REQUIRED, optional=INTERACTION_OPTIONAL,
        rename=options.columns, encoding=options.encoding,
    )  # fmt: skip
    item_source = None
    if items is not None:
        item_source = open_source(
            Path(items), required=ITEM_REQUIRED, optional=ITEM_OPTIONAL, keep_other_columns=True,
            rename=options.columns, encoding=options.encoding,
        )  # fmt: skip
    user_source = None if users is None else _open_users(Path(users), options)
    started = time.perf_counter()
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        sources = [s.path for s in (interaction_source, item_source, user_source) if s is not None]
        source_hashes = {path: hasher.submit(sha256_file, path, stop) for path in sources}
        try:
            with store.staging(name) as stage:
                return _import_into(
                    store, name, stage, _Sources(interaction_source, item_source, user_source), options,
                    source_hashes, started, progress,
                )  # fmt: skip
        except BaseException:
            stop.set()  # a refused or broken import need not wait for the checksums
            raise


@dataclass(frozen=True)
class _Sources:
    interactions: SourceFile
    items: SourceFile | None
    users: SourceFile | None


def _open_users(path: Path, options: ImportOptions) -> SourceFile:
    """The user file, checked like the others, and its attribute names: each becomes a dimension
    recorded with every exposure as ``name=value`` pairs, so a name may hold neither '=' nor a tab."""
    source = open_source(
        path, required=USER_REQUIRED, keep_other_columns=True, rename=options.columns, encoding=options.encoding
    )
    unsafe = [c for c in source.columns if any(ch in c for ch in _UNSAFE_ATTRIBUTE_NAME)]
    if unsafe:
        raise SourceError(f"{path}: the column name {unsafe[0]!r} holds '=' or a tab; rename it")
    return source


def _import_into(
    store: DatasetStore,
    name: str,
    stage: Path,
    sources_: _Sources,
    options: ImportOptions,
    source_hashes: dict[Path, Future[str]],
    started: float,
    progress: Callable[[int], None] | None,
) -> ImportResult:
    interaction_source, item_source, user_source = sources_.interactions, sources_.items, sources_.users
    item_rejects = None
    catalogue = None
    if item_source is not None:
        checked_items, item_rejects = _read_whole(item_source, stage / ITEM_REJECTS, options, check_items)
        catalogue = checked_items.items
        _refuse_if_too_many(store, name, item_rejects, catalogue.num_rows, options, others=[])
    known_items = None if catalogue is None else catalogue.column("item_id").combine_chunks()
    user_rejects = None
    user_table = None
    if user_source is not None:
        checked_users, user_rejects = _read_whole(user_source, stage / USER_REJECTS, options, check_users)
        user_table = checked_users.users
        others = [item_rejects] if item_rejects else []
        _refuse_if_too_many(store, name, user_rejects, user_table.num_rows, options, others=others)
    file_rejects = [r for r in (item_rejects, user_rejects) if r is not None]

    rejects = Rejects(interaction_source.path)
    writer = _RejectsWriter(stage / INTERACTION_REJECTS, rejects, list(interaction_source.columns))
    stats = InteractionStats()
    parsed = 0  # well-formed records so far: rejects are numbered by them
    with _BackgroundWriter(stage / INTERACTIONS_FILE) as out:
        try:
            for batch, malformed in iter_batches(
                interaction_source, block_bytes=options.block_bytes, batch_rows=options.batch_rows
            ):
                checked = check_interactions(batch, known_items=known_items, timestamp_unit=options.timestamp_unit)
                if checked.kept.num_rows:
                    out.write(checked.kept)
                    stats.add_table(checked.kept)
                writer.rows(batch, checked.rejected, checked.reasons, offset=parsed)
                writer.malformed(malformed)
                parsed += batch.num_rows
                rejects.read += batch.num_rows + len(malformed)
                if progress is not None:
                    progress(rejects.read)
        finally:
            writer.close()
    if rejects.read == 0:
        raise SourceError(f"{interaction_source.path} has a header but no data rows")
    _refuse_if_too_many(store, name, rejects, stats.rows, options, others=file_rejects)

    if catalogue is None:
        catalogue = check_items(pa.table({"item_id": stats.item_ids()})).items
    pq.write_table(catalogue, stage / ITEMS_FILE, compression=PARQUET_COMPRESSION)  # small: dictionaries are fine
    files = {
        INTERACTIONS_FILE: _file_entry(stage / INTERACTIONS_FILE, stats.rows),
        ITEMS_FILE: _file_entry(stage / ITEMS_FILE, catalogue.num_rows),
    }
    if user_table is not None:
        pq.write_table(user_table, stage / USERS_FILE, compression=PARQUET_COMPRESSION)
        files[USERS_FILE] = _file_entry(stage / USERS_FILE, user_table.num_rows)
    for r in (rejects, *file_rejects):
        if r.file is not None:
            files[r.file.name] = _file_entry(r.file, r.rejected)
    sources = {"interactions": _source_entry(interaction_source, source_hashes)}
    if item_source is not None:
        sources["items"] = _source_entry(item_source, source_hashes)
    if user_source is not None:
        sources["users"] = _source_entry(user_source, source_hashes)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": None,  # set by publish
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recops_version": _package_version(),
        "source": {
            "kind": "import",
            **sources,
            "options": {
                "max_reject_share": options.max_reject_share,
                "timestamp_unit": options.timestamp_unit,
                "encoding": options.encoding,
                "columns": dict(options.columns),
            },
        },
        "rows": {"interactions": stats.rows, "items": catalogue.num_rows},
        **stats.summary(),
        "columns": {
            "interactions": [c for c in interaction_source.columns if c in INTERACTION_OPTIONAL],
            "item_attributes": [c for c in catalogue.schema.names if c not in ("item_id", "title", "category")],
        },
        "rejects": {"interactions": rejects.summary(), "items": item_rejects.summary() if item_rejects else None},
        "files": files,
        "import_seconds": round(time.perf_counter() - started, 3),
    }
    if user_table is not None and user_rejects is not None:
        manifest["rows"]["users"] = user_table.num_rows
        manifest["columns"]["user_attributes"] = _attribute_values(user_table)
        listed = pc.is_in(stats.user_ids(), value_set=user_table.column("user_id").combine_chunks())
        manifest["users_with_attributes"] = int(pc.sum(listed).as_py() or 0)
        manifest["rejects"]["users"] = user_rejects.summary()
    version = store.publish(name, stage, manifest)
    folder = store.version_dir(name, version)
    for r in (rejects, *file_rejects):
        if r.file is not None:
            r.file = folder / r.file.name
    return ImportResult(name, version, folder, manifest, rejects, item_rejects, user_rejects)


def _attribute_values(users: pa.Table) -> dict[str, int]:
    """Each user attribute with its number of distinct values (missing ones not counted): what tells
    a dimension to break results down by from an id-like column such as a zip code."""
    return {c: pc.count_distinct(users.column(c)).as_py() for c in users.schema.names if c != "user_id"}


def _read_whole(
    source: SourceFile, rejects_path: Path, options: ImportOptions, check: Callable[[pa.Table], _Checked]
) -> tuple[_Checked, Rejects]:
    """A table read whole (the item or the user file), its rows checked by ``check`` and the bad ones
    written to ``rejects_path``."""
    rejects = Rejects(source.path)
    writer = _RejectsWriter(rejects_path, rejects, list(source.columns))
    batches = []
    malformed: list[MalformedRecord] = []
    for batch, bad in iter_batches(source, block_bytes=options.block_bytes, multiline_values=True):
        batches.append(batch)
        malformed += bad
    rejects.read = sum(b.num_rows for b in batches) + len(malformed)
    if rejects.read == 0:
        raise SourceError(f"{source.path} has a header but no data rows")
    table = pa.Table.from_batches(batches)
    try:
        checked = check(table)
    except DatasetError as exc:
        raise SourceError(f"{source.path}: {exc}") from None
    try:
        writer.rows(table, checked.rejected, checked.reasons, offset=0)
        writer.malformed(malformed)
    finally:
        writer.close()
    return checked, rejects


def _refuse_if_too_many(
    store: DatasetStore, name: str, checked: Rejects, kept: int, options: ImportOptions, others: list[Rejects]
) -> None:
    """``ImportRefused`` when ``checked`` has too many rejects or nothing was kept; every rejects file is kept aside."""
    if checked.share <= options.max_reject_share and kept > 0:
        return
    kept_dir = store.failed_dir(name, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"))
    for r in (checked, *others):
        if r.file is not None:
            kept_dir.mkdir(parents=True, exist_ok=True)
            r.file = Path(shutil.move(str(r.file), kept_dir / r.file.name))
    where = f"; rejected rows in {kept_dir}" if kept_dir.exists() else ""
    top = ", ".join(f"{reason} ×{count:,}" for reason, count in checked.by_reason.most_common(3))
    if kept == 0:
        why = f"no valid rows, all {checked.read:,} rejected"
    else:
        why = (f"{checked.rejected:,} of {checked.read:,} rows rejected ({checked.share:.2%}, above the "
               f"--max-reject-share of {options.max_reject_share:.2%})")  # fmt: skip
    raise ImportRefused(f"{checked.source}: {why}: {top}{where}", [checked, *others])


def _source_entry(source: SourceFile, hashes: dict[Path, Future[str]]) -> dict[str, Any]:
    return {
        "file": source.path.name,
        "path": str(source.path.resolve()),
        "format": source.kind,
        "bytes": source.path.stat().st_size,
        "sha256": hashes[source.path].result(),
        "columns": dict(source.columns),
    }
