"""One abstract base for every recommender, in the shape of ``implicit``'s API.

    >>> model = ItemItemRecommender().fit(dataset.interactions())
    >>> model.recommend("u00042", n=10)                 # [(item_id, score), ...] best first
    >>> model.score("u00042", ["i00007", "i00100"])     # scores for chosen candidates
    >>> model.similar_items("i00007", n=5)
    >>> model.save(path); ItemItemRecommender.load(path)

Models see only an ``InteractionMatrix`` (ids ↔ indices and a confidence matrix); dataset I/O
lives in ``engine.data``.  Users a model has never seen get an empty recommendation from
``recommend`` — cold start is the service's job, not the model's — unless the model is
history-based and is given the user's recent items through ``history``.

A model with item vectors can carry an approximate-nearest-neighbour index (``ann``, see
``engine.models.ann_index``): ``recommend`` then scores only the items the index retrieves for the
user's vector instead of every item.  The registry builds it at training time for large
catalogues (``RECOPS_ANN_MIN_ITEMS``) and ``load`` attaches it, refusing one built for another
version.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from engine.data.schema import InteractionMatrix
from engine.models.ann_index import AnnIndex, IndexMismatchError, has_index


class NotFittedError(RuntimeError):
    pass


class Recommender(ABC):
    """Base class: subclasses implement ``fit``, ``_score_indices`` and the array (de)serialisation."""

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        self.item_ids: np.ndarray | None = None
        self.item_index: dict[str, int] = {}
        self.user_index: dict[str, int] = {}
        self.user_items: list[np.ndarray] = []  # per known user, the item indices they interacted with
        self.version: str | None = None  # the registry version it was loaded from (None: not saved)
        self.ann: AnnIndex | None = None  # candidate retrieval for large catalogues; None: score every item

    # ---- training -------------------------------------------------------------
    @abstractmethod
    def fit(self, interactions: InteractionMatrix) -> Recommender:
        """Train on a users × items confidence matrix; returns self."""

    def _remember_index(self, interactions: InteractionMatrix) -> None:
        self.item_ids = np.asarray(interactions.item_ids, dtype=object)
        self.item_index = dict(interactions.item_index)
        self.user_index = dict(interactions.user_index)
        m = interactions.matrix
        self.user_items = [m.indices[m.indptr[u] : m.indptr[u + 1]].copy() for u in range(m.shape[0])]

    # ---- scoring --------------------------------------------------------------
    @abstractmethod
    def _score_indices(self, user_id: str, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Scores of item indices ``candidates`` for a user whose known item indices are ``history``."""

    def _require_fitted(self) -> np.ndarray:
        if self.item_ids is None:
            raise NotFittedError(f"{self.name} model is not fitted")
        return self.item_ids

    def _history(self, user_id: str, history: Iterable[str] | None) -> np.ndarray:
        if history is not None:
            idx = [self.item_index[i] for i in history if i in self.item_index]
            return np.asarray(idx, dtype=np.int64)
        u = self.user_index.get(user_id)
        return self.user_items[u] if u is not None else np.empty(0, dtype=np.int64)

    def score(self, user_id: str, item_ids: Sequence[str], history: Iterable[str] | None = None) -> np.ndarray:
        """Scores for ``item_ids`` (unknown items score -inf), higher is better."""
        self._require_fitted()
        idx = np.asarray([self.item_index.get(i, -1) for i in item_ids], dtype=np.int64)
        out = np.full(len(idx), -np.inf, dtype=np.float64)
        known = idx >= 0
        if known.any():
            out[known] = self._score_indices(user_id, self._history(user_id, history), idx[known])
        return out

    def recommend(
        self,
        user_id: str,
        n: int = 10,
        exclude: Iterable[str] = (),
        history: Iterable[str] | None = None,
        filter_seen: bool = True,
    ) -> list[tuple[str, float]]:
        """Top ``n`` (item_id, score), best first, without ``exclude`` (and the user's history)."""
        item_ids = self._require_fitted()
        hist = self._history(user_id, history)
        banned = [self.item_index[i] for i in exclude if i in self.item_index]
        if filter_seen and len(hist):
            banned.extend(hist.tolist())
        # enough candidates that n are left once the banned ones are dropped
        retrieved = self._retrieve(user_id, hist, n + len(banned))
        candidates = np.arange(len(item_ids)) if retrieved is None else retrieved
        scores = np.asarray(self._score_indices(user_id, hist, candidates), dtype=np.float64)
        if banned:
            drop = np.asarray(banned, dtype=np.int64)
            scores[drop if retrieved is None else np.isin(candidates, drop)] = -np.inf
        n = min(n, int(np.isfinite(scores).sum()))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        # whole-array look-ups: indexing numpy scalars one by one costs ~5 µs an item, 1.5 ms a pool
        return list(zip(map(str, item_ids[candidates[top]]), scores[top].tolist(), strict=True))

    def _retrieve(self, user_id: str, history: np.ndarray, k: int) -> np.ndarray | None:
        """Item indices worth scoring exactly: the index's top ``k`` for the user's vector, or None
        (score every item) when there is no index."""
        if self.ann is None:
            return None
        query = self.query_vector(user_id, history)
        if query is None:
            return np.empty(0, dtype=np.int64)
        return self.ann.search(query, k)

    def query_vector(self, user_id: str, history: np.ndarray) -> np.ndarray | None:
        """The user's vector in the item vectors' space (a factor model's user factor), or None when
        there is nothing to go on; models without item vectors have none."""
        return None

    def item_vectors(self) -> np.ndarray | None:
        """Latent item vectors (rows in ``item_ids`` order) when the model has them, else None.

        The service uses them for MMR similarity and "because you liked" reasons.
        """
        return None

    def index_vectors(self) -> np.ndarray | None:
        """The vectors an ANN index searches (rows in ``item_ids`` order, inner product with
        ``query_vector`` is the score), or None for models that score otherwise (EASE, item-item).

        Separate from ``item_vectors``: that one changes how the service diversifies and explains."""
        return None

    def attach_index(self, index: AnnIndex) -> None:
        """Retrieve candidates through ``index`` from now on (it must be over this model's ``index_vectors``)."""
        vectors = self.index_vectors()
        if vectors is None:
            raise ValueError(f"a {self.name} model has no item vectors to search with an ANN index")
        if (index.n_items, index.dim) != vectors.shape:
            raise IndexMismatchError(f"the ANN index holds {index.n_items} × {index.dim} vectors, the {self.name} "
                                     f"model {vectors.shape[0]} × {vectors.shape[1]}")
        self.ann = index

    @abstractmethod
    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        """Items most like ``item_id`` (not including it), best first."""

    # ---- persistence ----------------------------------------------------------
    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (numeric only; ids are saved by the base)."""

    @abstractmethod
    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None: ...

    def params(self) -> dict[str, object]:
        """Hyper-parameters, saved beside the arrays and passed back to ``__init__`` on load."""
        return {}

    def save(self, path: Path) -> Path:
        """Write ``model.json`` and ``arrays.npz`` (numpy, never pickle) into directory ``path``."""
        item_ids = self._require_fitted()
        path.mkdir(parents=True, exist_ok=True)
        users = np.asarray(list(self.user_index), dtype=object)
        lengths = np.asarray([len(x) for x in self.user_items], dtype=np.int64)
        flat = np.concatenate(self.user_items) if self.user_items else np.empty(0, dtype=np.int64)
        np.savez(
            path / "arrays.npz",
            allow_pickle=False,  # an object array would need pickle to load: refuse it at save time
            __item_ids=item_ids.astype(str),
            __user_ids=users.astype(str),
            __user_items_len=lengths,
            __user_items=flat.astype(np.int64),
            **self._arrays(),
        )
        (path / "model.json").write_text(json.dumps({"name": self.name, "params": self.params()}, indent=2))
        return path

    @classmethod
    def load(cls, path: Path, version: str | None = None) -> Recommender:
        """The model saved in ``path`` (registry ``version`` when it is one), with its ANN index when one
        was built; an index built for another version or other vectors is refused (``IndexMismatchError``)."""
        meta = json.loads((path / "model.json").read_text())
        if meta["name"] != cls.name:
            raise ValueError(f"{path} holds a {meta['name']!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        model.item_ids = arrays.pop("__item_ids").astype(object)
        model.item_index = {iid: i for i, iid in enumerate(model.item_ids)}
        users = arrays.pop("__user_ids").astype(object)
        model.user_index = {uid: u for u, uid in enumerate(users)}
        lengths = arrays.pop("__user_items_len")
        model.user_items = np.split(arrays.pop("__user_items"), np.cumsum(lengths)[:-1]) if len(lengths) else []
        model._load_arrays(arrays)
        model.version = version
        vectors = model.index_vectors()
        if vectors is not None and has_index(path):
            model.attach_index(AnnIndex.load(path, version, vectors))
        return model
