"""The recommendation service: cache → features → candidates → scores → re-rank → reasons.

    >>> service.recommend("u00042", n=10)                       # default model
    >>> service.recommend("u00042", n=5, model="item_item",
    ...                   diversity=DiversitySettings(category_cap=2, mmr_lambda=0.5))
    >>> service.recommend("u00042", model="als", version="20261202T...Z-1a2b3c4d",   # an experiment arm
    ...                   serving=ServingParams(mmr_lambda=0.3, candidate_pool=500))

A version other than the production one (an arm serving ``als@candidate``) is loaded from the
registry on its first request (``version_loader``) and kept in a bounded map of loaded versions.

It never raises to its caller: any failure inside (Redis unreachable, a model error) is logged
and answered from an in-process snapshot of popular items with ``fallback=True``, so serving
keeps working while a dependency is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple, TypedDict, TypeVar

import numpy as np
import redis

from engine.data.catalog import ItemCatalog
from engine.models.base import Recommender
from engine.monitoring import prometheus_metrics as metrics
from engine.monitoring.batched_observations import observe_many
from engine.monitoring.quality import QualityWindow, category_diversity
from engine.serving.cache import TieredCache, WarmReport
from engine.serving.cache.entry import CachedValue
from engine.serving.diversity import DiversitySettings, mmr_rerank
from engine.serving.exploration import greedy_order
from engine.serving.exploring_lists import ExplorationPolicy, explore
from engine.serving.reasons import POPULAR, explain
from engine.serving.serving_params import ListSettings, ServingParams
from engine.storage.feature_store import FeatureStore, UserFeatures
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

# versions other than production kept loaded at once: an experiment compares a handful, and an
# ALS version of the demo catalogue is ~10 MB
MAX_LOADED_VERSIONS = 4
MAX_MEMO_SETTINGS = 256
VersionLoader = Callable[[str, str], Recommender]  # (model name, version) -> the loaded model


class UnknownModelError(ValueError):
    pass


class ListSpec(NamedTuple):
    """One list a warm computes for a user: ``model`` (None: the default) at ``version`` (None: its
    production version) with ``serving`` over the defaults, ``n`` long; ``label`` names it in the
    warm's report (an experiment's arm, say)."""

    model: str | None
    version: str | None
    serving: ServingParams | None
    n: int
    label: str = ""


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


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a third of a hit's look-up to build
class L1Hit:
    """A list found in L1 and not decoded yet (``RecommendationService.l1_hit``)."""

    user_id: str
    model: str
    key: str
    # immutable, and replaced by a new object whenever the list changes: its identity names the
    # list, so a rendering of it can be kept for as long as L1 answers the same object
    entry: CachedValue
    settings: ListSettings
    started: float  # perf_counter at the look-up: the request's latency runs from here


@dataclass(frozen=True, slots=True)
class ServedFromL1:
    """A list served ``times`` from L1 by a caller that counts in batches (``served_from_l1``)."""

    model: str
    positions: np.ndarray  # its items' catalogue positions (``catalog_positions``)
    diversity: float
    times: int


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
        version_loader: VersionLoader | None = None,
        max_loaded_versions: int = MAX_LOADED_VERSIONS,
    ) -> None:
        self.catalog = catalog
        self.features = features
        self.cache = cache
        self.keys = keys
        self.candidate_pool = candidate_pool
        self.diversity = diversity or DiversitySettings()
        self.similarity_model = similarity_model
        self.version_loader = version_loader
        self.max_loaded_versions = max_loaded_versions
        self._versions: OrderedDict[tuple[str, str], Recommender] = OrderedDict()
        self._versions_lock = threading.Lock()
        # (diversity, serving) -> ListSettings: built once per arm, not per request on the L1 path
        self._settings: dict[tuple[DiversitySettings | None, ServingParams | None], ListSettings] = {}
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
    def list_key(
        self,
        user_id: str,
        model_name: str,
        n: int,
        diversity: DiversitySettings | None = None,
        serving: ServingParams | None = None,
        version: str | None = None,
    ) -> str:
        """The cache key of a user's list from ``model_name`` (at ``version``, else the version loaded now)."""
        if version is None:
            model = self.models.get(model_name)
            version = model.version if model is not None else None
        return self._list_key(user_id, model_name, version, n, self.list_settings(diversity, serving))

    def list_settings(
        self, diversity: DiversitySettings | None = None, serving: ServingParams | None = None
    ) -> ListSettings:
        """What a list is computed with: the engine's defaults (or ``diversity``) under an arm's ``serving``."""
        memo = (diversity, serving)
        settings = self._settings.get(memo)
        if settings is None:
            base = ListSettings(candidate_pool=self.candidate_pool, diversity=diversity or self.diversity)
            settings = serving.over(base) if serving is not None else base
            if len(self._settings) >= MAX_MEMO_SETTINGS:  # callers passing ad-hoc settings: start over
                self._settings.clear()
            self._settings[memo] = settings
        return settings

    def _key(self, user_id: str, model_name: str, model: Recommender | None, n: int, settings: ListSettings) -> str:
        # Cached lists are keyed by model version (``name@version`` for a registry model), so a
        # process that has not yet picked up a promotion never serves, or overwrites, the lists of
        # the version that replaced it — and the new version never reads the old one's.  The key
        # and the list come from the same model object, even while ``swap_models`` runs.
        return self._list_key(user_id, model_name, model.version if model is not None else None, n, settings)

    def _list_key(self, user_id: str, model_name: str, version: str | None, n: int, settings: ListSettings) -> str:
        return self.keys.rec_list(user_id, f"{model_name}@{version}" if version else model_name, n, settings.signature)

    def _model(self, name: str, version: str | None, load: bool) -> Recommender | None:
        """``name`` at ``version`` (None: the production version loaded); a version not loaded yet is
        loaded from the registry when ``load`` (I/O), else None."""
        production = self.models.get(name)
        if version is None or (production is not None and production.version == version):
            return production
        with self._versions_lock:
            loaded = self._versions.get((name, version))
            if loaded is not None:
                self._versions.move_to_end((name, version))
                return loaded
        if not load or self.version_loader is None:
            return None
        loaded = self.version_loader(name, version)
        with self._versions_lock:
            self._versions[(name, version)] = loaded
            while len(self._versions) > self.max_loaded_versions:
                self._versions.popitem(last=False)
        return loaded

    def loaded_versions(self) -> list[tuple[str, str]]:
        """(name, version) of the non-production versions loaded now, least recently used first."""
        with self._versions_lock:
            return list(self._versions)

    def l1_hit(
        self,
        user_id: str,
        n: int = 10,
        model: str | None = None,
        diversity: DiversitySettings | None = None,
        version: str | None = None,
        serving: ServingParams | None = None,
        batched: bool = False,
    ) -> L1Hit | None:
        """The list cached in L1, not decoded, or None; never does I/O (safe on an event loop): a
        version not loaded yet is a miss here.  A hit is counted as a cache hit, and the request when
        the list is served (``recommend_from_l1``); a ``batched`` hit is counted by the caller's
        ``served_from_l1`` instead, hit and request together."""
        started = time.perf_counter()
        model_name = model or self.default_model
        chosen = self._model(model_name, version, load=False)
        if chosen is None:
            return None
        settings = self.list_settings(diversity, serving)
        key = self._key(user_id, model_name, chosen, n, settings)
        entry = self.cache.peek_l1_entry(key, count=not batched)
        if entry is None:
            return None
        return L1Hit(user_id, model_name, key, entry, settings, started)

    def recommend_from_l1(
        self,
        user_id: str,
        n: int = 10,
        model: str | None = None,
        diversity: DiversitySettings | None = None,
        version: str | None = None,
        serving: ServingParams | None = None,
    ) -> RecommendationResult | None:
        """The in-process cached list, or None (see ``l1_hit``)."""
        hit = self.l1_hit(user_id, n, model, diversity, version, serving)
        if hit is None:
            return None
        value = hit.entry.value()
        if hit.settings.exploration is not None:
            value = self._explored(value, n, hit.settings.exploration)
        result = self._result_from(user_id, value, hit.model, "l1")
        self._finish(result, "l1", "ok", hit.started)
        return result

    def l1_result(self, hit: L1Hit) -> RecommendationResult:
        """``hit``'s list as cached (no exploration draw, nothing counted): what a hit serves when its
        arm does not explore."""
        return self._result_from(hit.user_id, hit.entry.value(), hit.model, "l1")

    def served_from_l1(self, lists: Sequence[ServedFromL1], latencies: Sequence[float]) -> None:
        """Count ``batched`` hits served, as ``recommend_from_l1`` counts each, for a caller that
        rendered the lists before and counts its answers in batches: ``lists`` with how often each
        was served, ``latencies`` one per answer."""
        served = 0
        for entry in lists:
            self._requests[("ok", entry.model)].inc(entry.times)
            served += entry.times
        if served != len(latencies):
            raise ValueError(f"{served} lists served but {len(latencies)} latencies")
        self.cache.count_l1_hits(served)
        observe_many(self._latency["l1"], latencies)
        self.quality.observe_many([(e.positions, e.diversity, e.times) for e in lists])

    def catalog_positions(self, items: list[RecommendedItem]) -> np.ndarray:
        index = self.catalog.index
        return np.asarray([index[i["item_id"]] for i in items if i["item_id"] in index], dtype=np.int64)

    def recommend(
        self,
        user_id: str,
        n: int = 10,
        model: str | None = None,
        diversity: DiversitySettings | None = None,
        use_cache: bool = True,
        version: str | None = None,
        serving: ServingParams | None = None,
    ) -> RecommendationResult:
        """``user_id``'s list of ``n`` from ``model`` (the default one) at ``version`` (production),
        computed with ``serving`` over the defaults (or ``diversity``)."""
        started = time.perf_counter()
        model_name = model or self.default_model
        if model_name not in self.models:
            raise UnknownModelError(f"unknown model {model_name!r}; known: {sorted(self.models)}")
        settings = self.list_settings(diversity, serving)
        try:
            # inside the try: a version that cannot be loaded (removed from disk) is served the fallback
            chosen = self._model(model_name, version, load=True)
            if chosen is None:
                raise UnknownModelError(f"{model_name}@{version} cannot be loaded: no version loader")
            key = self._key(user_id, model_name, chosen, n, settings)
            if use_cache:
                value, tier = self.cache.get_or_compute(
                    user_id, key, lambda: self._compute(user_id, n, chosen, settings))
            else:
                value, tier = self._compute(user_id, n, chosen, settings), "miss"
            if settings.exploration is not None:
                value = self._explored(value, n, settings.exploration)
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
        self._record(result.model, tier, status, result.latency_seconds, self.catalog_positions(result.items),
                     result.diversity)

    def _record(self, model: str, tier: str, status: str, latency: float, positions: np.ndarray,
                diversity: float) -> None:
        self._requests[(status, model)].inc()
        self._latency[tier].observe(latency)
        self.quality.observe(positions, diversity)

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
        version: str | None = None,
        serving: ServingParams | None = None,
    ) -> WarmReport:
        """Compute and cache the lists of ``user_ids`` (the default ones unless a model, version or
        serving parameters are given; pipelined writes, with progress)."""
        spec = ListSpec(model, version, serving, n, label=model or self.default_model)
        return self.warm_each({user: (spec,) for user in user_ids}, progress=progress)

    def warm_each(
        self, lists: Mapping[str, Sequence[ListSpec]], progress: Callable[[int, int], None] | None = None
    ) -> WarmReport:
        """Compute and cache each user's lists as ``lists`` names them (user → the lists they are
        served), all of a user's lists in one compute with their features read once; pipelined writes,
        progress per user.  Every spec is resolved first: an unknown model raises before anything is
        written.  The report counts the lists computed per spec ``label``."""
        resolved: dict[ListSpec, tuple[str, Recommender, ListSettings]] = {}
        for spec in {s for specs in lists.values() for s in specs}:
            model_name = spec.model or self.default_model
            if model_name not in self.models:
                raise UnknownModelError(f"unknown model {model_name!r}; known: {sorted(self.models)}")
            chosen = self._model(model_name, spec.version, load=True)
            if chosen is None:
                raise UnknownModelError(f"{model_name}@{spec.version} cannot be loaded: no version loader")
            resolved[spec] = (model_name, chosen, self.list_settings(serving=spec.serving))
        # every chunk's features in one batch of reads: per user, the round trips cost more than the list
        prefetched: dict[str, UserFeatures] = {}
        computed: dict[str, int] = {}

        def lists_for(user_id: str) -> list[tuple[str, dict[str, Any]]]:
            feats = prefetched.pop(user_id, None)
            if feats is None:
                feats = self.features.get_user(user_id)
            out = []
            for spec in lists[user_id]:
                model_name, chosen, settings = resolved[spec]
                out.append((self._key(user_id, model_name, chosen, spec.n, settings),
                            self._compute(user_id, spec.n, chosen, settings, feats)))
            for spec in lists[user_id]:  # counted once the user's lists are all computed (none raised)
                computed[spec.label] = computed.get(spec.label, 0) + 1
            return out

        report = self.cache.warm(list(lists), lists_for, progress=progress,
                                 prepare=lambda chunk: prefetched.update(self.features.get_users(chunk)))
        return replace(report, lists=computed)

    def exploring_pool(
        self, user_id: str, serving: ServingParams, model: str | None = None, version: str | None = None
    ) -> list[RecommendedItem]:
        """The candidate pool an exploring arm (``serving.exploration``) draws ``user_id``'s lists from,
        computed now (no cache): the off-policy rehearsal draws many lists from it at once."""
        settings = self.list_settings(serving=serving)
        if settings.exploration is None:
            raise ValueError("exploring_pool needs serving parameters with an exploration policy")
        chosen = self._model(model or self.default_model, version, load=True)
        if chosen is None:
            raise UnknownModelError(f"{model}@{version} cannot be loaded: no version loader")
        items: list[RecommendedItem] = self._compute(user_id, settings.exploration.pool, chosen, settings)["items"]
        return items

    def invalidate_user(self, user_id: str, reason: str) -> int:
        """Drop a user's cached lists and features (events call this after a purchase)."""
        removed = self.cache.invalidate_user(user_id, reason=reason)
        self.features.invalidate_user(user_id)
        return removed

    # ----------------------------------------------------------------- compute
    def _compute(
        self, user_id: str, n: int, model: Recommender, settings: ListSettings, feats: UserFeatures | None = None
    ) -> dict[str, Any]:
        if settings.exploration is not None:  # an exploring arm caches its pool, drawn from per request
            n = settings.exploration.pool
        if feats is None:
            feats = self.features.get_user(user_id)
        purchased = set(feats.purchased)
        history = [i for i in feats.history if i in self.catalog]
        if not history:
            return self._cold_start(n, purchased)
        pool = max(settings.candidate_pool, n)
        candidates = model.recommend(user_id, n=pool, exclude=purchased, history=history)
        if not candidates:
            return self._cold_start(n, purchased)
        ids = [iid for iid, _ in candidates if iid in self.catalog]
        positions = self.catalog.positions(ids)
        scores = np.asarray([s for iid, s in candidates if iid in self.catalog], dtype=np.float64)
        vectors = self.vectors[positions] if self.vectors is not None else None
        if settings.exploration is not None:  # exploration replaces the re-rank (engine.serving.exploring_lists)
            order = greedy_order(scores)[:n]
        else:
            order = mmr_rerank(scores, self.catalog.categories[positions], n, settings.diversity, vectors)
        picked = positions[order]
        history_pos = self.catalog.positions(history)
        reasons = explain(picked, history_pos, self.catalog, self.vectors)
        return {
            "items": [self._item_dict(p, float(scores[o]), r) for p, o, r in zip(picked, order, reasons, strict=True)],
            "cold_start": False,
            "diversity": category_diversity(self.catalog.categories[picked].tolist()),
        }

    @staticmethod
    def _explored(value: dict[str, Any], n: int, policy: ExplorationPolicy) -> dict[str, Any]:
        """The list an exploring arm shows this request: ``n`` items drawn from the cached pool
        ``value``, with each shown item's propensities (``engine.serving.exploring_lists``)."""
        pool = value["items"]
        if not pool:
            return value
        scores = np.asarray([item["score"] for item in pool], dtype=np.float64)
        drawn = explore(scores, n, policy, np.random.default_rng())  # a generator per call: thread-safe
        shown = [pool[i] for i in drawn.items]
        return {
            **value,
            "items": shown,
            "diversity": category_diversity([item["category"] for item in shown]),
            "exploration": {
                "propensity": drawn.propensity.tolist(),
                "prefix_propensity": drawn.prefix_propensity.tolist(),
                "marginal_propensity": drawn.marginal_propensity.tolist(),
            },
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
            extra={"exploration": value["exploration"]} if "exploration" in value else {},
        )
