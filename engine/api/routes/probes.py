"""GET /health and GET /metrics."""

from __future__ import annotations

import os
from typing import Any

import redis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep
from engine.api.schemas import ComponentHealth, HealthResponse, ServedDataset
from engine.storage.client import is_cluster

router = APIRouter(tags=["operations"])


def _redis_health(client: redis.Redis) -> ComponentHealth:
    """One PING; on a cluster one per primary, so a dead master reads as ``degraded`` (its users get
    fallback lists, the others are served) rather than the whole store down."""
    if not is_cluster(client):
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            return ComponentHealth(status="down", detail=type(exc).__name__)
        return ComponentHealth(status="ok")
    cluster: Any = client
    try:
        primaries = cluster.get_primaries()
    except (redis.RedisError, OSError) as exc:
        return ComponentHealth(status="down", detail=type(exc).__name__)
    down = []
    for node in primaries:
        try:
            cluster.ping(target_nodes=node)
        except (redis.RedisError, OSError):
            down.append(node.name)
    if not down:
        return ComponentHealth(status="ok", detail=f"{len(primaries)} primaries")
    return ComponentHealth(status="down" if len(down) == len(primaries) else "degraded",
                           detail=f"{len(down)} of {len(primaries)} primaries unreachable: {', '.join(down)}")


def _check(engine: EngineDep) -> HealthResponse:
    redis_health = _redis_health(engine.redis)
    names = sorted(engine.service.models)
    models = ComponentHealth(status="ok" if names else "down", detail=", ".join(names))
    if redis_health.status == "degraded":
        features = ComponentHealth(status="degraded", detail="users on the unreachable primaries get fallback lists")
    elif redis_health.status != "ok":
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
