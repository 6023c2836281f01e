"""ExperimentService: one object over the experiment parts, as the API, the console and the CLI use it.

    >>> experiments = ExperimentService(redis_client, keys, covariates=PreExposure.from_dataset(dataset))
    >>> experiments.create({"key": "pop-vs-als", "name": "Popularity vs ALS",
    ...                     "variants": [{"name": "control", "model": "popularity"},
    ...                                  {"name": "als", "model": "als"}]})
    >>> experiments.start("pop-vs-als")
    >>> a = experiments.assign("u00042")             # pure: no I/O, runs on the event loop
    >>> experiments.record_exposure(a)               # one round trip, once per user and phase
    >>> experiments.observe(accepted_events)         # one pipelined round trip per batch
    >>> experiments.readout("pop-vs-als").decision_text

The parts: ``snapshot`` (the running configs serving reads, swapped whole when the global config
version in Redis changes), ``exposure`` (exposures and metric updates), ``lifecycle`` (the
management API), ``bandits`` (Thompson-sampling re-weighting) and ``readouts``.  This module wires
them and runs the background thread that polls the config version (one GET per interval) and
runs due bandit re-weightings.  Management calls refresh the snapshot of their own process at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis

from analysis.interleaving import InterleavedList
from engine.experiments.assignment import Assignment, Holdout
from engine.experiments.bandits import BanditReweighter
from engine.experiments.covariates import PreExposure
from engine.experiments.diagnostics import ReadoutDiagnostics
from engine.experiments.exposure import ExposureRecorder
from engine.experiments.interleaving import ClickedEvent, InterleavingRecorder
from engine.experiments.lifecycle import ExperimentLifecycle
from engine.experiments.model import Experiment
from engine.experiments.quality import Catalog, Counterfactual, ServedList
from engine.experiments.readouts import ReadoutReader
from engine.experiments.results import ExperimentReadout
from engine.experiments.snapshot import ConfigSnapshot
from engine.experiments.store import ExperimentStore
from engine.models.model_spec import SpecResolver
from engine.storage.keys import Keys

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0


class ExperimentService:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        covariates: PreExposure | None = None,
        available_models: Callable[[], Iterable[str]] | None = None,
        resolver: SpecResolver | None = None,
        registry_generation: Callable[[], object] | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
        catalog: Callable[[], Catalog | None] | None = None,
        attributes: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.store = ExperimentStore(client, keys)
        self.covariates = covariates if covariates is not None else PreExposure()
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.resolver = resolver
        self.snapshot = ConfigSnapshot(self.store, resolver, registry_generation)
        self.exposures = ExposureRecorder(client, keys, self.snapshot, self.covariates, clock, attributes)
        self.interleaving = InterleavingRecorder(client, keys, self.snapshot)
        self.lifecycle = ExperimentLifecycle(
            client, keys, self.store, on_change=lambda: self.refresh(force=True),
            available_models=available_models, resolver=resolver, clock=clock,
        )
        self.bandits = BanditReweighter(self.lifecycle)
        self.readouts = ReadoutReader(self.store, clock, resolver, self.interleaving)
        self.diagnostics = ReadoutDiagnostics(self.store, clock, catalog)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ================================================================== serving hook
    def assign(self, user_id: str) -> Assignment | None:
        """The user's experiment and variant from the in-process snapshot (never any I/O)."""
        return self.snapshot.assign(user_id)

    def already_exposed(self, assignment: Assignment) -> bool:
        return self.exposures.already_exposed(assignment)

    def record_exposure(self, assignment: Assignment | None, served: ServedList | None = None) -> bool:
        return self.exposures.record_exposure(assignment, served)

    def interleave(
        self, assignment: Assignment, request_id: str, list_a: Sequence[str], list_b: Sequence[str], n: int
    ) -> InterleavedList:
        """An interleaving experiment's merged list for one request, its impression recorded."""
        return self.interleaving.serve(assignment, request_id, list_a, list_b, n)

    def observe(self, events: Iterable[ClickedEvent]) -> int:
        """Fold events into the running statistics; clicks of users in an interleaving experiment are
        also credited to the team of the item clicked.  Returns the exposure updates that counted."""
        batch = list(events)
        counted = self.exposures.observe(batch)
        self.interleaving.credit(batch)
        return counted

    # ================================================================== snapshot
    def refresh(self, force: bool = False) -> bool:
        return self.snapshot.refresh(force)

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
        return self.lifecycle.create(spec)

    def update(self, key: str, changes: Mapping[str, Any], expected_version: int | None = None) -> Experiment:
        return self.lifecycle.update(key, changes, expected_version)

    def start(self, key: str) -> Experiment:
        return self.lifecycle.start(key)

    def pause(self, key: str) -> Experiment:
        return self.lifecycle.pause(key)

    def stop(self, key: str) -> Experiment:
        return self.lifecycle.stop(key)

    def delete(self, key: str) -> int:
        return self.lifecycle.delete(key)

    def holdout(self) -> Holdout:
        return self.store.holdout()

    def set_holdout(self, pct: float, salt: str = "global") -> Holdout:
        return self.lifecycle.set_holdout(pct, salt)

    # ================================================================== readouts
    def readout(
        self,
        key: str,
        phase: int | None = None,
        metrics: Sequence[str] | None = None,
        engine: str | None = None,
        by: Sequence[str] = (),
    ) -> ExperimentReadout:
        return self.readouts.readout(key, phase, metrics, engine, by)

    def time_series(self, key: str, metric: str | None = None, phase: int | None = None) -> list[dict[str, Any]]:
        return self.readouts.time_series(key, metric, phase)

    def report(
        self, key: str, phase: int | None = None, engine: str | None = None,
        counterfactual: Counterfactual | None = None,
    ) -> dict[str, Any]:
        """``health``, ``quality`` and ``timeseries`` of a phase (``engine.experiments.diagnostics``)."""
        return self.diagnostics.report(key, phase, engine, counterfactual)

    # ================================================================== bandits
    def recompute_bandit_weights(self, key: str) -> Experiment:
        return self.bandits.recompute(key)

    def run_due_bandits(self) -> list[str]:
        """Re-weight every running bandit whose interval has passed (one process wins each lease)."""
        return self.bandits.run_due(self.snapshot.configs())
