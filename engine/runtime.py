"""Wiring: build every engine part from one ``Settings`` (the composition root).

The API, the CLI, the console and the benchmarks all call ``build_engine``; nothing else
constructs Redis clients or loads models, so there is one place to read how the parts connect.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import redis

from engine.config import Settings
from engine.data.catalog import ItemCatalog
from engine.data.demo import DemoWorld
from engine.data.schema import Dataset
from engine.events.tracker import EventTracker
from engine.experiments import ExperimentService, PreExposure
from engine.models.base import Recommender
from engine.models.registry import ModelRegistry
from engine.models.watch import RegistryWatcher
from engine.serving.cache import ListRefresher, NoRefresh, RefreshQueue, TieredCache
from engine.serving.diversity import DiversitySettings
from engine.serving.service import RecommendationService
from engine.storage.audit import AuditLog
from engine.storage.client import redis_client
from engine.storage.embedded_redis import EmbeddedRedis, ensure_redis_url
from engine.storage.feature_store import FeatureSource, FeatureStore
from engine.storage.keys import Keys

log = logging.getLogger(__name__)


def world_dir(settings: Settings) -> Path:
    return settings.data_dir / "world"


def prepare_world(settings: Settings) -> DemoWorld:
    """The demo world saved in the data dir, generated on first use."""
    return DemoWorld.load_or_generate(
        world_dir(settings), seed=settings.demo_seed, n_users=settings.demo_users, n_items=settings.demo_items
    )


def prepare_models(settings: Settings, dataset: Dataset) -> ModelRegistry:
    """Trained models from the registry; trains and saves them when the data dir has none."""
    registry = ModelRegistry(settings.models_dir)
    if not registry.names():
        log.info("no trained models in %s: training on %s", settings.models_dir, dataset.name)
        registry.train_all(dataset)
    return registry


@dataclass
class Engine:
    settings: Settings
    redis: redis.Redis
    keys: Keys
    world: DemoWorld
    dataset: Dataset
    catalog: ItemCatalog
    registry: ModelRegistry
    models: dict[str, Recommender]
    features: FeatureStore
    cache: TieredCache
    events: EventTracker
    service: RecommendationService
    audit: AuditLog
    experiments: ExperimentService  # always there; idle (no background thread) in a console process
    refresher: ListRefresher = field(default_factory=NoRefresh)
    model_watcher: RegistryWatcher | None = None  # serving processes only
    # the redis-server this engine started (when REDIS_URL was unset): stopped on close, and no
    # caller needs it otherwise, so it is no attribute
    embedded_redis: InitVar[EmbeddedRedis | None] = None

    def __post_init__(self, embedded_redis: EmbeddedRedis | None) -> None:
        self._stop_redis: Callable[[], None] = embedded_redis.stop if embedded_redis is not None else _nothing

    def serving_model(self, user_id: str) -> str | None:
        """The model the API serves ``user_id``: their experiment variant's, else None (the default)."""
        assignment = self.experiments.assign(user_id)
        return assignment.model if assignment else None

    def refresh_list(self, user_id: str) -> None:
        """Recompute and cache the list the API will serve ``user_id`` next (default length and
        diversity, their variant's model)."""
        self.service.warm([user_id], n=self.settings.default_n, model=self.serving_model(user_id))

    def reload_models(self) -> None:
        """Load the registry's current versions (after a retrain) without restarting."""
        self.registry = ModelRegistry(self.settings.models_dir)
        self.models = {name: self.registry.load(name) for name in self.registry.names()}
        self.service.swap_models(self.models, self.registry.default)

    def served_versions(self) -> tuple[dict[str, str], str | None]:
        """Model name → the version this process serves, and the default model."""
        return {name: m.version or "" for name, m in self.service.models.items()}, self.service.default_model

    def close(self) -> None:
        if self.model_watcher is not None:
            self.model_watcher.close()
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
    url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    client = redis_client(url)
    keys = Keys(settings.key_prefix)
    world = prepare_world(settings)
    dataset = world.dataset()
    registry = prepare_models(settings, dataset)
    models = {name: registry.load(name) for name in registry.names()}
    catalog = ItemCatalog.from_items(dataset.items)
    source = FeatureSource.from_dataset(dataset, history_length=settings.history_length)
    features = FeatureStore(client, keys, settings, source)
    cache = TieredCache(client, keys, settings)
    if start_listener:
        cache.start_listener()
    service = RecommendationService(
        models=models,
        default_model=registry.default,
        catalog=catalog,
        features=features,
        cache=cache,
        keys=keys,
        candidate_pool=settings.candidate_pool,
        diversity=DiversitySettings(category_cap=settings.category_cap, mmr_lambda=settings.mmr_lambda),
    )
    experiments = ExperimentService(
        client, keys, covariates=PreExposure.from_dataset(dataset), available_models=lambda: service.models
    )
    if start_listener:
        experiments.start_background()
    events = EventTracker(
        client, keys, settings, on_invalidate=service.invalidate_user, known_items=catalog.__contains__,
        on_accepted=experiments.observe,
    )
    engine = Engine(
        settings=settings, redis=client, keys=keys, world=world, dataset=dataset, catalog=catalog,
        registry=registry, models=models, features=features, cache=cache, events=events,
        service=service, audit=AuditLog(client, keys), experiments=experiments, embedded_redis=embedded,
    )
    # serving processes (the ones with a listener) refresh lists ahead; the console does not
    if start_listener and settings.refresh_after_invalidation:
        engine.refresher = RefreshQueue(engine.refresh_list).start()
    events.after_invalidation = engine.refresher.submit_all
    # serving processes pick up a promotion or rollback by themselves (engine/models/watch.py)
    if start_listener:
        engine.model_watcher = RegistryWatcher(
            registry, dataset.name, engine.served_versions, engine.reload_models, settings.model_poll_seconds
        ).start()
    return engine
