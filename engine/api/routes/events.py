"""Event ingestion: POST /events, POST /events/batch and the seed's /track/<type> shortcuts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import ValidationError

from engine.api.deps import EngineDep
from engine.api.schemas import ID_PATTERN, ErrorResponse, EventResponse
from engine.events.tracker import Event, TrackResult, UnknownItemError

router = APIRouter(tags=["events"])
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "invalid event or unknown item"},
    503: {"model": ErrorResponse, "description": "Redis unavailable: the event was not stored; retry it"},
}


def _answer(event: Event, result: TrackResult) -> EventResponse:
    return EventResponse(accepted=result.accepted, duplicate=result.duplicate, event_id=event.event_id)


def _track(engine: EngineDep, event: Event) -> EventResponse:
    try:
        return _answer(event, engine.events.track(event))
    except UnknownItemError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


@router.post("/events", response_model=EventResponse, responses=ERRORS, summary="Record one event")
def post_event(event: Event, engine: EngineDep) -> EventResponse:
    """Idempotent on ``event_id``: sending the same id twice stores it once (``duplicate: true``)."""
    return _track(engine, event)


@router.post("/events/batch", response_model=list[EventResponse], responses=ERRORS, summary="Record many events")
def post_events(
    events: Annotated[list[Event], Body(min_length=1, max_length=1000)], engine: EngineDep
) -> list[EventResponse]:
    """Up to 1,000 events in one pipelined write; an unknown item refuses the whole batch."""
    try:
        results = engine.events.track_many(events)
    except UnknownItemError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return [_answer(e, r) for e, r in zip(events, results, strict=True)]


@router.post("/track/{event_type}", response_model=EventResponse, responses=ERRORS, summary="Seed-style tracking")
def track(
    event_type: Literal["impression", "click", "add_to_cart", "purchase"],
    engine: EngineDep,
    user_id: Annotated[str, Query(min_length=1, max_length=128, pattern=ID_PATTERN)],
    item_id: Annotated[str, Query(min_length=1, max_length=128, pattern=ID_PATTERN)],
    value: Annotated[float | None, Query()] = None,
) -> EventResponse:
    try:
        event = Event(user_id=user_id, item_id=item_id, type=event_type, value=value)
    except ValidationError as exc:
        detail = exc.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    return _track(engine, event)
