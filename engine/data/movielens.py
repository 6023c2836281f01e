"""MovieLens loaders: ml-100k and ml-latest / ml-latest-small directories → ``Dataset``.

Every rating becomes a ``rating`` event whose value is the rating; a movie's category is its first
genre ("unknown" when it has none).  Ids stay the original integers, written as strings.  Events keep
the file's row order, as Microsoft Recommenders' ``load_pandas_df`` reads them: their seeded split
draws one random number per row in that order (``engine.data.split``), so only the file's order
reproduces their halves.

Files are parsed with typed columns first (fast on the 33M-row ml-latest); only when that fails is
the file re-read as text to name the first bad line, so a malformed file costs a second read and a
good one none.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from engine.data.schema import Dataset, DatasetError

ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRE = "(no genres listed)"
UNKNOWN = "unknown"

LAYOUTS: dict[str, tuple[str, str]] = {
    "ml-100k": ("u.data", "u.item"),
    "ml-latest": ("ratings.csv", "movies.csv"),
}

Kind = Literal["int", "float", "str"]


@dataclass(frozen=True)
class _Column:
    name: str
    kind: Kind
    valid: Callable[[pd.Series], pd.Series] | None = None  # on parsed values: True where acceptable
    expects: str = ""

    def describe(self) -> str:
        return self.expects or {"int": "an integer", "float": "a number", "str": "text"}[self.kind]


def _nonnegative(s: pd.Series) -> pd.Series:
    return s >= 0


def _star_rating(s: pd.Series) -> pd.Series:
    return s.between(0.5, 5.0)


def _flag(s: pd.Series) -> pd.Series:
    return s.isin([0, 1])


_ID = _Column("id", "int", _nonnegative, "a non-negative integer id")
_RATING_COLUMNS = (
    _Column("user", "int", _nonnegative, "a non-negative integer id"),
    _Column("item", "int", _nonnegative, "a non-negative integer id"),
    _Column("rating", "float", _star_rating, "a rating between 0.5 and 5"),
    _Column("timestamp", "int", _nonnegative, "a Unix timestamp"),
)
_ML100K_ITEM_COLUMNS = (
    _ID,
    _Column("title", "str"),
    _Column("release_date", "str"),
    _Column("video_release_date", "str"),
    _Column("url", "str"),
    *(_Column(f"g{k}", "int", _flag, "a 0/1 genre flag") for k in range(len(ML100K_GENRES))),
)
_ML_LATEST_ITEM_COLUMNS = (_ID, _Column("title", "str"), _Column("genres", "str"))
_ML_LATEST_HEADERS = {
    "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    "movies.csv": ("movieId", "title", "genres"),
}


@dataclass(frozen=True)
class _Format:
    sep: str
    encoding: str
    quoting: Literal[0, 1, 2, 3]  # a csv.QUOTE_* constant
    header: tuple[str, ...] | None = None


_ML100K_FORMAT = {
    "u.data": _Format("\t", "latin-1", csv.QUOTE_NONE),
    "u.item": _Format("|", "latin-1", csv.QUOTE_NONE),
}


def load_movielens(path: Path) -> Dataset:
    """Load an ml-100k or ml-latest(-small) directory; raises ``DatasetError`` saying what is wrong and where."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such directory")
    if not path.is_dir():
        raise DatasetError(f"{path} is not a directory; pass the folder that holds the MovieLens files")
    layout = _detect_layout(path)
    if layout == "ml-100k":
        ratings_file, items_file = path / "u.data", path / "u.item"
        ratings = _read_rows(ratings_file, _RATING_COLUMNS, _ML100K_FORMAT["u.data"])
        raw_items = _read_rows(items_file, _ML100K_ITEM_COLUMNS, _ML100K_FORMAT["u.item"])
        genres = _ml100k_genres(raw_items)
    else:
        ratings_file, items_file = path / "ratings.csv", path / "movies.csv"
        fmt = {name: _Format(",", "utf-8", csv.QUOTE_MINIMAL, header) for name, header in _ML_LATEST_HEADERS.items()}
        ratings = _read_rows(ratings_file, _RATING_COLUMNS, fmt["ratings.csv"])
        raw_items = _read_rows(items_file, _ML_LATEST_ITEM_COLUMNS, fmt["movies.csv"])
        genres = raw_items["genres"].fillna("").str.strip().replace({NO_GENRE: UNKNOWN, "": UNKNOWN})

    if ratings.empty:
        raise DatasetError(f"{ratings_file}: no ratings")
    if raw_items.empty:
        raise DatasetError(f"{items_file}: no movies")
    duplicated = raw_items["id"].duplicated()
    if duplicated.any():
        line, movie = _first(raw_items["id"], duplicated)
        raise DatasetError(f"{items_file} line {line}: movie id {movie} appears twice")
    unknown = ~ratings["item"].isin(raw_items["id"])
    if unknown.any():
        line, movie = _first(ratings["item"], unknown)
        raise DatasetError(f"{ratings_file} line {line}: movie id {movie} is not in {items_file.name}")

    events = pd.DataFrame(
        {
            "user_id": ratings["user"].astype(str).to_numpy(),
            "item_id": ratings["item"].astype(str).to_numpy(),
            "type": "rating",
            "timestamp": ratings["timestamp"].to_numpy(dtype=np.float64),
            "value": ratings["rating"].to_numpy(dtype=np.float64),
        }
    )
    items = _item_table(raw_items, genres, events)
    return Dataset(items=items, events=events, name=path.resolve().name or layout)


