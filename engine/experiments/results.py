"""An experiment's readout from its stored statistics: pure functions, no I/O.

The decision is the goal metric's: :func:`analysis.readout.analyze` with the experiment's engine
(frequentist by default: Welch t on the per-user delta-method estimate for ratio metrics such as
CTR, CUPED-adjusted t for per-user means, z for proportions; Holm across treatments), its alpha,
power and MDE, on one phase.  A sample ratio mismatch against the configured weights makes the
readout untrustworthy whatever the lifts say.  Guardrails are analysed the same way but separately:
a guardrail that is significantly worse for the winning variant turns "ship" into "hold".
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from analysis.decision import experiment_decision, significantly_worse
from analysis.decision_rules import DecisionSettings, MetricOutcome
from analysis.readout import AnalysisSettings, Readout, analyze
from analysis.sequential import SequentialPlan
from engine.experiments.arm_stats import ArmStats, cumulate, summaries
from engine.experiments.custom_results import UnitTable, capped_summaries, custom_summaries
from engine.experiments.declared_decision import declared_verdict
from engine.experiments.metric_definitions import MetricDefinition, declarations
from engine.experiments.metrics import COUNTERS, METRICS, MetricKind, MetricSpec
from engine.experiments.model import Experiment, ExperimentError, Variant

Role = Literal["goal", "guardrail", "secondary"]
MIN_DAYS_FOR_RATE = 1.0 / 24  # traffic per day is extrapolated only from at least an hour of data


def json_safe(value: Any) -> Any:
    """Dataclasses, tuples and numpy scalars to JSON types; NaN and ±inf to ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        return json_safe(asdict(value))
    if hasattr(value, "item"):
        return json_safe(value.item())
    return value


@dataclass(frozen=True)
class MetricResult:
    metric: str
    kind: MetricKind
    role: Role
    description: str
    readout: Readout | None
    error: str | None = None
    direction: str = "higher"
    cap: dict[str, Any] | None = None  # the cap applied (``analysis.capping.AppliedCap``), when declared

    def worse(self) -> list[str]:
        """Treatments significantly worse than the control on this metric, in its direction."""
        if self.readout is None:
            return []
        engine = self.readout.decision_engine
        return [r.variant for r in self.readout.results
                if significantly_worse(engine, r.significant, r.lift_abs, r.chance_to_win, self.direction == "lower")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
            "role": self.role,
            "description": self.description,
            "error": self.error,
            "direction": self.direction,
            "cap": self.cap,
            "readout": self.readout.to_dict() if self.readout is not None else None,
        }


@dataclass(frozen=True)
class ArmInfo:
    name: str
    model: str
    weight: float
    users: int
    totals: dict[str, float]  # counter -> sum over the arm's units


@dataclass(frozen=True)
class Progress:
    planned_per_variant: int | None
    source: Literal["planned", "required", "none"]
    min_users: int
    fraction: float | None


@dataclass(frozen=True)
class ExperimentDecision:
    action: str  # analysis' actions, plus "hold" (a winner that breaks a guardrail)
    text: str
    variant: str | None = None
    guardrail_failures: dict[str, list[str]] = field(default_factory=dict)
    rule: str = ""  # the rule that decided (``engine.experiments.declared_decision``)
    reason: str = ""
    metric: str | None = None
    outcomes: tuple[MetricOutcome, ...] = ()


@dataclass(frozen=True)
class ExperimentReadout:
    key: str
    name: str
    kind: str
    status: str
    phase: int
    phases: int
    engine: str
    control: str
    arms: tuple[ArmInfo, ...]
    goal: MetricResult
    guardrails: tuple[MetricResult, ...]
    secondary: tuple[MetricResult, ...]
    srm_p_value: float
    srm_flag: bool
    expected_shares: tuple[float, ...]
    progress: Progress
    decision: ExperimentDecision
    decision_text: str
    bandit: dict[str, Any] | None
    messages: tuple[str, ...]
    generated_at: float
    # what each arm served: ``engine.experiments.served`` (filled in by the reader, which has the registry)
    served: tuple[dict[str, Any], ...] = ()
    goals: tuple[MetricResult, ...] = ()  # declared goals after the first (which is ``goal``)
    breakdowns: tuple[dict[str, Any], ...] = ()  # ``--by``: ``engine.experiments.breakdowns``
    # an interleaving experiment's preference readout: ``engine.experiments.interleaving``
    interleaving: dict[str, Any] | None = None

    @property
    def metrics(self) -> dict[str, MetricResult]:
        return {m.metric: m for m in (self.goal, *self.goals, *self.guardrails, *self.secondary)}

    def to_dict(self) -> dict[str, Any]:
        nested = ("goal", "goals", "guardrails", "secondary")
        out: dict[str, Any] = {
            name: json_safe(getattr(self, name)) for name in self.__dataclass_fields__ if name not in nested
        }
        out["goal"] = self.goal.to_dict()
        for name in nested[1:]:
            out[name] = [m.to_dict() for m in getattr(self, name)]
        return out


