"""Scheduled retraining: the served dataset's models retrained on the events logged since, as candidates.

``recops up`` with ``RECOPS_RETRAIN_EVERY`` set starts ``recops retrain --every ...``, which runs
``run_schedule``: every ``every`` seconds (the first time one interval after the start) it calls
``retrain_once``, which

1. takes the models the dataset serves (those with a production version on it);
2. per model, decides from its newest version on the dataset (any stage: a candidate an earlier run
   made counts) whether anything new arrived (``decide``, pure).  New events are the logged events
   now (catalogue-checked, up to this moment) minus the version's lineage ``events``: the log only
   grows (append-only, one row per event id), so the difference is exactly what the version has not
   seen — events that arrive late with older timestamps (a spool replayed after a Redis outage, a
   client's own clock) included, which comparing timestamps with its ``events_to`` alone would miss.
   A dataset version other than the one the version learnt from makes the model due as well;
3. retrains the due models with their production version's hyper-parameters through
   ``train_models`` (dataset + logged events, both holdouts scored, lineage recorded).  Every new
   version is a candidate: the registry's ``save`` makes only the first version of a model on a
   dataset production, and only models that already have one are retrained.  Nothing here promotes;
4. writes the run to the audit log (action ``retrain_models``, or ``retrain_failed``) and the log.
   A skipped run wrote nothing, so it is logged but not audited.

A run that fails (a dataset that cannot be read any more, an audit log that does not answer) is
logged and the schedule goes on: the next tick tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.config import Settings
from engine.data.dataset_store import open_dataset
from engine.models.lifecycle import AuditSink
from engine.models.lineage import utc_iso
from engine.models.registry import ModelRegistry, VersionRecord
from engine.models.training import TRAINING_REFUSALS, TrainingOptions, TrainingResult, logged_events, train_models

log = logging.getLogger(__name__)

ACTOR = "schedule"
TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"


# ---- due times (pure) ------------------------------------------------------------------------


def first_due(started: float, every: float) -> float:
    """The first run: one interval after the start (the models were just prepared or loaded)."""
    return started + every


def next_due(previous_due: float, every: float, now: float) -> float:
    """The first time after ``now`` on the grid ``previous_due + k·every`` (k ≥ 1).

    A run that took longer than the interval does not queue the ticks it missed: the schedule
    resumes at its next tick instead of running back to back.
    """
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    missed = max(int((now - previous_due) // every), 0)
    return previous_due + (missed + 1) * every


# ---- what is due (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainDecision:
    model: str
    latest: str | None  # the newest version on the dataset
    new_events: int  # logged events that version did not learn from
    due: bool
    reason: str


def decide(model: str, latest: VersionRecord | None, logged_count: int, dataset_version: int) -> RetrainDecision:
    """Whether ``model`` is due, from its newest version's lineage (see the module docstring, 2)."""
    if latest is None:
        return RetrainDecision(model, None, logged_count, True, "no version yet")
    seen = int(latest.lineage.get("events") or 0)
    new = max(logged_count - seen, 0)
    learnt_from = latest.lineage.get("dataset_version")
    if learnt_from is not None and learnt_from != dataset_version:
        return RetrainDecision(model, latest.version, new, True,
                               f"dataset version {dataset_version} (the newest version learnt from {learnt_from})")
    if new:
        return RetrainDecision(model, latest.version, new, True, f"{new:,} new events since {latest.version}")
    until = latest.lineage.get("events_to") or "none logged"
    return RetrainDecision(model, latest.version, 0, False,
                           f"no new events since {latest.version} (events up to {until})")


# ---- one run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainRun:
    dataset: str
    started_at: float
    decisions: list[RetrainDecision] = field(default_factory=list)
    trained: list[TrainingResult] = field(default_factory=list)
    logged: int = 0  # logged events learnt from (catalogue-checked, up to the start)
    dataset_version: int | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        return FAILED if self.error is not None else TRAINED if self.trained else SKIPPED

    def summary(self) -> str:
        """One line for the log and the audit entry's detail."""
        at = utc_iso(self.started_at)
        if self.error is not None:
            return f"{at} retrain of {self.dataset} failed: {self.error}"
        if not self.trained:
            why = "; ".join(f"{d.model}: {d.reason}" for d in self.decisions) or "no model serves it"
            return f"{at} retrain of {self.dataset} skipped: {why}"
        made = ", ".join(f"{r.model} {r.version} ({r.stage})" for r in self.trained)
        return (f"{at} retrained {self.dataset} v{self.dataset_version} with {self.logged:,} logged events: {made}")


def newest_version(registry: ModelRegistry, model: str, dataset: str) -> VersionRecord | None:
    versions = registry.versions(model, dataset)  # oldest first
    return registry.record(model, versions[-1]) if versions else None


def retrain_once(settings: Settings, dataset: str, audit: AuditSink, now: float | None = None,
                 actor: str = ACTOR) -> RetrainRun:
    """Check ``dataset``'s served models and retrain the due ones as candidates (module docstring)."""
    started = time.time() if now is None else now
    registry = ModelRegistry(settings.models_dir)
    try:
        stored = open_dataset(settings, dataset)
        served = registry.served(dataset)
        logged = logged_events(settings, stored, until=started)
        decisions = [decide(name, newest_version(registry, name, dataset), logged.count, stored.version)
                     for name in sorted(served)]
        due = [d.model for d in decisions if d.due]
        if not due:
            run = RetrainRun(dataset, started, decisions, logged=logged.count, dataset_version=stored.version)
            log.info("%s", run.summary())
            return run
        # production's recipe on the newer data: a retrain changes what is learnt from, not how
        params = {name: dict(registry.record(name, served[name]).lineage.get("params") or {}) for name in due}
        options = TrainingOptions(holdout_days=settings.holdout_days, ease_max_items=settings.ease_max_items,
                                  ann_min_items=settings.ann_min_items)
        trained = train_models(stored, registry, due, params, options, log.info, logged)
    except TRAINING_REFUSALS as exc:
        run = RetrainRun(dataset, started, error=" ".join(str(exc).split()))
        log.error("%s", run.summary())
        audit.record(actor, "retrain_failed", target=dataset, detail=run.error or "")
        return run
    run = RetrainRun(dataset, started, decisions, trained, logged.count, stored.version)
    log.info("%s", run.summary())
    audit.record(actor, "retrain_models", target=f"{dataset}:v{stored.version}", keys=0,
                 detail=", ".join(f"{r.model} {r.version} ({r.stage})" for r in trained)
                 + f"; {logged.count:,} logged events")
    return run


# ---- the schedule ------------------------------------------------------------------------------


def run_schedule(
    settings: Settings,
    dataset: str,
    every: float,
    audit: AuditSink,
    stop: threading.Event,
    report: Callable[[RetrainRun], None] | None = None,
    runs: int | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run ``retrain_once`` every ``every`` seconds until ``stop`` is set (or ``runs`` runs were made);
    returns the number of runs.  ``report`` gets each run (the CLI prints its summary)."""
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    due = first_due(clock(), every)
    done = 0
    while runs is None or done < runs:
        if stop.wait(max(due - clock(), 0.0)):
            break
        try:
            run = retrain_once(settings, dataset, audit)
        except Exception as exc:  # one bad run (Redis gone for the audit entry, a disk error) must not end the schedule
            log.exception("retrain of %s failed", dataset)
            run = RetrainRun(dataset, clock(), error=f"{type(exc).__name__}: {exc}")
        done += 1
        if report is not None:
            report(run)
        due = next_due(due, every, clock())
    return done
