"""Recording what users were served: exposures, and the events that move their metrics.

    >>> exposures.record_exposure(assignment)   # one round trip, once per user and phase
    >>> exposures.observe(accepted_events)      # one pipelined round trip per batch

Both write through the Lua scripts of ``engine.experiments.scripts``; a process remembers the
exposures it recorded (bounded) so that a user's later requests cost no round trip.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Protocol

import redis

from engine.experiments.assignment import Assignment
from engine.experiments.covariates import PreExposure
from engine.experiments.metrics import COUNTERS, EVENT_COUNTER
from engine.experiments.quality import ServedList, list_entry
from engine.experiments.scripts import EXPOSE, OBSERVE
from engine.experiments.served import served_field
from engine.experiments.snapshot import ConfigSnapshot
from engine.storage.client import eval_script_batch
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

EXPOSURE_MEMORY = 200_000  # (experiment, phase, epoch, user) already exposed, to skip the round trip
_REVENUE = COUNTERS.index("revenue")


class ObservedEvent(Protocol):
    """What ``observe`` reads of an accepted event (``engine.events.tracker.Event`` has it)."""

    @property
    def user_id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def timestamp(self) -> float: ...

    @property
    def value(self) -> float | None: ...


@lru_cache(maxsize=64)
def _day_of(day_number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_number)).isoformat()


def utc_day(timestamp: float) -> str:
    return _day_of(int(timestamp // 86_400))


def utc_hour(timestamp: float) -> str:
    """``2026-12-02T04``: the UTC hour an increment is kept under (its first 10 characters are the day)."""
    hours = int(timestamp // 3_600)
    return f"{_day_of(hours // 24)}T{hours % 24:02d}"


def _marker(assignment: Assignment) -> tuple[str, int, int, str]:
    return (assignment.experiment, assignment.phase, assignment.epoch, assignment.user_id)


class ExposureRecorder:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        snapshot: ConfigSnapshot,
        covariates: PreExposure,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.snapshot = snapshot
        self.covariates = covariates
        self.clock = clock
        self._expose = client.register_script(EXPOSE)
        self._observe = client.register_script(OBSERVE)
        self._exposed: OrderedDict[tuple[str, int, int, str], None] = OrderedDict()
        self._lock = threading.Lock()
        # Stats may have been wiped or phases re-opened: re-send exposures rather than trust memory.
        snapshot.on_reload(self.forget)

    def forget(self) -> None:
        with self._lock:
            self._exposed.clear()

    def already_exposed(self, assignment: Assignment) -> bool:
        """True when this process has recorded the exposure already (no I/O: safe on an event loop)."""
        with self._lock:
            return _marker(assignment) in self._exposed

    def record_exposure(self, assignment: Assignment | None, served: ServedList | None = None) -> bool:
        """Record that the user was served their variant; True on the first exposure in the phase.

        ``served`` (the list itself, and whether it was a cold-start or fallback list) feeds the
        readout's quality block: counted, and kept in the arm's capped sample of recent lists.
        Forced QA users are never recorded.  A failure is logged, not raised: the list was served.
        """
        if assignment is None or assignment.forced:
            return False
        marker = _marker(assignment)
        with self._lock:
            if marker in self._exposed:
                self._exposed.move_to_end(marker)
                return False
        key, phase = assignment.experiment, assignment.phase
        now = self.clock()
        day = utc_day(now)
        keys = [
            self.keys.experiment_assignments(key, phase),
            self.keys.experiment_stats(key, phase),
            self.keys.experiment_daily(key, phase, day),
            self.keys.experiment_days(key, phase),
            self.keys.experiment_served(key, phase),
            self.keys.experiment_hourly(key, phase, utc_hour(now)),
            self.keys.experiment_health(key, phase),
            self.keys.experiment_crossed(key, phase),
            self.keys.experiment_quality(key, phase),
            self.keys.experiment_lists(key, phase, assignment.variant),
        ]
        if phase > 1:  # carried over: the user's arm in the previous phase
            keys.append(self.keys.experiment_assignments(key, phase - 1))
        call = (
            keys,
            [
                assignment.user_id,
                assignment.epoch,
                assignment.variant,
                *(repr(x) for x in self.covariates.get(assignment.user_id)),
                served_field(assignment.variant, assignment.served_label),
                day,
                repr(now),
                list_entry(assignment.user_id, served.items) if served is not None else "",
                served.flags if served is not None else "",
            ],
        )
        try:
            (new,) = eval_script_batch(self.redis, self._expose, [call])
        except redis.RedisError as exc:
            log.warning("exposure of %s in %s not recorded: %s", assignment.user_id, key, exc)
            return False
        with self._lock:
            self._exposed[marker] = None
            while len(self._exposed) > EXPOSURE_MEMORY:
                self._exposed.popitem(last=False)
        return bool(new)

    def observe(self, events: Iterable[ObservedEvent]) -> int:
        """Fold accepted events into the running statistics: one pipelined round trip per batch.

        Events of one user and UTC hour are summed first (the update is exact for any delta).  Events of
        users not exposed in the experiment they are assigned to are ignored by the script.
        Returns the number of (user, hour) updates that counted.
        """
        table = self.snapshot.table
        if not table:
            return 0
        deltas: dict[tuple[str, int, str, str], list[float]] = {}
        latest: dict[tuple[str, int, str, str], float] = {}
        for event in events:
            counter = EVENT_COUNTER.get(event.type)
            if counter is None:
                continue
            assignment = table.assign(event.user_id)
            if assignment is None or assignment.forced:
                continue
            slot = (assignment.experiment, assignment.phase, event.user_id, utc_hour(event.timestamp))
            delta = deltas.setdefault(slot, [0.0] * len(COUNTERS))
            latest[slot] = max(latest.get(slot, 0.0), event.timestamp)
            delta[COUNTERS.index(counter)] += 1
            if event.type == "purchase" and event.value:
                delta[_REVENUE] += float(event.value)
        if not deltas:
            return 0
        calls = [
            (
                [
                    self.keys.experiment_assignments(key, phase),
                    self.keys.experiment_units(key, phase),
                    self.keys.experiment_stats(key, phase),
                    self.keys.experiment_daily(key, phase, hour[:10]),
                    self.keys.experiment_days(key, phase),
                    self.keys.experiment_hourly(key, phase, hour),
                    self.keys.experiment_health(key, phase),
                ],
                [user, hour[:10], *(repr(d) for d in delta), repr(latest[(key, phase, user, hour)])],
            )
            for (key, phase, user, hour), delta in deltas.items()
        ]
        return sum(int(r) for r in eval_script_batch(self.redis, self._observe, calls))
