"""A small dataset imported the way a user imports theirs: CSV files through ``recops import``'s code.

The two-taste world of ``tests.support.synthetic_data`` written as an interactions file and an item
file with an attribute column (``brand``), then imported into a data dir, so tests of serving,
training and replay start from a real stored dataset version.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetStore, StoredDataset
from engine.data.schema import Dataset
from tests.support.synthetic_data import two_taste_dataset

NAME = "shop"


def brand(item_id: str) -> str:
    """The attribute the item file carries beyond title and category."""
    return f"brand-{int(item_id[1:]) % 3}"


def write_import_files(dataset: Dataset, folder: Path) -> tuple[Path, Path]:
    """``interactions.csv`` (user_id, item_id, timestamp, event) and ``items.csv`` (item_id, title, category, brand)."""
    folder.mkdir(parents=True, exist_ok=True)
    events = dataset.events
    interactions = pd.DataFrame({"user_id": events["user_id"], "item_id": events["item_id"],
                                 "timestamp": events["timestamp"].astype("int64"), "event": events["type"]})
    items = dataset.items[["item_id", "title", "category"]].assign(brand=dataset.items["item_id"].map(brand))
    paths = folder / "interactions.csv", folder / "items.csv"
    interactions.to_csv(paths[0], index=False)
    items.to_csv(paths[1], index=False)
    return paths


def import_small_dataset(data_dir: Path, name: str = NAME, seed: int = 0) -> StoredDataset:
    """The two-taste world imported as ``name`` under ``data_dir`` (a new version per call)."""
    interactions, items = write_import_files(two_taste_dataset(seed=seed), data_dir.parent / f"{name}-files")
    store = DatasetStore(data_dir / "datasets")
    result = import_dataset(store, name, interactions, items)
    return store.load(name, result.version)
