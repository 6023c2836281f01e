"""The FastAPI application: routers, error shapes and the engine's life cycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from engine.api.body_limit import BodyLimit
from engine.api.l1_fast_path import L1FastPath
from engine.api.middleware import RequestCounter
from engine.api.routes import admin, datasets, events, experiments, models, probes, recommendations
from engine.config import Settings, get_settings
from engine.monitoring.prometheus_metrics import EVENTS_REJECTED
from engine.runtime import Engine, build_engine, freeze_startup_heap

log = logging.getLogger(__name__)

REDIS_UNAVAILABLE = (
    "Redis is unavailable: the request was not carried out. Retry later; events are idempotent on event_id, "
    "so re-sending the same events is safe"
)

# requests refused as invalid here count as rejected events (reason "invalid")
EVENT_PATHS = ("/events", "/track/")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The app; with ``engine`` given (tests) it is used as is and not closed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine or await run_in_threadpool(build_engine, settings or get_settings())
        if owned:
            freeze_startup_heap()
        try:
            yield
        finally:
            if owned:
                await run_in_threadpool(app.state.engine.close)

    app = FastAPI(
        title="RecOps serving API",
        version="0.1.0",
        description=(
            "Recommendations, event tracking, health, metrics, cache administration, datasets (list, "
            "manifest, import), model versions (list, train, promote, roll back) and experiments (create, "
            "change, start, pause, stop, read out)."
        ),
        lifespan=lifespan,
    )
    app.include_router(recommendations.router)
    app.include_router(events.router)
    app.include_router(probes.router)
    app.include_router(admin.router)
    app.include_router(datasets.router)
    app.include_router(datasets.admin_router)
    app.include_router(models.router)
    app.include_router(models.admin_router)
    app.include_router(experiments.router)
    app.include_router(experiments.admin_router)
    bounds = settings or (engine.settings if engine is not None else get_settings())
    app.add_middleware(BodyLimit, max_body_bytes=bounds.max_body_bytes, max_upload_bytes=bounds.max_upload_bytes)
    app.add_middleware(RequestCounter)  # outermost: it counts the 413s of the body limit too

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith(EVENT_PATHS):
            EVENTS_REJECTED.labels(reason="invalid").inc()
        # FastAPI's default shape, minus the echoed input (it may be huge or hostile)
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def redis_unavailable(_: Request, exc: redis.RedisError) -> JSONResponse:
        # Reads fall back to popular lists; a write cannot, so the client is told to retry.  The
        # exception text is not echoed: it names the Redis host and port.
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return JSONResponse({"detail": REDIS_UNAVAILABLE}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app


def create_server(settings: Settings | None = None, engine: Engine | None = None) -> ASGIApp:
    """What uvicorn serves: ``create_app``'s app behind the L1 fast path of POST /recommendations
    (``engine.api.l1_fast_path``), which answers cached lists without the framework."""
    app = create_app(settings, engine)
    return L1FastPath(app, lambda: getattr(app.state, "engine", None))
