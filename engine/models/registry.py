"""Versioned model storage with a lifecycle: train, save, promote, roll back, load without retraining.

Layout under ``models_dir``::

    registry.json                      see below
    <name>/<version>/model.json        written by ``Recommender.save``
    <name>/<version>/arrays.npz

``registry.json`` (format 2)::

    {"format": 2, "default": "als", "default_pinned": false,
     "models": {"als": {"versions": {"<version>": {"dataset": "demo", "stage": "production",
                                                   "lineage": {...}}},
                        "production": {"demo": ["<older production>", "<current production>"]}}}}

Every version belongs to one dataset and has a stage: ``production`` (served for its dataset; at
most one per model and dataset), ``candidate`` (trained, waiting for a person's promotion) or
``archived`` (was production, replaced).  The first version of a model on a dataset becomes
production; later ones are candidates.  ``production`` keeps, per dataset, the versions that were
production in the order they were promoted, so a rollback knows where to go back to.

A registry written before the lifecycle (format 1: ``{"current": v, "versions": [...]}`` per
model) is read as dataset "demo" with the current version in production and the rest archived,
and is rewritten in format 2 on the next change.

A version is ``YYYYmmddTHHMMSSffffffZ-<hash>``: it sorts by creation time, and the short hash of the
saved arrays tells two versions apart even when they were made in the same microsecond.
``registry.json`` is replaced atomically (temp file + ``os.replace``), so a reader — the API, the
console — sees the old registry or the new one, never half of one.  The model directory is
complete before the registry points at it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.data.schema import Dataset
from engine.models.als import ALSRecommender
from engine.models.ann_index import AnnIndex, wants_index
from engine.models.base import Recommender
from engine.models.ease import EASERecommender
from engine.models.item_item import ItemItemRecommender
from engine.models.lineage import lineage
from engine.models.popularity import PopularityRecommender

MODEL_CLASSES: dict[str, type[Recommender]] = {
    "popularity": PopularityRecommender,
    "item_item": ItemItemRecommender,
    "als": ALSRecommender,
    "ease": EASERecommender,
}
# What the engine trains by itself on first start.  EASE is trained on request (`recops train`):
# its items × items matrix costs 100 MB per serving process on the 5,000-item demo catalogue.
STARTUP_MODELS: tuple[str, ...] = ("popularity", "item_item", "als")
# The model served when a request names none, until ``set_default`` says otherwise: ALS measured
# best offline on ml-100k and on the demo world's ground truth (see engine/models/als.py).
DEFAULT_MODEL = "als"
DEMO_DATASET = "demo"
REGISTRY_FILE = "registry.json"
LOCK_FILE = ".registry.lock"
FORMAT = 2

PRODUCTION = "production"
CANDIDATE = "candidate"
ARCHIVED = "archived"
STAGES: tuple[str, ...] = (PRODUCTION, CANDIDATE, ARCHIVED)


class UnknownModelError(KeyError):
    """A model name or version the registry does not have; the message lists what it does have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class LifecycleError(ValueError):
    """A promotion or rollback that cannot be done (already production, nothing to go back to...)."""


class RegistryError(RuntimeError):
    """``registry.json`` exists but cannot be read."""


def model_class(name: str) -> type[Recommender]:
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known: {sorted(MODEL_CLASSES)}") from None


def new_model(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    """An unfitted model of kind ``name`` with its default (or the given) hyper-parameters."""
    return model_class(name)(**dict(params or {}))


def version_time(version: str) -> str | None:
    """The creation time written in a version name, ISO 8601 (None if it has none)."""
    try:
        moment = datetime.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionRecord:
    """One saved version as ``recops models list`` shows it."""

    model: str
    version: str
    dataset: str
    stage: str
    lineage: dict[str, Any] = field(default_factory=dict)
    number: int | None = None  # 1-based place among the model's versions on its dataset, oldest first

    @property
    def trained_at(self) -> str | None:
        return self.lineage.get("trained_at") or version_time(self.version)

    def row(self) -> dict[str, Any]:
        """The version as ``recops models list --json`` and ``GET /models`` give it: identity, stage and
        every lineage field (interactions, events, params, metrics...)."""
        return {"model": self.model, "version": self.version, "number": self.number, "dataset": self.dataset,
                "stage": self.stage, "trained_at": self.trained_at, **self.lineage}


@dataclass(frozen=True)
class StageChange:
    """A promotion or rollback as done, with the model entry before and after (for ``revert``)."""

    action: str
    model: str
    dataset: str
    version: str  # production after the change
    previous: str | None  # production before it
    before: dict[str, Any] = field(repr=False)
    after: dict[str, Any] = field(repr=False)


def _fallback_default(names: Iterable[str]) -> str | None:
    names = sorted(names)
    if DEFAULT_MODEL in names:
        return DEFAULT_MODEL
    return names[0] if names else None


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for name in ("model.json", "arrays.npz"):
        with (directory / name).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:8]


