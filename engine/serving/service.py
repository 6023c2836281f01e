"""The recommendation service: cache → features → candidates → scores → re-rank → reasons.

    >>> service.recommend("u00042", n=10)                       # default model
    >>> service.recommend("u00042", n=5, model="item_item",
    ...                   diversity=DiversitySettings(category_cap=2, mmr_lambda=0.5))

It never raises to its caller: any failure inside (Redis unreachable, a model error) is logged
and answered from an in-process snapshot of popular items with ``fallback=True``, so serving
keeps working while a dependency is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict, TypeVar

import numpy as np
import redis

from engine.data.catalog import ItemCatalog
from engine.models.base import Recommender
from engine.monitoring import prometheus_metrics as metrics
from engine.monitoring.quality import QualityWindow, category_diversity
from engine.serving.cache import TieredCache, WarmReport
from engine.serving.diversity import DiversitySettings, mmr_rerank
from engine.serving.reasons import POPULAR, explain
from engine.storage.feature_store import FeatureStore
from engine.storage.keys import Keys

log = logging.getLogger(__name__)


class UnknownModelError(ValueError):
    pass


class RecommendedItem(TypedDict):
    # a TypedDict, not a dataclass: lists come out of the cache as JSON dicts, and building ten
    # objects per request would cost more than the whole L1 look-up
    item_id: str
    title: str
    category: str
    score: float
    reason: str


@dataclass
class RecommendationResult:
    user_id: str
    items: list[RecommendedItem]
    model: str
    cached: bool = False
    cache_tier: str = "miss"
    cold_start: bool = False
    diversity: float = 1.0
    fallback: bool = False
    fallback_reason: str | None = None
    latency_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


K = TypeVar("K")
V = TypeVar("V")


class _Children(dict[K, V]):
    """A dict that fills itself from a factory on first access."""

    def __init__(self, factory: Callable[[K], V]) -> None:
        super().__init__()
        self._factory = factory

    def __missing__(self, key: K) -> V:
        value = self[key] = self._factory(key)
        return value


def _error_kind(exc: BaseException) -> str:
    """Low-cardinality label for the fallback counter."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | ConnectionError | TimeoutError):
        return "redis_unavailable"
    if isinstance(exc, redis.RedisError):
        return "redis_error"
    return "model_error"


