"""A world on disk: ``meta.json``, ``latent.npz`` (numpy, never pickle) and the two tables.

``meta.json`` is written last and removed first, so its presence marks a complete save.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from engine.data.demo.generation import Latent
from engine.data.schema import DatasetError

FORMAT_VERSION = 1

TableFormat = Literal["parquet", "csv.gz"]

_ITEM_TABLE = "items"
_EVENT_TABLE = "events"
_LATENT_FILE = "latent.npz"
_META_FILE = "meta.json"


@dataclass(frozen=True)
class SavedWorld:
    params: dict[str, int]
    categories: list[str]
    latent: Latent
    items: pd.DataFrame
    events: pd.DataFrame


def write_world(directory: Path, world: SavedWorld, table_format: TableFormat | None = None) -> Path:
    """Write ``world`` to ``directory``; the tables as parquet when pyarrow is installed, else csv.gz."""
    fmt = table_format or ("parquet" if importlib.util.find_spec("pyarrow") else "csv.gz")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # An interrupted overwrite must not leave an old meta.json vouching for new, partial files.
    (directory / _META_FILE).unlink(missing_ok=True)
    np.savez_compressed(directory / _LATENT_FILE, allow_pickle=False, **world.latent.numeric())
    for name, table in ((_ITEM_TABLE, world.items), (_EVENT_TABLE, world.events)):
        path = directory / f"{name}.{fmt}"
        if fmt == "parquet":
            table.to_parquet(path, index=False)
        else:
            table.to_csv(path, index=False)
    # meta.json last: its presence marks a complete save.
    meta = {"version": FORMAT_VERSION, "params": world.params, "categories": world.categories, "table_format": fmt}
    (directory / _META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def read_world(directory: Path) -> SavedWorld:
    """The world saved in ``directory``; ``DatasetError`` when it is missing, partial or of another format."""
    directory = Path(directory)
    try:
        meta = _read_meta(directory)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{directory}: no readable {_META_FILE} ({exc})") from exc
    if meta.get("version") != FORMAT_VERSION:
        raise DatasetError(f"{directory}: demo world format {meta.get('version')}, expected {FORMAT_VERSION}")
    fmt = meta["table_format"]
    try:
        with np.load(directory / _LATENT_FILE, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        tables = {}
        for name in (_ITEM_TABLE, _EVENT_TABLE):
            path = directory / f"{name}.{fmt}"
            if fmt == "parquet":
                tables[name] = pd.read_parquet(path)
            else:
                tables[name] = pd.read_csv(path, dtype={"item_id": str, "user_id": str, "title": str})
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{directory}: incomplete demo world ({exc})") from exc
    items, events = tables[_ITEM_TABLE], tables[_EVENT_TABLE]
    latent = Latent(titles=items["title"].to_numpy(dtype=object), **arrays)
    return SavedWorld(params=meta["params"], categories=meta["categories"], latent=latent, items=items, events=events)


def saved_with(directory: Path, params: dict[str, int]) -> bool:
    """True when ``directory`` holds a save of this format made with ``params``.
    Raises ``OSError`` or ``ValueError`` when there is no readable ``meta.json``."""
    meta = _read_meta(directory)
    return bool(meta.get("params") == params and meta.get("version") == FORMAT_VERSION)


def _read_meta(directory: Path) -> Any:
    return json.loads((Path(directory) / _META_FILE).read_text())