# ------------------------------------------------------------------------------ inputs


def phase_variants(exp: Experiment, phase: int) -> list[Variant]:
    """The arms of ``phase``: the live config for the current phase (a bandit's weights move)."""
    if phase < 1 or phase > exp.phase:
        raise ExperimentError(f"experiment {exp.key!r} has phases 1..{exp.phase}, not {phase}")
    return list(exp.variants) if phase == exp.phase else list(exp.phases[phase - 1].variants)


def expected_shares(
    variants: Sequence[Variant], arms: Mapping[str, ArmStats], epoch_weights: Mapping[int, Sequence[float]] | None
) -> tuple[tuple[float, ...], str | None]:
    """Traffic shares the arms should have received: the weights, or for a bandit the mix over epochs."""
    static = tuple(v.weight for v in variants)
    if not epoch_weights:
        return static, None
    names = [v.name for v in variants]
    expected = [0.0] * len(names)
    per_arm = [arms.get(n, ArmStats()).epochs() for n in names]
    for epoch in sorted({e for counts in per_arm for e in counts}):
        weights = epoch_weights.get(epoch)
        if weights is None or len(weights) != len(names):
            return static, f"bandit weights of epoch {epoch} are unknown: SRM checked against the current weights"
        total = sum(counts.get(epoch, 0) for counts in per_arm)
        for i, w in enumerate(weights):
            expected[i] += total * w
    if sum(expected) <= 0:
        return static, None
    return tuple(e / sum(expected) for e in expected), None


def _users_per_day(exp: Experiment, phase: int, users: int, now: float) -> float | None:
    if not exp.phases or users == 0:
        return None
    p = exp.phases[phase - 1]
    days = ((p.ended_at or now) - p.started_at) / 86_400
    return users / days if days >= MIN_DAYS_FOR_RATE else None


def metric_result(
    spec: MetricSpec,
    role: Role,
    names: Sequence[str],
    arms: Mapping[str, ArmStats],
    engine: str,
    settings: AnalysisSettings,
    direction: str = "higher",
) -> MetricResult:
    metric_type = "binomial" if spec.kind == "binomial" else "mean"
    try:
        readout = analyze(summaries(spec, names, arms), metric_type, engine, settings)  # type: ignore[arg-type]
    except ValueError as exc:
        return MetricResult(spec.name, spec.kind, role, spec.description, None, str(exc), direction)
    return MetricResult(spec.name, spec.kind, role, spec.description, readout, direction=direction)


def custom_metric_result(
    defn: MetricDefinition,
    defs: Sequence[MetricDefinition],
    names: Sequence[str],
    arms: Mapping[str, ArmStats],
    engine: str,
    settings: AnalysisSettings,
    units: UnitTable | None,
) -> MetricResult:
    """A declared metric's readout; capped from the per-unit values (the cap recorded), else from the
    incrementally kept statistics."""
    kind: MetricKind = "ratio" if defn.kind == "ratio" else ("binomial" if defn.kind == "indicator" else "mean")
    description = defn.description or (f"{defn.numerator} / {defn.denominator}" if defn.kind == "ratio"
                                       else f"{defn.kind} of {defn.event_type} events per user")
    cap = None
    note: str | None
    try:
        if defn.cap is not None:
            if units is None:
                raise ValueError(f"{defn.name}: capping needs the per-unit values, which were not read")
            inputs, applied = capped_summaries(defn, defs, names, units)
            metric_type, note = "mean", applied.describe()
            cap = {"cap": applied.cap, "kind": applied.settings.kind, "setting": applied.settings.value,
                   "capped_users": applied.capped_users, "total_users": applied.total_users, "text": note}
        else:
            inputs, metric_type, note = custom_summaries(defn, defs, names, arms)
        readout = analyze(inputs, metric_type, engine, settings)  # type: ignore[arg-type]
    except ValueError as exc:
        return MetricResult(defn.name, kind, defn.role, description, None, str(exc), defn.direction, cap)
    if note:
        readout = dataclasses.replace(readout, messages=(*readout.messages, note))
    return MetricResult(defn.name, kind, defn.role, description, readout, None, defn.direction, cap)