def _upgrade_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A model entry in format 2, whatever format it was written in (see the module docstring)."""
    if isinstance(entry.get("versions"), list):  # format 1
        current = entry.get("current")
        return {
            "versions": {
                v: {"dataset": DEMO_DATASET, "stage": PRODUCTION if v == current else ARCHIVED, "lineage": {}}
                for v in entry["versions"]
            },
            "production": {DEMO_DATASET: [current]} if current in entry["versions"] else {},
        }
    entry.setdefault("versions", {})
    entry.setdefault("production", {})
    for info in entry["versions"].values():
        info.setdefault("dataset", DEMO_DATASET)
        info.setdefault("lineage", {})
        info.setdefault("stage", CANDIDATE)
    return entry


def _numbered(entry: dict[str, Any], dataset: str) -> list[str]:
    """The versions of one model entry on ``dataset`` in creation order: version ``k`` is the k-th.

    Version names start with their creation time, so their text order is their age."""
    return sorted(v for v, info in entry["versions"].items() if info["dataset"] == dataset)


def _production(entry: dict[str, Any], dataset: str) -> str | None:
    history = entry["production"].get(dataset) or []
    return str(history[-1]) if history else None


class ModelRegistry:
    """Models on disk, by name, dataset and version; see the module docstring."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    # ---- the registry file ---------------------------------------------------
    @property
    def _path(self) -> Path:
        return self.models_dir / REGISTRY_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {"format": FORMAT, "default": None, "default_pinned": False, "models": {}}
        except ValueError as exc:
            raise RegistryError(f"{self._path} is not valid JSON ({exc})") from exc
        data["format"] = FORMAT
        data.setdefault("default", None)
        data.setdefault("default_pinned", False)
        data["models"] = {name: _upgrade_entry(entry) for name, entry in data.get("models", {}).items()}
        return data

    def generation(self) -> tuple[int, int, int] | None:
        """Changes whenever ``registry.json`` is rewritten (each write is a new file): a cheap poll."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    @contextlib.contextmanager
    def _updating(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, and write the registry under an exclusive lock.

        Readers need no lock (the file is replaced atomically); two writers — a retrain from the
        console and one from the CLI — would otherwise lose one another's versions.  If the
        caller raises, nothing is written.
        """
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with (self.models_dir / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self._read()
                yield data
                self._write(data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        # Until someone picks a default, the file records the one ``default`` would resolve to.
        if not data["default_pinned"] or data["default"] not in data["models"]:
            data["default_pinned"] = False
            data["default"] = _fallback_default(data["models"])
        self.models_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self._path, data)

    def _entry(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        entry = data["models"].get(name)
        if entry is None:
            model_class(name)  # an unknown kind of model says so, with the known ones
            raise UnknownModelError(f"no saved model {name!r} in {self.models_dir}; saved: {sorted(data['models'])}")
        return entry

    def _version_info(self, entry: dict[str, Any], name: str, version: str) -> dict[str, Any]:
        info = entry["versions"].get(version)
        if info is None:
            raise UnknownModelError(f"{name!r} has no version {version!r}; versions: {sorted(entry['versions'])}")
        return info

    # ---- queries ---------------------------------------------------------------
    def names(self, dataset: str = DEMO_DATASET) -> list[str]:
        """Names with a production version on ``dataset``, sorted: the models served for it."""
        return sorted(self.served(dataset))

    def served(self, dataset: str = DEMO_DATASET) -> dict[str, str]:
        """Model name → its production version on ``dataset``."""
        out = {}
        for name, entry in self._read()["models"].items():
            version = _production(entry, dataset)
            if version is not None:
                out[name] = version
        return out

    def versions(self, name: str, dataset: str | None = None) -> list[str]:
        """Saved versions of ``name`` (on ``dataset``, or on any), oldest first."""
        entry = self._entry(self._read(), name)
        return sorted(v for v, info in entry["versions"].items() if dataset is None or info["dataset"] == dataset)

    def current_version(self, name: str, dataset: str = DEMO_DATASET) -> str:
        """The production version of ``name`` on ``dataset``."""
        version = _production(self._entry(self._read(), name), dataset)
        if version is None:
            raise UnknownModelError(f"{name!r} has no production version on dataset {dataset!r}")
        return version

    def production_history(self, name: str, dataset: str = DEMO_DATASET) -> list[str]:
        """The versions of ``name`` that were production on ``dataset``, in the order they were promoted
        (the last one serves; a rollback goes back to the one before it)."""
        return [str(v) for v in self._entry(self._read(), name)["production"].get(dataset) or []]

    def version_number(self, name: str, version: str) -> int:
        """``version``'s number: its 1-based place among the versions of ``name`` on its dataset, oldest
        first (``als@7`` is the 7th ALS trained on the dataset).  Numbers never change: versions are
        only ever added."""
        entry = self._entry(self._read(), name)
        info = self._version_info(entry, name, version)
        return _numbered(entry, info["dataset"]).index(version) + 1

    def version_by_number(self, name: str, number: int, dataset: str = DEMO_DATASET) -> str:
        """The ``number``-th version of ``name`` on ``dataset`` (see ``version_number``)."""
        versions = _numbered(self._entry(self._read(), name), dataset)
        if not 1 <= number <= len(versions):
            have = f"versions 1..{len(versions)}" if versions else "no versions"
            raise UnknownModelError(f"{name!r} has no version {number} on dataset {dataset!r} ({have})")
        return versions[number - 1]

    def record(self, name: str, version: str) -> VersionRecord:
        entry = self._entry(self._read(), name)
        info = self._version_info(entry, name, version)
        number = _numbered(entry, info["dataset"]).index(version) + 1
        return VersionRecord(name, version, info["dataset"], info["stage"], info["lineage"], number)

    def records(self, dataset: str | None = None) -> list[VersionRecord]:
        """Every saved version (of ``dataset``, or of all), by dataset, model and age."""
        out = []
        for name, entry in self._read()["models"].items():
            for on in sorted({info["dataset"] for info in entry["versions"].values()}):
                if dataset is not None and on != dataset:
                    continue
                for number, version in enumerate(_numbered(entry, on), start=1):
                    info = entry["versions"][version]
                    out.append(VersionRecord(name, version, on, info["stage"], info["lineage"], number))
        return sorted(out, key=lambda r: (r.dataset, r.model, r.version))

    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.records()})

    def default_model(self, dataset: str = DEMO_DATASET) -> str | None:
        """The model served when a request names none: the one set, else ``DEFAULT_MODEL`` or the
        first name, among those with a production version on ``dataset``."""
        data = self._read()
        served = [name for name, entry in data["models"].items() if _production(entry, dataset) is not None]
        if data["default_pinned"] and data["default"] in served:
            return str(data["default"])
        return _fallback_default(served)

    @property
    def default(self) -> str | None:
        return self.default_model(DEMO_DATASET)

    # ---- changes ---------------------------------------------------------------
    def set_default(self, name: str) -> None:
        with self._updating() as data:
            self._entry(data, name)
            data["default"] = name
            data["default_pinned"] = True

    def save(
        self, name: str, model: Recommender, dataset: str = DEMO_DATASET, lineage: Mapping[str, Any] | None = None,
        ann_min_items: int | None = None,
    ) -> str:
        """Save a fitted ``model`` as a new version of ``name`` trained on ``dataset`` and return it.

        The first version of ``name`` on ``dataset`` goes straight to production; later ones are
        candidates until promoted.  A model with index vectors over at least ``ann_min_items`` items
        (``RECOPS_ANN_MIN_ITEMS``; None: never) gets an ANN index built for the new version, saved in
        its directory before the registry points at it.
        """
        model_class(name)
        if model.name != name:
            raise ValueError(f"a {model.name!r} model cannot be saved as {name!r}")
        (self.models_dir / name).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.models_dir / name))
        try:
            model.save(staging)
            digest = _digest(staging)
            while True:
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                version = f"{stamp}-{digest}"
                final = self.models_dir / name / version
                try:
                    os.rename(staging, final)  # fails if the same model was saved this microsecond
                    break
                except OSError:
                    if not final.exists():
                        raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        vectors = model.index_vectors()
        if vectors is not None and wants_index(len(vectors), ann_min_items):
            try:
                AnnIndex.build(vectors).save(final, version)
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        with self._updating() as data:
            entry = data["models"].setdefault(name, {"versions": {}, "production": {}})
            first = _production(entry, dataset) is None
            entry["versions"][version] = {
                "dataset": dataset,
                "stage": PRODUCTION if first else CANDIDATE,
                "lineage": {"dataset": dataset, **dict(lineage or {})},
            }
            if first:
                entry["production"][dataset] = [version]
        return version

    def promote(self, name: str, version: str, dataset: str | None = None) -> StageChange:
        """Make ``version`` production for its dataset; the production version before it is archived."""
        with self._updating() as data:
            entry = self._entry(data, name)
            info = self._version_info(entry, name, version)
            if dataset is not None and info["dataset"] != dataset:
                raise LifecycleError(f"{name} {version} was trained on dataset {info['dataset']!r}, not {dataset!r}")
            if info["stage"] == PRODUCTION:
                raise LifecycleError(f"{name} {version} is already production on dataset {info['dataset']!r}")
            before = copy.deepcopy(entry)
            previous = _production(entry, info["dataset"])
            if previous is not None:
                entry["versions"][previous]["stage"] = ARCHIVED
            info["stage"] = PRODUCTION
            entry["production"].setdefault(info["dataset"], []).append(version)
            return StageChange("promote", name, info["dataset"], version, previous, before, copy.deepcopy(entry))

    def rollback(self, name: str, dataset: str = DEMO_DATASET) -> StageChange:
        """Serve the version that was production before the current one; the current one is archived."""
        with self._updating() as data:
            entry = self._entry(data, name)
            history = entry["production"].get(dataset) or []
            if not history:
                raise LifecycleError(f"{name!r} has no production version on dataset {dataset!r}")
            if len(history) < 2:
                raise LifecycleError(f"{name} on dataset {dataset!r}: no earlier production version to roll back to")
            before = copy.deepcopy(entry)
            current = history.pop()
            target = history[-1]
            entry["versions"][current]["stage"] = ARCHIVED
            entry["versions"][target]["stage"] = PRODUCTION
            return StageChange("rollback", name, dataset, target, current, before, copy.deepcopy(entry))

    def revert(self, change: StageChange) -> None:
        """Undo ``change`` (when it could not be audited), unless the entry changed again since."""
        with self._updating() as data:
            entry = self._entry(data, change.model)
            if entry != change.after:
                raise LifecycleError(f"{change.model} changed again after the {change.action}; not reverted")
            data["models"][change.model] = copy.deepcopy(change.before)

    def set_current(self, name: str, version: str) -> None:
        """Serve ``version`` of ``name`` from now on (kept for callers from before the lifecycle)."""
        self.promote(name, version)

    def load(self, name: str, version: str | None = None, dataset: str = DEMO_DATASET) -> Recommender:
        """The saved model ``name`` at ``version`` (production on ``dataset`` by default), ready to serve.

        The loaded model knows its ``version``: serving keys its cached lists by it.
        """
        cls = model_class(name)
        entry = self._entry(self._read(), name)
        if version is None:
            version = _production(entry, dataset)
            if version is None:
                raise UnknownModelError(f"{name!r} has no production version on dataset {dataset!r}")
        self._version_info(entry, name, version)
        return cls.load(self.models_dir / name / version, version)

    def train_all(
        self, dataset: Dataset, names: Iterable[str] | None = None, dataset_version: int | None = None,
        ann_min_items: int | None = None,
    ) -> dict[str, str]:
        """Fit and save each model (``STARTUP_MODELS`` by default) on ``dataset``, named by
        ``dataset.name``; returns name → new version (with an ANN index from ``ann_min_items`` items)."""
        chosen = list(names) if names is not None else list(STARTUP_MODELS)
        for name in chosen:
            model_class(name)  # fail before spending time on training
        interactions = dataset.interactions()
        versions = {}
        for name in chosen:
            started = time.perf_counter()
            model = new_model(name).fit(interactions)
            record = lineage(dataset=dataset.name, dataset_version=dataset_version, events=dataset.events,
                             params=model.params(), train_seconds=time.perf_counter() - started)
            versions[name] = self.save(name, model, dataset=dataset.name, lineage=record, ann_min_items=ann_min_items)
        return versions
