"""Fetch MovieLens-100k from the ``recbole`` wheel on PyPI and write it in the classic ml-100k layout.

The only outside source this project can reach is a package registry, and RecBole's wheel ships the real
MovieLens-100k as "atomic files" (``ml-100k.inter``, ``ml-100k.item``).  The wheel is downloaded with pip,
read as a zip (never installed: RecBole drags in torch), and converted to ``u.data``, ``u.item`` and
``u.user`` so that ``load_movielens`` and every other ml-100k tool read it unchanged.

What the atomic files lost cannot be restored: ``u.item``'s release date and IMDb URL fields stay empty.

Beside the classic files, ``ratings.csv``, ``items.csv`` and ``users.csv`` are written in the layout
``recops import`` reads as it is (``write_import_files``, ``write_import_users``), so MovieLens can be
served like any dataset of one's own, its experiments broken down by gender, age group or occupation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.data.movielens import ML100K_GENRES, UNKNOWN, load_movielens
from engine.data.schema import Dataset, DatasetError

RECBOLE_REQUIREMENT = "recbole==1.2.1"
ATOMIC_DIR = "recbole/dataset_example/ml-100k"
INTER_MEMBER = f"{ATOMIC_DIR}/ml-100k.inter"
ITEM_MEMBER = f"{ATOMIC_DIR}/ml-100k.item"
USER_MEMBER = f"{ATOMIC_DIR}/ml-100k.user"
ML100K_RATINGS = 100_000
ML100K_ITEMS = 1_682
DEFAULT_TARGET = Path("data/ml-100k")
IMPORT_RATINGS = "ratings.csv"  # user_id,item_id,rating,timestamp
IMPORT_ITEMS = "items.csv"  # item_id,title,category,genres (genres: every genre, '|'-separated)
IMPORT_USERS = "users.csv"  # user_id,age,age_group,gender,occupation,zip_code
# MovieLens-1M's age groups (its README), lower bounds: the 61 ages of ml-100k are too many cells to break
# a result down by, the seven groups are not
AGE_GROUPS: tuple[tuple[int, str], ...] = (
    (0, "under 18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-49"), (50, "50-55"), (56, "56+"),
)  # fmt: skip

# RecBole writes movie 267, whose title is "unknown" in u.item, with the title and year misspelt "unkonwn"
_MISSING = frozenset({"", UNKNOWN, "unkonwn"})
_GENRE_FLAG = {genre: k for k, genre in enumerate(ML100K_GENRES)}


class FetchError(RuntimeError):
    """The wheel could not be downloaded or its files are not the MovieLens-100k atomic files expected."""


@dataclass(frozen=True)
class Converted:
    """The classic files' lines (without line ends), ready to be written."""

    u_data: list[str]
    u_item: list[str]
    u_user: list[str]


# ---- fetching ------------------------------------------------------------------------
def fetch_ml100k(
    target: Path,
    *,
    wheel_dir: Path | None = None,
    expected: tuple[int, int] = (ML100K_RATINGS, ML100K_ITEMS),
) -> Path:
    """Write ``u.data``, ``u.item`` and ``u.user`` into ``target`` from the recbole wheel (nothing when already there).

    ``wheel_dir`` makes pip look only in that folder (no index, no network); ``expected`` is the number of
    ratings and of movies the result must have, the real ml-100k's by default.
    """
    target = Path(target)
    if has_ml100k(target, expected):
        return target
    with tempfile.TemporaryDirectory(prefix="recops-recbole-") as tmp:
        wheel = download_wheel(Path(tmp), wheel_dir=wheel_dir)
        converted = convert_wheel(wheel)
    counts = (len(converted.u_data), len(converted.u_item))
    if counts != expected:
        raise FetchError(
            f"{wheel.name} holds {counts[0]} ratings and {counts[1]} movies, not the {expected[0]} and "
            f"{expected[1]} of MovieLens-100k; nothing was written to {target}"
        )
    listed = {line.split("|", 1)[0] for line in converted.u_user}
    unlisted = {line.split("\t", 1)[0] for line in converted.u_data} - listed
    if unlisted:
        raise FetchError(f"{wheel.name}: {len(unlisted)} users who rated are not in {USER_MEMBER}, e.g. "
                         f"{min(unlisted)}; nothing was written to {target}")
    write_classic(converted, target)
    return target


def has_ml100k(target: Path, expected: tuple[int, int] = (ML100K_RATINGS, ML100K_ITEMS)) -> bool:
    """Whether ``target`` already holds ``u.data`` and ``u.item`` with the expected numbers of lines, and ``u.user``."""
    files = (Path(target) / "u.data", Path(target) / "u.item")
    counted = all(f.is_file() for f in files) and tuple(_count_lines(f) for f in files) == expected
    return counted and (Path(target) / "u.user").is_file()


