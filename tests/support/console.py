"""Support for the console tests: the console's environment and in-process traffic for experiments.

The console reads its configuration from the environment (as ``recops up`` passes it), so a test
sets the variables the way ``tests.support.api.api_env`` does and runs a page with AppTest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.config import Settings
from engine.console.resource_keys import engine_fingerprint
from engine.events.tracker import Event
from engine.experiments.quality import ServedList
from engine.runtime import Engine, build_engine
from engine.storage.embedded_redis import EmbeddedRedis
from tests.conftest import REPO_ROOT
from tests.support.engine_fixtures import small_world_env

PAGES = REPO_ROOT / "pages"
APP = REPO_ROOT / "app.py"
PAGE_TIMEOUT = 120.0


def console_environment(data_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "RECOPS_DATA_DIR": str(data_dir),
        **small_world_env(),
        "RECOPS_CONSOLE_REFRESH_SECONDS": "0",
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.update(extra)
    return env


CONSOLE_VARIABLES = ("REDIS_URL", "RECOPS_DATA_DIR", *small_world_env(), "RECOPS_CONSOLE_REFRESH_SECONDS",
                     "RECOPS_CONSOLE_PASSWORD", "RECOPS_CONSOLE_LOGIN_FOR_READS", "RECOPS_API_URL", "PROMETHEUS_URL")


class ConsoleEngines:
    """Every engine the console builds in this process (it keeps one per Redis for the life of the
    process, a ``st.cache_resource``, each with background threads that must not outlive their Redis)."""

    def __init__(self) -> None:
        self.built: list[Engine] = []

    def build(self, settings: Settings, start_listener: bool = True) -> Engine:
        engine = build_engine(settings, start_listener)
        self.built.append(engine)
        return engine

    def close(self, redis_url: str | None = None) -> None:
        """Close the engines on ``redis_url`` (all when None) and drop them from the console's cache."""
        from pages import _resources

        for engine in [e for e in self.built if redis_url in (None, e.settings.redis_url)]:
            _resources._engine_for.clear(engine_fingerprint(engine.settings))
            engine.close()
            self.built.remove(engine)


@pytest.fixture(scope="module")
def console_engines(redis_server: EmbeddedRedis) -> Iterator[ConsoleEngines]:
    """The console's engines, all closed at the end of each test module: their background threads
    (experiment refresh, bandit re-weighting, cache listener) must not act on the shared test Redis
    while the next module's tests run, nor outlive it (they would log reconnect attempts)."""
    from pages import _resources

    engines = ConsoleEngines()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_resources, "build_engine", engines.build)
        yield engines
    engines.close()


@pytest.fixture
def console_env(
    small_world_dir: Path, redis_server: EmbeddedRedis, redis_client: object, monkeypatch: pytest.MonkeyPatch,
    console_engines: ConsoleEngines,
) -> Iterator[dict[str, str]]:
    """The console's environment on the test Redis (flushed) and the small world; nothing else set."""
    for name in CONSOLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = console_environment(small_world_dir, redis_server.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The console's engine lives as long as the process and Redis was just flushed: forget what the
    # engine holds in process (L1 lists, the experiment snapshot) so no test sees another's state.
    eng = console_engine()
    eng.cache.l1.clear()
    eng.experiments.refresh(force=True)
    yield env


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=PAGE_TIMEOUT)


def console_engine() -> Engine:
    """The engine the pages use (one per process, shared with AppTest runs in this process)."""
    from pages import _resources

    return _resources.engine()


def texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def two_arm_spec(**overrides: Any) -> dict[str, Any]:
    """An experiment spec with two arms, popularity (the control) against ALS; ``overrides`` on top."""
    spec: dict[str, Any] = {"key": "exp-1", "name": "Popularity vs ALS", "variants": [
        {"name": "control", "model": "popularity", "weight": 0.5}, {"name": "als", "model": "als", "weight": 0.5}]}
    spec.update(overrides)
    return spec


def run_traffic(engine: Engine, users: list[str], seed: int = 0, boost: dict[str, float] | None = None,
                at: float | None = None) -> int:
    """Serve every user once through their assigned variant and send impressions and clicks.

    Clicks follow the demo world's ground truth, scaled per variant by ``boost`` (so a test can
    give one arm a real lift).  ``at`` dates the events (the server's clock when None; the exposures
    follow the experiment service's clock).  Returns the number of exposures recorded.
    """
    stamp: dict[str, float] = {} if at is None else {"timestamp": at}
    rng = np.random.default_rng(seed)
    exposures = 0
    experiments = engine.experiments
    assert experiments is not None
    events: list[Event] = []
    for user in users:
        assignment = experiments.assign(user)
        if assignment is None:
            continue
        # as the API serves an arm: its model version and serving settings
        result = engine.service.recommend(user, assignment.serving.length(10), assignment.model,
                                          version=assignment.version, serving=assignment.serving)
        items = [i["item_id"] for i in result.items]
        served = ServedList(tuple(items), result.cold_start, result.fallback)
        exposures += int(experiments.record_exposure(assignment, served))
        if not items:
            continue
        p = engine.world.click_probability(user, items, np.arange(len(items)))
        p = np.clip(np.asarray(p) * (boost or {}).get(assignment.variant, 1.0), 0, 1)
        for item, clicked in zip(items, rng.random(len(items)) < p, strict=True):
            events.append(Event(user_id=user, item_id=item, type="impression", **stamp))
            if clicked:
                events.append(Event(user_id=user, item_id=item, type="click", **stamp))
    for start in range(0, len(events), 500):
        engine.events.track_many(events[start:start + 500])
    return exposures
