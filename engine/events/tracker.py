"""Event tracking: validate, deduplicate, append to the stream, update the user's live log.

    >>> tracker = EventTracker(redis_client, keys, settings, on_invalidate=service.invalidate_user,
    ...                        known_items=catalog.__contains__)
    >>> tracker.track(Event(user_id="u1", item_id="i9", type="purchase", value=19.9))
    TrackResult(accepted=True, duplicate=False, stream_id='1715...-0', event_id='4f0c...')

Two round trips per call (per *batch* in ``track_many``), chosen for correctness on Redis
Cluster:

1. one Lua script per event on the user's slot (every key carries the ``{u:<id>}`` tag):
   ``SET NX EX`` on the idempotency key, and only when that succeeds the live-log append and
   purchase-set update, atomically;
2. ``XADD`` + ``HINCRBY`` for the accepted events only.

The stream and the counters live in other slots than the user's keys, so no single script can
cover both; pipelining step 2 blindly behind step 1 would append duplicates to the stream.
Idempotency keys are scoped per user: the same event id sent for two users is two events.
If the process dies between the trips, the event is in the live log but missing from the stream
(at most once in the stream: a retry is answered ``duplicate``).  The client given here should not
retry pipelines on connection errors for the same reason (a re-sent XADD would be a duplicate).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from redis.typing import EncodableT, FieldT

from engine.config import Settings
from engine.data.schema import EVENT_TYPES
from engine.monitoring.prometheus_metrics import EVENTS, EVENTS_REJECTED
from engine.storage.client import as_text, eval_script_batch, stream_entries, text_hash
from engine.storage.feature_store import LIVE_LOG_TTL_SECONDS, LiveEntry, logged_in_live_log
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
EventType = Literal["impression", "view", "click", "add_to_cart", "purchase", "rating"]
INVALIDATING_TYPES = frozenset({"purchase", "rating", "add_to_cart"})
RATING_RANGE = (1.0, 5.0)
EVENT_ID_TTL_SECONDS = 86_400
STREAM_MAXLEN = 1_000_000

# The idempotency key holds 'p:<ms>' (pending) from the first round trip until the stream append
# of the second round trip marks it 'd' (done).  A retry that finds an old pending mark appends
# again instead of answering "duplicate": otherwise an event whose append failed (and whose
# client was told to retry) would be lost.  A pending mark younger than PENDING_MS is a
# concurrent copy of an event still in flight, so it counts as a duplicate.
# KEYS: idempotency key, live log, purchased set (one user's slot).
# ARGV: id ttl, log entry ('' = not logged), log cap, live ttl, purchased item ('' = none), pending ms.
# Returns 1 (new), 2 (an unfinished earlier attempt: append again) or 0 (duplicate).
_ACCEPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('GET', KEYS[1])
if state then
  if string.sub(state, 1, 2) ~= 'p:' then return 0 end
  if now - tonumber(string.sub(state, 3)) < tonumber(ARGV[6]) then return 0 end
  redis.call('SET', KEYS[1], 'p:' .. now, 'EX', ARGV[1])
  return 2
end
redis.call('SET', KEYS[1], 'p:' .. now, 'EX', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 1
"""
PENDING_MS = 500
MAX_POSITION = 1_000
MAX_POLICY_LENGTH = 500
Probability = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
# the optional fields an exploring arm's impression carries (stream fields and event-log columns alike)
PROPENSITY_FIELDS = ("position", "propensity", "prefix_propensity", "marginal_propensity", "policy")


