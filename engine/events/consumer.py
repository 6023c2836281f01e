"""The stream consumer: tracked events from the Redis stream into the served dataset's event log.

    >>> consumer = EventConsumer.for_dataset(settings, "shop", dataset_keys(settings, "shop"), redis_url)
    >>> consumer.run(stop)      # until ``stop`` (a threading.Event) is set; then flushes, acks, leaves the group
    >>> consumer.drain()        # or: what the stream holds now, then return
    ConsumerStats(consumed=1200, written=1199, dead_lettered=1, claimed=0, flushes=2, trimmed=1200)

Group "event-log"; each process is a consumer named host-pid (``ConsumerOptions``).

``recops consume`` runs it and ``recops up`` starts it beside the API.

Delivery.  Entries are read with XREADGROUP (group ``event-log``, every process its own consumer
name), buffered, and written with ``EventLog.append`` when the buffer reaches ``batch_size`` or
its oldest entry has waited ``flush_seconds``; only after ``append`` returned are they
acknowledged (XACK).  A consumer that dies between the read and the acknowledgement leaves its
entries pending in the group: every consumer re-claims entries pending longer than
``claim_idle_seconds`` (XAUTOCLAIM) when it starts and periodically, so they are written by
another.  Delivery is therefore at least once, and ``EventLog.read`` keeps one row per
(user_id, event_id).

Bounded Redis.  After each acknowledgement the stream is trimmed (XTRIM MINID, exact) below the
oldest entry any group still needs: a group's oldest pending entry, else the entry after its
last-delivered one — so another group reading the same stream never loses what it has not
acknowledged.

Malformed entries (a field missing, a number that is not one) are appended to
``dead-letters.jsonl`` beside the log (fsynced before the acknowledgement) and acknowledged, so
they never wedge the group; the first one is logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from engine.config import Settings
from engine.data.event_log import EventLog
from engine.data.schema import EVENT_TYPES
from engine.monitoring.prometheus_metrics import (
    CONSUMER_DEAD_LETTERED,
    CONSUMER_EVENTS,
    CONSUMER_FLUSH_SECONDS,
    CONSUMER_LAG,
)
from engine.storage.client import as_text, is_cluster_url, redis_client
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

GROUP = "event-log"
DEAD_LETTERS = "dead-letters.jsonl"
REQUIRED_FIELDS = ("event_id", "user_id", "item_id", "type", "timestamp")
RETRY_SECONDS = 1.0  # while Redis is unreachable
LOGGED_PROPENSITIES = ("propensity", "prefix_propensity", "marginal_propensity")

# Test hook: ``checkpoint(stage)`` is called at these points of a flush, so that a test can kill the
# process exactly between the read and the write, or between the write and the acknowledgement.
STAGES = ("read", "written", "acked")


class MalformedEntry(ValueError):
    """A stream entry that is not an event the log can hold."""


# ---- pure logic -------------------------------------------------------------------------------
def parse_stream_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_stream_id(stream_id: str) -> str:
    """The smallest id after ``stream_id`` (XTRIM MINID keeps ids >= its argument)."""
    ms, seq = parse_stream_id(stream_id)
    return f"{ms}-{seq + 1}"


def _number(fields: Mapping[str, str], name: str) -> float:
    try:
        value = float(fields[name])
    except ValueError:
        raise MalformedEntry(f"{name} is not a number: {fields[name]!r}") from None
    if not math.isfinite(value):
        raise MalformedEntry(f"{name} is not finite: {fields[name]!r}")
    return value


def entry_row(stream_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The event-log row of one stream entry (the tracker's ``Event.stream_fields``).

    ``MalformedEntry`` when a required field is missing or empty, the type unknown, or a number
    is not a finite number.
    """
    missing = [name for name in REQUIRED_FIELDS if not fields.get(name)]
    if missing:
        raise MalformedEntry(f"missing field(s) {', '.join(missing)}")
    if fields["type"] not in EVENT_TYPES:
        raise MalformedEntry(f"unknown event type {fields['type']!r}")
    timestamp = _number(fields, "timestamp")
    if timestamp <= 0:
        raise MalformedEntry(f"timestamp must be > 0, got {fields['timestamp']!r}")
    return {
        "stream_id": stream_id,
        "event_id": fields["event_id"],
        "user_id": fields["user_id"],
        "item_id": fields["item_id"],
        "type": fields["type"],
        "timestamp": timestamp,
        "value": _number(fields, "value") if fields.get("value") else None,
        "request_id": fields.get("request_id") or None,
        # an exploring arm's impressions (tracker.PROPENSITY_FIELDS); absent on every other event
        "position": int(_number(fields, "position")) if fields.get("position") else None,
        **{name: _number(fields, name) if fields.get(name) else None for name in LOGGED_PROPENSITIES},
        "policy": fields.get("policy") or None,
    }


