"""The local event spool and the intake above it, against a real Redis (and one we stop)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from engine.config import Settings
from engine.events.ingest import EventIngest
from engine.events.spool import RETRY_DELAY_SECONDS, EventSpool, encode
from engine.events.tracker import Event, EventTracker
from engine.storage.client import redis_client as engine_client
from engine.storage.embedded_redis import EmbeddedRedis
from engine.storage.keys import Keys
from tests.support.polling import poll

KEYS = Keys()
CATALOGUE = {f"i{k}" for k in range(20)}
REPO = Path(__file__).resolve().parents[3]


def _events(prefix: str, n: int, user: str = "u1") -> list[Event]:
    return [Event(event_id=f"{prefix}-{k}", user_id=user, item_id=f"i{k % 20}", type="view", timestamp=1e9 + k)
            for k in range(n)]


def _stream_ids(client: redis.Redis) -> list[str]:
    return [fields["event_id"] for _, fields in client.xrange(KEYS.event_stream)]


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture
def tracker(redis_client: redis.Redis, settings: Settings) -> EventTracker:
    return EventTracker(redis_client, KEYS, settings, known_items=CATALOGUE.__contains__)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[EventSpool]:
    spool = EventSpool(tmp_path / "spool" / "demo")
    yield spool
    spool.close()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# --------------------------------------------------------------------------- the file


def test_appends_are_json_lines_in_order_and_fsynced_before_append_returns(
    spool: EventSpool, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fsync", fsync)
    spooled_before = _sample("recops_events_spooled_total")
    assert spool.path is None  # nothing spooled, no file
    spool.append(_events("a", 3))
    size_after_first = spool.path.stat().st_size if spool.path else 0
    spool.append(_events("b", 2))
    assert spool.path is not None and spool.path.suffix == ".jsonl"
    assert spool.path.parent == spool.directory
    # the file's content was synced, at its full size, by each append
    assert size_after_first in synced and spool.path.stat().st_size in synced
    assert [line["event"]["event_id"] for line in _lines(spool.path)] == [  # type: ignore[index]
        "a-0", "a-1", "a-2", "b-0", "b-1"]
    assert spool.depth == 5 and spool.holds_events()
    assert _sample("recops_events_spooled_total") == spooled_before + 5
    assert REGISTRY.get_sample_value("recops_events_spool_depth") == 5


def test_replay_records_in_order_then_empties_the_file(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis
) -> None:
    replayed_before = _sample("recops_events_spool_replayed_total")
    events = _events("r", 1234)  # more than one batch, more than one read block would be needed at 100/batch
    spool.append(events[:600])
    spool.append(events[600:])
    assert spool.replay(tracker.track_many, batch=100) == 1234
    assert _stream_ids(redis_client) == [e.event_id for e in events]
    assert spool.path is not None and spool.path.stat().st_size == 0
    assert spool.depth == 0 and not spool.holds_events()
    assert _sample("recops_events_spool_replayed_total") == replayed_before + 1234
    assert spool.replay(tracker.track_many) == 0  # nothing left


def test_replaying_twice_records_each_event_once(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A crash after recording but before emptying: the copy is replayed again, harmlessly."""
    events = _events("twice", 50)
    spool.append(events)
    assert spool.path is not None
    copy = spool.path.read_bytes()
    assert spool.replay(tracker.track_many) == 50
    # the same lines left behind by a process that died before emptying its file
    (spool.directory / "deadhost-1-abcdef01.jsonl").write_bytes(copy)
    assert spool.replay(tracker.track_many) == 50
    assert _stream_ids(redis_client) == [e.event_id for e in events]
    assert not (spool.directory / "deadhost-1-abcdef01.jsonl").exists()


def test_a_corrupt_line_and_a_cut_tail_are_skipped_with_a_log_line(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    good = _events("c", 4)
    orphan = spool.directory / "deadhost-2-abcdef02.jsonl"
    spool.directory.mkdir(parents=True)
    # a power cut mid-write: the last line is cut short; a stray line of garbage in the middle
    orphan.write_bytes(encode(good[0]) + encode(good[1]) + b"{not json\n" + encode(good[2]) + encode(good[3])[:25])
    with caplog.at_level(logging.WARNING, logger="engine.events.spool"):
        assert spool.replay(tracker.track_many) == 3
    assert _stream_ids(redis_client) == ["c-0", "c-1", "c-2"]
    assert not orphan.exists()
    skipped = [r.getMessage() for r in caplog.records if "corrupt line" in r.getMessage()]
    assert len(skipped) == 2, skipped


def test_a_retried_event_waits_until_the_tracker_takes_it_for_new(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis
) -> None:
    spool.append(_events("retried", 2), retried=True)
    assert spool.replay(tracker.track_many) == 0  # its pending mark could still look like a copy in flight
    assert spool.holds_events()
    time.sleep(RETRY_DELAY_SECONDS)
    assert spool.replay(tracker.track_many) == 2
    assert _stream_ids(redis_client) == ["retried-0", "retried-1"]


def test_a_failed_record_keeps_everything_for_the_next_replay_and_the_gauge_counts_it(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis
) -> None:
    spool.append(_events("kept", 3))
    orphan = spool.directory / "deadhost-3-abcdef03.jsonl"
    orphan.write_bytes(b"".join(encode(e) for e in _events("orphan", 4)))

    def unreachable(batch: list[Event]) -> None:
        raise redis.ConnectionError("Connection refused")

    with pytest.raises(redis.ConnectionError):
        spool.replay(unreachable)
    assert spool.depth == 3

    def ours_only(batch: list[Event]) -> None:  # Redis fails again once our own file is replayed
        if batch[0].event_id.startswith("orphan"):
            unreachable(batch)
        tracker.track_many(batch)

    with pytest.raises(redis.ConnectionError):
        spool.replay(ours_only)
    assert spool.depth == 4 and REGISTRY.get_sample_value("recops_events_spool_depth") == 4
    assert spool.replay(tracker.track_many) == 4
    assert spool.depth == 0 and not orphan.exists()
    assert _stream_ids(redis_client) == ["kept-0", "kept-1", "kept-2", "orphan-0", "orphan-1", "orphan-2",
                                         "orphan-3"]


def test_replay_empties_the_spool_while_new_events_keep_joining_it(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis
) -> None:
    """The intake's rule (new events join a spool that holds events) must not keep a replay
    chasing the file's end: the last batch is recorded while appends wait."""
    spool.append(_events("backlog", 2000))
    stop = threading.Event()
    sent: list[str] = []

    def client() -> None:
        for k in itertools.count():
            if stop.is_set():
                return
            batch = _events(f"live{k}", 20, user="u2")
            if not spool.append(batch, only_if_holding=True):
                tracker.track_many(batch)
            sent.extend(e.event_id for e in batch)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.2)
        started = time.monotonic()
        spool.replay(tracker.track_many, batch=100)
        took = time.monotonic() - started
        emptied = not spool.holds_events()
    finally:
        stop.set()
        thread.join()
    spool.replay(tracker.track_many)
    print(f"replay of a 2,000-event backlog under a steady stream of appends took {took:.2f}s")
    assert emptied and len(sent) > 200
    stored = _stream_ids(redis_client)
    assert stored == [f"backlog-{k}" for k in range(2000)] + sent  # in order, each once


