"""POST /recommendations: the list a user is shown."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep
from engine.api.schemas import ID_PATTERN, ErrorResponse, RecommendationBody, RecommendationResponse
from engine.service import RecommendationResult

router = APIRouter(tags=["recommendations"])


def _response(result: RecommendationResult, experiment: str | None, variant: str | None) -> Response:
    # Serialised directly: the items come from our own cache in the documented shape, and
    # re-validating ten of them through pydantic per request costs more than the cache hit.
    body = {
        "user_id": result.user_id,
        "items": result.items,
        "cached": result.cached,
        "cache_tier": result.cache_tier,
        "model": result.model,
        "experiment": experiment,
        "variant": variant,
        "fallback": result.fallback,
        "request_id": uuid.uuid4().hex,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.post(
    "/recommendations",
    response_model=RecommendationResponse,
    responses={422: {"model": ErrorResponse, "description": "invalid user_id or n"}},
    summary="Recommend items to a user",
)
async def recommend(
    engine: EngineDep,
    user_id: Annotated[str | None, Query(min_length=1, max_length=128, pattern=ID_PATTERN)] = None,
    n: Annotated[int | None, Query(ge=1, le=100)] = None,
    body: Annotated[RecommendationBody | None, Body()] = None,
) -> Response:
    """Query parameters (``?user_id=U&n=10``) or a JSON body ``{"user_id", "n"}``; the query wins."""
    uid = user_id or (body.user_id if body else None)
    if uid is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "user_id is required (query or JSON body)")
    size = n or (body.n if body else engine.settings.default_n)
    # Assignment is a pure hash over experiment configs held in process: no I/O here.
    assignment = engine.experiments.assign(uid) if engine.experiments else None
    model = assignment.model if assignment else None
    # An L1 hit needs no I/O either: answer it on the event loop and skip the thread hop.
    result = engine.service.recommend_from_l1(uid, size, model)
    if result is None:
        result = await run_in_threadpool(engine.service.recommend, uid, size, model)
    if assignment is not None and engine.experiments is not None and not engine.experiments.already_exposed(assignment):
        await run_in_threadpool(engine.experiments.record_exposure, assignment)
    return _response(
        result,
        assignment.experiment if assignment else None,
        assignment.variant if assignment else None,
    )
