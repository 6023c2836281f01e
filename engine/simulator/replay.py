"""A dataset's logged interactions sent to the API as live traffic, in their own order (``recops replay``).

Where the simulator invents shoppers from the demo world's ground truth, a replay needs none: it
takes what a dataset's users really did from a moment on and plays it back, speed-scaled.

1. ``plan_replay`` (pure, vectorised): the events at or after ``start`` (and before ``until``), in
   timestamp order, without those whose item is outside the served catalogue (one refuses the
   whole batch it is in), counted as skipped.  Each batch's bodies are built as it is sent, and
   events the API's validation would refuse (``engine.events.tracker.Event``: ids outside its
   charset, a rating outside 1-5) are left out and counted too.  Each event gets a deterministic
   id, so a replay run twice is answered "duplicate" the second time instead of being counted twice.
2. ``run_replay``: the event logged at time t is due ``(t - t0) / speed`` seconds after the start.
   Due events are posted in order, up to ``MAX_BATCH`` per ``POST /events/batch``; a user's first
   event is preceded by a request for their list (``POST /recommendations``), as a visitor sees a
   page before they act on it.  The run is bounded: it ends when every planned event was sent, after
   ``duration`` seconds, or when ``stop`` is set (Ctrl-C); the summary says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from bisect import bisect_right
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
from pydantic import ValidationError

from engine.events.tracker import Event
from engine.simulator.visits import JSON_HEADERS, MAX_BATCH, RETRY_BACKOFF_SECONDS, events_taken, retryable

NOT_IN_CATALOGUE = "item not in the served catalogue"
REFUSED_BY_VALIDATION = "refused by the API's event validation"
# types whose ``value`` means something to the API: the rating, and the price paid
VALUED_TYPES = frozenset({"rating", "purchase"})
LIST_CONCURRENCY = 8  # list requests in flight at once when a batch brings many new users
RETRIES = 2
RUNNING, DURATION, INTERRUPTED, UNREACHABLE, DONE = "running", "duration", "interrupted", "api unreachable", "done"


class ReplayError(ValueError):
    """A replay that cannot start: a time that does not parse, a speed or duration out of range."""


def parse_time(text: str) -> float:
    """Unix seconds from ``text``: a number (Unix seconds) or ISO 8601 (a time without an offset is UTC)."""
    raw = text.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ReplayError(f"{text!r} is neither Unix seconds nor an ISO 8601 time (e.g. 1998-03-01T00:00:00Z)"
                              ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ReplayError(f"{text!r} is not a finite time")
    return seconds


def utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ReplayPlan:
    """The events to send, in time order: their rows in the events table and logged times (arrays, so a
    window of millions costs no Python objects until its batches are built), and what was left out."""

    events: pd.DataFrame = field(repr=False)
    rows: np.ndarray
    times: np.ndarray
    skipped: dict[str, int]  # reason → events (items outside the catalogue, found when planning)
    in_window: int  # events logged in [start, until), sent or skipped
    truncated: bool  # ``limit`` cut the plan short
    id_prefix: str = "replay:"  # each row's id is this and its row number

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, start: int, stop: int) -> tuple[list[dict[str, Any]], int]:
        """Request bodies of planned events ``start:stop``, and how many of them the API's event
        validation would refuse (left out: one refused event would refuse its whole batch)."""
        bodies, refused = [], 0
        frame = self.events.iloc[self.rows[start:stop]]
        for row, user, item, kind, value in zip(self.rows[start:stop], frame["user_id"], frame["item_id"],
                                                frame["type"], frame["value"], strict=True):
            body: dict[str, Any] = {"event_id": f"{self.id_prefix}{row}", "user_id": str(user),
                                    "item_id": str(item), "type": str(kind)}
            if body["type"] in VALUED_TYPES and not pd.isna(value):
                body["value"] = float(value)
            try:
                Event.model_validate(body)
            except ValidationError:
                refused += 1
                continue
            bodies.append(body)
        return bodies, refused


def plan_replay(
    events: pd.DataFrame,
    catalogue: Collection[str],
    start: float,
    until: float | None = None,
    limit: int | None = None,
    id_prefix: str = "replay:",
) -> ReplayPlan:
    """What ``run_replay`` sends (see the module docstring); ``events`` in the ``Dataset`` layout.
    ``limit`` bounds the planned events; those the validation refuses are among them."""
    times = events["timestamp"].to_numpy(dtype=np.float64)
    window = times >= start
    if until is not None:
        window &= times < until
    rows = np.flatnonzero(window)
    rows = rows[np.argsort(times[rows], kind="stable")]
    known = events["item_id"].iloc[rows].isin(catalogue).to_numpy() if len(rows) else np.zeros(0, dtype=bool)
    outside = int((~known).sum())
    kept = rows[known]
    truncated = limit is not None and len(kept) > limit
    kept = kept[:limit] if limit is not None else kept
    return ReplayPlan(events, kept, times[kept], {NOT_IN_CATALOGUE: outside} if outside else {}, len(rows),
                      truncated, id_prefix)


@dataclass(frozen=True)
class ReplayConfig:
    api_url: str
    speed: float = 1.0  # dataset seconds per wall-clock second
    duration: float = 600.0  # wall-clock bound, seconds
    n: int = 10  # list length asked for
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ReplayError(f"--speed must be a positive number, got {self.speed:g}")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise ReplayError(f"--duration must be a positive number of seconds, got {self.duration:g}")
        if not 1 <= self.n <= 100:
            raise ReplayError(f"--n must be within 1..100, got {self.n}")


@dataclass
class ReplaySummary:
    """Counts of one run; events are counted by what the API answered."""

    planned: int
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0  # refused (422) or not stored after the retries (5xx, connection)
    skipped: dict[str, int] = field(default_factory=dict)
    users: int = 0
    lists_requested: int = 0
    lists_served: int = 0
    first_error: str | None = None
    data_from: str | None = None  # logged time of the first and last event sent
    data_to: str | None = None
    seconds: float = 0.0
    stopped: str = RUNNING

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def error(self, text: str) -> None:
        if self.first_error is None:
            self.first_error = text


def format_summary(s: ReplaySummary) -> str:
    skipped = ", ".join(f"{n:,} {reason}" for reason, n in s.skipped.items()) or "none"
    lines = [
        f"replayed {s.sent:,} of {s.planned:,} planned events in {s.seconds:.1f} s ({s.stopped})",
        f"  accepted {s.accepted:,}, duplicates {s.duplicates:,}, rejected {s.rejected:,}; skipped: {skipped}",
        f"  users {s.users:,}; lists requested {s.lists_requested:,}, served {s.lists_served:,}",
    ]
    if s.data_from:
        lines.append(f"  logged times sent: {s.data_from} … {s.data_to}")
    if s.first_error:
        lines.append(f"  first error: {s.first_error}")
    return "\n".join(lines)


class _Sender:
    """Posts lists and event batches over one client; counts every answer into the summary."""

    def __init__(self, client: httpx.AsyncClient, summary: ReplaySummary, n: int) -> None:
        self.client = client
        self.summary = summary
        self.n = n
        self.lists = asyncio.Semaphore(LIST_CONCURRENCY)
        self.unreachable = False

    async def request_list(self, user_id: str) -> None:
        async with self.lists:
            self.summary.lists_requested += 1
            try:
                response = await self.client.post("/recommendations", params={"user_id": user_id, "n": self.n})
            except httpx.HTTPError as exc:
                self.summary.error(f"recommendations: {type(exc).__name__}: {exc}")
                return
            if response.status_code == 200:
                self.summary.lists_served += 1
            else:
                self.summary.error(f"recommendations answered {response.status_code}: {response.text[:200]}")

    async def post_events(self, bodies: list[dict[str, Any]]) -> None:
        payload = orjson.dumps(bodies)
        self.summary.sent += len(bodies)
        for attempt in range(RETRIES + 1):
            status: int | None = None
            try:
                response = await self.client.post("/events/batch", content=payload, headers=JSON_HEADERS)
                status = response.status_code
            except httpx.ConnectError as exc:
                self.summary.error(f"events: {type(exc).__name__}: {exc}")
                self.unreachable = True
                break
            except httpx.HTTPError as exc:
                self.summary.error(f"events: {type(exc).__name__}: {exc}")
            else:
                if events_taken(status):
                    for result in response.json():
                        self.summary.accepted += bool(result.get("accepted"))
                        self.summary.duplicates += bool(result.get("duplicate"))
                    return
                self.summary.error(f"events answered {status}: {response.text[:200]}")
            if not retryable(status) or attempt == RETRIES:
                break
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
        self.summary.rejected += len(bodies)


async def run_replay(plan: ReplayPlan, config: ReplayConfig, stop: asyncio.Event | None = None) -> ReplaySummary:
    """Send ``plan`` to the API at the logged pace times ``speed`` (see the module docstring)."""
    stop = stop or asyncio.Event()
    summary = ReplaySummary(planned=len(plan), skipped=dict(plan.skipped))
    seen: set[str] = set()
    started = time.monotonic()
    first_sent: float | None = None
    last_sent: float | None = None
    async with httpx.AsyncClient(base_url=config.api_url, timeout=config.timeout) as client:
        sender = _Sender(client, summary, config.n)
        t0 = float(plan.times[0]) if len(plan) else 0.0
        times = plan.times.tolist()  # bisect over a list: plain floats
        i = 0
        while i < len(plan):
            elapsed = time.monotonic() - started
            if stop.is_set():
                summary.stopped = INTERRUPTED
                break
            if elapsed >= config.duration:
                summary.stopped = DURATION
                break
            due = t0 + elapsed * config.speed
            j = bisect_right(times, due, i, min(len(plan), i + MAX_BATCH))
            if j == i:  # nothing due yet: sleep until the next event is, or the run's end, or a stop
                wait = min((times[i] - t0) / config.speed, config.duration) - elapsed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.0))
                continue
            batch, refused = plan.batch(i, j)
            if refused:
                summary.skipped[REFUSED_BY_VALIDATION] = summary.skipped.get(REFUSED_BY_VALIDATION, 0) + refused
            arriving = list(dict.fromkeys(b["user_id"] for b in batch if b["user_id"] not in seen))
            seen.update(arriving)
            await asyncio.gather(*(sender.request_list(u) for u in arriving))
            if batch:
                await sender.post_events(batch)
            if sender.unreachable:
                summary.stopped = UNREACHABLE
                break
            first_sent = float(plan.times[i]) if first_sent is None else first_sent
            last_sent = float(plan.times[j - 1])
            i = j
        else:
            summary.stopped = DONE
    summary.users = len(seen)
    summary.data_from, summary.data_to = utc(first_sent), utc(last_sent)
    summary.seconds = time.monotonic() - started
    return summary
