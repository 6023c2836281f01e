"""Experiments over HTTP: create, change and run them behind the admin token; read them out publicly.

Thin over ``ExperimentService`` (as the console and ``recops experiments`` use it): an invalid
experiment — including a variant whose model spec names no version of the served dataset — is a
422 with the service's one-line message and the field it is about; an unknown key a 404; a change
made against a stale ``expected_version`` a 409.  Changes are audited like the console's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, status
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep, require_admin
from engine.api.routes.datasets import audit_quietly, one_line
from engine.api.schemas import ErrorResponse
from engine.experiments.model import KEY_PATTERN, ConflictError, ExperimentError, NotFoundError
from engine.experiments.readout_document import breakdown_problems, export_document, readout_document

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


MAX_DIMENSIONS = 10  # a readout broken down by more dimensions than this is a scan, not a question
EngineQuery = Annotated[Literal["frequentist", "sequential", "bayesian", "all"] | None,
                        Query(alias="engine", description="the engine to read with; default: the experiment's")]


@router.get("/experiments/{key}/readout", responses=ERRORS)
async def experiment_readout(
    engine: EngineDep, key: KeyPath, phase: Annotated[int | None, Query(ge=1)] = None,
    by: Annotated[list[str] | None, Query(description="user dimensions to break the goal down by (repeatable)")] = None,
    decision_engine: EngineQuery = None,
) -> Any:
    """The readout as ``recops experiments readout KEY --json`` prints it (one assembly,
    ``engine.experiments.readout_document``): ``served``, ``health``, ``quality``, ``timeseries`` and,
    with ``?by=device&by=segment``, ``breakdowns`` and a ``srm_by_dimension`` health check per dimension.
    A dimension no exposed user has, or with too many values for a breakdown, is a 422."""
    dims = list(dict.fromkeys(by or ()))
    if len(dims) > MAX_DIMENSIONS:
        return JSONResponse({"detail": f"at most {MAX_DIMENSIONS} dimensions per readout, got {len(dims)}",
                             "field": "by"}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        document = await run_in_threadpool(lambda: readout_document(
            engine.experiments, key, phase, None, decision_engine, dims, engine.arm_lists(key, phase)))
    except ExperimentError as exc:
        return _refused(exc)
    problems = breakdown_problems(document)
    if problems:
        return JSONResponse({"detail": " ".join(one_line(p) for p in problems), "field": "by"},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return document


@router.get("/experiments/{key}/export", responses={**ERRORS, 200: {"content": {"text/csv": {}, "text/html": {}},
                                                                     "description": "the file, as an attachment"}})
async def export_experiment(
    engine: EngineDep, key: KeyPath,
    fmt: Annotated[Literal["csv", "html"], Query(alias="format", description="csv: one table; html: the report")],
    what: Annotated[Literal["results", "timeseries"], Query(description="the CSV's table")] = "results",
    phase: Annotated[int | None, Query(ge=1)] = None,
    decision_engine: EngineQuery = None,
) -> Any:
    """The same bytes as ``recops experiments export KEY --format csv|html``, as a download."""
    try:
        export = await run_in_threadpool(lambda: export_document(
            engine.experiments, key, fmt, what, phase, decision_engine, engine.arm_lists(key, phase)))
    except ExperimentError as exc:
        return _refused(exc)
    return Response(export.text.encode("utf-8"), media_type=export.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{export.filename}"'})
