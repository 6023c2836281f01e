"""Event ingestion: POST /events, POST /events/batch and the seed's /track/<type> shortcuts.

While Redis is unreachable the events go to the serving process's local spool and the answer is
202 Accepted with ``spooled: true`` (``engine.events.ingest``); they reach Redis once it is back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from pydantic import ValidationError

from engine.api.deps import EngineDep
from engine.api.schemas import ID_PATTERN, ErrorResponse, EventResponse
from engine.events.ingest import SpoolUnavailableError
from engine.events.tracker import Event, TrackResult, UnknownItemError

router = APIRouter(tags=["events"])
SPOOL_UNAVAILABLE = (
    "Redis is unreachable and the server could not keep the event in its local spool: it was not stored. "
    "Retry later with the same event_id"
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Recorded in Redis (or a duplicate of an event already recorded)"},
    202: {
        "model": EventResponse,
        "description": "Redis unreachable: kept in the server's fsynced local spool (`spooled: true`) and "
        "replayed into Redis, in order and idempotently, when it is back. Nothing to re-send.",
    },
    422: {"model": ErrorResponse, "description": "invalid event, or an item that is not in the catalogue"},
    503: {"model": ErrorResponse, "description": "neither Redis nor the local spool could take the event; "
          "it was not stored: retry it"},
}


def _answer(event: Event, result: TrackResult) -> EventResponse:
    return EventResponse(accepted=result.accepted, duplicate=result.duplicate, event_id=event.event_id,
                         spooled=result.spooled)


def _track_many(engine: EngineDep, events: list[Event], response: Response) -> list[EventResponse]:
    try:
        results = engine.ingest.track_many(events)
    except UnknownItemError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except SpoolUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, SPOOL_UNAVAILABLE, {"Retry-After": "1"}) from exc
    if any(r.spooled for r in results):
        response.status_code = status.HTTP_202_ACCEPTED
    return [_answer(e, r) for e, r in zip(events, results, strict=True)]


@router.post("/events", response_model=EventResponse, responses=RESPONSES, summary="Record one event")
def post_event(event: Event, engine: EngineDep, response: Response) -> EventResponse:
    """Idempotent on ``event_id``: sending the same id twice stores it once (``duplicate: true``).
    An item that is not in the catalogue is refused (422); a user the dataset has never seen is
    welcome (their events are kept, and they get lists from them until a retraining includes them).
    202 with ``spooled: true`` while Redis is unreachable: the event is kept locally and replayed."""
    return _track_many(engine, [event], response)[0]


@router.post("/events/batch", response_model=list[EventResponse], responses=RESPONSES,
             summary="Record many events")
def post_events(
    events: Annotated[list[Event], Body(min_length=1, max_length=1000)], engine: EngineDep, response: Response
) -> list[EventResponse]:
    """Up to 1,000 events in one pipelined write; an unknown item refuses the whole batch (422).
    202 with every event ``spooled: true`` while Redis is unreachable."""
    return _track_many(engine, events, response)


@router.post("/track/{event_type}", response_model=EventResponse, responses=RESPONSES,
             summary="Seed-style tracking")
def track(
    event_type: Literal["impression", "click", "add_to_cart", "purchase"],
    engine: EngineDep,
    response: Response,
    user_id: Annotated[str, Query(min_length=1, max_length=128, pattern=ID_PATTERN)],
    item_id: Annotated[str, Query(min_length=1, max_length=128, pattern=ID_PATTERN)],
    value: Annotated[float | None, Query()] = None,
) -> EventResponse:
    """Like ``POST /events`` (202 with ``spooled: true`` while Redis is unreachable)."""
    try:
        event = Event(user_id=user_id, item_id=item_id, type=event_type, value=value)
    except ValidationError as exc:
        detail = exc.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    return _track_many(engine, [event], response)[0]