@dataclass(frozen=True)
class GroupPosition:
    """Where one consumer group of the stream stands: its last delivered id and oldest pending one."""

    name: str
    last_delivered: str
    oldest_pending: str | None = None


def trim_floor(groups: Sequence[GroupPosition]) -> str | None:
    """The MINID to trim the stream to: the oldest entry any group still needs (None: no group).

    A group needs its oldest pending entry (delivered, not acknowledged) and everything it has not
    been delivered yet (after its last-delivered id).
    """
    needed = [g.oldest_pending if g.oldest_pending is not None else next_stream_id(g.last_delivered)
              for g in groups]
    return min(needed, key=parse_stream_id) if needed else None


def consumer_name() -> str:
    """Unique per process (XAUTOCLAIM moves a dead one's entries to the living)."""
    return f"{socket.gethostname()}-{os.getpid()}"


# ---- the I/O loop -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ConsumerOptions:
    group: str = GROUP
    name: str = field(default_factory=consumer_name)
    batch_size: int = 1_000  # flush when the buffer holds this many entries
    flush_seconds: float = 5.0  # ... or when its oldest entry has waited this long
    block_seconds: float = 1.0  # longest XREADGROUP wait (also how fast a stop is noticed)
    claim_idle_seconds: float = 30.0  # re-claim entries pending this long (their consumer is dead)
    claim_every_seconds: float = 10.0
    lag_every_seconds: float = 5.0
    # a consumer no command has come from for this long, holding nothing, is gone: forget it (a live
    # one reads every ``block_seconds``; names are host-pid, so restarts would pile them up)
    forget_idle_seconds: float = 3_600.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.flush_seconds > 0 or not self.block_seconds > 0:
            raise ValueError("flush_seconds and block_seconds must be > 0")
        # our own buffered entries must not look abandoned to ourselves or to another consumer
        if self.claim_idle_seconds <= self.flush_seconds:
            raise ValueError(f"claim_idle_seconds ({self.claim_idle_seconds:g}) must exceed "
                             f"flush_seconds ({self.flush_seconds:g})")


@dataclass
class ConsumerStats:
    consumed: int = 0  # entries taken from the stream (read or claimed)
    written: int = 0  # rows appended to the event log
    dead_lettered: int = 0
    claimed: int = 0  # of ``consumed``, re-claimed from a dead consumer
    flushes: int = 0
    trimmed: int = 0  # entries removed from the stream

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, other: ConsumerStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


def consumer_client(url: str, block_seconds: float) -> redis.Redis:
    """A client whose read timeout outlasts a blocking XREADGROUP (the engine's is 1 s)."""
    if is_cluster_url(url):
        return redis_client(url, socket_timeout=block_seconds + 10.0, socket_connect_timeout=2.0)
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0,
                                socket_timeout=block_seconds + 10.0, health_check_interval=30)


