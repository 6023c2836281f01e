"""Imported datasets on disk, one immutable directory per version, and the ``Dataset`` models train on.

Layout under ``root`` (``RECOPS_DATA_DIR/datasets``)::

    NAME/v1/manifest.json, interactions.parquet, items.parquet[, users.parquet, *.rejects.csv]
    NAME/v2/...
    NAME/current                 the version ``load(NAME)`` returns, as text ("2")
    NAME/.staging-PID-HEX/       an import in progress (never read)
    NAME/failed/STAMP/           the rejects of an import that was refused

A version directory is written aside (``staging``), flushed and renamed into place by
``publish``; ``manifest.json`` is in it before the rename, so a ``vN`` directory is complete or
absent.  Nothing rewrites a published version.

``open_dataset`` is what the rest of the engine calls: ``"demo"`` is the built-in demo world, any
other name an imported dataset.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.config import Settings
from engine.data.durable_files import fsync_tree, rename_dir_if_absent, write_text_atomic
from engine.data.interaction_stats import InteractionStats
from engine.data.schema import EVENT_TYPES, Dataset, DatasetError

if TYPE_CHECKING:
    from engine.data.demo import DemoWorld

DEMO = "demo"
MANIFEST = "manifest.json"
INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"  # only when the import had a users file: user_id and attribute columns (text)
CURRENT = "current"
STAGING_PREFIX = ".staging-"
FAILED_DIR = "failed"
MANIFEST_FORMAT = 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION_DIR = re.compile(r"v([1-9][0-9]*)")


class DatasetNotFoundError(DatasetError):
    """No dataset (or no such version of it) under that name."""


def check_name(name: str) -> str:
    """``name`` when it is a safe directory name: letters, digits, ``.``, ``_``, ``-``; 64 at most."""
    if not _NAME.fullmatch(name or ""):
        raise DatasetError(
            f"invalid dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class StoredDataset:
    name: str
    version: int
    path: Path | None  # the vN directory (None for the built-in demo world)
    manifest: dict[str, Any]
    dataset: Dataset  # what models train on

    def summary(self) -> dict[str, Any]:
        """Name, version, rows, users, items and time range (ISO 8601, None without timestamps): what
        the API's /health and the console say is served."""
        span = self.manifest.get("time_range") or {}
        rows = self.manifest.get("rows", {})
        return {
            "name": self.name,
            "version": self.version,
            "interactions": int(rows.get("interactions", len(self.dataset.events))),
            "users": int(self.manifest.get("users", self.dataset.n_users)),
            "items": int(rows.get("items", self.dataset.n_items)),
            "data_from": span.get("min_utc"),
            "data_to": span.get("max_utc"),
        }


class DatasetStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---- reading ----------------------------------------------------------------------
    def names(self) -> list[str]:
        """Datasets with at least one complete version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _NAME.fullmatch(p.name) and self.versions(p.name))

    def listing(self) -> list[dict[str, Any]]:
        """Each imported dataset with its current version, sizes and time range (``recops datasets list``,
        ``GET /datasets`` and the console)."""
        rows = []
        for name in self.names():
            manifest = self.manifest(name)
            rows.append({
                "name": name,
                "current_version": manifest["version"],
                "versions": self.versions(name),
                "interactions": manifest["rows"]["interactions"],
                "users": manifest["users"],
                "items": manifest["rows"]["items"],
                "time_range": manifest["time_range"],
                "created_at": manifest.get("created_at"),
            })  # fmt: skip
        return rows

    def versions(self, name: str) -> list[int]:
        """Complete versions of ``name``, ascending (empty when there is none)."""
        folder = self.root / check_name(name)
        if not folder.is_dir():
            return []
        found = []
        for entry in folder.iterdir():
            match = _VERSION_DIR.fullmatch(entry.name)
            if match and (entry / MANIFEST).is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def current_version(self, name: str) -> int | None:
        """The version ``load(name)`` returns: the ``current`` pointer, else the highest version."""
        versions = self.versions(name)
        if not versions:
            return None
        with contextlib.suppress(OSError, ValueError):
            pointed = int((self.root / name / CURRENT).read_text().strip())
            if pointed in versions:
                return pointed
        return versions[-1]

    def version_dir(self, name: str, version: int) -> Path:
        return self.root / check_name(name) / f"v{version}"

    def resolve(self, name: str, version: int | None = None) -> int:
        """The version number to read; ``DatasetNotFoundError`` when the dataset or version is absent."""
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none imported yet"
            raise DatasetNotFoundError(f"no dataset named {name!r} (datasets: {known})")
        if version is None:
            return self.current_version(name) or versions[-1]
        if version not in versions:
            raise DatasetNotFoundError(
                f"dataset {name!r} has no version {version} (versions: {', '.join(map(str, versions))})"
            )
        return version

    def manifest(self, name: str, version: int | None = None) -> dict[str, Any]:
        path = self.version_dir(name, self.resolve(name, version)) / MANIFEST
        try:
            manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable manifest ({exc})") from exc
        return manifest

    def load(self, name: str, version: int | None = None) -> StoredDataset:
        """A version (the current one when ``version`` is None) with its tables as a ``Dataset``."""
        version = self.resolve(name, version)
        folder = self.version_dir(name, version)
        manifest = self.manifest(name, version)
        try:
            interactions = pq.read_table(folder / INTERACTIONS_FILE)
            items = pq.read_table(folder / ITEMS_FILE)
            users = pq.read_table(folder / USERS_FILE) if (folder / USERS_FILE).is_file() else None
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{folder}: unreadable tables ({exc})") from exc
        return StoredDataset(name, version, folder, manifest, to_dataset(name, interactions, items, users))

    # ---- writing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A fresh directory beside the versions of ``name``, removed on exit unless it was published."""
        folder = self.root / check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned_staging(folder)
        path = folder / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a first import that failed leaves no trace

    def publish(self, name: str, staging: Path, manifest: dict[str, Any]) -> int:
        """Make ``staging`` the next version of ``name`` and point ``current`` at it; returns the version.

        The manifest is written with its version number, everything is flushed, then one rename
        publishes the directory.  A concurrent import that took the number first makes the rename
        fail and the next number is tried.
        """
        while True:
            existing = [int(m.group(1)) for p in staging.parent.iterdir() if (m := _VERSION_DIR.fullmatch(p.name))]
            version = max(existing, default=0) + 1
            manifest["version"] = version
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
            fsync_tree(staging)
            if rename_dir_if_absent(staging, self.version_dir(name, version)):
                break
        write_text_atomic(staging.parent / CURRENT, f"{version}\n")
        return version

    def failed_dir(self, name: str, stamp: str) -> Path:
        return self.root / check_name(name) / FAILED_DIR / stamp

    @staticmethod
    def _remove_abandoned_staging(folder: Path) -> None:
        """Staging directories of imports whose process is gone (killed mid-import)."""
        for entry in folder.glob(f"{STAGING_PREFIX}*"):
            pid = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- stored tables → Dataset ---------------------------------------------------------------
