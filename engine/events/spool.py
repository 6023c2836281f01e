"""A local, append-only, fsynced spool of events that Redis could not take (an outage).

    >>> spool = EventSpool(settings.data_dir / "spool" / "demo")
    >>> spool.append(events, retried=True)          # one write + fsync per batch
    >>> spool.replay(tracker.track_many)            # in order, in batches; then emptied

File format: JSON lines, one event per line (``{"event": {...}, "not_before": t?}``), each with its
``event_id``.  Every process owns one file, ``<host>-<pid>-<random>.jsonl``, and holds an exclusive
``flock`` on it for its lifetime, so several uvicorn workers never write into the same file and need
no lock between them to append.  A file nobody holds a lock on belongs to a process that died with
events in it: any process's ``replay`` adopts it (takes the lock, replays it, deletes it).

Replay is safe to repeat: the tracker is idempotent on (user, event id), so an event recorded by an
earlier, interrupted replay is answered ``duplicate`` and not appended twice.  That is why the file
is emptied only once everything in it has been recorded (one truncate, under the append lock), and
why a crash mid-replay needs no bookkeeping: the next replay starts again from the top.

``not_before`` guards one case: an event whose direct attempt failed after the tracker's first
round trip left a *pending* idempotency mark in Redis, and the tracker answers ``duplicate`` to a
copy that arrives while such a mark is younger than ``PENDING_MS``.  Replaying it that early would
drop it, so replay stops at such a line until its time has come.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from engine.data.durable_files import fsync_dir
from engine.events.tracker import PENDING_MS, Event
from engine.monitoring.prometheus_metrics import SPOOL_DEPTH, SPOOL_REPLAYED, SPOOLED

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
REPLAY_BATCH = 500
READ_BLOCK = 1 << 20  # bytes read per step of a replay: a long outage's file is never read whole
# a retried event is replayed once the tracker no longer takes it for a concurrent copy in flight
RETRY_DELAY_SECONDS = PENDING_MS / 1000 + 0.1


# ------------------------------------------------------------------ the line format (pure)
def encode(event: Event, not_before: float | None = None) -> bytes:
    record: dict[str, Any] = {"event": event.model_dump(mode="json")}
    if not_before is not None:
        record["not_before"] = not_before
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True)
class Line:
    end: int  # offset just past the line in the file
    event: Event | None  # None: a corrupt line, skipped
    not_before: float | None = None


def decode(line: bytes) -> tuple[Event, float | None]:
    """``ValueError`` (or pydantic's ``ValidationError``, a subclass) when the line is not one event."""
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get("event"), dict):
        raise ValueError("not a spooled event")
    not_before = record.get("not_before")
    return Event.model_validate(record["event"]), float(not_before) if not_before is not None else None


def parse(data: bytes, start: int, final: bool) -> list[Line]:
    """The lines of ``data`` (read from offset ``start``).  A trailing piece without its newline is
    left for the next read unless ``final`` (nothing more will come: a power cut cut it short), when
    it is a corrupt line like any other."""
    lines: list[Line] = []
    pos = 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        if newline < 0 and not final:
            break
        end = len(data) if newline < 0 else newline + 1
        raw = data[pos:end]
        try:
            event, not_before = decode(raw)
            lines.append(Line(start + end, event, not_before))
        except (ValueError, ValidationError) as exc:
            if raw.strip():
                log.warning("spool: skipping a corrupt line at byte %d (%d bytes): %s",
                            start + pos, len(raw), str(exc).splitlines()[0][:200])
            lines.append(Line(start + end, None))
        pos = end
    return lines


