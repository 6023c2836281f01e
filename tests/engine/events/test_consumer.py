"""The stream consumer against a real Redis: tracked events reach the event log once, crashes lose
and duplicate nothing, the stream stays bounded, malformed entries are set aside."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis
from prometheus_client import REGISTRY

from engine.config import Settings
from engine.data.event_log import EventLog
from engine.events.consumer import (
    GROUP,
    ConsumerOptions,
    EventConsumer,
    GroupPosition,
    MalformedEntry,
    consumer_client,
    entry_row,
    next_stream_id,
    trim_floor,
)
from engine.events.tracker import Event, EventTracker
from engine.runtime import dataset_keys
from engine.storage.embedded_redis import EmbeddedRedis
from tests.conftest import REPO_ROOT
from tests.support.polling import poll

QUICK = ConsumerOptions(name="test-1", batch_size=10, flush_seconds=0.2, block_seconds=0.05,
                        claim_idle_seconds=0.5, claim_every_seconds=0.1, lag_every_seconds=0.1)


@pytest.fixture
def stream(settings: Settings) -> str:
    return dataset_keys(settings, "demo").event_stream


@pytest.fixture
def tracker(settings: Settings, redis_client: redis.Redis) -> EventTracker:
    return EventTracker(redis_client, dataset_keys(settings, "demo"), settings)


@pytest.fixture
def event_log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events" / "demo")


def _consumer(redis_client: redis.Redis, stream: str, event_log: EventLog, name: str = "test-1",
              **changes: object) -> EventConsumer:
    options = ConsumerOptions(**{**QUICK.__dict__, "name": name, **changes})  # type: ignore[arg-type]
    return EventConsumer(redis_client, stream, event_log, options)


def _track(tracker: EventTracker, n: int, start: int = 0) -> list[Event]:
    now = time.time()
    events = [Event(event_id=f"e{k}", user_id=f"u{k % 7}", item_id=f"i{k % 11}",
                    type="purchase" if k % 5 == 0 else "view", value=9.5 if k % 5 == 0 else None,
                    timestamp=now - 1000 + k) for k in range(start, start + n)]
    assert all(r.accepted for r in tracker.track_many(events))
    return events


def _logged(event_log: EventLog) -> list[tuple[str, str]]:
    table = event_log.read()
    return sorted(zip(table["user_id"].to_pylist(), table["event_id"].to_pylist(), strict=True))


def _raw_rows(event_log: EventLog) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path, _ in event_log.files())


def _pending(client: redis.Redis, stream: str, group: str = GROUP) -> int:
    return int(client.xpending(stream, group)["pending"])


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


# ---- pure logic ---------------------------------------------------------------------------------
def test_an_entry_becomes_a_row_with_its_numbers_parsed() -> None:
    fields = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "purchase", "timestamp": "1733100000.5",
              "value": "19.9", "request_id": "r1"}
    assert entry_row("5-0", fields) == {"stream_id": "5-0", "event_id": "e1", "user_id": "u1", "item_id": "i1",
                                        "type": "purchase", "timestamp": 1733100000.5, "value": 19.9,
                                        "request_id": "r1", "position": None, "propensity": None,
                                        "prefix_propensity": None, "marginal_propensity": None, "policy": None}
    fields = {k: v for k, v in fields.items() if k not in ("value", "request_id")}
    assert entry_row("5-1", fields)["value"] is None and entry_row("5-1", fields)["request_id"] is None


@pytest.mark.parametrize(("change", "message"), [
    ({"user_id": None}, "missing field(s) user_id"),
    ({"timestamp": ""}, "missing field(s) timestamp"),
    ({"timestamp": "yesterday"}, "timestamp is not a number"),
    ({"timestamp": "-3"}, "timestamp must be > 0"),
    ({"value": "nan"}, "value is not finite"),
    ({"value": "ten"}, "value is not a number"),
    ({"type": "like"}, "unknown event type 'like'"),
])  # fmt: skip
def test_a_malformed_entry_is_refused_with_its_reason(change: dict[str, str | None], message: str) -> None:
    fields = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "view", "timestamp": "1733100000"}
    fields = {k: v for k, v in {**fields, **change}.items() if v is not None}
    with pytest.raises(MalformedEntry, match=message.replace("(", r"\(").replace(")", r"\)")):
        entry_row("1-0", fields)


def test_the_trim_floor_is_the_oldest_entry_any_group_still_needs() -> None:
    assert trim_floor([]) is None
    assert next_stream_id("1733-7") == "1733-8"
    # a caught-up group needs only what comes after its last delivery
    assert trim_floor([GroupPosition("a", "1733-7")]) == "1733-8"
    # another group still holding an older entry pending keeps it; ids compare as numbers, not text
    assert trim_floor([GroupPosition("a", "10000-0"), GroupPosition("b", "10000-0", "9000-3")]) == "9000-3"
    # a group that never read needs everything
    assert trim_floor([GroupPosition("a", "10000-0"), GroupPosition("b", "0-0")]) == "0-1"


def test_options_refuse_a_claim_idle_time_within_the_flush_interval() -> None:
    with pytest.raises(ValueError, match="must exceed flush_seconds"):
        ConsumerOptions(flush_seconds=5, claim_idle_seconds=5)


# ---- against Redis ------------------------------------------------------------------------------
def test_tracked_events_reach_the_log_exactly_once_and_the_stream_is_trimmed(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog
) -> None:
    events = _track(tracker, 25)
    assert not any(r.accepted for r in tracker.track_many(events[:5]))  # retries: duplicates, not in the stream
    consumer = _consumer(redis_client, stream, event_log)
    written_before = _sample("recops_consumer_events_total")
    consumer.ensure_group()
    assert consumer.lag() == 25 and _sample("recops_consumer_lag") == 25

    stats = consumer.drain()
    assert (stats.consumed, stats.written, stats.dead_lettered, stats.flushes) == (25, 25, 0, 3)
    assert _logged(event_log) == sorted((e.user_id, e.event_id) for e in events)
    purchase = next(row for row in event_log.read().to_pylist() if row["event_id"] == "e5")
    assert (purchase["type"], purchase["value"], purchase["item_id"]) == ("purchase", 9.5, "i5")
    assert _sample("recops_consumer_events_total") - written_before == 25
    assert _pending(redis_client, stream) == 0 and redis_client.xlen(stream) == 0  # acknowledged, then trimmed
    assert consumer.lag() == 0 and _sample("recops_consumer_lag") == 0
    assert event_log.verify() == []

    more = _track(tracker, 3, start=25)
    assert _consumer(redis_client, stream, event_log, name="test-2").drain().written == 3
    assert _logged(event_log) == sorted((e.user_id, e.event_id) for e in [*events, *more])
    # a clean stop leaves the group: consumer names (host-pid) do not pile up over restarts
    assert redis_client.xinfo_consumers(stream, GROUP) == []


def test_events_tracked_before_the_first_consumer_started_are_read(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog
) -> None:
    _track(tracker, 4)
    assert redis_client.exists(stream) and not redis_client.xinfo_groups(stream)
    assert _consumer(redis_client, stream, event_log).drain().written == 4


def test_a_partial_batch_is_written_within_flush_seconds(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog
) -> None:
    consumer = _consumer(redis_client, stream, event_log, batch_size=1000, flush_seconds=0.3,
                         claim_idle_seconds=5.0)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    try:
        assert poll(lambda: redis_client.exists(stream) and redis_client.xinfo_groups(stream), 5, every=0.02)
        events = _track(tracker, 3)
        assert poll(lambda: event_log.count() == 3, 10, every=0.05)  # far from the batch size of 1000
        assert consumer.stats.flushes >= 1 and _pending(redis_client, stream) == 0
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert _logged(event_log) == sorted((e.user_id, e.event_id) for e in events)


def test_a_stop_writes_and_acknowledges_what_is_buffered(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog
) -> None:
    # flush interval far away: only the stop can write these
    consumer = _consumer(redis_client, stream, event_log, batch_size=1000, flush_seconds=60,
                         claim_idle_seconds=120)
    _track(tracker, 6)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    assert poll(lambda: consumer.stats.consumed == 6, 5, every=0.02)
    assert event_log.count() == 0 and _pending(redis_client, stream) == 6
    stop.set()
    worker.join(timeout=10)
    assert event_log.count() == 6 and _pending(redis_client, stream) == 0 and redis_client.xlen(stream) == 0


# A consumer in its own process that SIGKILLs itself the second time it reaches STAGE (its second
# batch: the first one is written and acknowledged).
CRASHING_CONSUMER = """
import os, signal, sys
from pathlib import Path
from engine.data.event_log import EventLog
from engine.events.consumer import ConsumerOptions, EventConsumer, consumer_client
url, stream, root, stage = sys.argv[1:5]
reached = []
def checkpoint(name):
    if name == stage:
        reached.append(name)
        if len(reached) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