class RecommendationService:
    def __init__(
        self,
        models: Mapping[str, Recommender],
        default_model: str | None,
        catalog: ItemCatalog,
        features: FeatureStore,
        cache: TieredCache,
        keys: Keys,
        candidate_pool: int = 300,
        diversity: DiversitySettings | None = None,
        similarity_model: str | None = "als",
        fallback_size: int = 200,
    ) -> None:
        self.catalog = catalog
        self.features = features
        self.cache = cache
        self.keys = keys
        self.candidate_pool = candidate_pool
        self.diversity = diversity or DiversitySettings()
        self.similarity_model = similarity_model
        self._install(models, default_model)
        # Snapshot taken at start-up so the fallback never touches Redis or a model.
        self._fallback_positions = catalog.most_popular(fallback_size)
        self.quality = QualityWindow(len(catalog))
        # labelled metric children looked up once: .labels() costs more than the increment
        self._requests: dict[tuple[str, str], Any] = _Children(
            lambda key: metrics.RECOMMENDATION_REQUESTS.labels(status=key[0], model=key[1])
        )
        self._latency: dict[str, Any] = _Children(lambda tier: metrics.RECOMMENDATION_LATENCY.labels(tier=tier))

    def _install(self, models: Mapping[str, Recommender], default_model: str | None) -> None:
        # None is what a registry without any model names as its default
        if default_model is None or default_model not in models:
            raise UnknownModelError(f"default model {default_model!r} is not among {sorted(models)}")
        self.models = dict(models)
        self.default_model = default_model
        # Item vectors for MMR similarity and reasons: the latent factors of a factor model when
        # one is loaded (they capture taste), else category co-membership.
        sim_model = models.get(self.similarity_model) if self.similarity_model else None
        self.vectors = self._catalog_vectors(sim_model)

    def swap_models(self, models: Mapping[str, Recommender], default_model: str | None) -> int:
        """Serve newly loaded models; cached lists of the old ones are dropped everywhere."""
        self._install(models, default_model)
        return self.cache.invalidate_all(reason="model_reload")

    def _catalog_vectors(self, model: Recommender | None) -> np.ndarray | None:
        if model is None:
            return None
        vectors = model.item_vectors()
        if vectors is None or model.item_ids is None:
            return None
        out = np.zeros((len(self.catalog), vectors.shape[1]), dtype=np.float32)
        for model_pos, iid in enumerate(model.item_ids):
            pos = self.catalog.index.get(iid)
            if pos is not None:
                out[pos] = vectors[model_pos]
        return out

    # ------------------------------------------------------------------ public
    def list_key(self, user_id: str, model_name: str, n: int, diversity: DiversitySettings | None = None) -> str:
        """The cache key of a user's list from ``model_name`` (at the version loaded now)."""
        return self._key(user_id, model_name, self.models.get(model_name), n, diversity or self.diversity)

    def _key(self, user_id: str, model_name: str, model: Recommender | None, n: int, div: DiversitySettings) -> str:
        # Cached lists are keyed by model version (``name@version`` for a registry model), so a
        # process that has not yet picked up a promotion never serves, or overwrites, the lists of
        # the version that replaced it — and the new version never reads the old one's.  The key
        # and the list come from the same model object, even while ``swap_models`` runs.
        version = model.version if model is not None else None
        return self.keys.rec_list(user_id, f"{model_name}@{version}" if version else model_name, n, div.signature)

    def recommend_from_l1(
        self, user_id: str, n: int = 10, model: str | None = None, diversity: DiversitySettings | None = None
    ) -> RecommendationResult | None:
        """The in-process cached list, or None; never does I/O (safe on an event loop)."""
        started = time.perf_counter()
        model_name = model or self.default_model
        chosen = self.models.get(model_name)
        if chosen is None:
            return None
        key = self._key(user_id, model_name, chosen, n, diversity or self.diversity)
        value, _ = self.cache.peek_l1(key)
        if value is None:
            return None
        result = self._result_from(user_id, value, model_name, "l1")
        self._finish(result, "l1", "ok", started)
        return result

    def recommend(
        self,
        user_id: str,
        n: int = 10,
        model: str | None = None,
        diversity: DiversitySettings | None = None,
        use_cache: bool = True,
    ) -> RecommendationResult:
        started = time.perf_counter()
        model_name = model or self.default_model
        chosen = self.models.get(model_name)
        if chosen is None:
            raise UnknownModelError(f"unknown model {model_name!r}; known: {sorted(self.models)}")
        div = diversity or self.diversity
        key = self._key(user_id, model_name, chosen, n, div)
        try:
            if use_cache:
                value, tier = self.cache.get_or_compute(user_id, key, lambda: self._compute(user_id, n, chosen, div))
            else:
                value, tier = self._compute(user_id, n, chosen, div), "miss"
            result = self._result_from(user_id, value, model_name, tier)
            status = "ok"
        except Exception as exc:  # the caller must always get a list; the cause is logged and counted
            reason = _error_kind(exc)
            log.warning("fallback for user %s (%s): %r", user_id, reason, exc)
            metrics.FALLBACKS.labels(reason=reason).inc()
            result = self.fallback(user_id, n, model_name, reason)
            tier, status = "fallback", "fallback"
        self._finish(result, tier, status, started)
        return result

    def _finish(self, result: RecommendationResult, tier: str, status: str, started: float) -> None:
        result.latency_seconds = time.perf_counter() - started
        self._requests[(status, result.model)].inc()
        self._latency[tier].observe(result.latency_seconds)
        positions = [self.catalog.index[i["item_id"]] for i in result.items if i["item_id"] in self.catalog.index]
        self.quality.observe(positions, result.diversity)

    def fallback(self, user_id: str, n: int, model_name: str, reason: str) -> RecommendationResult:
        positions = self._fallback_positions[:n]
        items = [self._item_dict(pos, float(self.catalog.popularity[pos]), POPULAR) for pos in positions]
        return RecommendationResult(
            user_id=user_id, items=items, model="popular_snapshot", cache_tier="fallback",
            fallback=True, fallback_reason=reason, extra={"requested_model": model_name},
            diversity=category_diversity([item["category"] for item in items]),
        )

    def warm(
        self,
        user_ids: list[str],
        n: int = 10,
        model: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> WarmReport:
        """Compute and cache the default lists of ``user_ids`` (pipelined writes, with progress)."""
        model_name = model or self.default_model
        chosen = self.models[model_name]
        div = self.diversity

        def lists_for(user_id: str) -> list[tuple[str, dict[str, Any]]]:
            return [(self._key(user_id, model_name, chosen, n, div), self._compute(user_id, n, chosen, div))]

        return self.cache.warm(user_ids, lists_for, progress=progress)

    def invalidate_user(self, user_id: str, reason: str) -> int:
        """Drop a user's cached lists and features (events call this after a purchase)."""
        removed = self.cache.invalidate_user(user_id, reason=reason)
        self.features.invalidate_user(user_id)
        return removed

    # ----------------------------------------------------------------- compute
    def _compute(self, user_id: str, n: int, model: Recommender, div: DiversitySettings) -> dict[str, Any]:
        feats = self.features.get_user(user_id)
        purchased = set(feats.purchased)
        history = [i for i in feats.history if i in self.catalog]
        if not history:
            return self._cold_start(n, purchased)
        pool = max(self.candidate_pool, n)
        candidates = model.recommend(user_id, n=pool, exclude=purchased, history=history)
        if not candidates:
            return self._cold_start(n, purchased)
        ids = [iid for iid, _ in candidates if iid in self.catalog]
        positions = self.catalog.positions(ids)
        scores = np.asarray([s for iid, s in candidates if iid in self.catalog], dtype=np.float64)
        vectors = self.vectors[positions] if self.vectors is not None else None
        order = mmr_rerank(scores, self.catalog.categories[positions], n, div, vectors)
        picked = positions[order]
        history_pos = self.catalog.positions(history)
        reasons = explain(picked, history_pos, self.catalog, self.vectors)
        return {
            "items": [self._item_dict(p, float(scores[o]), r) for p, o, r in zip(picked, order, reasons, strict=True)],
            "cold_start": False,
            "diversity": category_diversity(self.catalog.categories[picked].tolist()),
        }

    def _cold_start(self, n: int, purchased: set[str]) -> dict[str, Any]:
        picked = self.catalog.most_popular(n, exclude=purchased)
        return {
            "items": [self._item_dict(p, float(self.catalog.popularity[p]), POPULAR) for p in picked],
            "cold_start": True,
            "diversity": category_diversity([self.catalog.categories[p] for p in picked]),
        }

    def _item_dict(self, pos: int, score: float, reason: str) -> RecommendedItem:
        return {
            "item_id": self.catalog.item_ids[pos],
            "title": self.catalog.titles[pos],
            "category": self.catalog.categories[pos],
            "score": round(score, 6),
            "reason": reason,
        }


    @staticmethod
    def _result_from(user_id: str, value: dict[str, Any], model: str, tier: str) -> RecommendationResult:
        return RecommendationResult(
            user_id=user_id,
            items=value["items"],
            model=model,
            cached=tier != "miss",
            cache_tier=tier,
            cold_start=bool(value.get("cold_start")),
            diversity=float(value.get("diversity", 1.0)),
        )
