"""Shared fixtures: a real redis-server per test session (per xdist worker), flushed per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import hypothesis
import pytest
import redis

from engine.config import Settings
from engine.storage.embedded_redis import EmbeddedRedis

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# serving processes warm their likeliest users' lists in the background at start; tests watch what
# requests themselves do to the cache (a first request misses), so warming is off unless a test
# turns it on (tests/engine/serving/cache/test_miss_causes.py)
os.environ.setdefault("RECOPS_WARM_ON_START_USERS", "0")

# CI replays the same property-test examples every run, so a red CI is reproducible; a developer's
# `make test` keeps exploring new ones (and a failure it finds is kept in .hypothesis/ to replay).
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

# fixtures of the engine (small demo world, trained models), of a running API process and of the CLI in process
pytest_plugins = ["tests.support.engine_fixtures", "tests.support.api", "tests.support.cli"]

REQUIRE_BINARIES = os.environ.get("RECOPS_REQUIRE_BINARIES") == "1"
REPO_ROOT = Path(__file__).resolve().parents[1]


DEBIAN_PACKAGE = {"promtool": "prometheus", "java": "openjdk-17-jre-headless"}


def missing(message: str) -> NoReturn:
    """Skip a test whose binary or reference package is absent; fail instead under CI's
    RECOPS_REQUIRE_BINARIES=1, where .ci/run and `make test` install them, so a broken install is not a skip."""
    if REQUIRE_BINARIES:
        pytest.fail(message + " and RECOPS_REQUIRE_BINARIES=1")
    pytest.skip(message)


def require_binary(name: str, path: str | None = None) -> str:
    """Path of a system binary; skip when missing, fail instead under CI's RECOPS_REQUIRE_BINARIES=1."""
    found = path if path and Path(path).exists() else shutil.which(name)
    if found:
        return found
    missing(f"{name} binary not found (apt-get install {DEBIAN_PACKAGE.get(name, name)})")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """REDIS_URL's server when set (tests then own db 15), else an embedded server of our own."""
    external = os.environ.get("REDIS_URL")
    if external:
        server = EmbeddedRedis(data_dir=tmp_path_factory.mktemp("unused"))
        server.url = external
        yield server
        return
    server = EmbeddedRedis(data_dir=tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_client: redis.Redis, redis_url: str) -> Settings:
    """Settings pointing at the test Redis (already flushed) and a fresh data dir."""
    return Settings(data_dir=tmp_path / "data", redis_url=redis_url)
