"""A real API process (``recops serve``) on a free port against the test Redis and small world."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from engine.config import Settings
from engine.local_processes import free_port
from engine.storage.embedded_redis import EmbeddedRedis
from tests.support.engine_fixtures import SMALL_WORLD, small_world_env
from tests.support.polling import poll

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class ApiProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def settings(self) -> Settings:
        """The settings the API process reads from its environment, so a test loads the same world."""
        return Settings(data_dir=Path(self.env["RECOPS_DATA_DIR"]), redis_url=self.env["REDIS_URL"],
                        **{name: int(self.env[f"RECOPS_{name.upper()}"]) for name in SMALL_WORLD})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def api_env(data_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(small_world_env())
    env.update(
        REDIS_URL=redis_url,
        RECOPS_DATA_DIR=str(data_dir),
        RECOPS_ADMIN_TOKEN=ADMIN_TOKEN,
        OPENBLAS_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def start_api(env: dict[str, str], log: Path, workers: int = 1, timeout: float = 60.0,
              args: Sequence[str] = ()) -> ApiProcess:
    """``recops serve`` (with ``args``, e.g. ``--dataset NAME``) on a free port, once it answers /health."""
    port = free_port()
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers", str(workers), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    api = ApiProcess(url=f"http://127.0.0.1:{port}", process=proc, log=log, env=env)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"API exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(api.url + "/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    if poll(healthy, timeout, every=0.1):
        return api
    api.stop()
    raise RuntimeError(f"API did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_api(env: dict[str, str], log: Path, workers: int = 1, args: Sequence[str] = ()) -> Iterator[ApiProcess]:
    """``start_api``, stopped when the block ends however it ends."""
    api = start_api(env, log, workers, args=args)
    try:
        yield api
    finally:
        api.stop()


def flush_for_a_new_api(redis_server: EmbeddedRedis) -> None:
    """Empty the worker's shared Redis before a module starts its own API process: earlier modules'
    cached lists would show up as L2 hits, and their running experiments would assign this API's
    users to arms (a leftover popularity-vs-ALS experiment once served a test user popularity)."""
    flusher = redis.Redis.from_url(redis_server.url)
    flusher.flushdb()
    flusher.close()


@pytest.fixture(scope="module")
def api(
    small_world_dir: Path, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """One single-worker API per test module (starting one costs seconds).

    Tests sharing it keep apart by using their own user ids, and compare metrics as deltas.
    Redis is flushed first (see ``flush_for_a_new_api``).
    """
    flush_for_a_new_api(redis_server)
    with running_api(api_env(small_world_dir, redis_server.url), tmp_path_factory.mktemp("api") / "api.log") as proc:
        yield proc


@pytest.fixture
def client(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=10.0) as c:
        yield c
