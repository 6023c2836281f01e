"""Experiments over HTTP: create, change and run them behind the admin token; read them out publicly.

Thin over ``ExperimentService`` (as the console and ``recops experiments`` use it): an invalid
experiment — including a variant whose model spec names no version of the served dataset — is a
422 with the service's one-line message and the field it is about; an unknown key a 404; a change
made against a stale ``expected_version`` a 409.  Changes are audited like the console's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep, require_admin
from engine.api.routes.datasets import audit_quietly, one_line
from engine.api.schemas import ErrorResponse
from engine.experiments.model import KEY_PATTERN, ConflictError, ExperimentError, NotFoundError

router = APIRouter(tags=["experiments"])
admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

KeyPath = Annotated[str, Path(pattern=KEY_PATTERN, description="experiment key")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such experiment"},
    409: {"model": ErrorResponse, "description": "the experiment changed since it was read"},
    422: {"model": ErrorResponse, "description": "invalid experiment or change; `field` names the field"},
}


def _refused(exc: ExperimentError) -> JSONResponse:
    code = (status.HTTP_404_NOT_FOUND if isinstance(exc, NotFoundError)
            else status.HTTP_409_CONFLICT if isinstance(exc, ConflictError)
            else status.HTTP_422_UNPROCESSABLE_CONTENT)
    return JSONResponse({"detail": one_line(exc), "field": exc.field}, status_code=code)


@admin_router.post("/experiments", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_experiment(engine: EngineDep, spec: Annotated[dict[str, Any], Body()]) -> Any:
    """A new draft from the experiment's user fields; its variants' model specs are checked on the served dataset."""
    try:
        exp = await run_in_threadpool(engine.experiments.create, spec)
    except ExperimentError as exc:
        return _refused(exc)
    audit_quietly(engine, "experiment_create", exp.key, detail=f"{len(exp.variants)} variants, goal {exp.goal_metric}")
    return exp.model_dump(mode="json")


@admin_router.patch("/experiments/{key}", responses=ERRORS)
async def update_experiment(
    engine: EngineDep,
    key: KeyPath,
    changes: Annotated[dict[str, Any], Body()],
    expected_version: Annotated[int | None, Query(ge=1, description="refuse (409) unless the config is at it")] = None,
) -> Any:
    """Change user fields; changing the allocation of a started experiment opens a new phase."""
    try:
        exp = await run_in_threadpool(engine.experiments.update, key, changes, expected_version)
    except ExperimentError as exc:
        return _refused(exc)
    audit_quietly(engine, "experiment_update", key, detail=f"version {exp.version}, phase {exp.phase}, "
                                                           f"fields {sorted(changes)}")
    return exp.model_dump(mode="json")


@admin_router.post("/experiments/{key}/{action}", responses=ERRORS)
async def transition_experiment(engine: EngineDep, key: KeyPath, action: Literal["start", "pause", "stop"]) -> Any:
    """start (a draft, or a paused experiment), pause or stop."""
    try:
        exp = await run_in_threadpool(getattr(engine.experiments, action), key)
    except ExperimentError as exc:
        return _refused(exc)
    audit_quietly(engine, f"experiment_{action}", key, detail=f"now {exp.status}, phase {exp.phase}")
    return exp.model_dump(mode="json")


@router.get("/experiments/{key}/readout", responses=ERRORS)
async def experiment_readout(
    engine: EngineDep, key: KeyPath, phase: Annotated[int | None, Query(ge=1)] = None,
    by: Annotated[list[str] | None, Query(description="user dimensions to break the goal down by")] = None,
) -> Any:
    """The readout as ``recops experiments readout KEY --json`` prints it, ``served`` included (and
    ``breakdowns`` with ``?by=device&by=segment``)."""
    try:
        readout = await run_in_threadpool(engine.experiments.readout, key, phase, None, None, by or ())
    except ExperimentError as exc:
        return _refused(exc)
    return readout.to_dict()
