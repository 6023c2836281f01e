"""Wiring: build every engine part from one ``Settings`` (the composition root).

The API, the CLI, the console and the benchmarks all call ``build_engine``; nothing else
constructs Redis clients or loads models, so there is one place to read how the parts connect.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import orjson
import redis

from engine.config import Settings
from engine.data.catalog import ItemCatalog
from engine.data.dataset_store import DEMO, StoredDataset, demo_world, open_dataset, stored_demo
from engine.data.demo import DemoWorld
from engine.data.schema import Dataset
from engine.events.ingest import EventIngest
from engine.events.spool import EventSpool
from engine.events.tracker import EventTracker
from engine.experiments import ExperimentService, PreExposure
from engine.experiments.dimensions import UserDimensions
from engine.experiments.quality import Counterfactual, catalog_of
from engine.models.base import Recommender
from engine.models.model_spec import ModelSpecError, spec_resolver
from engine.models.registry import STARTUP_MODELS, ModelRegistry
from engine.models.training import TrainingOptions, logged_events, train_models
from engine.models.watch import RegistryWatcher
from engine.serving.cache import (
    DEFAULT_LISTS,
    BackgroundWarmer,
    ListRefresher,
    NoRefresh,
    RefreshQueue,
    TieredCache,
    WarmReport,
)
from engine.serving.diversity import DiversitySettings
from engine.serving.service import ListSpec, RecommendationService
from engine.storage.audit import AuditLog
from engine.storage.client import as_text, redis_client
from engine.storage.embedded_redis import EmbeddedRedis, ensure_redis_url
from engine.storage.feature_store import FeatureSource, FeatureStore
from engine.storage.keys import Keys

log = logging.getLogger(__name__)


def world_dir(settings: Settings) -> Path:
    return settings.data_dir / "world"


def prepare_world(settings: Settings) -> DemoWorld:
    """The demo world saved in the data dir, generated on first use."""
    return demo_world(settings)


def served_dataset(settings: Settings, world: DemoWorld | None = None) -> StoredDataset:
    """The dataset ``settings.dataset`` names, in its current version: the demo world (``world`` when
    the caller has it loaded) or an imported dataset.  ``DatasetError`` when there is none by that name."""
    if settings.dataset == DEMO:
        return stored_demo(world or prepare_world(settings))
    return open_dataset(settings, settings.dataset)


def spool_dir(settings: Settings, dataset: str) -> Path:
    """Where a serving process spools ``dataset``'s events while Redis is unreachable."""
    return settings.data_dir / "spool" / dataset


def dataset_keys(settings: Settings, dataset: str) -> Keys:
    """The Redis key names of the engine serving ``dataset``.

    The demo world keeps the bare prefix (as before datasets could be served); an imported dataset
    gets ``<prefix>@<name>``, so its features, live logs, lists, events and experiments never meet
    another dataset's users of the same id, and no pattern of one (``recops:rec*``, ``recops:*``)
    matches another's keys.  The audit log is the one thing shared: see ``build_engine``.
    """
    return Keys(settings.key_prefix if dataset == DEMO else f"{settings.key_prefix}@{dataset}")


def prepare_models(settings: Settings, dataset: Dataset | StoredDataset) -> ModelRegistry:
    """Trained models from the registry; when no model serves the dataset yet, trains ``STARTUP_MODELS`` once.

    The demo world is fitted as it always was (a plain fit, no holdout scores).  An imported dataset
    goes through ``recops train``'s path (``engine.models.training``): the events logged for it
    learnt from too, both holdouts scored and the lineage recorded, so its first versions can be
    compared with the ones trained after them.
    ``TrainingError`` when the dataset cannot be trained on (one user, ...).
    """
    registry = ModelRegistry(settings.models_dir)
    if registry.names(dataset.name):
        return registry
    log.info("no trained models for %s in %s: training %s", dataset.name, settings.models_dir,
             ", ".join(STARTUP_MODELS))
    if isinstance(dataset, StoredDataset) and dataset.name != DEMO:
        options = TrainingOptions(holdout_days=settings.holdout_days, ease_max_items=settings.ease_max_items,
                                  ann_min_items=settings.ann_min_items)
        logged = logged_events(settings, dataset, until=time.time())
        train_models(dataset, registry, STARTUP_MODELS, {}, options, log.info, logged)
    elif isinstance(dataset, StoredDataset):
        registry.train_all(dataset.dataset, dataset_version=dataset.version, ann_min_items=settings.ann_min_items)
    else:
        registry.train_all(dataset, ann_min_items=settings.ann_min_items)
    return registry


def served_models(registry: ModelRegistry, dataset: str) -> tuple[dict[str, Recommender], str | None]:
    """The production version of every model on ``dataset``, loaded, and the default model."""
    models = {name: registry.load(name, dataset=dataset) for name in registry.names(dataset)}
    return models, registry.default_model(dataset)