# ------------------------------------------------------------------ files
def _open_locked(path: Path, blocking: bool) -> BinaryIO | None:
    """``path`` opened for reading and appending with an exclusive flock; None when another process holds it."""
    handle = path.open("rb+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _same_file(handle: BinaryIO, path: Path) -> bool:
    """The path still names the file we locked (another adopter may have replayed and deleted it)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


Record = Callable[[list[Event]], object]


class EventSpool:
    """This process's spool file in ``directory`` (created on the first append) and the replay of it
    and of the files dead processes left there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # appends, and the end of a replay (its last batch, then the truncate); re-entered by the replay
        self._lock = threading.RLock()
        self._replay_lock = threading.Lock()  # one replay at a time in this process
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0  # bytes written (and fsynced) to our file
        self._depth = 0  # events in our file not yet replayed
        self._replayed_to = 0  # our file's bytes already recorded by an unfinished replay
        self._orphan_depth = 0

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def depth(self) -> int:
        """Events waiting in this process's file and in the dead processes' files it last saw."""
        return self._depth + self._orphan_depth

    def holds_events(self) -> bool:
        return self._depth > 0

    # ------------------------------------------------------------------ append
    def append(self, events: list[Event], retried: bool = False, only_if_holding: bool = False) -> bool:
        """Write ``events`` in order and fsync them.  ``retried``: their direct attempt just failed
        (see ``not_before``).  With ``only_if_holding``, append only while the spool holds events
        (so that order is kept) and answer whether it did.  ``OSError`` when the disk refuses: then
        nothing of the batch is kept."""
        if not events:
            return True
        not_before = time.time() + RETRY_DELAY_SECONDS if retried else None
        data = b"".join(encode(e, not_before) for e in events)
        with self._lock:
            if only_if_holding and self._depth == 0:
                return False
            handle = self._own_file()
            try:
                handle.seek(0, os.SEEK_END)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                # a partial line would be glued to the next append's first line: cut it off
                with contextlib.suppress(OSError):
                    handle.truncate(self._size)
                raise
            self._size += len(data)
            self._depth += len(events)
        SPOOLED.inc(len(events))
        self._publish_depth()
        return True

    def _own_file(self) -> BinaryIO:
        if self._file is not None:
            return self._file
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # created and locked under a name replay does not look at, then renamed: an adopter never
        # sees the file unlocked (it would take a fresh empty file for a dead process's and delete it)
        temporary = self.directory / f".{name}.tmp"
        temporary.touch(exist_ok=False)
        handle = _open_locked(temporary, blocking=True)
        assert handle is not None  # a blocking flock waits rather than failing
        path = self.directory / f"{name}{SUFFIX}"
        temporary.rename(path)
        fsync_dir(self.directory)
        self._file, self._path, self._size = handle, path, 0
        return handle

    # ------------------------------------------------------------------ replay
    def replay(self, record: Record, batch: int = REPLAY_BATCH) -> int:
        """Record this process's spooled events, then those of dead processes' files, in order and
        in batches of ``batch``; returns how many were recorded.  An exception from ``record``
        (Redis still down) propagates and leaves the rest spooled for the next call."""
        with self._replay_lock:
            done = self._replay_own(record, batch)
            done += self._replay_orphans(record, batch)
        return done

    def _replay_own(self, record: Record, batch: int) -> int:
        done, before = 0, None
        while True:
            with self._lock:
                if self._file is None:
                    return done
                if self._depth <= batch or (before is not None and self._depth >= before):
                    # The end of the file, or new events joining it (they do while it holds any) as
                    # fast as the replay records them: the rest is recorded while appends wait, or
                    # the replay would chase the file's end for ever.  This is the only backpressure
                    # on the clients, and it is bounded by what the spool holds now.
                    while self._replayed_to < self._size:
                        recorded, blocked = self._replay_step(record, batch)
                        done += recorded
                        if blocked:
                            return done
                    # everything written was recorded, and appends wait for this lock: empty the file
                    self._file.truncate(0)
                    os.fsync(self._file.fileno())
                    self._size = self._depth = self._replayed_to = 0
                    self._publish_depth()
                    return done
                before = self._depth
            recorded, blocked = self._replay_step(record, batch)
            done += recorded
            if blocked:
                return done  # a retried event's time has not come: the next call goes on from here

    def _replay_step(self, record: Record, batch: int) -> tuple[int, bool]:
        """Record the next batch of our file; (events recorded, stopped at a retried event too young)."""
        with self._lock:
            handle, start, size = self._file, self._replayed_to, self._size
        assert handle is not None  # only close() drops it, and it takes the replay lock first
        # our own appends are whole lines and fsynced before ``_size`` moves: the read is final
        lines = self._read(handle, start, size, batch)
        recorded, end = self._record_ready(lines, start, record)
        with self._lock:
            self._replayed_to = end
            self._depth = max(0, self._depth - sum(1 for line in lines if line.end <= end and line.event))
        self._publish_depth()
        return recorded, end < lines[-1].end

    def _replay_orphans(self, record: Record, batch: int) -> int:
        done, waiting = 0, 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self._path:
                continue
            try:
                handle = _open_locked(path, blocking=False)
            except FileNotFoundError:
                continue  # another adopter finished it
            if handle is None:
                continue  # a live process's file
            with handle:
                if not _same_file(handle, path):
                    continue
                try:
                    finished, recorded = self._replay_orphan(handle, record, batch)
                except Exception:
                    self._orphan_depth = waiting + self._count(handle)
                    self._publish_depth()
                    raise
                done += recorded
                if finished:
                    handle.truncate(0)  # a second adopter that opened it before the unlink reads nothing
                    path.unlink()
                    log.info("spool: replayed and removed %s, left by a process that is gone", path.name)
                else:
                    waiting += self._count(handle)
        self._orphan_depth = waiting
        self._publish_depth()
        return done

    @classmethod
    def _count(cls, handle: BinaryIO) -> int:
        """Events in a file (for the depth gauge)."""
        size, start, n = os.fstat(handle.fileno()).st_size, 0, 0
        while start < size:
            lines = cls._read(handle, start, size, REPLAY_BATCH)
            n += sum(line.event is not None for line in lines)
            start = lines[-1].end
        return n

    def _replay_orphan(self, handle: BinaryIO, record: Record, batch: int) -> tuple[bool, int]:
        """(finished, events recorded).  Unfinished, the file keeps all its events for the next try."""
        size = os.fstat(handle.fileno()).st_size
        start, done = 0, 0
        while start < size:
            lines = self._read(handle, start, size, batch)
            recorded, end = self._record_ready(lines, start, record)
            done += recorded
            if end < lines[-1].end:
                return False, done
            start = end
        return True, done

    @staticmethod
    def _read(handle: BinaryIO, start: int, size: int, batch: int, final: bool = True) -> list[Line]:
        """Up to ``batch`` events' lines from ``start``, reading block by block; at least one line
        when ``start < size`` (a line longer than a block makes the block grow)."""
        block = READ_BLOCK
        while True:
            data = os.pread(handle.fileno(), min(block, size - start), start)
            last = start + len(data) >= size
            lines = parse(data, start, final=final and last)
            events = [i for i, line in enumerate(lines) if line.event is not None]
            if len(events) >= batch:
                return lines[: events[batch - 1] + 1]
            if lines or last:
                return lines
            block *= 2

    @staticmethod
    def _record_ready(lines: list[Line], start: int, record: Record) -> tuple[int, int]:
        """Record the events of ``lines`` (read from ``start``) up to the first whose ``not_before`` is still ahead;
        (events recorded, offset just past the last line dealt with).  Corrupt lines count as dealt with."""
        now = time.time()
        ready: list[Event] = []
        end = start
        for line in lines:
            if line.not_before is not None and line.not_before > now:
                break
            if line.event is not None:
                ready.append(line.event)
            end = line.end
        if ready:
            record(ready)
            SPOOL_REPLAYED.inc(len(ready))
        return len(ready), end

    def _publish_depth(self) -> None:
        SPOOL_DEPTH.set(self.depth)

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Release our file: deleted when empty, else left (unlocked) for another process to replay."""
        with self._replay_lock, self._lock:
            if self._file is None:
                return
            if self._depth == 0 and self._path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._path.unlink()
            elif self._path is not None:
                log.warning("spool: %d events not yet replayed stay in %s; the next serving process "
                            "replays them", self._depth, self._path)
            self._file.close()
            self._file, self._path = None, None
            self._size = self._depth = self._replayed_to = 0
        self._publish_depth()