SPOOLING_CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from engine.events.spool import EventSpool
    from engine.events.tracker import Event
    spool = EventSpool(Path(sys.argv[1]))
    name = sys.argv[2]
    for k in range(int(sys.argv[3])):
        spool.append([Event(event_id=f"{name}-{k}", user_id=name, item_id="i1", type="view", timestamp=1e9 + k)])
    os._exit(0)  # dies without closing its spool: the file stays behind, unlocked
""")


def test_two_processes_spool_side_by_side_and_a_third_replays_what_they_left(
    spool: EventSpool, tracker: EventTracker, redis_client: redis.Redis
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen([sys.executable, "-c", SPOOLING_CHILD, str(spool.directory), name, "300"], env=env)
        for name in ("left", "right")
    ]
    assert [child.wait(timeout=60) for child in children] == [0, 0]
    files = sorted(spool.directory.glob("*.jsonl"))
    assert len(files) == 2  # one file per process: appends never interleave within a file
    spool.append(_events("mine", 5))  # a live process's file is never adopted by another
    assert spool.replay(tracker.track_many) == 605
    stored = _stream_ids(redis_client)
    for name in ("left", "right", "mine"):
        mine = [i for i in stored if i.startswith(f"{name}-")]
        assert mine == [f"{name}-{k}" for k in range(len(mine))] and len(mine) in (300, 5)
    assert len(stored) == len(set(stored)) == 605
    assert [p for p in spool.directory.glob("*.jsonl")] == [spool.path]


def test_a_live_process_file_is_left_alone(spool: EventSpool, tmp_path: Path, tracker: EventTracker) -> None:
    other = EventSpool(spool.directory)
    try:
        other.append(_events("other", 2))
        assert spool.replay(tracker.track_many) == 0
        assert other.depth == 2
    finally:
        other.close()
    # closed with events in it: left behind for the next process
    assert spool.replay(tracker.track_many) == 2


# --------------------------------------------------------------------------- intake


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    # killed and restarted by the test: with the shipped `everysec`, a write Redis acknowledged may
    # still be postponed behind a slow fsync when the kill comes (seen here under load), and what is
    # checked is the spool, not Redis's fsync policy
    server = EmbeddedRedis(data_dir=tmp_path / "redis", extra_args=["--appendfsync", "always"]).start()
    yield server
    server.stop()


def test_intake_spools_while_redis_is_down_keeps_order_and_replays_once_it_is_back(
    own_redis: EmbeddedRedis, settings: Settings, tmp_path: Path
) -> None:
    client = engine_client(own_redis.url)
    tracker = EventTracker(client, KEYS, settings, known_items=CATALOGUE.__contains__)
    ingest = EventIngest(tracker, EventSpool(tmp_path / "intake"))
    try:
        first = ingest.track_many(_events("before", 2))
        assert [r.spooled for r in first] == [False, False] and all(r.accepted for r in first)
        own_redis.kill()
        during = ingest.track_many(_events("during", 3))
        assert all(r.accepted and r.spooled and not r.duplicate for r in during)
        with pytest.raises(ValueError, match="unknown item"):  # the catalogue check needs no Redis
            ingest.track(Event(user_id="u1", item_id="nope", type="view"))
        ingest.replay_now()  # still down: logged, not raised
        own_redis.restart()
        # Redis is back, but the spool still holds events: this one queues behind them
        after = ingest.track(Event(event_id="after-0", user_id="u1", item_id="i1", type="view"))
        assert after.spooled
        time.sleep(RETRY_DELAY_SECONDS)

        def replayed() -> bool:
            ingest.replay_now()  # the first try may meet a connection the restart left dead: the next one goes on
            return not ingest.spool.holds_events()

        assert poll(replayed, timeout=5, every=0.2)
        assert not ingest.track(Event(event_id="later-0", user_id="u1", item_id="i1", type="view")).spooled
        assert _stream_ids(client) == ["before-0", "before-1", "during-0", "during-1", "during-2", "after-0",
                                       "later-0"]
    finally:
        ingest.close()
        client.close()
    assert not list((tmp_path / "intake").glob("*.jsonl"))  # closed empty: the file is removed
