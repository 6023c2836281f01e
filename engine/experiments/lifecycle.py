"""The management side of experiments: create, change, start, pause, stop, delete, the holdout.

    draft ──start──▶ running ──pause──▶ paused ──start──▶ running ──stop──▶ stopped
      └──delete                                                              └──delete

Every change is an optimistic update of the stored config (``ExperimentStore.update``); the ones
that allocate a layer slice also hold a Redis lock so that two starts cannot take one slice.
After each change ``on_change`` runs (the service reloads its own process's snapshot at once).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from engine.experiments.assignment import Holdout
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
from engine.experiments.store import ExperimentStore
from engine.models.model_spec import ModelSpecError, SpecResolver
from engine.storage.keys import Keys

LAYER_LOCK_SECONDS = 5.0


class ExperimentLifecycle:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        store: ExperimentStore,
        *,
        on_change: Callable[[], object],
        available_models: Callable[[], Iterable[str]] | None = None,
        resolver: SpecResolver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.store = store
        self.on_change = on_change
        self.available_models = available_models
        self.resolver = resolver
        self.clock = clock

    def create(self, spec: Mapping[str, Any] | Experiment) -> Experiment:
        """A new draft; ``spec`` holds the user fields (life-cycle fields are refused)."""
        data = spec.model_dump(exclude=set(MANAGED_FIELDS) - {"key"}) if isinstance(spec, Experiment) else dict(spec)
        _refuse_managed(data, allow_key=True)
        now = self.clock()
        exp = parse_experiment({**data, "status": "draft", "version": 1, "created_at": now, "updated_at": now})
        self._check_models(exp)
        self.store.insert(exp)
        self.on_change()
        return exp

    def update(self, key: str, changes: Mapping[str, Any], expected_version: int | None = None) -> Experiment:
        """Change user fields.  On a started experiment, changing the allocation opens a new phase."""
        changes = dict(changes)
        _refuse_managed(changes)
        if changes.get("kind") in ("ab", "interleaving"):
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

        return self.write(key, change, expected_version, allocates=True)

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

        return self.write(key, change, allocates=True)

    def pause(self, key: str) -> Experiment:
        """running → paused: no new exposures and no metric updates; users keep their variants."""

        def change(exp: Experiment) -> Experiment:
            if exp.status != "running":
                raise ExperimentError(f"experiment {key!r} is {exp.status}; only a running experiment can pause")
            return exp.model_copy(update={"status": "paused"})

        return self.write(key, change)

    def stop(self, key: str) -> Experiment:
        """running or paused → stopped (final); its layer slice is freed."""

        def change(exp: Experiment) -> Experiment:
            if exp.status not in ("running", "paused"):
                hint = "; delete a draft instead" if exp.status == "draft" else ""
                raise ExperimentError(f"experiment {key!r} is {exp.status}; it cannot stop{hint}")
            now = self.clock()
            phases = [*exp.phases[:-1], exp.phases[-1].model_copy(update={"ended_at": now})]
            return exp.model_copy(update={"status": "stopped", "stop_time": now, "phases": phases, "layer_range": None})

        return self.write(key, change)

    def delete(self, key: str) -> int:
        """Remove a draft or stopped experiment and all its statistics."""
        exp = self.store.load(key)
        if exp.status in ("running", "paused"):
            raise ExperimentError(f"experiment {key!r} is {exp.status}: stop it before deleting it")
        deleted = self.store.delete(exp)
        self.on_change()
        return deleted

    def set_holdout(self, pct: float, salt: str = "global") -> Holdout:
        if not 0.0 <= pct < 100.0:
            raise ExperimentError(f"holdout must be in [0, 100) percent, got {pct}")
        holdout = Holdout(pct=float(pct), salt=salt)
        self.store.set_holdout(holdout)
        self.on_change()
        return holdout

    def write(
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
        self.on_change()
        return new

    def _check_models(self, exp: Experiment) -> None:
        """Every variant's spec names a version of the served dataset: refused at save, not at serve."""
        if self.resolver is not None:
            problems = []
            for v in exp.variants:
                try:
                    self.resolver(v.model)
                except ModelSpecError as exc:
                    problems.append(f"variant {v.name!r}: {exc}")
            if problems:
                raise ExperimentError("; ".join(problems), "variants")
            return
        if self.available_models is None:
            return
        available = set(self.available_models())
        for v in exp.variants:
            if v.spec.name not in available:
                raise ExperimentError(
                    f"variant {v.name!r}: model {v.model!r} is not trained here; available: {sorted(available)}",
                    "variants",
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


def _refuse_managed(data: Mapping[str, Any], allow_key: bool = False) -> None:
    managed = sorted(set(data) & (MANAGED_FIELDS - ({"key"} if allow_key else set())))
    if managed:
        raise ExperimentError(f"fields {managed} are managed by the experiment's life cycle and cannot be set")
