"""An approximate maximum-inner-product index over a factor model's item vectors (faiss IVF-flat).

Exact candidate retrieval scores every item (``item_factors @ user``): ~45 ms per query at a
million items × 64 dims on this machine.  The index answers "the items with the largest inner
product with this user vector" by scanning a few cells of an inverted file instead.

Why IVF-flat on augmented vectors (numbers in the README, ``python -m bench ann --compare``):

* Inner product is not a distance, and factor vectors' norms are skewed by popularity, so the
  index searches on the classic MIPS → nearest-neighbour reduction (Bachrach et al., 2014): item
  ``x`` becomes ``[x, sqrt(Φ² − |x|²)]`` (``Φ`` the largest item norm, so every item has length
  Φ) and a query ``q`` becomes ``[q / |q|, 0]``; then ``|q̂ − x̂|² = 1 + Φ² − 2 q·x / |q|`` and the
  nearest items are the ones with the largest inner product.  k-means cells then group items by
  direction *and* norm, which plain inner-product cells do not (recall 0.5 against 0.95 here).
* faiss IVF-flat built ~3× faster than hnswlib's HNSW and, with the reduction, reached recall@100
  ≥ 0.95 where hnswlib's inner-product graph stopped near 0.85–0.9 on the same vectors
  (the reduction makes HNSW worse, not better: most items end up nearly equidistant).

The index returns candidates; the model scores them exactly, so the order and the scores served
are the exact ones of the retrieved items — only recall is approximate.

Saved beside the model (``ann.index`` + ``ann.json``) with the file's SHA-256, the checksum of
the item vectors it was built from and the model version it was built for: an index that does
not match the model it is loaded with is refused (``IndexMismatchError``), never silently used.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FILE = "ann.index"
MANIFEST_FILE = "ann.json"
LIBRARY = "faiss-ivf-flat"
TRAIN_POINTS_PER_CELL = 40  # faiss warns below 39 training points per centroid


class IndexMismatchError(ValueError):
    """An index file that does not belong to the model version it is loaded with."""


def vectors_checksum(vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()


def file_checksum(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cells(n_items: int) -> int:
    """Inverted-file cells: ~4·√n, the usual faiss rule (cells of ~√n/4 items)."""
    return max(1, min(n_items // TRAIN_POINTS_PER_CELL, int(4 * math.sqrt(n_items))))


def default_probe(cells: int) -> int:
    """Cells scanned per query.  Recall at a given share of cells rises with the catalogue (cells
    hold more items and follow the clusters better), so the share falls as 1/√cells: 1/6 up to
    ~1,000 cells (recall@100 0.97 at 100,000 items; 1/16 gave 0.86 at 20,000), 1/12 at 4,000
    cells (0.966 at 1,000,000 items, where 1/6 scanned twice the vectors for +0.01); at least 64
    (41 of 250 cells gave 0.90 at 10,000 items).  ``python -m bench ann`` shows the curve."""
    return min(cells, max(64, min(cells // 6, round(5.3 * math.sqrt(cells)))))


@dataclass
class AnnIndex:
    """A built or loaded index; ``search`` returns item indices (rows of the vectors it was built on)."""

    index: Any  # faiss.IndexIVFFlat
    n_items: int
    dim: int
    probe: int
    vectors_sha256: str

    @classmethod
    def build(cls, vectors: np.ndarray, cells: int | None = None, probe: int | None = None,
              seed: int = 1234, threads: int | None = None) -> AnnIndex:
        import faiss  # imported on use: a process serving small catalogues never loads it

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = x.shape
        cells = cells or default_cells(n)
        augmented = _augment_items(x)
        quantizer = faiss.IndexFlatL2(dim + 1)
        index = faiss.IndexIVFFlat(quantizer, dim + 1, cells, faiss.METRIC_L2)
        index.cp.seed = seed
        rng = np.random.default_rng(seed)
        sample = augmented[rng.choice(n, size=min(n, cells * TRAIN_POINTS_PER_CELL), replace=False)]
        if threads is not None:
            faiss.omp_set_num_threads(threads)
        index.train(sample)
        index.add(augmented)
        # one query at a time in a serving process: threads would only contend with the workers
        faiss.omp_set_num_threads(1)
        return cls(index, n, dim, probe or default_probe(cells), vectors_checksum(x))

    @property
    def cells(self) -> int:
        return int(self.index.nlist)

    def search(self, query: np.ndarray, k: int, probe: int | None = None) -> np.ndarray:
        """Indices of (about) the ``k`` items with the largest inner product with ``query``, in no
        particular order; fewer when the catalogue is smaller."""
        k = min(k, self.n_items)
        norm = float(np.linalg.norm(query))
        if k <= 0 or norm == 0.0:
            return np.empty(0, dtype=np.int64)
        q = np.zeros((1, self.dim + 1), dtype=np.float32)
        q[0, : self.dim] = np.asarray(query, dtype=np.float32) / norm
        self.index.nprobe = probe or self.probe
        _, found = self.index.search(q, k)
        ids = found[0]
        return ids[ids >= 0].astype(np.int64)

    def memory_mb(self) -> float:
        """Vectors and ids held by the inverted lists plus the centroids."""
        return (self.n_items * ((self.dim + 1) * 4 + 8) + self.cells * (self.dim + 1) * 4) / 1e6

    # ---- persistence ----------------------------------------------------------
    def save(self, directory: Path, model_version: str | None) -> Path:
        import faiss

        path = directory / INDEX_FILE
        faiss.write_index(self.index, str(path))
        manifest = {
            "library": LIBRARY,
            "file": INDEX_FILE,
            "sha256": file_checksum(path),
            "model_version": model_version,
            "vectors_sha256": self.vectors_sha256,
            "items": self.n_items,
            "dim": self.dim,
            "cells": self.cells,
            "probe": self.probe,
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, directory: Path, model_version: str | None, vectors: np.ndarray) -> AnnIndex:
        """The index saved in ``directory``, checked against the model it will serve: its version
        (when known) and its item vectors.  ``IndexMismatchError`` saying what differs otherwise."""
        import faiss

        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        built_for = manifest.get("model_version")
        if model_version is not None and built_for != model_version:
            raise IndexMismatchError(
                f"the ANN index in {directory} was built for model version {built_for}, not {model_version}: "
                "retrain, or rebuild the index for this version")
        path = directory / str(manifest["file"])
        if file_checksum(path) != manifest["sha256"]:
            raise IndexMismatchError(f"the ANN index file {path} does not match its checksum in {MANIFEST_FILE}")
        if vectors_checksum(vectors) != manifest["vectors_sha256"]:
            raise IndexMismatchError(
                f"the ANN index in {directory} was built from other item vectors than the model's "
                f"(model version {built_for}): retrain, or rebuild the index for this version")
        index = faiss.read_index(str(path))
        return cls(index, int(manifest["items"]), int(manifest["dim"]), int(manifest["probe"]),
                   str(manifest["vectors_sha256"]))


def has_index(directory: Path) -> bool:
    return (directory / MANIFEST_FILE).exists()


def wants_index(n_items: int, min_items: int | None) -> bool:
    """The one rule for when a model gets an index: catalogues of at least ``min_items`` items
    (``RECOPS_ANN_MIN_ITEMS``); smaller ones are scored exactly, which is both exact and fast there."""
    return min_items is not None and n_items >= min_items


def _augment_items(x: np.ndarray) -> np.ndarray:
    """``[x, sqrt(Φ² − |x|²)]``: every item the same length, so L2 nearest = largest inner product."""
    norms_sq = np.einsum("ij,ij->i", x, x)
    extra = np.sqrt(np.maximum(float(norms_sq.max()) - norms_sq, 0.0))
    return np.ascontiguousarray(np.hstack([x, extra[:, None]]), dtype=np.float32)