def _detect_layout(path: Path) -> str:
    for layout, (ratings, items) in LAYOUTS.items():
        has_ratings, has_items = (path / ratings).is_file(), (path / items).is_file()
        if has_ratings and has_items:
            return layout
        if has_ratings or has_items:
            present, absent = (ratings, items) if has_ratings else (items, ratings)
            raise DatasetError(f"{path}: found {present} but not {absent}; the {layout} layout needs both")
    found = sorted(p.name for p in path.iterdir())[:10]
    raise DatasetError(
        f"{path}: no MovieLens layout recognised; expected u.data and u.item (ml-100k) or "
        f"ratings.csv and movies.csv (ml-latest, ml-latest-small); found {found or 'an empty directory'}"
    )


def _first(values: pd.Series, mask: pd.Series) -> tuple[int, object]:
    """(line number, value) of the first row where ``mask`` holds; rows are indexed by line."""
    row = int(np.argmax(mask.to_numpy()))
    return int(values.index[row]), values.iloc[row]


def _ml100k_genres(raw_items: pd.DataFrame) -> pd.Series:
    flags = raw_items[[f"g{k}" for k in range(len(ML100K_GENRES))]].to_numpy(dtype=bool)
    names = np.array(ML100K_GENRES, dtype=object)
    joined = ["|".join(names[row]) or UNKNOWN for row in flags]
    return pd.Series(joined, index=raw_items.index, dtype=object)


def _item_table(raw_items: pd.DataFrame, genres: pd.Series, events: pd.DataFrame) -> pd.DataFrame:
    item_ids = raw_items["id"].astype(str)
    by_item = events.groupby("item_id")["value"].agg(["size", "mean"]).reindex(item_ids.to_numpy())
    counts = by_item["size"].fillna(0).to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "item_id": item_ids.to_numpy(),
            "title": raw_items["title"].fillna("").str.strip().to_numpy(),
            "category": genres.str.split("|").str[0].to_numpy(),
            "popularity": counts / counts.sum(),
            "avg_rating": by_item["mean"].to_numpy(dtype=np.float64),
            "genres": genres.to_numpy(),
        }
    )


# ---- parsing ------------------------------------------------------------------------
def _read_rows(path: Path, columns: Sequence[_Column], fmt: _Format) -> pd.DataFrame:
    """The file's rows as typed columns, indexed by line number; ``DatasetError`` names the first bad line."""
    first_line = 1
    if fmt.header is not None:
        header = _line_fields(path, 1, fmt)
        if header is None:
            return _empty(columns)
        if tuple(h.strip() for h in header) != fmt.header:
            raise DatasetError(f"{path} line 1: expected the header {','.join(fmt.header)}, found {','.join(header)}")
        first_line = 2
    # pandas takes the width of the first row as the norm and would blame the next, good, line
    first_row = _line_fields(path, first_line, fmt)
    if first_row and len(first_row) != len(columns):
        raise DatasetError(f"{path} line {first_line}: expected {len(columns)} fields, found {len(first_row)}")
    dtypes = {k: {"int": "int64", "float": "float64", "str": "str"}[c.kind] for k, c in enumerate(columns)}
    try:
        frame = _read_table(path, fmt, first_line, dtypes)
    except pd.errors.EmptyDataError:
        return _empty(columns)
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from exc
    except (ValueError, UnicodeDecodeError):
        frame = None
    if frame is not None and frame.shape[1] == len(columns):
        frame.columns = [c.name for c in columns]
        if all(c.valid is None or bool(c.valid(frame[c.name]).all()) for c in columns):
            frame.index = frame.index + first_line
            return frame
    return _read_rows_as_text(path, columns, fmt, first_line)


