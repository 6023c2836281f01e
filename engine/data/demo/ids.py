"""The demo world's ids: ``u00042`` for user index 42, ``i00007`` for item index 7."""

from __future__ import annotations

from typing import Any

import numpy as np


def format_ids(prefix: str, n: int) -> np.ndarray:
    width = max(5, len(str(max(n - 1, 0))))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width)).astype(object)


def parse_ids(ids: Any, prefix: str, n: int) -> np.ndarray:
    """Indices of ``"u00042"``-style ids (a scalar, a sequence or an array); integers pass through."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        idx = arr.astype(np.int64)
    else:
        text = arr.astype(str)
        if not np.all(np.char.startswith(text, prefix)):
            raise KeyError(f"ids must look like {prefix}00000")
        try:
            idx = np.char.lstrip(text, prefix).astype(np.int64)
        except ValueError as exc:
            raise KeyError(f"malformed id in {text.ravel()[:5].tolist()}") from exc
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise KeyError(f"id out of range: this world has {n} {'users' if prefix == 'u' else 'items'}")
    return idx