class EventConsumer:
    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        event_log: EventLog,
        options: ConsumerOptions | None = None,
        checkpoint: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = client
        self.stream = stream
        self.log = event_log
        self.options = options or ConsumerOptions()
        self.dead_letters = event_log.root / DEAD_LETTERS
        self.stats = ConsumerStats()
        self._checkpoint = checkpoint or (lambda stage: None)
        self._ids: list[str] = []  # buffered entry ids, in stream order: acknowledged after the flush
        self._rows: list[dict[str, Any]] = []
        self._bad: list[dict[str, Any]] = []
        self._oldest: float | None = None  # monotonic time the oldest buffered entry arrived
        self._written = False  # the buffer is in the log, its acknowledgement still to do
        self._next_claim = self._next_lag = 0.0
        self._warned = False

    @classmethod
    def for_dataset(cls, settings: Settings, dataset: str, keys: Keys, url: str,
                    options: ConsumerOptions | None = None) -> EventConsumer:
        """The consumer of ``dataset``'s stream (``keys``: ``engine.runtime.dataset_keys``) into its log."""
        options = options or ConsumerOptions(flush_seconds=settings.consumer_flush_seconds)
        return cls(consumer_client(url, options.block_seconds), keys.event_stream,
                   EventLog.for_dataset(settings, dataset), options)

    # ---- the loops --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> ConsumerStats:
        """Consume until ``stop`` is set, then flush and acknowledge what is buffered and leave the group.

        Redis going away does not end it: the buffer is kept (written or not) and the step retried
        every ``RETRY_SECONDS`` until Redis answers again.
        """
        self.ensure_group()
        self.claim()
        self._next_claim = self._next_lag = time.monotonic()
        down_since: float | None = None
        while not stop.is_set():
            try:
                self._step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("Redis unreachable (%s): holding %d buffered entries, retrying every %gs",
                                exc, len(self._ids), RETRY_SECONDS)
                stop.wait(RETRY_SECONDS)
                continue
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis came back without its data (no persistence): the group, and maybe the stream, are new
                log.warning("group %s of %s is gone: creating it again", self.options.group, self.stream)
                self.ensure_group()
                continue
            if down_since is not None:
                log.warning("Redis reachable again after %.1fs", time.monotonic() - down_since)
                down_since = None
        self.flush()
        self.leave()
        return self.stats

    def _step(self) -> None:
        """One turn of ``run``: read (unless a written batch still waits for its acknowledgement),
        flush when due, and now and then re-claim abandoned entries and measure the lag."""
        if not self._written:
            self._take(self._read(self._block_seconds()), claimed=False)
        if self._written or self._due():
            self.flush()
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.options.claim_every_seconds
            self.claim()
            self.forget_dead_consumers()
        if now >= self._next_lag:
            self._next_lag = now + self.options.lag_every_seconds
            self.lag()

    def drain(self) -> ConsumerStats:
        """Everything the stream holds for the group now (and entries abandoned long enough), written."""
        self.ensure_group()
        self.claim()
        while entries := self._read(None):
            self._take(entries, claimed=False)
            if len(self._ids) >= self.options.batch_size:
                self.flush()
        self.flush()
        self.lag()
        self.leave()
        return self.stats

    # ---- steps ------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """The group, created at id 0: events tracked before the first consumer started are read too."""
        try:
            self.redis.xgroup_create(self.stream, self.options.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _block_seconds(self) -> float:
        if self._oldest is None:
            return self.options.block_seconds
        left = self._oldest + self.options.flush_seconds - time.monotonic()
        return max(0.001, min(self.options.block_seconds, left))

    def _due(self) -> bool:
        if not self._ids:
            return False
        assert self._oldest is not None
        full = len(self._ids) >= self.options.batch_size
        return full or time.monotonic() - self._oldest >= self.options.flush_seconds

    def _read(self, block_seconds: float | None) -> list[tuple[str, dict[str, str] | None]]:
        room = max(1, self.options.batch_size - len(self._ids))
        block = None if block_seconds is None else max(1, int(block_seconds * 1000))
        reply: Any = self.redis.xreadgroup(self.options.group, self.options.name, {self.stream: ">"},
                                      count=room, block=block)
        if not reply:
            return []
        return [(as_text(i), f) for _stream, entries in reply for i, f in entries]

    def claim(self) -> int:
        """Take over entries pending longer than ``claim_idle_seconds`` (their consumer died)."""
        taken = 0
        cursor = "0-0"
        idle_ms = int(self.options.claim_idle_seconds * 1000)
        while True:
            reply = self.redis.xautoclaim(self.stream, self.options.group, self.options.name, idle_ms,
                                          start_id=cursor, count=self.options.batch_size)
            cursor = as_text(reply[0])
            entries = [(as_text(i), f) for i, f in reply[1]]
            # Redis 7 also lists entries that were pending but are gone from the stream (trimmed or
            # deleted): there is nothing left to write, only the pending mark to clear
            gone = [as_text(i) for i in reply[2]] if len(reply) > 2 else []
            if gone:
                self.redis.xack(self.stream, self.options.group, *gone)
            if entries:
                log.info("consumer %s re-claimed %d entries pending over %gs", self.options.name,
                         len(entries), self.options.claim_idle_seconds)
                self._take(entries, claimed=True)
                taken += len(entries)
                if len(self._ids) >= self.options.batch_size:
                    self.flush()
            if cursor == "0-0":
                return taken

    def _take(self, entries: Iterable[tuple[str, Mapping[str, str] | None]], claimed: bool) -> None:
        for stream_id, fields in entries:
            self.stats.consumed += 1
            self.stats.claimed += claimed
            self._ids.append(stream_id)
            if self._oldest is None:
                self._oldest = time.monotonic()
            if fields is None:  # deleted from the stream while pending (Redis 6.2's XAUTOCLAIM)
                continue
            try:
                self._rows.append(entry_row(stream_id, fields))
            except MalformedEntry as exc:
                self._bad.append({"stream_id": stream_id, "error": str(exc), "fields": dict(fields)})
                if not self._warned:
                    self._warned = True
                    log.warning("malformed stream entry %s in %s (%s): dead-lettered to %s; later ones are "
                                "only counted", stream_id, self.stream, exc, self.dead_letters)

    def flush(self) -> None:
        """Write the buffer durably, then acknowledge it, then trim the stream.

        A batch whose acknowledgement failed (Redis unreachable) is acknowledged by the next call
        without being written again.
        """
        if not self._ids:
            return
        if not self._written:
            self._checkpoint("read")
            started = time.perf_counter()
            if self._bad:
                self._write_dead_letters(self._bad)
            written = self.log.append(self._rows, batch=self._ids[0]) if self._rows else 0
            CONSUMER_FLUSH_SECONDS.observe(time.perf_counter() - started)
            CONSUMER_EVENTS.inc(written)
            CONSUMER_DEAD_LETTERED.inc(len(self._bad))
            self.stats.written += written
            self.stats.dead_lettered += len(self._bad)
            self._written = True
            self._checkpoint("written")
        self.redis.xack(self.stream, self.options.group, *self._ids)
        self._checkpoint("acked")
        self.stats.flushes += 1
        self._ids, self._rows, self._bad, self._oldest, self._written = [], [], [], None, False
        self.trim()

    def _write_dead_letters(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self.dead_letters.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dead_letters, "a", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def positions(self) -> list[GroupPosition]:
        """Every group reading the stream (XINFO GROUPS), with its oldest pending id (XPENDING)."""
        out = []
        for group in self.redis.xinfo_groups(self.stream):
            name = as_text(group["name"])
            oldest = None
            if int(group["pending"]):
                oldest = as_text(self.redis.xpending(self.stream, name)["min"])
            out.append(GroupPosition(name, as_text(group["last-delivered-id"]), oldest))
        return out

    def trim(self) -> int:
        floor = trim_floor(self.positions())
        if floor is None:
            return 0
        removed = int(self.redis.xtrim(self.stream, minid=floor, approximate=False))
        self.stats.trimmed += removed
        return removed

    def lag(self) -> int:
        """Entries of the stream this group has not acknowledged: pending + not delivered yet."""
        for group in self.redis.xinfo_groups(self.stream):
            if as_text(group["name"]) != self.options.group:
                continue
            undelivered = group.get("lag")
            if undelivered is None:  # Redis < 7, or after deletions: count what follows
                after = next_stream_id(as_text(group["last-delivered-id"]))
                undelivered = len(self.redis.xrange(self.stream, min=after, max="+") or [])
            lag = int(group["pending"]) + int(undelivered)
            CONSUMER_LAG.set(lag)
            return lag
        return 0

    def forget_dead_consumers(self) -> None:
        """Drop consumers that hold nothing and have not read for ``forget_idle_seconds``."""
        for consumer in self.redis.xinfo_consumers(self.stream, self.options.group):
            name = as_text(consumer["name"])
            if name != self.options.name and not int(consumer["pending"]) \
                    and int(consumer["idle"]) > self.options.forget_idle_seconds * 1000:
                self.redis.xgroup_delconsumer(self.stream, self.options.group, name)

    def leave(self) -> None:
        """A clean stop: leave the group when nothing is pending under our name (else others claim it)."""
        for consumer in self.redis.xinfo_consumers(self.stream, self.options.group):
            if as_text(consumer["name"]) == self.options.name and not int(consumer["pending"]):
                self.redis.xgroup_delconsumer(self.stream, self.options.group, self.options.name)