class Event(BaseModel):
    """One interaction reported by a client.  Ids are restricted to a charset that is safe in Redis
    keys and logs; the timestamp defaults to the server's clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier = Field(
        default_factory=lambda: uuid.uuid4().hex,
        description="Client-chosen id that makes retries safe; generated when absent",
    )
    user_id: Identifier
    item_id: Identifier
    type: EventType
    request_id: Identifier | None = Field(default=None, description="The recommendation request it answers")
    value: float | None = Field(
        default=None, allow_inf_nan=False, description="Rating (1..5) for rating; price paid for purchase"
    )
    timestamp: float = Field(default_factory=time.time, gt=0, allow_inf_nan=False, description="Unix seconds")
    # An exploring arm's impressions (engine.serving.exploring_lists), for off-policy evaluation:
    position: int | None = Field(default=None, ge=0, le=MAX_POSITION, description="Slot shown at, 0 = top")
    propensity: Probability | None = Field(default=None, description="P(this item at this slot | the items above)")
    prefix_propensity: Probability | None = Field(default=None, description="P(the list down to this slot)")
    marginal_propensity: Probability | None = Field(default=None, description="P(this item at this slot)")
    policy: str | None = Field(default=None, min_length=1, max_length=MAX_POLICY_LENGTH,
                               description="The exploring policy that drew the list (model spec and settings)")

    @field_validator("event_id", mode="before")
    @classmethod
    def _generate_missing_id(cls, value: Any) -> Any:
        return uuid.uuid4().hex if value is None else value

    @model_validator(mode="after")
    def _check_value(self) -> Event:
        low, high = RATING_RANGE
        if self.type == "rating" and (self.value is None or not low <= self.value <= high):
            raise ValueError(f"a rating event needs a value between {low:g} and {high:g}, got {self.value}")
        if self.type == "purchase" and self.value is not None and self.value < 0:
            raise ValueError(f"a purchase value is the price paid and cannot be negative, got {self.value}")
        logged = [name for name in PROPENSITY_FIELDS if getattr(self, name) is not None]
        if logged and self.type != "impression":
            raise ValueError(f"{', '.join(logged)} describe a shown item: only impression events carry them")
        if logged and (self.position is None or self.propensity is None or self.request_id is None):
            raise ValueError("an impression with propensities needs position, propensity and request_id")
        return self

    def stream_fields(self) -> dict[FieldT, EncodableT]:
        fields: dict[FieldT, EncodableT] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "type": self.type,
            "timestamp": repr(self.timestamp),
        }
        if self.value is not None:
            fields["value"] = repr(self.value)
        if self.request_id is not None:
            fields["request_id"] = self.request_id
        for name in PROPENSITY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value if isinstance(value, str) else repr(value)
        return fields


class UnknownItemError(ValueError):
    def __init__(self, item_ids: Iterable[str]) -> None:
        self.item_ids = sorted(set(item_ids))
        shown = ", ".join(repr(i) for i in self.item_ids[:10])
        more = f" and {len(self.item_ids) - 10} more" if len(self.item_ids) > 10 else ""
        super().__init__(f"unknown item id(s) {shown}{more}: not in the catalogue")


@dataclass(frozen=True)
class TrackResult:
    accepted: bool
    duplicate: bool
    stream_id: str | None
    event_id: str = ""
    spooled: bool = False  # kept in the local spool while Redis is unreachable (engine.events.ingest)


class EventTracker:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        settings: Settings,
        on_invalidate: Callable[[str, str], Any] | None = None,
        known_items: Callable[[str], bool] | None = None,
        on_accepted: Callable[[list[Event]], Any] | None = None,
        after_invalidation: Callable[[list[str]], Any] | None = None,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.settings = settings
        self.on_invalidate = on_invalidate
        self.known_items = known_items
        self.on_accepted = on_accepted
        # called once per batch with the users whose lists were dropped (refresh-ahead), after
        # every invalidation of the batch, so one refresh sees all of the batch's events
        self.after_invalidation = after_invalidation
        self._accept = client.register_script(_ACCEPT)

    def track(self, event: Event) -> TrackResult:
        return self.track_many([event])[0]

    def track_many(self, events: Iterable[Event]) -> list[TrackResult]:
        """Record a batch in two round trips whatever its size.  Raises ``UnknownItemError`` before
        writing anything when any item is unknown."""
        batch = list(events)
        if not batch:
            return []
        self.check_items(batch)
        flags = eval_script_batch(self.redis, self._accept, [self._accept_call(e) for e in batch])
        accepted = [e for e, flag in zip(batch, flags, strict=True) if int(flag) != 0]
        try:
            stream_ids = iter(self._append(accepted))
        except redis.RedisError:
            self._release_pending(accepted)
            raise
        results = [
            TrackResult(True, False, next(stream_ids), e.event_id)
            if int(flag) != 0
            else TrackResult(False, True, None, e.event_id)
            for e, flag in zip(batch, flags, strict=True)
        ]
        for event_type, n in Counter(e.type for e in accepted).items():
            EVENTS.labels(type=event_type).inc(n)
        if len(accepted) < len(batch):
            EVENTS_REJECTED.labels(reason="duplicate").inc(len(batch) - len(accepted))
        self._invalidate(accepted)
        self._notify(accepted)
        return results

    # ------------------------------------------------------------------ console
    def counts(self) -> dict[str, int]:
        raw = self.redis.hgetall(self.keys.event_counts)
        stored = {k: int(v) for k, v in text_hash(raw).items()}
        return {t: stored.get(t, 0) for t in EVENT_TYPES}

    def recent(self, n: int = 50) -> list[dict[str, Any]]:
        """Newest first, with ``stream_id`` and the numeric fields as floats."""
        out: list[dict[str, Any]] = []
        for stream_id, fields in stream_entries(self.redis.xrevrange(self.keys.event_stream, count=n)):
            entry: dict[str, Any] = {"stream_id": stream_id}
            for key, text in fields.items():
                entry[key] = float(text) if key in ("timestamp", "value") else text
            out.append(entry)
        return out

    # ------------------------------------------------------------------ internals
    def check_items(self, batch: list[Event]) -> None:
        """``UnknownItemError`` when an item of ``batch`` is not in the catalogue (needs no Redis)."""
        if self.known_items is None:
            return
        unknown = [e.item_id for e in batch if not self.known_items(e.item_id)]
        if unknown:
            EVENTS_REJECTED.labels(reason="unknown_item").inc(len(unknown))
            raise UnknownItemError(unknown)

    def _accept_call(self, event: Event) -> tuple[list[str], list[Any]]:
        user = event.user_id
        entry = LiveEntry(event.event_id, event.item_id, event.type, event.timestamp)
        return (
            [self.keys.event_id(user, event.event_id), self.keys.user_log(user), self.keys.user_purchased(user)],
            [
                EVENT_ID_TTL_SECONDS,
                entry.encode() if logged_in_live_log(event.type) else "",
                self.settings.history_length,
                LIVE_LOG_TTL_SECONDS,
                event.item_id if event.type == "purchase" else "",
                PENDING_MS,
            ],
        )

    def _append(self, accepted: list[Event]) -> list[str]:
        if not accepted:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for event in accepted:
            pipe.xadd(self.keys.event_stream, event.stream_fields(), maxlen=STREAM_MAXLEN, approximate=True)
        for event_type, n in Counter(e.type for e in accepted).items():
            pipe.hincrby(self.keys.event_counts, event_type, n)
        for event in accepted:
            # done: from now on a copy of this event is a duplicate
            pipe.set(self.keys.event_id(event.user_id, event.event_id), "d", keepttl=True)
        return [as_text(i) for i in pipe.execute()[: len(accepted)]]

    def _release_pending(self, accepted: list[Event]) -> None:
        """After a failed append, drop the pending marks so that an immediate retry is accepted.
        Best effort: when Redis is gone this fails too, and the marks' age lets a later retry in."""
        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline(transaction=False)
            for event in accepted:
                pipe.delete(self.keys.event_id(event.user_id, event.event_id))  # one key each: cluster-safe
            pipe.execute()

    def _notify(self, accepted: list[Event]) -> None:
        """Hand accepted (never duplicate) events to ``on_accepted`` (experiment statistics); like
        invalidation, a failure there is logged: the events are already recorded."""
        if self.on_accepted is None or not accepted:
            return
        try:
            self.on_accepted(accepted)
        except Exception:
            log.exception("on_accepted callback failed for a batch of %d events", len(accepted))

    def _invalidate(self, accepted: list[Event]) -> None:
        """Once per (user, reason) in a batch.  The event is already stored, so a failing callback
        is logged rather than raised: the client must not retry an event that was recorded."""
        if self.on_invalidate is None:
            return
        pairs = dict.fromkeys((e.user_id, e.type) for e in accepted if e.type in INVALIDATING_TYPES)
        invalidated: dict[str, None] = {}
        for user_id, reason in pairs:
            try:
                self.on_invalidate(user_id, reason)
                invalidated[user_id] = None
            except Exception:
                log.exception("invalidation after a %s by %s failed", reason, user_id)
        if invalidated and self.after_invalidation is not None:
            try:
                self.after_invalidation(list(invalidated))
            except Exception:
                log.exception("after-invalidation callback failed for %d users", len(invalidated))
