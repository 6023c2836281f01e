"""The input files of ``recops import``: checked up front, then read as a stream of record batches.

Everything that makes a whole file unusable — a type we do not read, a 0-byte file, binary content,
text that is not in the expected encoding, a duplicate or missing column — is found here and raised
as one ``SourceError`` line naming the file, before anything is written.  Row-level problems are
the validator's (``interaction_rows``); rows whose field count does not match the header are caught
while parsing and handed on as ``MalformedRecord`` so that they can be counted as rejects too.

CSV is parsed by pyarrow's streaming reader (``pyarrow.csv.open_csv``) in blocks of
``block_size`` bytes, Parquet by ``ParquetFile.iter_batches``: memory is bounded by a few blocks,
not by the file.  Every CSV column is read as text so that one odd value can neither change a
column's inferred type mid-file nor abort the read; the validator parses the values.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engine.data.schema import DatasetError

SourceKind = Literal["csv", "parquet"]

# suffix → (kind, delimiter); compressed text is detected by pyarrow from the ".gz"/".bz2"/".zst" ending
_SUFFIXES: dict[str, tuple[SourceKind, str]] = {
    ".csv": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".parquet": ("parquet", ""),
    ".pq": ("parquet", ""),
}
_COMPRESSIONS = (".gz", ".bz2", ".zst")
SUPPORTED_TYPES = ".csv, .tsv (optionally .gz, .bz2 or .zst compressed), .parquet"

_SNIFF_BYTES = 1 << 20  # the first MiB is checked for binary content and the encoding
_MAGIC = {b"PAR1": "a Parquet file", b"PK\x03\x04": "a zip archive (an Excel workbook?)"}

# pyarrow's streaming CSV reader parses ~40 blocks ahead of its consumer: 2 MiB blocks bound that to ~80 MB
# (8 MiB blocks made it ~320 MB) at no measurable cost in speed.
DEFAULT_BLOCK_BYTES = 2 << 20
DEFAULT_BATCH_ROWS = 256 * 1024


class SourceError(DatasetError):
    """The file cannot be imported at all; the message is one line that names it."""


@dataclass(frozen=True)
class MalformedRecord:
    """A CSV record whose number of fields differs from the header's."""

    expected: int
    actual: int
    text: str


@dataclass(frozen=True)
class SourceFile:
    path: Path
    kind: SourceKind
    delimiter: str
    encoding: str
    # canonical column name → the name as written in the file, for the columns that are read
    columns: dict[str, str]


def _suffix(path: Path) -> tuple[SourceKind, str]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] in _SUFFIXES and _SUFFIXES[suffixes[-1]][0] == "csv":
            return _SUFFIXES[suffixes[-1]]
    elif suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    found = "".join(path.suffixes) or "no extension"
    raise SourceError(f"{path}: unsupported file type ({found}); use {SUPPORTED_TYPES}")