def to_dataset(name: str, interactions: pa.Table, items: pa.Table, users: pa.Table | None = None) -> Dataset:
    """The engine's tables from the stored ones (see ``engine.data.schema``).

    ``type`` is the event label when the engine knows it, else ``view`` (the label stays in
    ``event`` and its weight in ``weight``); ``value`` is the rating of ``rating`` events, else 1.0;
    a dataset imported without timestamps gets 0.0.  Events are ordered by time.  The users table,
    when the import had one, is ``Dataset.users`` as stored (a missing value is None).
    """
    frame = interactions.to_pandas()
    known = frame["event"].isin(EVENT_TYPES)
    is_rating = (frame["event"] == "rating").to_numpy()
    rating = frame["rating"].to_numpy(dtype=np.float64, na_value=np.nan)
    events = pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "item_id": frame["item_id"],
            "type": frame["event"].where(known, "view"),
            "timestamp": frame["timestamp"].astype("float64").fillna(0.0).to_numpy(),
            "value": np.where(is_rating, rating, 1.0),
            "event": frame["event"],
            "weight": frame["weight"].to_numpy(dtype=np.float64),
            "rating": rating,
        }
    )
    events = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    catalogue = items.to_pandas()
    by_item = events.groupby("item_id", sort=False).agg(n=("item_id", "size"), avg=("rating", "mean"))
    by_item = by_item.reindex(catalogue["item_id"])
    counts = by_item["n"].fillna(0).to_numpy(dtype=np.float64)
    attributes = catalogue.drop(columns=["item_id", "title", "category"])
    table = pd.DataFrame(
        {
            "item_id": catalogue["item_id"],
            "title": catalogue["title"],
            "category": catalogue["category"],
            "popularity": counts / max(counts.sum(), 1.0),
            "avg_rating": by_item["avg"].to_numpy(dtype=np.float64),
        }
    )
    return Dataset(items=pd.concat([table, attributes], axis=1), events=events, name=name,
                   users=None if users is None else users.to_pandas())


def datasets_root(settings: Settings) -> Path:
    return settings.data_dir / "datasets"




def read_manifest(settings: Settings, name: str, version: int | None = None) -> dict[str, Any]:
    """The manifest of ``name`` at ``version`` (the current one by default); ``"demo"`` is the demo world's."""
    if name == DEMO:
        return open_dataset(settings, DEMO, version).manifest
    return DatasetStore(datasets_root(settings)).manifest(name, version)


def open_dataset(settings: Settings, name: str, version: int | None = None) -> StoredDataset:
    """``"demo"``: the demo world (version 1, generated on first use); otherwise an imported dataset."""
    if name != DEMO:
        return DatasetStore(datasets_root(settings)).load(name, version)
    if version not in (None, 1):
        raise DatasetNotFoundError(f"the demo world has only version 1, not {version}")
    return stored_demo(demo_world(settings))


def demo_world(settings: Settings) -> DemoWorld:
    """The demo world saved in the data dir, generated on first use."""
    from engine.data.demo import DemoWorld

    return DemoWorld.load_or_generate(
        settings.data_dir / "world", seed=settings.demo_seed, n_users=settings.demo_users, n_items=settings.demo_items
    )


def stored_demo(world: DemoWorld) -> StoredDataset:
    """The demo world as a stored dataset (version 1; it has no directory of its own)."""
    dataset = world.dataset()
    return StoredDataset(DEMO, 1, None, demo_manifest(dataset, world.params), dataset)


def demo_manifest(dataset: Dataset, params: dict[str, int]) -> dict[str, Any]:
    events = dataset.events
    stats = InteractionStats()
    stats.add(
        pa.array(events["user_id"], pa.string()),
        pa.array(events["item_id"], pa.string()),
        pa.array(events["type"], pa.string()),
        pa.array(np.floor(events["timestamp"].to_numpy(dtype=np.float64)).astype(np.int64)),
    )
    return {
        "format": MANIFEST_FORMAT,
        "name": DEMO,
        "version": 1,
        "source": {"kind": "demo world", "params": params},
        "rows": {"interactions": len(events), "items": len(dataset.items)},
        **stats.summary(),
    }
