"""Run the API under uvicorn: one process, or several workers sharing metrics and Redis.

With several workers, Prometheus metrics switch to multiprocess mode (a fresh
``PROMETHEUS_MULTIPROC_DIR`` under the data dir) so that ``/metrics`` from any worker reports the
sum over all of them, and every worker's L1 is kept honest by the pub/sub invalidation.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.config import Settings, get_settings
from engine.data.dataset_store import StoredDataset
from engine.runtime import prepare_models, served_dataset
from engine.storage.embedded_redis import EmbeddedRedis, ensure_redis_url


def prepare_multiprocess_dir(data_dir: Path, name: str = "api") -> Path:
    """An empty directory for prometheus_client's per-process files (stale ones would be summed)."""
    path = (data_dir / "prometheus-multiproc" / name).resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def prepare_served(settings: Settings) -> StoredDataset:
    """The dataset ``settings`` serves, with trained models (trained now when it has none).

    Done once, before any server process starts: several workers starting on an empty data dir
    would otherwise all generate and train at the same time.  ``DatasetError`` (no such dataset)
    and ``TrainingError`` (one that cannot be trained on) come before anything was started.
    """
    stored = served_dataset(settings)
    prepare_models(settings, stored)
    return stored


def serve(settings: Settings, host: str, port: int, workers: int = 1, log_level: str = "warning") -> None:
    import uvicorn

    from engine.api.fast_hit_protocol import FastHitProtocol

    prepare_served(settings)
    embedded: EmbeddedRedis | None
    url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    # workers are fresh interpreters: hand them the same Redis, data dir and dataset through the
    # environment; a single worker runs in this process and reads the same (hence the cache clear)
    os.environ["REDIS_URL"] = url
    os.environ["RECOPS_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["RECOPS_DATASET"] = settings.dataset
    get_settings.cache_clear()
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prepare_multiprocess_dir(settings.data_dir))
    try:
        uvicorn.run(
            "engine.api.app:create_server",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http=FastHitProtocol,  # httptools, with cached lists answered from the parser
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        if embedded is not None:
            embedded.stop()