def _decision(
    goal: MetricResult,
    guardrails: Sequence[MetricResult],
    control: str,
    engine: str,
    progress: Progress,
) -> ExperimentDecision:
    """The goal's decision with the experiment's peeking and guardrail rules (:mod:`analysis.decision`)."""
    failures = {g.metric: worse for g in guardrails if (worse := g.worse())}
    verdict = experiment_decision(
        goal.readout.decision if goal.readout is not None else None,
        goal.metric,
        control,
        engine,
        failures,
        planned_fraction=progress.fraction,
        planned_users=progress.planned_per_variant,
        planned_source=progress.source,
        goal_error=goal.error,
    )
    return ExperimentDecision(verdict.action, verdict.text, verdict.variant, failures)


def sequential_plan(exp: Experiment) -> SequentialPlan:
    """The analysis' plan from the experiment's: method and looks, with its planned size and MDE."""
    spec = exp.sequential
    return SequentialPlan(
        method=spec.method if spec else "msprt",
        planned_users_per_arm=exp.planned_sample_size,
        looks=spec.looks if spec else None,
        mde=exp.mde,
    )


def _progress(exp: Experiment, goal: MetricResult, arms: Sequence[ArmInfo]) -> Progress:
    min_users = min((a.users for a in arms), default=0)
    if exp.planned_sample_size:
        planned, source = exp.planned_sample_size, "planned"
    elif goal.readout is not None and goal.readout.required_users_per_arm:
        planned, source = goal.readout.required_users_per_arm, "required"
    else:
        return Progress(None, "none", min_users, None)
    return Progress(planned, source, min_users, min(1.0, min_users / planned))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ readout