def open_source(
    path: Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    keep_other_columns: bool = False,
    rename: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
) -> SourceFile:
    """Check ``path`` and resolve its columns; raises ``SourceError`` (one line) when it cannot be read.

    File columns match the canonical names case-insensitively; ``rename`` maps a canonical name to
    the file's own name for it (``{"item_id": "movieId"}``).  With ``keep_other_columns`` every
    further named column is read too, under its own name.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path} is not a file")
    kind, delimiter = _suffix(path)
    if path.stat().st_size == 0:
        raise SourceError(f"{path} is empty (0 bytes)")
    header = _parquet_header(path) if kind == "parquet" else _csv_header(path, delimiter, encoding)
    columns = _resolve_columns(path, header, required, optional, keep_other_columns, rename or {})
    return SourceFile(path=path, kind=kind, delimiter=delimiter, encoding=encoding, columns=columns)


def _parquet_header(path: Path) -> list[str]:
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path} is not a readable Parquet file ({_first_line(exc)})") from None
    if meta.num_rows == 0:
        raise SourceError(f"{path} has no rows")
    return list(meta.schema.to_arrow_schema().names)


def _csv_header(path: Path, delimiter: str, encoding: str) -> list[str]:
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            sample = stream.read(_SNIFF_BYTES)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: cannot be read ({_first_line(exc)})") from None
    for magic, what in _MAGIC.items():
        if sample.startswith(magic):
            raise SourceError(f"{path} is {what}, not {'tab' if delimiter == chr(9) else 'comma'}-separated text")
    if b"\x00" in sample:
        raise SourceError(f"{path} holds binary data, not {encoding} text")
    if not sample.strip():
        raise SourceError(f"{path} has no header line")
    # only whole lines: a multi-byte character may straddle the end of the sample
    complete = sample if len(sample) < _SNIFF_BYTES else sample[: sample.rfind(b"\n") + 1] or sample
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = complete.decode(codec)
    except UnicodeDecodeError as exc:
        line = complete[: exc.start].count(b"\n") + 1
        raise SourceError(
            f"{path} is not {encoding} text (byte 0x{complete[exc.start]:02x} on line {line}); "
            "save it as UTF-8 or pass --encoding"
        ) from None
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r}") from None
    first = next(csv.reader([text.splitlines()[0] if text else ""], delimiter=delimiter), [])
    return first


def _resolve_columns(
    path: Path,
    header: Sequence[str],
    required: Sequence[str],
    optional: Sequence[str],
    keep_other_columns: bool,
    rename: Mapping[str, str],
) -> dict[str, str]:
    names = [h.strip() for h in header]
    seen: dict[str, str] = {}
    for name in names:
        if not name:
            continue
        key = name.lower()
        if key in seen:
            raise SourceError(f"{path}: duplicate column {name!r} in the header")
        seen[key] = name
    raw = dict(zip(names, header, strict=True))
    columns: dict[str, str] = {}
    for canonical in (*required, *optional):
        wanted = rename.get(canonical, canonical).strip().lower()
        if wanted in seen:
            columns[canonical] = raw[seen[wanted]]
    missing = [c for c in required if c not in columns]
    if missing:
        shown = ", ".join(n for n in names if n) or "nothing"
        name = rename.get(missing[0], missing[0])
        hint = " (the first line must be a header)" if all(_is_number(n) for n in names) else ""
        raise SourceError(f"{path}: missing required column {name!r} (found: {shown}){hint}")
    if keep_other_columns:
        taken = {v.strip().lower() for v in columns.values()}
        for name in names:
            if name and name.lower() not in taken:
                columns[name] = raw[name]
    return columns


def iter_batches(
    source: SourceFile,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    multiline_values: bool = False,
) -> Iterator[tuple[pa.RecordBatch, list[MalformedRecord]]]:
    """Record batches under canonical column names, each with the malformed records met since the last.

    ``multiline_values`` lets quoted CSV values span lines (slower: the parser cannot split blocks
    on newlines then); ids and timestamps never need it, titles may.
    """
    names = list(source.columns)
    if source.kind == "parquet":
        try:
            parquet = pq.ParquetFile(source.path)
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(source.columns.values())):
                # categorical columns (pandas writes them as dictionaries) are checked as their values
                columns = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
                yield pa.RecordBatch.from_arrays(columns, names=names), []
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{source.path}: unreadable Parquet data ({_first_line(exc)})") from None
        return

    malformed: list[MalformedRecord] = []
    lock = threading.Lock()  # the parser may call the handler from its reader threads

    def on_malformed(row: pa_csv.InvalidRow) -> str:
        with lock:
            malformed.append(MalformedRecord(row.expected_columns, row.actual_columns, row.text))
        return "skip"

    rows = 0
    try:
        reader = pa_csv.open_csv(
            pa.input_stream(str(source.path), compression="detect"),
            read_options=pa_csv.ReadOptions(block_size=block_bytes, encoding=source.encoding, use_threads=True),
            parse_options=pa_csv.ParseOptions(
                delimiter=source.delimiter, newlines_in_values=multiline_values, invalid_row_handler=on_malformed
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(source.columns.values()),
                column_types={raw: pa.string() for raw in source.columns.values()},
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            rows += batch.num_rows
            with lock:
                handed, malformed[:] = list(malformed), []
            yield pa.RecordBatch.from_arrays(batch.columns, names=names), handed
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "UTF8" in text or "UTF-8" in text:
            raise SourceError(
                f"{source.path} is not {source.encoding} text (after data row {rows:,}); "
                "save it as UTF-8 or pass --encoding"
            ) from None
        raise SourceError(f"{source.path}: malformed CSV after data row {rows:,} ({_first_line(exc)})") from None
    except UnicodeDecodeError as exc:  # a non-UTF-8 --encoding transcodes through Python's codecs
        raise SourceError(
            f"{source.path} is not {source.encoding} text after data row {rows:,} ({exc.reason})"
        ) from None
    if malformed:
        yield pa.RecordBatch.from_pylist([], schema=pa.schema([(n, pa.string()) for n in names])), list(malformed)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
