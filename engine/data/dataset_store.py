"""Stored datasets by name and version.

Minimal stand-in for training: only the demo world ("demo", version 1) is served here; the
dataset import replaces this module with the full store (imported datasets under
``RECOPS_DATA_DIR/datasets/NAME/vN/``) behind the same API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.data.demo import DemoWorld
from engine.data.schema import Dataset

DEMO = "demo"


class DatasetNotFoundError(ValueError):
    """No stored dataset of that name (or version)."""


@dataclass(frozen=True)
class StoredDataset:
    name: str
    version: int
    path: Path | None
    manifest: dict[str, Any]
    dataset: Dataset


def open_dataset(settings: Settings, name: str, version: int | None = None) -> StoredDataset:
    """The dataset ``name`` at ``version`` (the latest by default)."""
    if name != DEMO:
        raise DatasetNotFoundError(f"no dataset {name!r}; known: ['{DEMO}']")
    if version not in (None, 1):
        raise DatasetNotFoundError(f"dataset {DEMO!r} has only version 1, not {version}")
    world = DemoWorld.load_or_generate(
        settings.data_dir / "world", seed=settings.demo_seed, n_users=settings.demo_users, n_items=settings.demo_items
    )
    return StoredDataset(name=DEMO, version=1, path=None, manifest={}, dataset=world.dataset())
