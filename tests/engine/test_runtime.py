"""build_engine serves the dataset the settings name: the demo world, or an imported one with its models and keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetNotFoundError, DatasetStore
from engine.models.registry import STARTUP_MODELS, ModelRegistry
from engine.models.training import TrainingError
from engine.runtime import Engine, build_engine, prepare_models
from engine.serving.diversity import DiversitySettings
from tests.engine.data.fixture_files import write_csv
from tests.support.imported_data import NAME, brand, import_small_dataset
from tests.support.logged_events import log_events

RELEVANCE_ONLY = DiversitySettings(category_cap=None, mmr_lambda=1.0)


def keys_of(client: redis.Redis) -> list[str]:
    return sorted(client.scan_iter(count=1000))


def test_an_imported_dataset_is_served_with_models_trained_once(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    data_dir = tmp_path / "data"
    stored = import_small_dataset(data_dir)
    settings = Settings(data_dir=data_dir, redis_url=redis_url, dataset=NAME, refresh_after_invalidation=False)
    engine = build_engine(settings, start_listener=False)
    try:
        assert engine.world is None  # no ground truth outside the demo world
        assert (engine.stored.name, engine.stored.version) == (NAME, stored.version)
        assert len(engine.catalog) == stored.dataset.n_items

        # the startup models, trained through `recops train`'s path: production, with lineage and both holdouts
        registry = ModelRegistry(settings.models_dir)
        records = registry.records(NAME)
        assert sorted(r.model for r in records) == sorted(STARTUP_MODELS)
        assert {r.stage for r in records} == {"production"} and registry.names() == []  # nothing for demo
        for record in records:
            assert record.lineage["dataset_version"] == stored.version
            assert record.lineage["interactions"] > 0
            assert set(record.lineage["metrics"]) == {"time", "per_user"}
        assert engine.served_versions() == (registry.served(NAME), "als")

        # lists come from the dataset's catalogue and follow its users' tastes (a-users like A items; the
        # category cap would keep two of five for B, so relevance alone here)
        result = engine.service.recommend("a00", n=5, diversity=RELEVANCE_ONLY)
        assert result.model == "als" and not result.fallback and not result.cold_start
        ids = [i["item_id"] for i in result.items]
        assert len(ids) == 5 and all(i in engine.catalog for i in ids)
        assert sum(i.startswith("A") for i in ids) >= 4, ids
        assert engine.features.known_user("a00") and not engine.features.known_user("u00001")
        assert engine.features.get_items(["A01"])["A01"].attributes == {"brand": brand("A01")}

        # every key under the dataset's own prefix; the audit log is the one shared key
        engine.audit.record("ada", "test", target="x")
        found = keys_of(redis_client)
        assert found and all(k.startswith(f"recops@{NAME}:") or k == "recops:audit" for k in found), found
        assert "recops:audit" in found and any(k.startswith(f"recops@{NAME}:rec:") for k in found)
    finally:
        engine.close()

    # a second start trains nothing
    again = build_engine(settings, start_listener=False)
    try:
        assert again.served_versions() == engine.served_versions()
        assert len(ModelRegistry(settings.models_dir).records(NAME)) == len(STARTUP_MODELS)
    finally:
        again.close()


def test_the_first_start_learns_from_the_events_already_logged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stored = import_small_dataset(data_dir)
    written = log_events(data_dir, NAME, [("zz-new", "B01", "purchase"), ("zz-new", "B02", "view")])
    registry = prepare_models(Settings(data_dir=data_dir, dataset=NAME), stored)
    records = registry.records(NAME)
    assert sorted(r.model for r in records) == sorted(STARTUP_MODELS)
    assert {r.lineage["events"] for r in records} == {written}
    assert "zz-new" in registry.load("als", dataset=NAME).user_index


def test_the_demo_world_keeps_its_world_and_the_bare_prefix(engine: Engine) -> None:
    assert engine.world is not None and engine.keys.prefix == "recops"
    assert engine.stored.name == "demo" and engine.stored.summary()["users"] == engine.dataset.n_users
    assert engine.served_versions()[1] == "als"


def test_a_dataset_that_is_not_there_or_cannot_be_trained_fails_before_anything_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # REDIS_URL unset: had the engine got as far as Redis, it would have started one under data_dir/redis
    with pytest.raises(DatasetNotFoundError, match="no dataset named 'nope'"):
        build_engine(Settings(data_dir=data_dir, redis_url=None, dataset="nope"))
    events = write_csv(tmp_path / "one.csv", ["user_id", "item_id", "timestamp"],
                       [["solo", "i1", 1_700_000_000], ["solo", "i2", 1_700_000_100]])
    import_dataset(DatasetStore(data_dir / "datasets"), "one", events)
    with pytest.raises(TrainingError, match="1 user with interactions"):
        build_engine(Settings(data_dir=data_dir, redis_url=None, dataset="one"))
    assert not (data_dir / "redis").exists() and not (data_dir / "models" / "registry.json").exists()
