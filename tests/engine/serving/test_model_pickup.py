"""A promotion reaches a running engine by itself, and no list of the old version is served after it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.models import lifecycle
from engine.models.als import ALSRecommender
from engine.models.registry import ModelRegistry
from engine.runtime import Engine, build_engine
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.polling import poll


@pytest.fixture
def watched_engine(small_world_dir: Path, tmp_path: Path, redis_url: str, redis_client: redis.Redis
                   ) -> Iterator[Engine]:
    data_dir = tmp_path / "data"
    shutil.copytree(small_world_dir, data_dir)  # its own registry: the shared one stays untouched
    settings = Settings(data_dir=data_dir, redis_url=redis_url, refresh_after_invalidation=False,
                        model_poll_seconds=0.1, **SMALL_WORLD)
    engine = build_engine(settings)
    yield engine
    engine.close()


def test_a_promoted_version_serves_within_seconds(watched_engine: Engine) -> None:
    engine = watched_engine
    registry = ModelRegistry(engine.settings.models_dir)  # as another process (the CLI) sees it
    user = str(engine.features.top_active_users(1)[0])
    old_version = engine.service.models["als"].version
    first = engine.service.recommend(user)
    assert first.model == "als" and engine.service.recommend(user).cached

    # a differently trained ALS: a candidate first, which the engine must not pick up
    candidate = ALSRecommender(factors=4, iterations=3, random_state=7).fit(engine.dataset.interactions())
    version = registry.save("als", candidate)
    time.sleep(0.5)
    assert engine.service.models["als"].version == old_version

    lifecycle.promote(registry, engine.audit, "ada", "als", version)
    assert poll(lambda: engine.service.models["als"].version == version)
    after = engine.service.recommend(user)
    assert not after.cached  # the old version's list is not served from any tier
    assert engine.service.list_key(user, "als", 10) != engine.keys.rec_list(user, f"als@{old_version}", 10,
                                                                            engine.service.diversity.signature)
    fresh = engine.service.recommend(user, use_cache=False)
    assert [i["item_id"] for i in after.items] == [i["item_id"] for i in fresh.items]
    assert [i["item_id"] for i in after.items] != [i["item_id"] for i in first.items]
    assert engine.audit.recent(1)[0].action == "promote_model"

    lifecycle.rollback(registry, engine.audit, "ada", "als")
    assert poll(lambda: engine.service.models["als"].version == old_version)
    assert [i["item_id"] for i in engine.service.recommend(user).items] == [i["item_id"] for i in first.items]
