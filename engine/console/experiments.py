"""The console's side of experiments: form validation by field, audited life-cycle actions, status
badges, traffic for the sample-size calculator, and the readout as tables for display and CSV.

The experiment rules themselves live in ``engine.experiments``; this module only maps them onto
what a form and a readout page need (which field an error belongs to, which colour a result gets).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import stats

from analysis import decision as decision_rules
from engine.experiments import METRICS, Experiment, ExperimentError, ExperimentReadout, MetricResult
from engine.experiments.planning import SampleSizePlan, plan_sample_size
from engine.runtime import Engine

FORM_FIELDS = ("key", "name", "hypothesis", "kind", "variants", "coverage_pct", "layer", "goal_metric",
               "guardrail_metrics", "engine", "alpha", "power", "mde", "planned_sample_size")
GENERAL = "_form"
UNDERPOWERED_DAYS = 28.0  # a test that needs more than four weeks at current traffic cannot answer in time
TRAFFIC_SAMPLE_EVENTS = 5_000
MIN_TRAFFIC_SPAN_SECONDS = 60.0  # a rate extrapolated from less than a minute of events is noise
ACTIONS = ("start", "pause", "stop")
MAX_VARIANTS = 6
ALLOWED = {"draft": ("start",), "running": ("pause", "stop"), "paused": ("start", "stop"), "stopped": ()}
Direction = Literal["better", "worse", "inconclusive", "no data"]

# model-level problems (no field location) are routed to the field they are about
_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"guardrail"), "guardrail_metrics"),
    (re.compile(r"unknown metric"), "goal_metric"),
    (re.compile(r"variant|weight"), "variants"),
    (re.compile(r"bandit"), "kind"),
)


def _field_of(problem: str, spec: Mapping[str, Any]) -> str:
    if "unknown metric" in problem:
        bad = re.search(r"unknown metric '([^']*)'", problem)
        if bad and bad.group(1) in (spec.get("guardrail_metrics") or []):
            return "guardrail_metrics"
    return next((field for pattern, field in _ROUTES if pattern.search(problem)), GENERAL)


def form_errors(spec: Mapping[str, Any], available_models: Iterable[str]) -> dict[str, list[str]]:
    """Problems of an experiment spec by form field (``_form`` for the rest); empty when valid."""
    errors: dict[str, list[str]] = {}
    try:
        exp = Experiment.model_validate(dict(spec))
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            loc = err["loc"]
            if loc:
                field = str(loc[0]) if loc[0] in FORM_FIELDS else GENERAL
                where = ".".join(str(p) for p in loc[1:])
                text = f"{where}: {message}" if where and field == "variants" else message
                errors.setdefault(field, []).append(text)
            else:
                for problem in message.split("; "):
                    errors.setdefault(_field_of(problem, spec), []).append(problem)
        return errors
    available = set(available_models)
    missing = [f"variant {v.name!r}: model {v.model!r} is not trained here" for v in exp.variants
               if v.model not in available]
    if missing:
        errors["variants"] = [*missing, f"available: {sorted(available)}"]
    return errors


def _audit(engine: Engine, actor: str, action: str, key: str, detail: str) -> None:
    engine.audit.record(actor, f"experiment_{action}", target=key, detail=detail)


def create(engine: Engine, spec: Mapping[str, Any], actor: str) -> Experiment:
    exp = _service(engine).create(spec)
    _audit(engine, actor, "create", exp.key, f"{len(exp.variants)} variants, goal {exp.goal_metric}")
    return exp


def update(engine: Engine, key: str, changes: Mapping[str, Any], expected_version: int, actor: str) -> Experiment:
    exp = _service(engine).update(key, changes, expected_version=expected_version)
    _audit(engine, actor, "update", key, f"version {exp.version}, phase {exp.phase}, fields {sorted(changes)}")
    return exp


def transition(engine: Engine, key: str, action: str, actor: str) -> Experiment:
    """start, pause or stop; ``ExperimentError`` when the state does not allow it."""
    if action not in ACTIONS:
        raise ExperimentError(f"unknown action {action!r}; one of {ACTIONS}")
    exp = getattr(_service(engine), action)(key)
    _audit(engine, actor, action, key, f"now {exp.status}, phase {exp.phase}")
    return exp


def _service(engine: Engine) -> Any:
    if engine.experiments is None or not hasattr(engine.experiments, "create"):
        raise ExperimentError("experiments are not available in this engine")
    return engine.experiments


# ------------------------------------------------------------------------------ planning


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


def compact(value: float) -> str:
    for suffix, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:,.0f}"


def duration_text(days: float | None) -> str:
    if days is None or not math.isfinite(days):
        return "no traffic measured yet to estimate the duration"
    if days < 1:
        return f"about {days * 24:.1f} hours at current traffic"
    return f"about {days:.1f} days at current traffic"


def plan(
    goal_metric: str, baseline: float, mde: float, alpha: float, power: float, weights: Sequence[float],
    traffic_per_day: float | None, coverage_pct: float = 100.0, std: float | None = None,
) -> SampleSizePlan:
    """Sample size for the goal metric; ``ValueError`` with a readable message when not computable."""
    spec = METRICS.get(goal_metric)
    if spec is None:
        raise ValueError(f"unknown metric {goal_metric!r}")
    metric_type: Literal["binomial", "mean"] = "mean" if spec.kind == "mean" else "binomial"
    if len(weights) < 2 or any(w <= 0 for w in weights):
        raise ValueError("the calculator needs at least two variants with positive weights")
    total = sum(weights)
    traffic = traffic_per_day * coverage_pct / 100.0 if traffic_per_day else None
    return plan_sample_size(baseline, mde, metric_type=metric_type, std=std, alpha=alpha, power=power,
                            variants=len(weights), users_per_day=traffic,
                            weights=tuple(w / total for w in weights))


# ------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class Badge:
    label: str  # healthy, SRM, underpowered, ready to decide
    color: str
    reason: str


def peeking(readout: ExperimentReadout) -> bool:
    """A fixed-horizon verdict read before its planned sample size: a peek (:func:`analysis.decision.peeking`)."""
    return decision_rules.peeking(readout.engine, readout.progress.fraction)


def status_badge(readout: ExperimentReadout) -> Badge:
    """SRM, underpowered, ready to decide or healthy, in that order of precedence.

    Underpowered: the planned sample is smaller than the MDE needs at the observed baseline, or
    reaching it takes more than four weeks at current traffic.  Ready: the planned sample is
    reached, or an engine that may be read at any time (sequential, Bayesian) has a verdict.
    """
    if readout.srm_flag:
        return Badge("SRM", "red", f"sample ratio mismatch (p = {readout.srm_p_value:.2g}): do not trust the numbers")
    progress = readout.progress
    goal = readout.goal.readout
    required = goal.required_users_per_arm if goal is not None else None
    planned = progress.planned_per_variant
    if progress.source == "planned" and required and planned and planned < required:
        return Badge("underpowered", "orange", f"planned {planned:,} users per variant but the MDE needs "
                                               f"{required:,} at the observed baseline")
    verdict = readout.decision.action in decision_rules.VERDICTS
    if decision_rules.ready_to_decide(readout.engine, readout.decision.action, progress.fraction):
        return Badge("ready to decide", "blue", readout.decision_text)
    days = goal.decision.days_remaining if goal is not None else None
    if days is not None and days > UNDERPOWERED_DAYS:
        return Badge("underpowered", "orange", f"about {days:.0f} more days to reach the sample size at current "
                                               "traffic")
    if verdict and peeking(readout):
        return Badge("healthy", "green", f"collecting: {progress.fraction:.0%} of the planned sample; the current "
                                         f"frequentist verdict ({readout.decision_text}) is a peek")
    return Badge("healthy", "green", readout.decision_text)


# ------------------------------------------------------------------------------ readout tables


def direction(result: Any, engine: str) -> Direction:
    if result.lift_abs is None:
        return "no data"
    if engine == "bayesian":
        ctw = result.chance_to_win
        if ctw is None:
            return "inconclusive"
        return "better" if ctw >= 0.95 else "worse" if ctw <= 0.05 else "inconclusive"
    if not result.significant:
        return "inconclusive"
    return "better" if result.lift_abs > 0 else "worse"


def readout_table(readout: ExperimentReadout) -> pd.DataFrame:
    """One row per metric × treatment: control and variant values, relative lift and its interval,
    the p-value (frequentist, sequential) or chance to win (Bayesian), and the direction."""
    rows = []
    for m in (readout.goal, *readout.guardrails, *readout.secondary):
        rows.extend(_metric_rows(m, readout.engine))
    columns = ["metric", "role", "variant", "users", "control", "value", "lift", "ci_low", "ci_high", "p_value",
               "chance_to_win", "direction", "note"]
    return pd.DataFrame(rows, columns=columns)


def _metric_rows(m: MetricResult, engine: str) -> list[dict[str, Any]]:
    if m.readout is None:
        return [{"metric": m.metric, "role": m.role, "variant": "–", "direction": "no data", "note": m.error or ""}]
    rows = []
    for r in m.readout.results:
        ci = r.ci_rel or (None, None)
        rows.append({
            "metric": m.metric, "role": m.role, "variant": r.variant, "users": r.users,
            "control": r.control_mean, "value": r.mean, "lift": r.lift_rel, "ci_low": ci[0], "ci_high": ci[1],
            "p_value": None if engine == "bayesian" else (
                r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value),
            "chance_to_win": r.chance_to_win, "direction": direction(r, engine), "note": "; ".join(r.messages),
        })
    return rows


def arms_table(readout: ExperimentReadout) -> pd.DataFrame:
    total = sum(a.users for a in readout.arms)
    return pd.DataFrame([{
        "variant": a.name, "model": a.model, "weight": a.weight, "users": a.users,
        "expected share": e, "observed share": a.users / total if total else None,
        **{k: v for k, v in a.totals.items() if k in ("impressions", "clicks", "purchases")},
    } for a, e in zip(readout.arms, readout.expected_shares, strict=True)])


def series_frame(points: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Cumulative relative lift per day and variant from ``ExperimentService.time_series``."""
    rows = []
    for p in points:
        for r in p.get("results") or []:
            ci = r.get("ci_rel") or (None, None)
            rows.append({"day": p["day"], "variant": r["variant"], "lift": r.get("lift_rel"),
                         "ci_low": ci[0], "ci_high": ci[1], "p_value": r.get("p_value")})
    return pd.DataFrame(rows, columns=["day", "variant", "lift", "ci_low", "ci_high", "p_value"])


def posterior_curves(readout: ExperimentReadout, points: int = 200) -> pd.DataFrame:
    """Density of each treatment's relative lift on the goal metric: a normal matched to the Bayesian
    credible interval (an approximation of the posterior, for display)."""
    goal = readout.goal.readout
    rows: list[dict[str, Any]] = []
    if goal is None:
        return pd.DataFrame(columns=["variant", "lift", "density"])
    for r in goal.results:
        b = r.bayesian
        if b is None or b.lift_rel is None or b.ci_rel is None:
            continue
        z = stats.norm.ppf(0.5 + b.ci_level / 2)
        sd = (b.ci_rel[1] - b.ci_rel[0]) / (2 * z)
        if not sd > 0:
            continue
        xs = np.linspace(b.lift_rel - 4 * sd, b.lift_rel + 4 * sd, points)
        rows.extend({"variant": r.variant, "lift": x, "density": d}
                    for x, d in zip(xs, stats.norm.pdf(xs, b.lift_rel, sd), strict=True))
    return pd.DataFrame(rows, columns=["variant", "lift", "density"])
