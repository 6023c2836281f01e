"""POST /recommendations: the list a user is shown.

This is the hottest route, so it reads its parameters itself instead of through FastAPI's
parameter injection: on a cache hit FastAPI's per-request parameter solving cost more than
everything else the request does.  Validation still goes through the pydantic models in
``schemas``, errors keep FastAPI's 422 shape, and the OpenAPI document describes the same
parameters and body (built from those models), so clients and the fuzzer see no difference.
"""

from __future__ import annotations

from functools import partial
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from engine.api.deps import get_engine
from engine.api.interleaved_lists import serve_interleaved
from engine.api.list_body import list_body, new_request_id
from engine.api.schemas import ErrorResponse, RecommendationBody, RecommendationQuery, RecommendationResponse
from engine.events.impressions import impression_events, policy_label
from engine.experiments.assignment import Assignment
from engine.experiments.quality import ServedList
from engine.runtime import Engine
from engine.serving.service import RecommendationResult

router = APIRouter(tags=["recommendations"])
M = TypeVar("M", bound=BaseModel)


def _openapi() -> dict[str, Any]:
    body = RecommendationBody.model_json_schema()
    return {
        # the body's field schemas: the query takes the same values, each optional there
        "parameters": [
            {"name": name, "in": "query", "required": False,
             "schema": {k: v for k, v in schema.items() if k != "default"}}
            for name, schema in body["properties"].items()
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": body}},
        },
    }


def _validated(model: type[M], where: str, data: dict[str, Any] | None = None, raw: bytes = b"") -> M:
    """``model`` from a dict or JSON bytes; a failure is raised as FastAPI's own 422."""
    try:
        return model.model_validate(data) if data is not None else model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{"loc": (where, *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None


def _response(
    result: RecommendationResult,
    experiment: str | None,
    variant: str | None,
    request_id: str | None = None,
    teams: tuple[str, ...] | None = None,
) -> Response:
    body = list_body(result, experiment, variant, teams).stamped(request_id or new_request_id())
    return Response(body, media_type="application/json")


@router.post(
    "/recommendations",
    response_model=RecommendationResponse,
    responses={422: {"model": ErrorResponse, "description": "invalid user_id or n"}},
    summary="Recommend items to a user",
    openapi_extra=_openapi(),
)
async def recommend(request: Request) -> Response:
    """Query parameters (``?user_id=U&n=10``) or a JSON body ``{"user_id", "n"}``; the query wins.

    A user in an experiment gets their arm's list: its model at the version its spec resolved to,
    computed with its serving parameters.  An arm that sets ``n`` serves lists of that length
    whatever the request's ``n``: the list length is then the treatment under test, and honouring
    the request would serve the control's treatment to the arm.

    A user in an interleaving experiment gets both rankers' lists merged by team draft (variant
    ``interleaved``); ``include_teams`` adds which ranker contributed each item."""
    engine = await get_engine(request)
    query = _validated(RecommendationQuery, "query", data=dict(request.query_params))
    raw = await request.body()
    body = _validated(RecommendationBody, "body", raw=raw) if raw.strip() else None
    uid = query.user_id or (body.user_id if body else None)
    if uid is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "user_id is required (query or JSON body)")
    size = query.n or (body.n if body else engine.settings.default_n)
    # Assignment is a pure hash over experiment configs held in process (their specs resolved to
    # versions when the snapshot was built): no I/O here.
    assignment = engine.experiments.assign(uid)
    if assignment is not None and assignment.rankers is not None:
        return await _interleaved(engine, assignment, size, query.include_teams or bool(body and body.include_teams))
    model = version = serving = None
    if assignment is not None:
        model, version, serving = assignment.model, assignment.version, assignment.serving
        size = serving.length(size)
    # An L1 hit needs no I/O either: answer it on the event loop and skip the thread hop.
    result = engine.service.recommend_from_l1(uid, size, model, version=version, serving=serving)
    if result is None:
        result = await run_in_threadpool(
            partial(engine.service.recommend, uid, size, model, version=version, serving=serving))
    if assignment is not None and not engine.experiments.already_exposed(assignment):
        served = ServedList(tuple(i["item_id"] for i in result.items), result.cold_start, result.fallback)
        await run_in_threadpool(engine.experiments.record_exposure, assignment, served)
    request_id = None
    if assignment is not None and "exploration" in result.extra:  # an exploring arm logs what it drew
        request_id = new_request_id()
        events = impression_events(uid, result.items, result.extra["exploration"], request_id,
                                   policy_label(assignment.model, assignment.version, assignment.serving))
        await run_in_threadpool(engine.ingest.track_many, events)
    return _response(
        result,
        assignment.experiment if assignment else None,
        assignment.variant if assignment else None,
        request_id,
    )


async def _interleaved(engine: Engine, assignment: Assignment, size: int, include_teams: bool) -> Response:
    request_id = new_request_id()  # before the merge: it seeds the draft, and clicks name it
    answer = await run_in_threadpool(serve_interleaved, engine, assignment, size, request_id)
    teams = answer.teams if include_teams else None
    return _response(answer.result, assignment.experiment, assignment.variant, request_id, teams)