def _read_table(
    path: Path, fmt: _Format, first_line: int, dtype: Mapping[int, str] | type[str], keep_default_na: bool = True
) -> pd.DataFrame:
    """The data lines from ``first_line`` on, with pandas' C parser, in the file's format."""
    return pd.read_csv(
        path,
        dtype=dtype,
        sep=fmt.sep,
        header=None,
        skiprows=first_line - 1,
        encoding=fmt.encoding,
        quoting=fmt.quoting,
        keep_default_na=keep_default_na,
        skip_blank_lines=False,  # keeps row i on line first_line + i
        engine="c",
    )


def _read_rows_as_text(path: Path, columns: Sequence[_Column], fmt: _Format, first_line: int) -> pd.DataFrame:
    """The slow path: parse every field by hand, skip blank lines, raise on the first malformed line."""
    try:
        text = _read_table(path, fmt, first_line, str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not {fmt.encoding} text ({exc})") from exc
    if text.shape[1] != len(columns):
        raise DatasetError(f"{path} line {first_line}: expected {len(columns)} fields, found {text.shape[1]}")
    blank = (text == "").all(axis=1).to_numpy()
    bad = np.zeros(len(text), dtype=bool)
    reasons: list[tuple[np.ndarray, _Column]] = []
    parsed: dict[str, pd.Series] = {}
    for k, column in enumerate(columns):
        if column.kind == "str":
            parsed[column.name] = text[k]
            continue
        values = pd.to_numeric(text[k].str.strip(), errors="coerce")
        parsed[column.name] = values
        ok = np.isfinite(values.to_numpy(dtype=np.float64))
        if column.kind == "int":
            ok &= np.equal(np.mod(values.fillna(0.5).to_numpy(), 1), 0)
        if column.valid is not None:
            ok &= column.valid(values).to_numpy()
        reasons.append((~ok & ~blank, column))
        bad |= ~ok & ~blank
    if not bad.any():
        frame = pd.DataFrame(parsed).loc[~blank]
        for column in columns:
            if column.kind == "int":
                frame[column.name] = frame[column.name].astype(np.int64)
        frame.index = frame.index + first_line
        return frame
    row = int(np.argmax(bad))
    line = first_line + row
    column = next(c for mask, c in reasons if mask[row])
    value = text.iloc[row, columns.index(column)]
    raw = _raw_line(path, line, fmt.encoding)
    raise DatasetError(f"{path} line {line}: malformed row {raw!r}: {column.name} {value!r} is not {column.describe()}")


def _parser_error(path: Path, exc: Exception) -> DatasetError:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if match:
        expected, line, saw = match.groups()
        return DatasetError(f"{path} line {line}: expected {expected} fields, found {saw}")
    return DatasetError(f"{path}: malformed file ({exc})")


def _line_fields(path: Path, line: int, fmt: _Format) -> list[str] | None:
    with path.open(encoding=fmt.encoding, errors="replace", newline="") as handle:
        rows = csv.reader(handle, delimiter=fmt.sep, quoting=fmt.quoting)
        return next(itertools.islice(rows, line - 1, None), None)


def _raw_line(path: Path, line: int, encoding: str) -> str:
    with path.open(encoding=encoding, errors="replace") as handle:
        text = next(itertools.islice(handle, line - 1, None), "")
    text = text.rstrip("\r\n")
    return text if len(text) <= 120 else text[:117] + "..."


def _empty(columns: Sequence[_Column]) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=object) for c in columns})