def build_readout(
    exp: Experiment,
    arms: Mapping[str, ArmStats],
    phase: int | None = None,
    epoch_weights: Mapping[int, Sequence[float]] | None = None,
    metrics: Sequence[str] | None = None,
    engine: str | None = None,
    now: float | None = None,
    units: UnitTable | None = None,
) -> ExperimentReadout:
    """Readout of ``phase`` (the current one by default) from its arms' statistics; ``units`` (the
    per-unit records) are needed only by capped metrics."""
    if exp.phase == 0:
        raise ExperimentError(f"experiment {exp.key!r} has not started: there is nothing to read out")
    phase = phase or exp.phase
    now = time.time() if now is None else now
    engine = engine or exp.engine
    variants = phase_variants(exp, phase)
    names = [v.name for v in variants]
    messages: list[str] = []
    shares, why = expected_shares(variants, arms, epoch_weights if exp.kind == "bandit" else None)
    if why:
        messages.append(why)
    total = sum(arms.get(n, ArmStats()).n for n in names)
    settings = AnalysisSettings(
        alpha=exp.alpha,
        power=exp.power,
        mde=exp.mde,
        weights=shares,
        users_per_day=_users_per_day(exp, phase, total, now),
        sequential=sequential_plan(exp),
    )
    declared = declarations(exp.goal_metric, exp.guardrail_metrics, exp.metrics, exp.guardrail_margin)
    builtin_goal = metric_result(METRICS[exp.goal_metric], declared[0].role, names, arms, engine, settings)
    guardrails = tuple(
        metric_result(METRICS[m], "guardrail", names, arms, engine, settings) for m in exp.guardrail_metrics
    )
    extra = [m for m in (metrics or ()) if m not in exp.metric_names]
    for m in extra:
        if m not in METRICS:
            raise ExperimentError(f"unknown metric {m!r}; known: {sorted(METRICS)}")
    secondary = tuple(metric_result(METRICS[m], "secondary", names, arms, engine, settings) for m in extra)
    custom = [custom_metric_result(d, exp.metrics, names, arms, engine, settings, units) for d in exp.metrics]
    goals = [m for m in custom if m.role == "goal"] or [builtin_goal]
    goal = goals[0]
    guardrails += tuple(m for m in custom if m.role == "guardrail")
    secondary = (*(() if goal is builtin_goal else (builtin_goal,)), *secondary,
                 *(m for m in custom if m.role == "secondary"))

    arm_infos = tuple(
        ArmInfo(
            name=v.name,
            model=v.model,
            weight=v.weight,
            users=arms.get(v.name, ArmStats()).n,
            totals={c: arms.get(v.name, ArmStats()).get(f"s:{c}") for c in COUNTERS},
        )
        for v in variants
    )
    if exp.phase > 1:
        messages.append(
            f"phase {phase} of {exp.phase}: each phase is read separately (allocation changed between phases)"
        )
    if exp.kind == "bandit":
        messages.append(
            "bandit: units are users within a weight epoch and arms received changing traffic shares; "
            "treat p-values as descriptive"
        )
    if goal.readout is not None:
        messages.extend(goal.readout.messages)
    messages.extend(m.error for m in custom if m.error)
    progress = _progress(exp, goal, arm_infos)
    decision = _decision(goal, guardrails, names[0], engine, progress)
    verdict = declared_verdict(
        declared,
        {m.metric: m.readout for m in (*goals, *guardrails, *secondary)},
        DecisionSettings(exp.alpha, exp.correction, exp.correction_scope, (progress.fraction or 0.0) >= 1),
        engine, decision.action, decision.text, decision.variant, progress.fraction,
    )
    decision = dataclasses.replace(
        decision, action=verdict.action, text=verdict.reason, variant=verdict.variant, rule=verdict.rule,
        reason=verdict.reason, metric=verdict.metric, outcomes=verdict.outcomes)
    srm = goal.readout.srm if goal.readout is not None else None
    bandit = None
    if exp.bandit is not None:
        bandit = {
            "epoch": exp.bandit.epoch,
            "weights": exp.weights,
            "prob_best": exp.bandit.prob_best,
            "updated_at": exp.bandit.updated_at,
            "min_weight": exp.bandit.min_weight,
        }
    return ExperimentReadout(
        key=exp.key,
        name=exp.name,
        kind=exp.kind,
        status=exp.status,
        phase=phase,
        phases=exp.phase,
        engine=engine,
        control=names[0],
        arms=arm_infos,
        goal=goal,
        guardrails=guardrails,
        secondary=secondary,
        srm_p_value=srm.p_value if srm else 1.0,
        srm_flag=srm.flagged if srm else False,
        expected_shares=shares,
        progress=progress,
        decision=decision,
        decision_text=decision.text,
        bandit=bandit,
        messages=tuple(dict.fromkeys(messages)),
        generated_at=now,
        goals=tuple(goals[1:]),
    )


def time_series(
    exp: Experiment,
    days: Sequence[tuple[str, Mapping[str, ArmStats]]],
    phase: int | None = None,
    metric: str | None = None,
) -> list[dict[str, Any]]:
    """Cumulative readout of ``metric`` (the goal by default) at the end of each day, frequentist."""
    phase = phase or exp.phase
    name = metric or exp.goal_metric
    if name not in METRICS:
        raise ExperimentError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    spec = METRICS[name]
    variants = phase_variants(exp, phase)
    names = [v.name for v in variants]
    weights = tuple(v.weight for v in variants)
    settings = AnalysisSettings(alpha=exp.alpha, power=exp.power, mde=exp.mde, weights=weights)
    points = []
    for (day, _), arms in zip(days, cumulate([d for _, d in days]), strict=True):
        result = metric_result(spec, "goal", names, arms, "frequentist", settings)
        point: dict[str, Any] = {
            "day": day,
            "users": {n: arms.get(n, ArmStats()).n for n in names},
            "means": {},
            "results": [],
            "error": result.error,
        }
        if result.readout is not None:
            point["means"] = {a.name: a.mean for a in result.readout.arms}
            point["results"] = [
                {
                    "variant": r.variant,
                    "lift_abs": r.lift_abs,
                    "lift_rel": r.lift_rel,
                    "test": r.test,
                    "ci_rel": r.ci_rel,
                    "ci": r.ci,  # the interval that agrees with p_value (adjusted with several treatments)
                    "p_value": r.decisive_p_value,
                }
                for r in result.readout.results
            ]
        points.append(json_safe(point))
    return points
