"""A small demo world with trained models, prepared once per test session and reused by tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from engine.runtime import Engine, build_engine, prepare_models, prepare_world

SMALL_WORLD = {"demo_users": 800, "demo_items": 400, "demo_seed": 7}


def small_world_env() -> dict[str, str]:
    """The variables that make a process (API, console, ``recops up``) load the small world."""
    return {f"RECOPS_{name.upper()}": str(value) for name, value in SMALL_WORLD.items()}


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dir holding a generated small world and its trained models (no Redis needed)."""
    data_dir = tmp_path_factory.mktemp("world")
    settings = Settings(data_dir=data_dir, redis_url="redis://unused", **SMALL_WORLD)
    world = prepare_world(settings)
    prepare_models(settings, world.dataset())
    return data_dir


@pytest.fixture
def engine_settings(small_world_dir: Path, redis_url: str, redis_client: object) -> Settings:
    # refresh-ahead off: these tests watch what an invalidation itself does (the next request
    # misses); tests/test_refresh.py covers the refresh that fills the cache again
    return Settings(data_dir=small_world_dir, redis_url=redis_url, refresh_after_invalidation=False, **SMALL_WORLD)


@pytest.fixture
def engine(engine_settings: Settings) -> Iterator[Engine]:
    eng = build_engine(engine_settings)
    yield eng
    eng.close()