def download_wheel(dest: Path, *, wheel_dir: Path | None = None) -> Path:
    """Download the recbole wheel into ``dest`` with pip (no dependencies, no install) and return its path."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        RECBOLE_REQUIREMENT, "-d", str(dest),
    ]  # fmt: skip
    if wheel_dir is not None:
        command += ["--no-index", "--find-links", str(wheel_dir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(f"could not run pip ({exc}); {sys.executable} needs pip to download the data") from exc
    if done.returncode != 0:
        where = f"in {wheel_dir}" if wheel_dir is not None else "from the package index (is the network up?)"
        said = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise FetchError(
            f"pip could not download {RECBOLE_REQUIREMENT} {where}; MovieLens-100k is taken from that wheel. "
            f"pip exited with {done.returncode}:\n{said}"
        )
    wheels = sorted(dest.glob("recbole-*.whl"))
    if not wheels:
        raise FetchError(f"pip reported success but left no recbole wheel in {dest}")
    return wheels[0]


# ---- converting ----------------------------------------------------------------------
def convert_wheel(wheel: Path) -> Converted:
    """The classic ml-100k files built from the atomic files inside ``wheel``, read as a zip."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            inter, item, user = (_member_text(archive, wheel, n) for n in (INTER_MEMBER, ITEM_MEMBER, USER_MEMBER))
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel}: not a wheel (zip) file ({exc})") from exc
    return Converted(u_data=ratings_lines(inter, INTER_MEMBER), u_item=item_lines(item, ITEM_MEMBER),
                     u_user=user_lines(user, USER_MEMBER))


def ratings_lines(text: str, source: str = "ml-100k.inter") -> list[str]:
    """``u.data`` lines (user, item, rating, timestamp; tab-separated integers) from an atomic ``.inter`` file."""
    rows = _atomic_rows(text, source, ("user_id", "item_id", "rating", "timestamp"))
    return ["\t".join(_integer(value, source, line, name) for name, value in fields) for line, fields in rows]


def item_lines(text: str, source: str = "ml-100k.item") -> list[str]:
    """``u.item`` lines (id|title|release date|video release date|IMDb URL|19 genre flags) from a ``.item`` file."""
    rows = _atomic_rows(text, source, ("item_id", "movie_title", "release_year", "class"))
    lines = []
    for line, ((_, item), (_, title), (_, year), (_, genres)) in rows:
        full_title = classic_title(title, year)
        if "|" in full_title:
            raise FetchError(f"{source} line {line}: the title {full_title!r} holds '|', u.item's separator")
        lines.append("|".join([_integer(item, source, line, "item_id"), full_title, "", "", "", *genre_flags(genres)]))
    return lines


def user_lines(text: str, source: str = "ml-100k.user") -> list[str]:
    """``u.user`` lines (user id|age|gender|occupation|zip code) from an atomic ``.user`` file."""
    rows = _atomic_rows(text, source, ("user_id", "age", "gender", "occupation", "zip_code"))
    lines = []
    for line, fields in rows:
        values = [value.strip() for _, value in fields]
        if any("|" in v for v in values):
            raise FetchError(f"{source} line {line}: a value holds '|', u.user's separator")
        values[0] = _integer(values[0], source, line, "user_id")
        values[1] = _integer(values[1], source, line, "age")
        lines.append("|".join(values))
    return lines


def age_group(age: int) -> str:
    """MovieLens-1M's group of an age in years (``AGE_GROUPS``)."""
    return next(name for low, name in reversed(AGE_GROUPS) if age >= low)


def classic_title(title: str, year: str) -> str:
    """``"Toy Story", "1995"`` → ``"Toy Story (1995)"``, the form u.item uses; a missing title is "unknown"."""
    title, year = title.strip(), year.strip()
    title = UNKNOWN if title in _MISSING else title
    return title if year in _MISSING else f"{title} ({year})"


def genre_flags(classes: str) -> list[str]:
    """The 19 u.item flags for space-separated genres; none, or only unrecognised ones, set "unknown"."""
    flags = ["0"] * len(ML100K_GENRES)
    for genre in classes.split():
        flags[_GENRE_FLAG.get(genre, 0)] = "1"
    if "1" not in flags:
        flags[0] = "1"
    return flags


def write_classic(converted: Converted, target: Path) -> None:
    """Write both files; each appears whole or not at all, so an interrupted run is simply redone."""
    target.mkdir(parents=True, exist_ok=True)
    for name, lines in (("u.data", converted.u_data), ("u.item", converted.u_item), ("u.user", converted.u_user)):
        partial = target / f".{name}.partial"
        try:
            partial.write_text("".join(f"{line}\n" for line in lines), encoding="latin-1")
        except UnicodeEncodeError as exc:
            partial.unlink(missing_ok=True)
            raise FetchError(f"{name}: {exc.object[exc.start : exc.end]!r} cannot be written in latin-1") from exc
        os.replace(partial, target / name)


