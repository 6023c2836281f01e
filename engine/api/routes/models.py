"""Model versions: the list (public read), and promotion, rollback and training behind the admin token.

Thin over ``engine.models``: the rows are ``VersionRecord.row`` (as ``recops models list --json``),
switches go through ``engine.models.lifecycle`` with the engine's audit log, and training through
``plan_training`` + ``train_models`` (as ``recops train``).  After a switch or a training that
changed what serves this process's dataset, the process reloads at once; other workers follow
through their registry watcher within ``RECOPS_MODEL_POLL_SECONDS``.
"""

from __future__ import annotations

from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep, require_admin
from engine.api.routes.datasets import audit_quietly, one_line
from engine.api.schemas import (
    DATASET_NAME_PATTERN,
    MODEL_NAME_PATTERN,
    ErrorResponse,
    ModelVersion,
    PromoteBody,
    RollbackBody,
    StageChangeResponse,
    TrainBody,
    TrainedVersion,
    TrainResponse,
)
from engine.models import lifecycle
from engine.models.registry import (
    PRODUCTION,
    LifecycleError,
    ModelRegistry,
    RegistryError,
    StageChange,
    UnknownModelError,
)
from engine.models.spark_session import SparkJobError
from engine.models.training import TRAINING_INPUT_ERRORS, plan_training
from engine.runtime import Engine

router = APIRouter(tags=["models"])
admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

ModelPath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="model name, e.g. als")]
ACTOR = "api-admin"
SWITCH_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "unknown model or version"},
    409: {"model": ErrorResponse, "description": "already production, or nothing to roll back to"},
    503: {"model": ErrorResponse, "description": "the audit log (Redis) is unavailable; nothing was changed"},
}


def _registry(engine: Engine) -> ModelRegistry:
    return ModelRegistry(engine.settings.models_dir)


@router.get("/models", response_model=list[ModelVersion], responses={500: {"model": ErrorResponse}})
def list_models(
    engine: EngineDep,
    dataset: Annotated[str | None, Query(pattern=DATASET_NAME_PATTERN, description="only this dataset's")] = None,
) -> list[dict[str, Any]]:
    """Every saved version, one row each: stage, lineage and offline metrics."""
    try:
        return [r.row() for r in _registry(engine).records(dataset)]
    except RegistryError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, one_line(exc)) from exc


def _switched(engine: Engine, change: StageChange) -> StageChangeResponse:
    if change.dataset == engine.stored.name:
        engine.reload_models()  # this process answers with the new version from the next request
    served, _ = engine.served_versions()
    return StageChangeResponse(action="promote" if change.action == "promote" else "rollback", model=change.model,
                               dataset=change.dataset, version=change.version, previous=change.previous,
                               served=served)


def _switch(engine: Engine, do: Any) -> StageChangeResponse:
    """Run a promotion or rollback with the HTTP answer for each way it can be refused."""
    try:
        engine.audit.client.ping()  # checked first: a switch is not made when it cannot be audited
        change = do(_registry(engine), engine.audit)
    except UnknownModelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, one_line(exc)) from exc
    except LifecycleError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, one_line(exc)) from exc
    except (redis.RedisError, lifecycle.AuditUnavailableError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the audit log (Redis) is unavailable: refusing to switch models unaudited, nothing was changed",
            headers={"Retry-After": "1"},
        ) from exc
    except RegistryError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, one_line(exc)) from exc
    return _switched(engine, change)


@admin_router.post("/models/{model}/promote", response_model=StageChangeResponse, responses=SWITCH_ERRORS)
def promote(engine: EngineDep, model: ModelPath, body: PromoteBody) -> StageChangeResponse:
    """Make ``version`` production for its dataset (the previous production is archived), audited."""
    return _switch(engine, lambda registry, audit: lifecycle.promote(
        registry, audit, ACTOR, model, body.version, body.dataset))


@admin_router.post("/models/{model}/rollback", response_model=StageChangeResponse, responses=SWITCH_ERRORS)
def rollback(engine: EngineDep, model: ModelPath, body: RollbackBody | None = None) -> StageChangeResponse:
    """Serve the previous production version of ``model`` again (on the served dataset by default), audited."""
    dataset = (body.dataset if body else None) or engine.stored.name
    return _switch(engine, lambda registry, audit: lifecycle.rollback(registry, audit, ACTOR, model, dataset))


def _train(engine: Engine, body: TrainBody) -> TrainResponse:
    pairs = [f"{key}={value}" for key, value in body.params.items()]
    try:
        plan = plan_training(engine.settings, body.dataset, body.dataset_version, body.model, pairs, body.tune,
                             body.holdout_days, events=body.events, engine=body.engine)
        results = plan.run(_registry(engine))
    except TRAINING_INPUT_ERRORS as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, one_line(exc)) from exc
    except SparkJobError as exc:  # Spark could not run the job: nothing was registered
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{one_line(exc)}; nothing was registered") from exc
    except RegistryError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, one_line(exc)) from exc
    if plan.stored.name == engine.stored.name and any(r.stage == PRODUCTION for r in results):
        engine.reload_models()  # a first version on the served dataset serves at once
    for r in results:
        audit_quietly(engine, "train_model", f"{r.model}:{plan.stored.name}", r.lineage.get("interactions", 0),
                      f"{r.version} ({r.stage})")
    return TrainResponse(
        dataset=plan.stored.name, dataset_version=plan.stored.version, notes=plan.notes,
        versions=[TrainedVersion.model_validate({
            "model": r.model, "version": r.version, "stage": r.stage, "total_seconds": round(r.total_seconds, 3),
            "lineage": r.lineage}) for r in results],
    )  # fmt: skip


@admin_router.post("/train", response_model=TrainResponse,
                   responses={400: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def train(engine: EngineDep, body: TrainBody) -> TrainResponse:
    """Train on a stored dataset and register new versions with lineage, as ``recops train``.

    Synchronous (seconds to minutes): the work runs in a worker thread, so the API keeps serving.
    """
    return await run_in_threadpool(_train, engine, body)