@dataclass
class Engine:
    settings: Settings
    redis: redis.Redis
    keys: Keys
    world: DemoWorld | None  # the demo world's ground truth; None when serving an imported dataset
    stored: StoredDataset  # what is served: name, version, manifest
    dataset: Dataset
    catalog: ItemCatalog
    registry: ModelRegistry
    models: dict[str, Recommender]
    features: FeatureStore
    cache: TieredCache
    events: EventTracker
    ingest: EventIngest  # what the API posts events to: the tracker, or the spool while Redis is away
    service: RecommendationService
    audit: AuditLog
    experiments: ExperimentService  # always there; idle (no background thread) in a console process
    refresher: ListRefresher = field(default_factory=NoRefresh)
    model_watcher: RegistryWatcher | None = None  # serving processes only
    warmer: BackgroundWarmer | None = None  # serving processes only (engine/serving/cache/warming.py)
    # the redis-server this engine started (when REDIS_URL was unset): stopped on close, and no
    # caller needs it otherwise, so it is no attribute
    embedded_redis: InitVar[EmbeddedRedis | None] = None

    def __post_init__(self, embedded_redis: EmbeddedRedis | None) -> None:
        self._stop_redis: Callable[[], None] = embedded_redis.stop if embedded_redis is not None else _nothing

    def serving_model(self, user_id: str) -> str | None:
        """The model the API serves ``user_id``: their experiment variant's, else None (the default)."""
        assignment = self.experiments.assign(user_id)
        return assignment.model if assignment else None

    def arm_lists(self, key: str, phase: int | None = None) -> Counterfactual | None:
        """The list any arm of experiment ``key`` would serve a user, computed now: its model at the
        version its spec names, with its serving parameters — what the readout's overlap between arms'
        lists for the same users needs (the API and the console pass it; the CLI reads Redis only).
        None for an earlier ``phase``: what its arms served then cannot be computed now."""
        exp = self.experiments.get(key)
        if phase not in (None, exp.phase):
            return None
        variants = {v.name: v for v in exp.variants}
        resolver = self.experiments.resolver

        def lists(user: str, variant: str, n: int) -> list[str]:
            v = variants[variant]
            try:
                version = resolver(v.model).version if resolver is not None else None
            except ModelSpecError:
                version = None  # the spec names nothing now: its model's production version, as serving does
            result = self.service.recommend(user, n, v.spec.name, version=version, serving=v.serving)
            return [i["item_id"] for i in result.items]

        return lists

    def refresh_list(self, user_id: str) -> None:
        """Recompute and cache the lists the API will serve ``user_id`` next (see ``warm_lists``)."""
        self.warm_lists([user_id])

    def warm_lists(
        self, user_ids: list[str], n: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> WarmReport:
        """Compute and cache the lists the API will serve ``user_ids`` next at the requested length
        ``n`` (default ``default_n``): their arm's model, version and serving parameters (its own
        length, when it sets one), else the defaults; both rankers' lists for a user in an
        interleaving experiment, which the API merges per request; an exploring arm's candidate
        pool, which requests draw from.  The background warmer and the operator's warm (CLI,
        console, API: ``warm_now``) all warm through here.  The report counts the lists per arm:
        ``default`` outside experiments, else ``experiment/variant``."""
        size = n or self.settings.default_n
        lists: dict[str, tuple[ListSpec, ...]] = {}
        for user_id in dict.fromkeys(user_ids):
            a = self.experiments.assign(user_id)
            if a is None:
                lists[user_id] = (ListSpec(None, None, None, size, label=DEFAULT_LISTS),)
            else:
                lists[user_id] = tuple(
                    ListSpec(model, version, serving, serving.length(size), label=f"{a.experiment}/{variant}")
                    for variant, model, version, serving in a.served_arms)
        return self.service.warm_each(lists, progress=progress)

    def warm_now(
        self, user_ids: list[str], n: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> WarmReport:
        """The operator's warm (``recops demo``, the console's Cache page, ``POST /admin/cache/warm``):
        ``warm_lists`` on the experiments as stored now — a CLI process polls none, and a console's
        or a server's poll may be behind an experiment just started."""
        self.experiments.refresh()
        return self.warm_lists(user_ids, n, progress)

    def claim_warming(self) -> bool:
        """Whether this process warms the versions it serves now: the first process of a fleet to ask
        does (again when it asks again), for as long as a cached list lives."""
        versions, default = self.served_versions()
        tag = hashlib.sha1(orjson.dumps([sorted(versions.items()), default])).hexdigest()[:16]
        claim, me = self.keys.cache_warm_claim(tag), self.cache.instance_id
        if self.redis.set(claim, me, nx=True, ex=self.settings.rec_cache_ttl_seconds):
            return True
        return as_text(self.redis.get(claim) or b"") == me

    def reload_models(self) -> None:
        """Load the registry's production versions for the served dataset (after a promotion) without
        restarting; experiment arms naming a stage are re-resolved."""
        self.registry = ModelRegistry(self.settings.models_dir)
        self.models, default = served_models(self.registry, self.dataset.name)
        self.service.swap_models(self.models, default)
        self.experiments.refresh(force=True)
        if self.warmer is not None:  # the new versions' lists are all missing: warm the likely users
            self.warmer.restart()

    def served_versions(self) -> tuple[dict[str, str], str | None]:
        """Model name → the version this process serves, and the default model."""
        return {name: m.version or "" for name, m in self.service.models.items()}, self.service.default_model

    def close(self) -> None:
        if self.model_watcher is not None:
            self.model_watcher.close()
        self.ingest.close()  # before Redis is closed: a last replay
        if self.warmer is not None:
            self.warmer.close()
        self.refresher.close()
        self.experiments.close()
        self.cache.close()
        with contextlib.suppress(redis.RedisError):
            self.redis.close()
        self._stop_redis()


def _nothing() -> None:
    pass


def freeze_startup_heap() -> None:
    """Move everything alive now (models, catalogue, world: ~150k objects) out of the collector's
    reach.  A full collection otherwise re-scans them all, a 40-90 ms pause on this machine that
    any request in flight waits for; they live as long as the process anyway.  Call once, after
    start-up, in a serving process (not per engine in a test run: frozen garbage is never freed,
    hence the collection first)."""
    gc.collect()
    gc.freeze()


def build_engine(settings: Settings, start_listener: bool = True) -> Engine:
    # the dataset and its models first: a dataset that is not there fails before Redis is started
    world = prepare_world(settings) if settings.dataset == DEMO else None
    stored = served_dataset(settings, world)
    dataset = stored.dataset
    registry = prepare_models(settings, stored)
    models, default_model = served_models(registry, dataset.name)
    url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    client = redis_client(url)
    keys = dataset_keys(settings, dataset.name)
    catalog = ItemCatalog.from_items(dataset.items)
    source = FeatureSource.from_dataset(dataset, history_length=settings.history_length, keys=keys)
    features = FeatureStore(client, keys, settings, source)
    cache = TieredCache(client, keys, settings)
    if start_listener:
        cache.start_listener()
    service = RecommendationService(
        models=models,
        default_model=default_model,
        catalog=catalog,
        features=features,
        cache=cache,
        keys=keys,
        candidate_pool=settings.candidate_pool,
        diversity=DiversitySettings(category_cap=settings.category_cap, mmr_lambda=settings.mmr_lambda),
        version_loader=lambda name, version: registry.load(name, version, dataset=dataset.name),
    )
    # a variant's spec is checked against, and resolved on, the served dataset's registry entries
    experiments = ExperimentService(
        client, keys, covariates=PreExposure.from_dataset(dataset), available_models=lambda: service.models,
        resolver=spec_resolver(registry, dataset.name), registry_generation=registry.generation,
        attributes=UserDimensions.from_frame(dataset.users),
        # the readout's quality block measures lists against the catalogue: built once, on first use
        catalog=functools.cache(lambda: catalog_of(dataset.items, dataset.events)),
    )
    if start_listener:
        experiments.start_background()
    events = EventTracker(
        client, keys, settings, on_invalidate=service.invalidate_user, known_items=catalog.__contains__,
        on_accepted=experiments.observe,
    )
    ingest = EventIngest(events, EventSpool(spool_dir(settings, dataset.name)))
    engine = Engine(
        settings=settings, redis=client, keys=keys, world=world, stored=stored, dataset=dataset, catalog=catalog,
        registry=registry, models=models, features=features, cache=cache, events=events, ingest=ingest,
        service=service,
        # one audit log for every dataset: the CLI's promotions and the console's land side by side
        audit=AuditLog(client, Keys(settings.key_prefix)), experiments=experiments, embedded_redis=embedded,
    )
    # serving processes (the ones with a listener) refresh lists ahead; the console does not
    if start_listener and settings.refresh_after_invalidation:
        engine.refresher = RefreshQueue(engine.refresh_list).start()
    events.after_invalidation = engine.refresher.submit_all
    # serving processes warm the lists of the users most likely to come, in the background
    if start_listener and settings.warm_on_start_users > 0:
        engine.warmer = BackgroundWarmer(
            features.top_active_users, engine.warm_lists, limit=settings.warm_on_start_users,
            per_second=settings.warm_users_per_second, claim=engine.claim_warming,
        )
        engine.warmer.restart()
    # serving processes replay what they (or a process that died) spooled during an outage
    if start_listener:
        ingest.start()
    # serving processes pick up a promotion or rollback by themselves (engine/models/watch.py)
    if start_listener:
        engine.model_watcher = RegistryWatcher(
            registry, dataset.name, engine.served_versions, engine.reload_models, settings.model_poll_seconds
        ).start()
    return engine
