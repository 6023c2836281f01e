"""The console's side of experiments: the service, the list as the pages show it, audited life-cycle
actions, and the traffic an experiment can get.

The experiment rules themselves live in ``engine.experiments``; the editor's form is
``experiment_form``, the readout's tables and charts ``readout_view``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from engine.console.formatting import MISSING, when
from engine.console.notices import Notice
from engine.experiments import Experiment, ExperimentError, ExperimentReadout
from engine.experiments.readout_document import dimension_checks
from engine.runtime import Engine

ACTIONS = ("start", "pause", "stop")
ALLOWED: dict[str, tuple[str, ...]] = {"draft": ("start",), "running": ("pause", "stop"), "paused": ("start", "stop"),
                                       "stopped": ()}
TRAFFIC_SAMPLE_EVENTS = 5_000
MIN_TRAFFIC_SPAN_SECONDS = 60.0  # a rate extrapolated from less than a minute of events is noise
STATUS_BACKGROUND = {"running": "#dcfce7", "paused": "#ffedd5", "stopped": "#ede9fe", "draft": "#f1f5f9"}
DEMO_BANNER = "demo experiment; create your own in Experiments"


# ------------------------------------------------------------------------------ the list


def listed(engine: Engine) -> list[Experiment]:
    """Every experiment, running ones first, then the most recently started or created."""
    return sorted(engine.experiments.list_experiments(),
                  key=lambda e: (e.status != "running", -(e.start_time or e.created_at)))


def get(engine: Engine, key: str) -> Experiment:
    """``NotFoundError`` when there is no experiment ``key``."""
    return engine.experiments.get(key)


def listing(exps: Sequence[Experiment]) -> Styler:
    """The list of experiments as a table, the status cell coloured and the coverage a percentage."""
    frame = pd.DataFrame([{
        "key": e.key, "name": e.name, "status": e.status, "kind": e.kind, "phase": e.phase,
        "variants": ", ".join(f"{v.name}: {v.model} ({v.weight:.0%})" for v in e.variants),
        "coverage": e.coverage_pct / 100, "layer": e.layer or MISSING, "goal": e.goal_metric,
        "started": when(e.start_time) if e.start_time else MISSING,
    } for e in exps])
    return frame.style.map(lambda s: f"background-color: {STATUS_BACKGROUND.get(s, '')}", subset=["status"]) \
        .format({"coverage": "{:.0%}"})


def demo_notice(exps: Sequence[Experiment]) -> Notice | None:
    """The banner over a page showing the demo experiment (``recops up``'s first start), else None."""
    demos = [e.key for e in exps if e.demo]
    if not demos:
        return None
    named = ", ".join(f"`{k}`" for k in demos)
    return Notice("info", f"**{DEMO_BANNER}.** {named}: created by `recops up` on the first start and filled by "
                  "the simulator's traffic. Stop or delete it when you no longer need it; it is not created again.",
                  ":material/science:")


def running(exps: Sequence[Experiment]) -> list[Experiment]:
    return [e for e in exps if e.status == "running"]


def started(exps: Sequence[Experiment]) -> list[Experiment]:
    """The experiments that have a readout (they ran at least once)."""
    return [e for e in exps if e.phase > 0]


def key_labels(exps: Sequence[Experiment]) -> dict[str, str]:
    """Each experiment's key with its name, for a select box."""
    return {e.key: f"{e.key} — {e.name}" for e in exps}


def phases(exp: Experiment) -> list[int]:
    """The phases a readout can show, the current one first."""
    return list(range(exp.phase, 0, -1))


# ------------------------------------------------------------------------------ life cycle


def allowed_actions(exp: Experiment) -> tuple[str, ...]:
    return ALLOWED.get(exp.status, ())


def consequence(action: str, exp: Experiment) -> str:
    """What confirming ``action`` on ``exp`` does, said before the operator confirms it."""
    return {
        "start": "Users start being assigned and exposed; statistics are collected from now on."
        if exp.status == "draft" else "Assignment and statistics resume in the same phase.",
        "pause": "No new exposures and no metric updates; users keep their variants for when it resumes.",
        "stop": "Final: the experiment cannot restart, and its layer slice is freed. The readout stays.",
    }[action]


def _audit(engine: Engine, actor: str, action: str, key: str, detail: str) -> None:
    engine.audit.record(actor, f"experiment_{action}", target=key, detail=detail)


def create(engine: Engine, spec: Mapping[str, Any], actor: str) -> Experiment:
    exp = engine.experiments.create(spec)
    _audit(engine, actor, "create", exp.key, f"{len(exp.variants)} variants, goal {exp.goal_metric}")
    return exp


def update(engine: Engine, key: str, changes: Mapping[str, Any], expected_version: int, actor: str) -> Experiment:
    exp = engine.experiments.update(key, changes, expected_version=expected_version)
    _audit(engine, actor, "update", key, f"version {exp.version}, phase {exp.phase}, fields {sorted(changes)}")
    return exp


def transition(engine: Engine, key: str, action: str, actor: str) -> Experiment:
    """start, pause or stop; ``ExperimentError`` when the state does not allow it."""
    if action not in ACTIONS:
        raise ExperimentError(f"unknown action {action!r}; one of {ACTIONS}")
    svc = engine.experiments
    exp = {"start": svc.start, "pause": svc.pause, "stop": svc.stop}[action](key)
    _audit(engine, actor, action, key, f"now {exp.status}, phase {exp.phase}")
    return exp


def run_confirmed(engine: Engine, action: Mapping[str, str], actor: str) -> Notice:
    """Run the transition a confirmation dialog stored (``{"action": ..., "key": ...}``); what happened."""
    try:
        exp = transition(engine, action["key"], action["action"], actor)
    except ExperimentError as exc:
        return Notice("error", f"Could not {action['action']} `{action['key']}`: {exc}")
    return Notice("success", f"`{exp.key}` is now **{exp.status}** (phase {exp.phase}).")


# ------------------------------------------------------------------------------ reads


def readout(engine: Engine, key: str, phase: int | None = None, decision_engine: str | None = None
            ) -> ExperimentReadout:
    return engine.experiments.readout(key, phase=phase, engine=decision_engine)


def breakdown(engine: Engine, key: str, dimension: str, phase: int | None = None) -> dict[str, Any]:
    """The goal's breakdown by one user dimension (``engine.experiments.breakdowns``), with its cells'
    sample-ratio check under ``srm`` (the readout's ``srm_by_dimension``; None when there are no cells)."""
    readout = engine.experiments.readout(key, phase=phase, by=[dimension])
    checks = dimension_checks(readout)
    return {**readout.breakdowns[0], "srm": checks[0].to_dict() if checks else None}


def dimensions(engine: Engine) -> list[str]:
    """The user dimensions exposures record (the served dataset's users table; none: no breakdowns)."""
    attributes = engine.experiments.exposures.attributes
    return list(getattr(attributes, "names", []) or [])


def users_per_day(engine: Engine, sample: int = TRAFFIC_SAMPLE_EVENTS) -> float | None:
    """Distinct users per day in the latest events of the stream: the traffic an experiment can get.

    Extrapolated from the window the latest events cover, and capped by the users the shop has (a
    small world's users all come back within a day, so the extrapolation alone would overshoot).
    """
    events = engine.events.recent(sample)
    stamps = [float(e["timestamp"]) for e in events if "timestamp" in e]
    if len(stamps) < 2:
        return None
    span = max(stamps) - min(stamps)
    if span < MIN_TRAFFIC_SPAN_SECONDS:
        return None
    users = len({e.get("user_id") for e in events})
    population = len(engine.features.source.users)
    return min(users / span * 86_400, float(max(population, users)))
