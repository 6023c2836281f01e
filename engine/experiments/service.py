"""ExperimentService: assignment for serving, exposure and metric updates, and the management API.

    >>> experiments = ExperimentService(redis_client, keys, covariates=PreExposure.from_dataset(dataset))
    >>> experiments.create({"key": "pop-vs-als", "name": "Popularity vs ALS",
    ...                     "variants": [{"name": "control", "model": "popularity"},
    ...                                  {"name": "als", "model": "als"}]})
    >>> experiments.start("pop-vs-als")
    >>> a = experiments.assign("u00042")             # pure: no I/O, runs on the event loop
    >>> experiments.record_exposure(a)               # one round trip, once per user and phase
    >>> experiments.observe(accepted_events)         # one pipelined round trip per batch
    >>> experiments.readout("pop-vs-als").decision_text

Serving reads an in-process snapshot of the running configs, swapped whole when the global config
version in Redis changes; a background thread polls that version (one GET per interval) and runs
due bandit re-weightings.  Management calls refresh the snapshot of their own process at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import redis

from analysis.bandit import thompson_weights
from engine.experiments.arm_stats import bandit_trials, parse_stats
from engine.experiments.assignment import Assignment, AssignmentTable, Holdout
from engine.experiments.covariates import PreExposure
from engine.experiments.metrics import COUNTERS, EVENT_COUNTER, METRICS
from engine.experiments.model import (
    ALLOCATION_FIELDS,
    DESCRIPTIVE_FIELDS,
    MANAGED_FIELDS,
    ConflictError,
    Experiment,
    ExperimentError,
    Phase,
    parse_experiment,
)
from engine.experiments.results import ExperimentReadout, build_readout, phase_variants, time_series
from engine.experiments.scripts import EXPOSE, OBSERVE
from engine.experiments.store import ExperimentStore
from engine.storage.client import eval_script_batch
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
EXPOSURE_MEMORY = 200_000  # (experiment, phase, epoch, user) already exposed, to skip the round trip
LAYER_LOCK_SECONDS = 5.0
_REVENUE = COUNTERS.index("revenue")
_UNSET = object()


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


class ExperimentService:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        covariates: PreExposure | None = None,
        available_models: Callable[[], Iterable[str]] | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.store = ExperimentStore(client, keys)
        self.covariates = covariates or PreExposure()
        self.available_models = available_models
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._expose = client.register_script(EXPOSE)
        self._observe = client.register_script(OBSERVE)
        self._table = AssignmentTable()
        self._configs: dict[str, Experiment] = {}
        self._version: object = _UNSET
        self._refresh_lock = threading.Lock()
        self._exposed: OrderedDict[tuple[str, int, int, str], None] = OrderedDict()
        self._exposed_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ================================================================== serving hook
    def assign(self, user_id: str) -> Assignment | None:
        """The user's experiment and variant from the in-process snapshot (never any I/O)."""
        return self._table.assign(user_id)

    def already_exposed(self, assignment: Assignment) -> bool:
        """True when this process has recorded the exposure already (no I/O: safe on an event loop)."""
        marker = (assignment.experiment, assignment.phase, assignment.epoch, assignment.user_id)
        with self._exposed_lock:
            return marker in self._exposed

    def record_exposure(self, assignment: Assignment | None) -> bool:
        """Record that the user was served their variant; True on the first exposure in the phase.

        Forced QA users are never recorded.  A failure is logged, not raised: the list was served.
        """
        if assignment is None or assignment.forced:
            return False
        marker = (assignment.experiment, assignment.phase, assignment.epoch, assignment.user_id)
        with self._exposed_lock:
            if marker in self._exposed:
                self._exposed.move_to_end(marker)
                return False
        key = assignment.experiment
        day = utc_day(self.clock())
        call = (
            [
                self.keys.experiment_assignments(key, assignment.phase),
                self.keys.experiment_stats(key, assignment.phase),
                self.keys.experiment_daily(key, assignment.phase, day),
                self.keys.experiment_days(key, assignment.phase),
            ],
            [
                assignment.user_id,
                assignment.epoch,
                assignment.variant,
                *(repr(x) for x in self.covariates.get(assignment.user_id)),
                day,
            ],
        )
        try:
            (new,) = eval_script_batch(self.redis, self._expose, [call])
        except redis.RedisError as exc:
            log.warning("exposure of %s in %s not recorded: %s", assignment.user_id, key, exc)
            return False
        with self._exposed_lock:
            self._exposed[marker] = None
            while len(self._exposed) > EXPOSURE_MEMORY:
                self._exposed.popitem(last=False)
        return bool(new)

    def observe(self, events: Iterable[ObservedEvent]) -> int:
        """Fold accepted events into the running statistics: one pipelined round trip per batch.

        Events of one user and day are summed first (the update is exact for any delta).  Events of
        users not exposed in the experiment they are assigned to are ignored by the script.
        Returns the number of (user, day) updates that counted.
        """
        table = self._table
        if not table:
            return 0
        deltas: dict[tuple[str, int, str, str], list[float]] = {}
        for event in events:
            counter = EVENT_COUNTER.get(event.type)
            if counter is None:
                continue
            assignment = table.assign(event.user_id)
            if assignment is None or assignment.forced:
                continue
            slot = (assignment.experiment, assignment.phase, event.user_id, utc_day(event.timestamp))
            delta = deltas.setdefault(slot, [0.0] * len(COUNTERS))
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
                    self.keys.experiment_daily(key, phase, day),
                    self.keys.experiment_days(key, phase),
                ],
                [user, day, *(repr(d) for d in delta)],
            )
            for (key, phase, user, day), delta in deltas.items()
        ]
        return sum(int(r) for r in eval_script_batch(self.redis, self._observe, calls))

    # ================================================================== snapshot
    def refresh(self, force: bool = False) -> bool:
        """Reload the configs when the global version changed (or ``force``); True when reloaded."""
        with self._refresh_lock:
            version = self.store.version()
            if not force and version == self._version:
                return False
            configs = self.store.load_all()
            holdout = self.store.holdout()
            self._configs = {e.key: e for e in configs}
            self._table = AssignmentTable(configs, holdout)
            self._version = version
            # Stats may have been wiped or phases re-opened: re-send exposures rather than trust memory.
            with self._exposed_lock:
                self._exposed.clear()
            return True

    def start_background(self) -> None:
        """Poll for config changes and run due bandit re-weightings until ``close``."""
        if self._thread is not None:
            return
        try:
            self.refresh(force=True)
        except redis.RedisError as exc:
            log.warning("experiment configs not loaded yet: %s", exc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="experiments-refresh", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
                self.run_due_bandits()
                failing = False
            except Exception:
                if not failing:  # one log line per outage, not one per second
                    log.exception("experiment refresh failed; serving keeps the last configs")
                failing = True

    # ================================================================== management
    def list_experiments(self) -> list[Experiment]:
        return self.store.load_all()

    def get(self, key: str) -> Experiment:
        return self.store.load(key)

    def create(self, spec: Mapping[str, Any] | Experiment) -> Experiment:
        """A new draft; ``spec`` holds the user fields (life-cycle fields are refused)."""
        data = spec.model_dump(exclude=set(MANAGED_FIELDS) - {"key"}) if isinstance(spec, Experiment) else dict(spec)
        self._refuse_managed(data, allow_key=True)
        now = self.clock()
        exp = parse_experiment({**data, "status": "draft", "version": 1, "created_at": now, "updated_at": now})
        self._check_models(exp)
        self.store.insert(exp)
        self.refresh(force=True)
        return exp

    def update(self, key: str, changes: Mapping[str, Any], expected_version: int | None = None) -> Experiment:
        """Change user fields.  On a started experiment, changing the allocation opens a new phase."""
        changes = dict(changes)
        self._refuse_managed(changes)
        if changes.get("kind") == "ab":
            changes.setdefault("bandit", None)

        def change(exp: Experiment) -> Experiment:
            if exp.status == "stopped" and set(changes) - DESCRIPTIVE_FIELDS:
                raise ExperimentError(
                    f"experiment {key!r} is stopped: only {sorted(DESCRIPTIVE_FIELDS)} can change"
                )
            new = parse_experiment({**exp.model_dump(), **changes})
            if exp.status != "draft" and new.kind != exp.kind:
                raise ExperimentError(f"experiment {key!r} has started: its kind cannot change")
            self._check_models(new)
            if exp.status in ("running", "paused") and new.allocation() != exp.allocation():
                touched = sorted(f for f in ALLOCATION_FIELDS if f in changes)
                new = self._open_phase(new, f"allocation changed ({', '.join(touched)})")
            return new

        return self._write(key, change, expected_version, allocates=True)

    def start(self, key: str) -> Experiment:
        """draft → running (phase 1), or paused → running (same phase)."""

        def change(exp: Experiment) -> Experiment:
            if exp.status == "running":
                raise ExperimentError(f"experiment {key!r} is already running")
            if exp.status == "stopped":
                raise ExperimentError(f"experiment {key!r} is stopped; a stopped experiment cannot restart")
            self._check_models(exp)
            if exp.status == "paused":
                return exp.model_copy(update={"status": "running"})
            started = exp.model_copy(update={"status": "running", "start_time": self.clock()})
            return self._open_phase(started, "start")

        return self._write(key, change, allocates=True)

    def pause(self, key: str) -> Experiment:
        """running → paused: no new exposures and no metric updates; users keep their variants."""

        def change(exp: Experiment) -> Experiment:
            if exp.status != "running":
                raise ExperimentError(f"experiment {key!r} is {exp.status}; only a running experiment can pause")
            return exp.model_copy(update={"status": "paused"})

        return self._write(key, change)

    def stop(self, key: str) -> Experiment:
        """running or paused → stopped (final); its layer slice is freed."""

        def change(exp: Experiment) -> Experiment:
            if exp.status not in ("running", "paused"):
                hint = "; delete a draft instead" if exp.status == "draft" else ""
                raise ExperimentError(f"experiment {key!r} is {exp.status}; it cannot stop{hint}")
            now = self.clock()
            phases = [*exp.phases[:-1], exp.phases[-1].model_copy(update={"ended_at": now})]
            return exp.model_copy(update={"status": "stopped", "stop_time": now, "phases": phases, "layer_range": None})

        return self._write(key, change)

    def delete(self, key: str) -> int:
        """Remove a draft or stopped experiment and all its statistics."""
        exp = self.store.load(key)
        if exp.status in ("running", "paused"):
            raise ExperimentError(f"experiment {key!r} is {exp.status}: stop it before deleting it")
        deleted = self.store.delete(exp)
        self.refresh(force=True)
        return deleted

    def holdout(self) -> Holdout:
        return self.store.holdout()

    def set_holdout(self, pct: float, salt: str = "global") -> Holdout:
        if not 0.0 <= pct < 100.0:
            raise ExperimentError(f"holdout must be in [0, 100) percent, got {pct}")
        holdout = Holdout(pct=float(pct), salt=salt)
        self.store.set_holdout(holdout)
        self.refresh(force=True)
        return holdout

    # ================================================================== readouts
    def readout(
        self,
        key: str,
        phase: int | None = None,
        metrics: Sequence[str] | None = None,
        engine: str | None = None,
    ) -> ExperimentReadout:
        """Goal, guardrails (and any extra ``metrics``) of one phase, from stored statistics only."""
        exp = self.store.load(key)
        if exp.phase == 0:
            raise ExperimentError(f"experiment {key!r} has not started: there is nothing to read out")
        phase = phase or exp.phase
        names = [v.name for v in phase_variants(exp, phase)]
        arms = parse_stats(self.store.read_stats(key, phase), names)
        epochs = self.store.epoch_weights(key) if exp.kind == "bandit" else None
        return build_readout(exp, arms, phase, epochs, metrics, engine, now=self.clock())

    def time_series(self, key: str, metric: str | None = None, phase: int | None = None) -> list[dict[str, Any]]:
        """Cumulative lift per UTC day of one phase (``metric`` defaults to the goal)."""
        exp = self.store.load(key)
        if exp.phase == 0:
            return []
        phase = phase or exp.phase
        names = [v.name for v in phase_variants(exp, phase)]
        days = [(day, parse_stats(raw, names)) for day, raw in self.store.read_daily(key, phase)]
        return time_series(exp, days, phase, metric)

    # ================================================================== bandits
    def recompute_bandit_weights(self, key: str) -> Experiment:
        """Thompson-sampling weights from the current phase's goal statistics: a new epoch."""
        exp = self.store.load(key)
        if exp.kind != "bandit" or exp.bandit is None:
            raise ExperimentError(f"experiment {key!r} is not a bandit")
        if exp.status != "running":
            raise ExperimentError(f"bandit {key!r} is {exp.status}; weights are re-computed only while running")
        spec = METRICS[exp.goal_metric]
        arms = parse_stats(self.store.read_stats(key, exp.phase), [v.name for v in exp.variants])
        trials = [bandit_trials(spec, arms[v.name]) for v in exp.variants]
        result = thompson_weights(
            [s for s, _ in trials], [n for _, n in trials], min_weight=exp.bandit.min_weight
        )
        now = self.clock()
        epoch = exp.bandit.epoch + 1
        # logged before the config names the epoch, so no process can serve weights the log lacks
        self.store.record_epoch(key, epoch, list(result.weights), now)

        def change(cur: Experiment) -> Experiment:
            if cur.phase != exp.phase or cur.status != "running" or cur.bandit is None or cur.bandit.epoch + 1 != epoch:
                raise ConflictError(f"bandit {key!r} changed while its weights were computed; retry")
            variants = [v.model_copy(update={"weight": w}) for v, w in zip(cur.variants, result.weights, strict=True)]
            bandit = cur.bandit.model_copy(
                update={"epoch": epoch, "updated_at": now, "prob_best": list(result.prob_best)}
            )
            return cur.model_copy(update={"variants": variants, "bandit": bandit})

        return self._write(key, change)

    def run_due_bandits(self) -> list[str]:
        """Re-weight every running bandit whose interval has passed (one process wins each lease)."""
        now = self.clock()
        done = []
        for exp in list(self._configs.values()):
            if exp.kind != "bandit" or exp.status != "running" or exp.bandit is None:
                continue
            last = exp.bandit.updated_at or exp.start_time or now
            if now - last < exp.bandit.interval_seconds:
                continue
            if not self.store.try_lock(f"bandit:{exp.key}", exp.bandit.interval_seconds / 2):
                continue
            try:
                self.recompute_bandit_weights(exp.key)
                done.append(exp.key)
            except ExperimentError as exc:
                log.info("bandit %s not re-weighted: %s", exp.key, exc)
        return done

    # ================================================================== internals
    def _write(
        self,
        key: str,
        change: Callable[[Experiment], Experiment],
        expected_version: int | None = None,
        allocates: bool = False,
    ) -> Experiment:
        """Apply ``change``; ``allocates`` holds the layer lock so two starts cannot take one slice."""
        if allocates:
            lock = self.redis.lock(
                self.keys.experiment_lock("layers"), timeout=LAYER_LOCK_SECONDS, blocking_timeout=LAYER_LOCK_SECONDS
            )
            if not lock.acquire():
                raise ConflictError("another experiment is being allocated a layer slice; retry")
            try:
                new = self.store.update(key, change, expected_version)
            finally:
                with contextlib.suppress(redis.exceptions.LockError):
                    lock.release()
        else:
            new = self.store.update(key, change, expected_version)
        self.refresh(force=True)
        return new

    @staticmethod
    def _refuse_managed(data: Mapping[str, Any], allow_key: bool = False) -> None:
        managed = sorted(set(data) & (MANAGED_FIELDS - ({"key"} if allow_key else set())))
        if managed:
            raise ExperimentError(f"fields {managed} are managed by the experiment's life cycle and cannot be set")

    def _check_models(self, exp: Experiment) -> None:
        if self.available_models is None:
            return
        available = set(self.available_models())
        for v in exp.variants:
            if v.model not in available:
                raise ExperimentError(
                    f"variant {v.name!r}: model {v.model!r} is not trained here; available: {sorted(available)}"
                )

    def _open_phase(self, exp: Experiment, reason: str) -> Experiment:
        """Close the current phase and open the next one under ``exp``'s allocation."""
        now = self.clock()
        phases = list(exp.phases)
        if phases:
            phases[-1] = phases[-1].model_copy(update={"ended_at": now})
        number = exp.phase + 1
        phases.append(
            Phase(number=number, started_at=now, variants=list(exp.variants), coverage_pct=exp.coverage_pct,
                  reason=reason)
        )
        update: dict[str, Any] = {"phase": number, "phases": phases, "layer_range": self._allocate(exp)}
        if exp.bandit is not None:
            epoch = exp.bandit.epoch + (1 if number > 1 else 0)
            self.store.record_epoch(exp.key, epoch, exp.weights, now)
            update["bandit"] = exp.bandit.model_copy(update={"epoch": epoch, "updated_at": now})
        return exp.model_copy(update=update)

    def _allocate(self, exp: Experiment) -> tuple[float, float] | None:
        """A free slice of ``exp.coverage_pct`` in its layer: the first gap left by the live experiments."""
        if exp.layer is None:
            return None
        width = exp.coverage_pct / 100.0
        taken = sorted(
            o.layer_range
            for o in self.store.load_all()
            if o.key != exp.key and o.layer == exp.layer and o.status in ("running", "paused") and o.layer_range
        )
        cursor = 0.0
        for low, high in [*taken, (1.0, 1.0)]:
            if low - cursor >= width - 1e-12:
                return (cursor, min(cursor + width, 1.0))
            cursor = max(cursor, high)
        free = 100.0 * (1.0 - sum(high - low for low, high in taken))
        raise ExperimentError(
            f"layer {exp.layer!r} has no free slice of {exp.coverage_pct:g}% (free in total: {free:.1f}%); "
            "lower the coverage or stop another experiment of the layer"
        )
