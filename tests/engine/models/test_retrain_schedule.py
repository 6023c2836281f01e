"""The retrain schedule: due times, what is due, and runs that make candidates (never production), audited,
against a real registry, event log and Redis."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.models.registry import CANDIDATE, PRODUCTION, ModelRegistry, VersionRecord
from engine.models.retrain_schedule import (
    FAILED,
    SKIPPED,
    TRAINED,
    RetrainRun,
    decide,
    first_due,
    next_due,
    retrain_once,
    run_schedule,
)
from engine.models.training import plan_training
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.imported_data import NAME, import_small_dataset
from tests.support.logged_events import log_events


def test_due_times_follow_the_grid_and_skip_missed_ticks() -> None:
    assert first_due(1_000.0, 60.0) == 1_060.0
    assert next_due(1_060.0, 60.0, 1_060.5) == 1_120.0  # the run took half a second
    assert next_due(1_060.0, 60.0, 1_119.9) == 1_120.0
    assert next_due(1_060.0, 60.0, 1_120.0) == 1_180.0  # a run that ended on the next tick missed it
    assert next_due(1_060.0, 60.0, 1_300.0) == 1_360.0  # three ticks missed: not run back to back
    assert next_due(1_060.0, 60.0, 1_000.0) == 1_120.0  # a clock that went back: still one interval on
    with pytest.raises(ValueError, match="positive"):
        next_due(0.0, 0.0, 1.0)


def record(events: int | None, dataset_version: int | None = 1, events_to: str | None = None) -> VersionRecord:
    lineage = {"dataset_version": dataset_version, "events_to": events_to}
    if events is not None:
        lineage["events"] = events
    return VersionRecord("als", "v-old", NAME, PRODUCTION, lineage)


def test_a_model_is_due_when_events_arrived_that_its_newest_version_did_not_learn() -> None:
    same = decide("als", record(5, events_to="2026-12-02T03:00:00+00:00"), 5, 1)
    assert (same.due, same.new_events) == (False, 0)
    assert same.reason == "no new events since v-old (events up to 2026-12-02T03:00:00+00:00)"
    # late events (older timestamps than events_to, e.g. replayed from the spool) count all the same
    assert (decide("als", record(5), 7, 1).due, decide("als", record(5), 7, 1).new_events) == (True, 2)
    assert decide("als", record(None, dataset_version=None), 0, 1).due is False  # saved before lineage, no log
    assert decide("als", record(None, dataset_version=None), 3, 1).new_events == 3
    assert decide("als", record(5, dataset_version=1), 5, 2).due  # a new dataset version
    assert decide("als", None, 0, 1).due


@pytest.fixture
def shop(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> tuple[Settings, ModelRegistry]:
    """The imported shop with production popularity (half-life 3 days) and ALS trained on it alone."""
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_url, holdout_days=5.0)
    import_small_dataset(settings.data_dir)
    registry = ModelRegistry(settings.models_dir)
    for model, params in (("popularity", ["half_life_days=3"]), ("als", [])):
        plan_training(settings, NAME, model=model, param_pairs=params).run(registry)
    return settings, registry


def audit_of(settings: Settings, client: redis.Redis) -> AuditLog:
    return AuditLog(client, Keys(settings.key_prefix))


def test_a_run_without_new_events_is_skipped_and_writes_nothing(
    shop: tuple[Settings, ModelRegistry], redis_client: redis.Redis
) -> None:
    settings, registry = shop
    before = registry.records(NAME)
    audit = audit_of(settings, redis_client)
    run = retrain_once(settings, NAME, audit)
    assert run.status == SKIPPED and [d.model for d in run.decisions] == ["als", "popularity"]
    assert not any(d.due for d in run.decisions)
    assert registry.records(NAME) == before and audit.recent() == []


def test_the_schedule_makes_candidates_from_new_events_and_never_touches_production(
    shop: tuple[Settings, ModelRegistry], redis_client: redis.Redis
) -> None:
    settings, registry = shop
    production = registry.served(NAME)
    audit = audit_of(settings, redis_client)
    written = log_events(settings.data_dir, NAME, [("zz-new", "A01", "purchase"), ("zz-new", "A02", "click"),
                                                  ("a03", "A07", "view")])
    runs: list[RetrainRun] = []
    started = time.monotonic()
    assert run_schedule(settings, NAME, 0.2, audit, threading.Event(), runs.append, runs=1) == 1
    assert time.monotonic() - started >= 0.2  # the first run waits one interval

    [run] = runs
    assert run.status == TRAINED and run.logged == written
    assert registry.served(NAME) == production  # nothing promoted
    made = {r.model: r for r in run.trained}
    assert sorted(made) == ["als", "popularity"] and {r.stage for r in run.trained} == {CANDIDATE}
    for name, result in made.items():
        saved = registry.record(name, result.version)
        assert saved.stage == CANDIDATE and saved.lineage["events"] == written
        assert saved.lineage["params"] == registry.record(name, production[name]).lineage["params"]
    assert registry.record("popularity", made["popularity"].version).lineage["params"] == {"half_life_days": 3.0}
    assert "zz-new" in registry.load("als", made["als"].version, dataset=NAME).user_index

    [entry] = audit.recent()
    assert (entry.actor, entry.action, entry.target) == ("schedule", "retrain_models", f"{NAME}:v1")
    assert made["als"].version in entry.detail and f"; {written} logged events" in entry.detail

    # the next tick: nothing new since the candidates, so nothing trained and nothing audited
    runs.clear()
    assert run_schedule(settings, NAME, 0.05, audit, threading.Event(), runs.append, runs=1) == 1
    assert runs[0].status == SKIPPED and "no new events since" in runs[0].summary()
    assert len(registry.records(NAME)) == 4 and len(audit.recent()) == 1

    # one more event: due again, as a candidate again
    log_events(settings.data_dir, NAME, [("zz-new", "A03", "view")])
    run = retrain_once(settings, NAME, audit)
    assert run.status == TRAINED and {r.stage for r in run.trained} == {CANDIDATE}
    assert registry.served(NAME) == production and len(audit.recent()) == 2


def test_a_failed_run_is_audited_and_the_schedule_stops_when_asked(
    shop: tuple[Settings, ModelRegistry], redis_client: redis.Redis
) -> None:
    settings, _ = shop
    audit = audit_of(settings, redis_client)
    run = retrain_once(settings, "nowhere", audit)
    assert run.status == FAILED and "no dataset named 'nowhere'" in (run.error or "")
    [entry] = audit.recent()
    assert (entry.action, entry.target) == ("retrain_failed", "nowhere")

    stop = threading.Event()
    stop.set()
    assert run_schedule(settings, NAME, 3_600.0, audit, stop) == 0  # returns at once, no run