options = ConsumerOptions(name="doomed", batch_size=10, flush_seconds=0.2, claim_idle_seconds=0.5)
EventConsumer(consumer_client(url, options.block_seconds), stream, EventLog(Path(root)), options,
              checkpoint=checkpoint).drain()
"""


@pytest.mark.parametrize(("stage", "raw_rows_at_death"), [("read", 10), ("written", 20)])
def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing(
    stage: str, raw_rows_at_death: int, tracker: EventTracker, redis_client: redis.Redis, redis_url: str,
    stream: str, event_log: EventLog,
) -> None:
    events = _track(tracker, 25)
    done = subprocess.run([sys.executable, "-c", CRASHING_CONSUMER, redis_url, stream, str(event_log.root), stage],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    # killed before its write (10 rows on disk) or after it and before the acknowledgement (20)
    assert _raw_rows(event_log) == raw_rows_at_death and event_log.count() == 10 * (1 + (stage == "written"))
    assert _pending(redis_client, stream) == 10  # the second batch, still the dead consumer's
    assert redis_client.xlen(stream) == 15  # trimmed below the pending batch only

    time.sleep(QUICK.claim_idle_seconds + 0.1)  # the dead consumer's entries are now idle long enough
    stats = _consumer(redis_client, stream, event_log, name="survivor").drain()
    assert stats.claimed == 10 and stats.consumed == 15
    assert _logged(event_log) == sorted((e.user_id, e.event_id) for e in events)  # every event, once
    assert _pending(redis_client, stream) == 0 and redis_client.xlen(stream) == 0
    assert event_log.verify() == []


def test_the_trim_never_passes_what_another_group_has_not_acknowledged(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog
) -> None:
    _track(tracker, 30)
    redis_client.xgroup_create(stream, "analytics", id="0")
    read = redis_client.xreadgroup("analytics", "a1", {stream: ">"}, count=10)[0][1]
    redis_client.xack(stream, "analytics", *[i for i, _ in read[:5]])  # 5 acknowledged, 5 pending

    assert _consumer(redis_client, stream, event_log).drain().written == 30
    assert redis_client.xlen(stream) == 25  # only what both groups are done with
    assert redis_client.xrange(stream, count=1)[0][0] == read[5][0]

    rest = redis_client.xreadgroup("analytics", "a1", {stream: ">"}, count=100)[0][1]
    redis_client.xack(stream, "analytics", *[i for i, _ in read[5:] + rest])
    _track(tracker, 1, start=30)
    assert _consumer(redis_client, stream, event_log).drain().written == 1
    assert redis_client.xlen(stream) == 1  # analytics has not been delivered the newest entry yet
    assert event_log.count() == 31


def test_malformed_entries_are_dead_lettered_and_never_wedge_the_group(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _track(tracker, 3)
    good = {"event_id": "x1", "user_id": "u1", "item_id": "i1", "type": "view", "timestamp": repr(time.time())}
    bad = [{k: v for k, v in good.items() if k != "user_id"}, {**good, "timestamp": "soon"},
           {**good, "value": "inf"}, {"garbage": "1"}]
    for fields in bad:
        redis_client.xadd(stream, fields)
    _track(tracker, 3, start=3)
    dead_before = _sample("recops_consumer_dead_lettered_total")

    with caplog.at_level("WARNING", logger="engine.events.consumer"):
        stats = _consumer(redis_client, stream, event_log).drain()
    assert (stats.consumed, stats.written, stats.dead_lettered) == (10, 6, 4)
    assert len([r for r in caplog.records if "malformed stream entry" in r.message]) == 1  # logged once
    assert _sample("recops_consumer_dead_lettered_total") - dead_before == 4
    letters = [json.loads(line) for line in (event_log.root / "dead-letters.jsonl").read_text().splitlines()]
    assert [letter["fields"] for letter in letters] == bad
    assert "missing field(s) user_id" in letters[0]["error"] and "not a number" in letters[1]["error"]
    assert event_log.count() == 6 and _pending(redis_client, stream) == 0 and redis_client.xlen(stream) == 0


def test_two_consumers_of_one_group_share_the_stream_without_overlap(
    tracker: EventTracker, redis_client: redis.Redis, redis_url: str, stream: str, event_log: EventLog
) -> None:
    consumers = [_consumer(redis.Redis.from_url(redis_url, decode_responses=True), stream, event_log,
                           name=f"c{k}", batch_size=7) for k in range(2)]
    consumers[0].ensure_group()
    stop = threading.Event()
    workers = [threading.Thread(target=c.run, args=(stop,)) for c in consumers]
    for worker in workers:
        worker.start()
    try:
        # both waiting on the group before anything arrives: each is handed part of the traffic
        assert poll(lambda: redis_client.info("clients")["blocked_clients"] == 2, 5, every=0.005)
        events = [e for start in range(0, 200, 20) for e in _track(tracker, 20, start=start)]
        assert poll(lambda: event_log.count() == 200 and _pending(redis_client, stream) == 0, 20, every=0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
    assert sum(c.stats.consumed for c in consumers) == 200 and all(c.stats.consumed for c in consumers)
    assert _raw_rows(event_log) == 200  # no entry delivered twice
    assert _logged(event_log) == sorted((e.user_id, e.event_id) for e in events)



@pytest.mark.parametrize("persistent", [True, False], ids=["redis-restarted", "redis-lost-its-data"])
def test_the_consumer_rides_out_a_redis_outage(
    persistent: bool, settings: Settings, stream: str, event_log: EventLog, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="engine.events.consumer")
    server = EmbeddedRedis(data_dir=tmp_path / "own-redis", appendonly=persistent).start()
    consumer = EventConsumer(consumer_client(server.url, QUICK.block_seconds), stream, event_log, QUICK)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run(stop)
        except BaseException as exc:  # the thread must not end: shown by the assertion below
            failures.append(exc)

    def track(start: int) -> list[Event]:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            return _track(EventTracker(client, dataset_keys(settings, "demo"), settings), 5, start=start)
        finally:
            client.close()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        before = track(0)
        assert poll(lambda: event_log.count() == 5, 10, every=0.05)
        if persistent:
            server.stop()  # SHUTDOWN: the stream and the group are saved
        else:
            server.kill()  # nothing saved: it comes back empty, without the group
        time.sleep(1.0)
        assert worker.is_alive() and not failures
        server.restart()
        after = track(5)
        assert poll(lambda: event_log.count() == 10, 15, every=0.05), failures
    finally:
        stop.set()
        worker.join(timeout=15)
        server.stop()
    assert not failures
    assert _logged(event_log) == sorted((e.user_id, e.event_id) for e in [*before, *after])
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Redis unreachable") for m in messages)
    assert any("is gone: creating it again" in m for m in messages) == (not persistent)


def test_consumers_gone_for_long_and_holding_nothing_are_forgotten(
    tracker: EventTracker, redis_client: redis.Redis, stream: str, event_log: EventLog
) -> None:
    _track(tracker, 3)
    consumer = _consumer(redis_client, stream, event_log, forget_idle_seconds=0.2)
    consumer.ensure_group()
    redis_client.xgroup_createconsumer(stream, GROUP, "gone-idle")  # exited without leaving
    redis_client.xreadgroup(GROUP, "gone-holding", {stream: ">"}, count=1)  # died holding an entry
    time.sleep(0.3)
    consumer.forget_dead_consumers()
    assert [c["name"] for c in redis_client.xinfo_consumers(stream, GROUP)] == ["gone-holding"]
