"""One simulated visit: ask the API for a list, behave by the world's ground truth, report every event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import httpx
import numpy as np
import orjson

from engine.data.demo import DemoWorld
from engine.data.demo.history import MEAN_SESSIONS
from engine.simulator.summary import Recorder, VariantStats

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # the API refuses larger /events/batch bodies
JSON_HEADERS = {"content-type": "application/json"}
RETRY_BACKOFF_SECONDS = 0.1
FEEDBACK_TYPES = ("click", "add_to_cart", "purchase")


def activity(world: DemoWorld, user_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Each user's weight in the traffic: their events in the history, which the world draws from a
    lognormal number of sessions per user, so a few heavy users make most visits (Zipf-like)."""
    counts = world.events["user_id"].value_counts()
    # +1: a user whose history happens to be empty still visits now and then
    return counts.reindex(list(user_ids), fill_value=0).to_numpy(dtype=np.float64) + 1.0


def plan_users(world: DemoWorld, size: int, rng: np.random.Generator, users: int | None = None) -> np.ndarray:
    """``size`` user ids drawn by activity (:func:`activity`): a user's share of traffic follows their
    share of the history.  ``users`` keeps the first N ids only (ids are assigned independently of
    activity, so that is an unbiased subset)."""
    pool = world.user_ids if users is None else world.user_ids[: max(1, min(users, world.n_users))]
    weights = activity(world, pool)
    return rng.choice(pool, size=size, p=weights / weights.sum())


def visit_rates(world: DemoWorld, user_ids: Sequence[str] | np.ndarray, days: float) -> np.ndarray:
    """Expected visits of each user over ``days`` days: the world's sessions per user per day (its
    history's ``MEAN_SESSIONS`` over its ``days``, on average over all users) shared by :func:`activity`."""
    weights = activity(world, user_ids)
    per_user_day = MEAN_SESSIONS / world.params["days"]
    return weights * (per_user_day * days * world.n_users / activity(world, world.user_ids).sum())


def event_id(request_id: str, item_id: str, event_type: str) -> str:
    """Deterministic, so a retried batch is answered ``duplicate`` instead of being counted twice."""
    return f"{request_id}:{item_id}:{event_type}"


@dataclass(frozen=True)
class Behaviour:
    """What one user did with one list: the events to post, and the ground truth of the list."""

    events: list[dict[str, Any]]
    click_probability: np.ndarray
    purchase_probability: np.ndarray


def behave(
    world: DemoWorld, user_id: str, item_ids: Sequence[str], request_id: str, rng: np.random.Generator
) -> Behaviour:
    """An impression per shown item, then click / add_to_cart / purchase as ``sample_feedback`` draws them."""
    # Integer indices once: the world's id parsing is string work, three calls would repeat it.
    user = world.user_index(user_id)
    items = world.item_index(list(item_ids))
    positions = np.arange(len(item_ids))
    feedback = world.sample_feedback(user, items, positions, rng)
    prices = world.price[items]

    def event(item: str, event_type: str, value: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": event_id(request_id, item, event_type),
            "user_id": user_id,
            "item_id": item,
            "type": event_type,
            "request_id": request_id,
        }
        if value is not None:
            body["value"] = value
        return body

    events = [event(item, "impression") for item in item_ids]
    drawn = {"click": feedback.click, "add_to_cart": feedback.add_to_cart, "purchase": feedback.purchase}
    for pos, item in enumerate(item_ids):
        for event_type in FEEDBACK_TYPES:
            if drawn[event_type][pos]:
                value = float(prices[pos]) if event_type == "purchase" else None
                events.append(event(item, event_type, value))
    return Behaviour(
        events=events,
        click_probability=world.click_probability(user, items, positions),
        purchase_probability=world.purchase_probability(user, items, positions),
    )


def events_taken(status: int | None) -> bool:
    """The API took the batch: 200 (in Redis) or 202 (kept in its local spool while Redis is away,
    replayed later: sending it again would only make duplicates)."""
    return status in (200, 202)


def retryable(status: int | None) -> bool:
    """Worth sending again: no answer at all, 429 or a 5xx (a 4xx would be refused again)."""
    return status is None or status == 429 or status >= 500


class Visitor:
    """Runs visits over one shared ``httpx.AsyncClient``; every failure is counted, none is raised."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        world: DemoWorld,
        recorder: Recorder,
        rng: np.random.Generator,
        n: int = 10,
        retries: int = 2,
    ) -> None:
        self.client = client
        self.world = world
        self.recorder = recorder
        self.rng = rng
        self.n = n
        self.retries = retries

    async def visit(self, user_id: str) -> None:
        try:
            await self._visit(user_id)
        except asyncio.CancelledError:
            self.recorder.error("client", "cancelled")
            raise
        except Exception as exc:  # one bad visit (odd payload, world mismatch) must not end the run
            log.debug("visit of %s failed", user_id, exc_info=True)
            self.recorder.error("client", type(exc).__name__)

    async def _visit(self, user_id: str) -> None:
        self.recorder.requests += 1
        started = perf_counter()
        try:
            response = await self.client.post("/recommendations", params={"user_id": user_id, "n": self.n})
        except httpx.HTTPError as exc:
            self.recorder.error("recommendations", type(exc).__name__)
            return
        latency = perf_counter() - started
        if response.status_code != 200:
            self.recorder.error("recommendations", str(response.status_code))
            return
        body = response.json()
        items = [str(item["item_id"]) for item in body["items"]]
        arm = self.recorder.listed(body, latency, len(items))
        if not items:
            return
        behaviour = behave(self.world, user_id, items, str(body["request_id"]), self.rng)
        self.recorder.truth(behaviour.click_probability, behaviour.purchase_probability)
        for start in range(0, len(behaviour.events), MAX_BATCH):
            await self._post(behaviour.events[start : start + MAX_BATCH], arm)

    async def _post(self, events: list[dict[str, Any]], arm: VariantStats) -> None:
        payload = orjson.dumps(events)
        for attempt in range(self.retries + 1):
            status: int | None = None
            try:
                response = await self.client.post("/events/batch", content=payload, headers=JSON_HEADERS)
                status = response.status_code
            except httpx.HTTPError as exc:
                self.recorder.error("events", type(exc).__name__)
            else:
                if events_taken(status):
                    self._acknowledge(events, response.json(), arm)
                    return
                self.recorder.error("events", str(status))
            if not retryable(status) or attempt == self.retries:
                break
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
        self.recorder.failed_events += len(events)

    def _acknowledge(self, sent: list[dict[str, Any]], results: list[dict[str, Any]], arm: VariantStats) -> None:
        for event, result in zip(sent, results, strict=True):
            if result.get("accepted") or result.get("duplicate"):
                self.recorder.delivered(arm, event["type"], bool(result.get("duplicate")))
            else:
                self.recorder.failed_events += 1
