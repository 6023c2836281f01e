"""Event validation and tracking against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import redis
from prometheus_client import REGISTRY
from pydantic import ValidationError

from engine.config import Settings
from engine.data.schema import EVENT_TYPES
from engine.events.tracker import (
    EVENT_ID_TTL_SECONDS,
    Event,
    EventTracker,
    EventType,
    UnknownItemError,
)
from engine.storage.feature_store import LIVE_LOG_TTL_SECONDS, LiveEntry
from engine.storage.keys import Keys
from tests.support.redis_roundtrips import RoundTrips, counting_client

KEYS = Keys()
CATALOGUE = {f"i{k}" for k in range(20)}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, user_id: str, reason: str) -> None:
        self.calls.append((user_id, reason))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def tracker(redis_client: redis.Redis, settings: Settings, recorder: Recorder) -> EventTracker:
    return EventTracker(redis_client, KEYS, settings, on_invalidate=recorder, known_items=CATALOGUE.__contains__)


@pytest.fixture
def counted(redis_url: str, redis_client: redis.Redis) -> Iterator[tuple[redis.Redis, RoundTrips]]:
    client, trips = counting_client(redis_url)
    yield client, trips
    client.close()


# --------------------------------------------------------------------------- validation


def test_event_types_are_the_schema_types() -> None:
    assert set(get_args(EventType)) == set(EVENT_TYPES)


def test_defaults_event_id_and_server_time() -> None:
    before = time.time()
    event = Event(user_id="u1", item_id="i1", type="click")
    assert before <= event.timestamp <= time.time()
    assert len(event.event_id) == 32 and int(event.event_id, 16) >= 0
    assert Event(user_id="u1", item_id="i1", type="click").event_id != event.event_id
    explicit_null = Event.model_validate({"event_id": None, "user_id": "u1", "item_id": "i1", "type": "view"})
    assert len(explicit_null.event_id) == 32
    kept = Event(event_id="order-7:line.2", user_id="a.b:c_d-e", item_id="i1", type="view", timestamp=5.0)
    assert kept.event_id == "order-7:line.2" and kept.timestamp == 5.0


VALID: dict[str, Any] = {"user_id": "u1", "item_id": "i1", "type": "click"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"type": "like"}, "type", "Input should be 'impression', 'view'"),
        ({"user_id": None}, "user_id", "valid string"),
        ({"user_id": ""}, "user_id", "at least 1 character"),
        ({"item_id": "x" * 129}, "item_id", "at most 128 characters"),
        ({"user_id": "u 1"}, "user_id", "should match pattern"),
        ({"item_id": "i/1"}, "item_id", "should match pattern"),
        ({"user_id": "usér"}, "user_id", "should match pattern"),
        ({"event_id": "{u:x}"}, "event_id", "should match pattern"),
        ({"request_id": "r*"}, "request_id", "should match pattern"),
        ({"type": "rating"}, None, "a rating event needs a value between 1 and 5"),
        ({"type": "rating", "value": 0}, None, "a rating event needs a value between 1 and 5"),
        ({"type": "rating", "value": 5.5}, None, "a rating event needs a value between 1 and 5"),
        ({"type": "purchase", "value": -3}, None, "cannot be negative"),
        ({"value": float("nan")}, "value", "finite number"),
        ({"timestamp": -1}, "timestamp", "greater than 0"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_invalid_events_are_refused_with_a_clear_message(
    changes: dict[str, Any], field: str | None, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Event.model_validate({**VALID, **changes})
    errors = caught.value.errors()
    assert len(errors) == 1
    if field is not None:
        assert errors[0]["loc"] == (field,)
    assert message in str(caught.value)


def test_missing_ids_are_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Event.model_validate({"type": "view"})
    assert {e["loc"] for e in caught.value.errors()} == {("user_id",), ("item_id",)}
    assert all(e["type"] == "missing" for e in caught.value.errors())


def test_a_rating_within_range_is_accepted() -> None:
    assert Event(user_id="u1", item_id="i1", type="rating", value=1).value == 1.0
    assert Event(user_id="u1", item_id="i1", type="rating", value=5).value == 5.0


# --------------------------------------------------------------------------- tracking


def test_an_accepted_event_is_streamed_counted_and_logged(
    tracker: EventTracker, redis_client: redis.Redis, settings: Settings
) -> None:
    before = _sample("recops_events_total", type="purchase")
    event = Event(
        event_id="e1",
        user_id="u1",
        item_id="i3",
        type="purchase",
        value=12.5,
        request_id="r9",
        timestamp=1_700_000_000.25,
    )
    result = tracker.track(event)
    assert result.accepted and not result.duplicate and result.event_id == "e1"

    entries = redis_client.xrange(KEYS.event_stream)
    assert [stream_id for stream_id, _ in entries] == [result.stream_id]
    assert entries[0][1] == {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i3",
        "type": "purchase",
        "timestamp": "1700000000.25",
        "value": "12.5",
        "request_id": "r9",
    }
    assert tracker.counts() == {t: (1 if t == "purchase" else 0) for t in EVENT_TYPES}
    assert _sample("recops_events_total", type="purchase") == before + 1

    log = redis_client.lrange(KEYS.user_log("u1"), 0, -1)
    assert [LiveEntry.decode(raw) for raw in log] == [LiveEntry("e1", "i3", "purchase", 1_700_000_000.25)]
    assert redis_client.smembers(KEYS.user_purchased("u1")) == {"i3"}
    for key, ttl in [
        (KEYS.user_log("u1"), LIVE_LOG_TTL_SECONDS),
        (KEYS.user_purchased("u1"), LIVE_LOG_TTL_SECONDS),
        (KEYS.event_id("u1", "e1"), EVENT_ID_TTL_SECONDS),
    ]:
        assert 0 < redis_client.ttl(key) <= ttl


def test_the_same_event_twice_is_stored_once(tracker: EventTracker, redis_client: redis.Redis) -> None:
    event = Event(event_id="dup-1", user_id="u1", item_id="i1", type="click")
    before = _sample("recops_events_rejected_total", reason="duplicate")
    first, second = tracker.track(event), tracker.track(event)
    assert first.accepted and not first.duplicate
    assert not second.accepted and second.duplicate and second.stream_id is None
    assert redis_client.xlen(KEYS.event_stream) == 1
    assert redis_client.llen(KEYS.user_log("u1")) == 1
    assert tracker.counts()["click"] == 1
    assert _sample("recops_events_rejected_total", reason="duplicate") == before + 1

    within = tracker.track_many([Event(event_id="dup-2", user_id="u1", item_id="i2", type="view")] * 3)
    assert [(r.accepted, r.duplicate) for r in within] == [(True, False), (False, True), (False, True)]
    assert redis_client.xlen(KEYS.event_stream) == 2


def test_event_ids_are_scoped_per_user(tracker: EventTracker, redis_client: redis.Redis) -> None:
    a = tracker.track(Event(event_id="same", user_id="u1", item_id="i1", type="click"))
    b = tracker.track(Event(event_id="same", user_id="u2", item_id="i1", type="click"))
    assert a.accepted and b.accepted
    assert redis_client.xlen(KEYS.event_stream) == 2


@pytest.mark.parametrize("kind", ["purchase", "rating", "add_to_cart"])
def test_taste_changing_events_invalidate_the_user(tracker: EventTracker, recorder: Recorder, kind: str) -> None:
    event = Event(event_id="x", user_id="u7", item_id="i1", type=kind, value=4.0)
    tracker.track(event)
    assert recorder.calls == [("u7", kind)]
    tracker.track(event)  # a duplicate changes nothing, so it invalidates nothing
    assert recorder.calls == [("u7", kind)]


@pytest.mark.parametrize("kind", ["click", "view", "impression"])
def test_browsing_events_do_not_invalidate(tracker: EventTracker, recorder: Recorder, kind: str) -> None:
    assert tracker.track(Event(user_id="u7", item_id="i1", type=kind)).accepted
    assert recorder.calls == []


def test_a_batch_invalidates_each_user_once_per_reason(tracker: EventTracker, recorder: Recorder) -> None:
    tracker.track_many(
        [Event(user_id="u1", item_id=f"i{k}", type="purchase") for k in range(3)]
        + [Event(user_id="u2", item_id="i1", type="click"), Event(user_id="u2", item_id="i1", type="add_to_cart")]
    )
    assert recorder.calls == [("u1", "purchase"), ("u2", "add_to_cart")]


def test_a_failing_invalidation_does_not_lose_the_event(
    redis_client: redis.Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(user_id: str, reason: str) -> None:
        raise RuntimeError("cache down")

    tracker = EventTracker(redis_client, KEYS, settings, on_invalidate=broken)
    assert tracker.track(Event(user_id="u1", item_id="i1", type="purchase")).accepted
    assert redis_client.xlen(KEYS.event_stream) == 1
    assert "invalidation after a purchase by u1 failed" in caplog.text


def test_unknown_items_are_refused_before_anything_is_written(tracker: EventTracker, redis_client: redis.Redis) -> None:
    before = _sample("recops_events_rejected_total", reason="unknown_item")
    with pytest.raises(UnknownItemError, match="'nope'"):
        tracker.track(Event(user_id="u1", item_id="nope", type="click"))
    with pytest.raises(UnknownItemError) as caught:
        tracker.track_many(
            [Event(user_id="u1", item_id="i1", type="click"), Event(user_id="u1", item_id="gone", type="click")]
        )
    assert caught.value.item_ids == ["gone"]
    assert _sample("recops_events_rejected_total", reason="unknown_item") == before + 2
    assert redis_client.dbsize() == 0


def test_impressions_are_streamed_but_kept_out_of_the_live_log(
    tracker: EventTracker, redis_client: redis.Redis
) -> None:
    tracker.track(Event(user_id="u1", item_id="i1", type="impression"))
    assert redis_client.xlen(KEYS.event_stream) == 1
    assert redis_client.exists(KEYS.user_log("u1")) == 0


def test_the_live_log_is_capped_at_the_history_length(redis_client: redis.Redis, redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, history_length=5)
    tracker = EventTracker(redis_client, KEYS, settings)
    tracker.track_many([Event(user_id="u1", item_id=f"i{k}", type="view", timestamp=100.0 + k) for k in range(12)])
    log = [LiveEntry.decode(raw).item_id for raw in redis_client.lrange(KEYS.user_log("u1"), 0, -1)]
    assert log == ["i11", "i10", "i9", "i8", "i7"]


def test_a_batch_costs_two_round_trips_whatever_its_size(
    counted: tuple[redis.Redis, RoundTrips], settings: Settings
) -> None:
    client, trips = counted
    tracker = EventTracker(client, KEYS, settings, known_items=CATALOGUE.__contains__)
    tracker.track(Event(user_id="warm", item_id="i1", type="view"))  # loads the script on a fresh server
    batch = [Event(user_id=f"u{k % 17}", item_id=f"i{k % 20}", type=EVENT_TYPES[k % 6], value=3.0) for k in range(300)]

    trips.reset()
    results = tracker.track_many(batch)
    assert trips.count == 2
    assert all(r.accepted for r in results)
    assert len({r.stream_id for r in results}) == 300
    assert client.xlen(KEYS.event_stream) == 301

    trips.reset()
    assert all(r.duplicate for r in tracker.track_many(batch))
    assert trips.count == 1  # nothing new: the stream is not touched
    assert sum(tracker.counts().values()) == 301


def test_recent_lists_newest_first_with_numbers(tracker: EventTracker) -> None:
    tracker.track_many(
        [
            Event(event_id=f"e{k}", user_id="u1", item_id=f"i{k}", type="rating", value=k + 1, timestamp=10.0 + k)
            for k in range(4)
        ]
    )
    recent = tracker.recent(3)
    assert [r["event_id"] for r in recent] == ["e3", "e2", "e1"]
    assert recent[0]["value"] == 4.0 and recent[0]["timestamp"] == 13.0
    assert set(recent[0]) == {"stream_id", "event_id", "user_id", "item_id", "type", "timestamp", "value"}


def test_scripts_are_reloaded_after_a_script_flush(tracker: EventTracker, redis_client: redis.Redis) -> None:
    tracker.track(Event(user_id="u1", item_id="i1", type="view"))
    redis_client.script_flush()
    assert tracker.track(Event(user_id="u1", item_id="i2", type="view")).accepted
    assert redis_client.llen(KEYS.user_log("u1")) == 2


def test_pending_marks_an_unfinished_event_old_ones_are_appended_again_young_ones_are_duplicates(
    settings, redis_client
) -> None:
    """The idempotency key is 'p:<ms>' between the two round trips and 'd' once appended."""
    import time as _time

    from engine.events.tracker import PENDING_MS, Event, EventTracker
    from engine.storage.keys import Keys

    keys = Keys(settings.key_prefix)
    tracker = EventTracker(redis_client, keys, settings)
    now_ms = int(_time.time() * 1000)
    stale = Event(event_id="stale-1", user_id="u1", item_id="i1", type="click")
    redis_client.set(keys.event_id("u1", "stale-1"), f"p:{now_ms - 10 * PENDING_MS}", ex=60)
    assert tracker.track(stale).accepted  # an earlier attempt never reached the stream: append now
    assert redis_client.get(keys.event_id("u1", "stale-1")) == "d"
    young = Event(event_id="young-1", user_id="u1", item_id="i1", type="click")
    redis_client.set(keys.event_id("u1", "young-1"), f"p:{now_ms + 60_000}", ex=60)
    assert tracker.track(young).duplicate  # a concurrent copy is still in flight
    assert tracker.track(stale).duplicate  # done: copies are duplicates from now on
    ids = [f["event_id"] for _, f in redis_client.xrange(keys.event_stream)]
    assert ids == ["stale-1"]


def test_an_exploring_impression_carries_its_position_and_propensities() -> None:
    event = Event(user_id="u1", item_id="i1", type="impression", request_id="r1", position=2, propensity=0.25,
                  prefix_propensity=0.05, marginal_propensity=0.1, policy='{"model":"als"}')
    fields = event.stream_fields()
    assert (fields["position"], fields["propensity"], fields["policy"]) == ("2", "0.25", '{"model":"als"}')
    plain = Event(user_id="u1", item_id="i1", type="impression").stream_fields()
    assert not {"position", "propensity", "prefix_propensity", "marginal_propensity", "policy"} & set(plain)


@pytest.mark.parametrize(("fields", "message"), [
    ({"type": "click", "request_id": "r", "position": 0, "propensity": 0.5}, "only impression events"),
    ({"type": "impression", "position": 0, "propensity": 0.5}, "request_id"),
    ({"type": "impression", "request_id": "r", "propensity": 0.5}, "position"),
    ({"type": "impression", "request_id": "r", "position": 0, "propensity": 0.0}, "greater than 0"),
    ({"type": "impression", "request_id": "r", "position": 0, "propensity": 1.5}, "less than or equal to 1"),
    ({"type": "impression", "request_id": "r", "position": -1, "propensity": 0.5}, "greater than or equal to 0"),
])
def test_bad_propensity_fields_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Event(user_id="u1", item_id="i1", **fields)  # type: ignore[arg-type]
