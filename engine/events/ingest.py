"""Event intake for serving processes: the tracker while Redis answers, the local spool while it does not.

    >>> ingest = EventIngest(tracker, EventSpool(spool_dir)).start()   # replays every second
    >>> ingest.track_many(events)      # TrackResult(..., spooled=True) during an outage
    >>> ingest.close()

The catalogue check runs first and needs no Redis, so an unknown item is refused in an outage too.
While the spool holds events, new events join it instead of going to Redis, so they reach the
stream in the order they arrived; the replay thread empties it once Redis is back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable

import redis

from engine.events.spool import RETRY_DELAY_SECONDS, EventSpool
from engine.events.tracker import Event, EventTracker, TrackResult, UnknownItemError

log = logging.getLogger(__name__)

REPLAY_EVERY_SECONDS = 1.0
# what an unreachable Redis raises (BusyLoadingError, a server still loading its data after a
# restart, is a ConnectionError); any other Redis error is a real answer and is not spooled
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class SpoolUnavailableError(RuntimeError):
    """Redis was unreachable and the spool's disk refused the events too: nothing was stored."""


class EventIngest:
    def __init__(self, tracker: EventTracker, spool: EventSpool, every: float = REPLAY_EVERY_SECONDS) -> None:
        self.tracker = tracker
        self.spool = spool
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_logged = False
        self._failed_at = -math.inf

    def track(self, event: Event) -> TrackResult:
        return self.track_many([event])[0]

    def track_many(self, events: Iterable[Event]) -> list[TrackResult]:
        """The tracker's answer, or every event ``spooled`` when Redis is unreachable or the spool
        still holds events.  ``UnknownItemError`` before anything is written or spooled."""
        batch = list(events)
        if not batch:
            return []
        self.tracker.check_items(batch)
        if self._append(batch, only_if_holding=True):
            return _spooled(batch)
        try:
            return self.tracker.track_many(batch)
        except UNREACHABLE as exc:
            log.warning("Redis unreachable (%s): %d event(s) spooled to %s", type(exc).__name__, len(batch),
                        self.spool.directory)
            self._append(batch, retried=True)
            return _spooled(batch)

    def _append(self, batch: list[Event], retried: bool = False, only_if_holding: bool = False) -> bool:
        try:
            return self.spool.append(batch, retried=retried, only_if_holding=only_if_holding)
        except OSError as exc:
            log.error("spool: cannot write to %s: %s", self.spool.directory, exc)
            raise SpoolUnavailableError(str(exc)) from exc

    # ------------------------------------------------------------------ replay
    def replay(self) -> int:
        """Hand the spooled events to the tracker; returns how many.  Raises while Redis is unreachable."""
        return self.spool.replay(self._record)

    def _record(self, batch: list[Event]) -> None:
        try:
            self.tracker.track_many(batch)
        except UnknownItemError as exc:
            # checked when spooled; only a catalogue changed in between gets here, and such an
            # event must not wedge the replay of every event behind it
            unknown = set(exc.item_ids)
            log.error("spool: dropping %d spooled event(s) whose item left the catalogue: %s",
                      sum(e.item_id in unknown for e in batch), exc)
            self.tracker.track_many([e for e in batch if e.item_id not in unknown])

    def replay_now(self) -> None:
        """One replay attempt; an unreachable Redis is logged once per outage, not raised."""
        if time.monotonic() - self._failed_at < RETRY_DELAY_SECONDS:
            # a replay that failed after the tracker's first round trip left pending marks, and a
            # copy sent while they are young is taken for a duplicate in flight (and dropped)
            return
        try:
            replayed = self.replay()
        except UNREACHABLE as exc:
            self._failed_at = time.monotonic()
            if not self._down_logged:
                log.warning("spool: Redis still unreachable (%s); %d event(s) wait", type(exc).__name__,
                            self.spool.depth)
                self._down_logged = True
            return
        except Exception:
            self._failed_at = time.monotonic()
            log.exception("spool: replay failed; retrying in %.0f s", self.every)
            return
        if replayed:
            log.info("spool: %d event(s) replayed into Redis", replayed)
        self._down_logged = False

    def start(self) -> EventIngest:
        """Replay every ``every`` seconds in a daemon thread (serving processes)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-spool-replay", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.replay_now()

    def close(self) -> None:
        """Stop the thread, try a last replay, and release the spool file (kept if events remain)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
            self.replay_now()
        self.spool.close()


def _spooled(batch: list[Event]) -> list[TrackResult]:
    return [TrackResult(accepted=True, duplicate=False, stream_id=None, event_id=e.event_id, spooled=True)
            for e in batch]
