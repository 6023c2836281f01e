"""Versioned model storage: train, save, list and load models without retraining.

Layout under ``models_dir``::

    registry.json                      {"default": "als", "default_pinned": false,
                                        "models": {"als": {"current": "<version>", "versions": [...]}}}
    <name>/<version>/model.json        written by ``Recommender.save``
    <name>/<version>/arrays.npz

A version is ``YYYYmmddTHHMMSSffffffZ-<hash>``: it sorts by creation time, and the short hash of the
saved arrays tells two versions apart even when they were made in the same microsecond.
``registry.json`` is replaced atomically (temp file + ``os.replace``), so a reader — the API, the
console — sees the old registry or the new one, never half of one.  The model directory is
complete before the registry points at it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.data.schema import Dataset
from engine.models.als import ALSRecommender
from engine.models.base import Recommender
from engine.models.item_item import ItemItemRecommender
from engine.models.popularity import PopularityRecommender

MODEL_CLASSES: dict[str, type[Recommender]] = {
    "popularity": PopularityRecommender,
    "item_item": ItemItemRecommender,
    "als": ALSRecommender,
}
# The model served when a request names none, until ``set_default`` says otherwise: ALS measured
# best offline on ml-100k and on the demo world's ground truth (see engine/models/als.py).
DEFAULT_MODEL = "als"
REGISTRY_FILE = "registry.json"
LOCK_FILE = ".registry.lock"


class UnknownModelError(KeyError):
    """A model name or version the registry does not have; the message lists what it does have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def model_class(name: str) -> type[Recommender]:
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known: {sorted(MODEL_CLASSES)}") from None


def new_model(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    """An unfitted model of kind ``name`` with its default (or the given) hyper-parameters."""
    return model_class(name)(**dict(params or {}))


class RegistryError(RuntimeError):
    """``registry.json`` exists but cannot be read."""


def _fallback_default(models: Mapping[str, Any]) -> str | None:
    if DEFAULT_MODEL in models:
        return DEFAULT_MODEL
    return min(models) if models else None


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


class ModelRegistry:
    """Models on disk, by name and version; see the module docstring."""

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
            return {"default": None, "default_pinned": False, "models": {}}
        except ValueError as exc:
            raise RegistryError(f"{self._path} is not valid JSON ({exc})") from exc
        data.setdefault("models", {})
        data.setdefault("default", None)
        data.setdefault("default_pinned", False)
        return data

    @contextlib.contextmanager
    def _updating(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, and write the registry under an exclusive lock.

        Readers need no lock (the file is replaced atomically); two writers — a retrain from the
        console and one from the CLI — would otherwise lose one another's versions.
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
            raise UnknownModelError(f"no saved model {name!r} in {self.models_dir}; saved: {sorted(data['models'])}")
        return entry

    # ---- queries ---------------------------------------------------------------
    def names(self) -> list[str]:
        """Names with at least one saved version, sorted."""
        return sorted(self._read()["models"])

    def versions(self, name: str) -> list[str]:
        """Saved versions of ``name``, oldest first."""
        return list(self._entry(self._read(), name)["versions"])

    def current_version(self, name: str) -> str:
        return str(self._entry(self._read(), name)["current"])

    @property
    def default(self) -> str | None:
        """The default model's name: the one set, else ``DEFAULT_MODEL`` or the first saved name."""
        data = self._read()
        if data["default_pinned"] and data["default"] in data["models"]:
            return str(data["default"])
        return _fallback_default(data["models"])

    # ---- changes ---------------------------------------------------------------
    def set_default(self, name: str) -> None:
        with self._updating() as data:
            self._entry(data, name)
            data["default"] = name
            data["default_pinned"] = True

    def set_current(self, name: str, version: str) -> None:
        """Serve ``version`` of ``name`` from now on (a rollback is this with an older version)."""
        with self._updating() as data:
            entry = self._entry(data, name)
            if version not in entry["versions"]:
                raise UnknownModelError(f"{name!r} has no version {version!r}; versions: {entry['versions']}")
            entry["current"] = version

    def save(self, name: str, model: Recommender) -> str:
        """Save a fitted ``model`` as a new version of ``name``, make it current, and return the version."""
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
        with self._updating() as data:
            entry = data["models"].setdefault(name, {"versions": [], "current": None})
            entry["versions"] = sorted({*entry["versions"], version})
            entry["current"] = version
        return version

    def load(self, name: str, version: str | None = None) -> Recommender:
        """The saved model ``name`` at ``version`` (the current one by default), ready to serve."""
        cls = model_class(name)
        data = self._read()
        entry = self._entry(data, name)
        version = version or entry["current"]
        if version not in entry["versions"]:
            raise UnknownModelError(f"{name!r} has no version {version!r}; versions: {entry['versions']}")
        return cls.load(self.models_dir / name / version)

    def train_all(self, dataset: Dataset, names: Iterable[str] | None = None) -> dict[str, str]:
        """Fit and save each model (all of ``MODEL_CLASSES`` by default); returns name → new version."""
        chosen = list(names) if names is not None else list(MODEL_CLASSES)
        for name in chosen:
            model_class(name)  # fail before spending time on training
        interactions = dataset.interactions()
        return {name: self.save(name, new_model(name).fit(interactions)) for name in chosen}
