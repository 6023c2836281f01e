"""Small input files written by the import tests, and a snapshot of what a data dir stores."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.cli import CliRunner

__all__ = ["INTERACTION_HEADER", "CliRunner", "interaction_rows", "sha256", "snapshot", "write_csv", "write_parquet"]

INTERACTION_HEADER = ["user_id", "item_id", "timestamp", "event", "rating"]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], encoding: str = "utf-8") -> Path:
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_parquet(path: Path, columns: dict[str, pa.Array | list[Any]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its checksum: what "nothing stored changed" compares."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def interaction_rows(n_users: int = 20, n_items: int = 10, per_user: int = 5) -> list[list[Any]]:
    """A small clean history: user u rates/views items (u + k) % n_items at increasing Unix times."""
    rows = []
    for u in range(n_users):
        for k in range(per_user):
            event = ("view", "click", "add_to_cart", "purchase", "rating")[k % 5]
            rating = 1 + (u + k) % 5 if event == "rating" else None
            rows.append([f"u{u}", f"i{(u + k) % n_items}", 1_700_000_000 + 60 * (u * per_user + k), event, rating])
    return rows
