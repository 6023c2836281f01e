"""GET /health and GET /metrics."""

from __future__ import annotations

import os

import redis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep
from engine.api.schemas import ComponentHealth, HealthResponse, ServedDataset

router = APIRouter(tags=["operations"])


def _check(engine: EngineDep) -> HealthResponse:
    try:
        engine.redis.ping()
        redis_health = ComponentHealth(status="ok")
    except (redis.RedisError, OSError) as exc:
        redis_health = ComponentHealth(status="down", detail=type(exc).__name__)
    names = sorted(engine.service.models)
    models = ComponentHealth(status="ok" if names else "down", detail=", ".join(names))
    if redis_health.status != "ok":
        features = ComponentHealth(status="degraded", detail="Redis unreachable: serving fallback lists")
    else:
        features = ComponentHealth(status="ok", detail=f"{len(engine.catalog)} items")
    healthy = redis_health.status == "ok" and models.status == "ok"
    return HealthResponse(
        status="healthy" if healthy else "degraded", redis=redis_health, models=models, feature_store=features,
        dataset=ServedDataset(**engine.stored.summary()),
    )


@router.get("/health", response_model=HealthResponse,
            summary="Health of Redis, the models and the feature store, and the dataset served")
async def health(engine: EngineDep) -> HealthResponse:
    return await run_in_threadpool(_check, engine)


@router.get("/metrics", summary="Prometheus exposition", response_class=Response)
def metrics() -> Response:
    # In multiprocess mode every worker writes its own files; aggregate them all on each scrape.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