def write_import_files(dataset: Dataset, target: Path) -> tuple[Path, Path]:
    """``ratings.csv`` and ``items.csv`` for ``recops import`` (UTF-8, a header, quoted where needed).

    A movie's category is its first genre, as ``load_movielens`` has it; ``genres`` lists them all and
    is kept by the import as an item attribute.  Ratings are written in time order (the loader keeps
    the file's order, which the evaluation split depends on), so a replay reads them as they came.
    Each file appears whole or not at all.
    """
    events = dataset.events.sort_values("timestamp", kind="stable")
    ratings = pd.DataFrame({
        "user_id": events["user_id"], "item_id": events["item_id"], "rating": events["value"],
        "timestamp": events["timestamp"].astype("int64"),
    })  # fmt: skip
    items = dataset.items[["item_id", "title", "category", "genres"]]
    written = []
    for name, frame in ((IMPORT_RATINGS, ratings), (IMPORT_ITEMS, items)):
        partial = target / f".{name}.partial"
        frame.to_csv(partial, index=False, encoding="utf-8", float_format="%g")
        os.replace(partial, target / name)
        written.append(target / name)
    return written[0], written[1]


def write_import_users(target: Path) -> Path:
    """``users.csv`` for ``recops import --users`` from ``target``'s ``u.user``: user_id, age, its
    ``age_group``, gender, occupation and zip_code, as text (a zip code keeps its leading zero)."""
    try:
        frame = pd.read_csv(target / "u.user", sep="|", header=None, dtype=str, encoding="latin-1",
                            names=["user_id", "age", "gender", "occupation", "zip_code"], keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise FetchError(f"{target / 'u.user'}: not a u.user file ({exc})") from exc
    ages = pd.to_numeric(frame["age"], errors="coerce")
    if ages.isna().any():
        raise FetchError(f"{target / 'u.user'}: age {frame['age'][ages.isna()].iloc[0]!r} is not a number")
    frame.insert(2, "age_group", [age_group(int(a)) for a in ages])
    partial = target / f".{IMPORT_USERS}.partial"
    frame.to_csv(partial, index=False, encoding="utf-8")
    os.replace(partial, target / IMPORT_USERS)
    return target / IMPORT_USERS


def _member_text(archive: zipfile.ZipFile, wheel: Path, name: str) -> str:
    try:
        data = archive.read(name)
    except KeyError as exc:
        raise FetchError(f"{wheel.name} has no {name}; is it the {RECBOLE_REQUIREMENT} wheel?") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError(f"{name} in {wheel.name} is not UTF-8 text ({exc})") from exc


def _atomic_rows(text: str, source: str, wanted: Sequence[str]) -> list[tuple[int, list[tuple[str, str]]]]:
    """(line number, [(column, value)] in ``wanted`` order) for every non-blank row of an atomic file.

    The header names its columns ``name:type``; they are found by name, so RecBole may reorder them.
    """
    lines = text.splitlines()
    if not lines:
        raise FetchError(f"{source}: empty file")
    header = [field.split(":", 1)[0] for field in lines[0].split("\t")]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise FetchError(f"{source} line 1: no column {', '.join(missing)} in the header {lines[0]!r}")
    positions = [header.index(name) for name in wanted]
    rows = []
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if len(fields) != len(header):
            raise FetchError(f"{source} line {number}: expected {len(header)} fields, found {len(fields)}")
        rows.append((number, [(name, fields[k]) for name, k in zip(wanted, positions, strict=True)]))
    return rows


def _integer(value: str, source: str, line: int, column: str) -> str:
    """The value written as an integer; atomic files type ratings and timestamps as float."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise FetchError(f"{source} line {line}: {column} {value!r} is not a whole number")
    return str(int(number))


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


# ---- command line --------------------------------------------------------------------
def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``recops fetch-movielens``."""
    parser.add_argument("--to", type=Path, default=DEFAULT_TARGET, help=f"folder to write (default {DEFAULT_TARGET})")
    parser.add_argument(
        "--wheel-dir", type=Path, default=None,
        help=f"take the {RECBOLE_REQUIREMENT} wheel from this folder instead of the package index (offline)",
    )  # fmt: skip


def fetch_command(args: argparse.Namespace) -> int:
    """``recops fetch-movielens [--to DIR] [--wheel-dir DIR]``: fetch, convert, load once to check, summarise."""
    target: Path = args.to
    already = has_ml100k(target)
    try:
        fetch_ml100k(target, wheel_dir=args.wheel_dir)
        dataset = load_movielens(target)
        ratings, items = write_import_files(dataset, target)
        users = write_import_users(target)
    except (FetchError, DatasetError) as exc:
        print(f"fetch-movielens: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fetch-movielens: could not write to {target}: {exc}", file=sys.stderr)
        return 1
    state = "already present in" if already else "written to"
    print(
        f"MovieLens-100k {state} {target}: {dataset.n_users} users, {len(dataset.items)} movies, "
        f"{len(dataset.events)} ratings (from the {RECBOLE_REQUIREMENT} wheel)"
    )
    print(f"for `recops import`: {ratings}, {items} and {users}, e.g.\n"
          f"  recops import --name ml-100k --interactions {ratings} --items {items} --users {users}")
    return 0
