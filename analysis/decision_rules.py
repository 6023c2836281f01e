"""The experiment decision over declared metrics: goals, guardrails with a tolerated deterioration,
secondaries, each with its direction — the one place the ship / stop rule of an experiment lives.

Every metric is declared (:class:`MetricDeclaration`) with a **role** and a **direction**:

- *goal* — what the experiment is meant to move.  Tested for superiority (two-sided, at alpha).
- *guardrail* — must not get worse by more than ``margin`` (a relative deterioration, e.g. 0.02 =
  2%).  Tested for **non-inferiority**: one-sided, ``H0: effect ≤ -margin`` against
  ``H1: effect > -margin`` where "effect" is the relative lift oriented so that positive is good
  (Wellek 2010, *Testing Statistical Hypotheses of Equivalence and Noninferiority*; FDA 2016,
  *Non-Inferiority Clinical Trials*).  The shifted statistic is ``z = (effect + margin) / se``
  (Student-t when the evidence has degrees of freedom) and the test rejects exactly when the
  one-sided (1 - alpha) bound of the effect lies above ``-margin``.  The opposite one-sided test
  (``H0: effect ≥ -margin``) shows harm beyond the margin; it is what stops an experiment.
- *secondary* — reported with its test, never decides.

The multiple-testing correction (Holm or Benjamini-Hochberg, :mod:`analysis.corrections`) is applied
to a declared **scope**: goal tests only, goals and guardrails' non-inferiority tests, or every
test.  Tests outside the scope keep their raw p-value.  The harm test that stops an experiment is
never corrected: a guardrail protects, and a correction would make harm harder to see.

The verdict names the rule that decided (:data:`RULES`), checked in this order:

1. ``stop_guardrail`` — some treatment is significantly worse than a guardrail's margin (named);
   unless another treatment can ship, the experiment stops.
2. ``ship`` — a treatment is significantly better on a goal, in its direction, with every
   guardrail shown non-inferior; of several, the largest oriented goal lift.
3. ``stop_goal`` — a treatment is significantly worse on a goal and none is better: keep the control.
4. ``no_effect`` — the planned sample is reached and nothing decided.
5. ``keep_running`` — not yet conclusive (an inconclusive goal, or a winning goal whose guardrails
   are not yet shown within their margins).

:func:`analysis.decision.decide` (the readout's single-goal rule, higher is better, no guardrails)
takes its "how many more users" arithmetic from :func:`remaining_sample` here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy import special

from analysis.corrections import Correction, adjust, adjusted_levels
from analysis.frequentist import FrequentistResult

Role = Literal["goal", "guardrail", "secondary"]
Direction = Literal["higher", "lower"]
Scope = Literal["goals", "goals_and_guardrails", "all"]
Rule = Literal["ship", "stop_guardrail", "stop_goal", "keep_running", "no_effect"]
Outcome = Literal["better", "worse", "inconclusive", "non_inferior", "harmful", "not_tested"]

RULES: tuple[Rule, ...] = ("stop_guardrail", "ship", "stop_goal", "no_effect", "keep_running")
ROLES: tuple[Role, ...] = ("goal", "guardrail", "secondary")
SCOPES: dict[Scope, tuple[Role, ...]] = {
    "goals": ("goal",),
    "goals_and_guardrails": ("goal", "guardrail"),
    "all": ("goal", "guardrail", "secondary"),
}


@dataclass(frozen=True)
class MetricDeclaration:
    """A metric as the experiment declares it.  ``margin`` is the tolerated relative deterioration of
    a guardrail (0.02: up to 2% worse is acceptable); other roles have none."""

    name: str
    role: Role
    direction: Direction = "higher"
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"metric {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name!r}: direction must be 'higher' or 'lower', got {self.direction!r}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"metric {self.name!r}: margin must be a finite number >= 0, got {self.margin}")
        if self.margin and self.role != "guardrail":
            raise ValueError(f"metric {self.name!r}: only a guardrail has a tolerated deterioration")

    def oriented(self, lift: float) -> float:
        """The lift with its sign made "positive is good": a lower-is-better metric that falls improved."""
        return lift if self.direction == "higher" else -lift


@dataclass(frozen=True)
class MetricEvidence:
    """One treatment's relative lift on one metric, with its standard error (and Welch degrees of
    freedom; ``None`` for a normal reference).  ``lift``/``se`` ``None``: no test was possible."""

    metric: str
    variant: str
    lift: float | None
    se: float | None
    df: float | None = None
    message: str | None = None

    @classmethod
    def from_result(cls, metric: str, variant: str, result: FrequentistResult) -> MetricEvidence:
        """The relative pair of a fixed-horizon result (the margin is relative)."""
        return cls(metric, variant, result.lift_rel, result.se_rel, result.df, result.message)

    @property
    def testable(self) -> bool:
        return (self.lift is not None and self.se is not None and math.isfinite(self.lift)
                and math.isfinite(self.se) and self.se > 0)


@dataclass(frozen=True)
class DecisionSettings:
    alpha: float = 0.05
    correction: Correction | None = "holm"
    scope: Scope = "goals"
    planned_reached: bool = False  # the planned sample size (or final look) is reached

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {sorted(SCOPES)}, got {self.scope!r}")
        if self.correction not in (None, "holm", "bh"):
            raise ValueError(f"correction must be 'holm', 'bh' or None, got {self.correction!r}")


@dataclass(frozen=True)
class MetricOutcome:
    """The test of one metric for one treatment, in the metric's own direction.

    ``bound`` is the deciding bound of the lift on the metric's scale (for a guardrail the one-sided
    bound compared with ``threshold`` = ∓margin; for a goal the interval end nearest 0), at the
    level that agrees with ``p_value_adjusted``.
    """

    metric: str
    variant: str
    role: Role
    direction: Direction
    outcome: Outcome
    lift: float | None = None
    p_value: float | None = None  # superiority (goal, secondary) or non-inferiority (guardrail)
    p_value_adjusted: float | None = None  # equal to p_value outside the correction's scope
    bound: float | None = None
    threshold: float = 0.0
    harm_p_value: float | None = None  # guardrails: the one-sided test of harm beyond the margin
    in_scope: bool = False
    message: str | None = None

    def oriented_lift(self) -> float:
        """The lift with "positive is good" (0 when untested), for ranking treatments."""
        lift = self.lift or 0.0
        return lift if self.direction == "higher" else -lift


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    reason: str
    variant: str | None = None  # the treatment shipped, or the one that broke a guardrail
    metric: str | None = None  # the metric that decided
    outcomes: tuple[MetricOutcome, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------------------ tests


def _cdf(x: float, df: float | None) -> float:
    return float(special.ndtr(x) if df is None else special.stdtr(df, x))


def _quantile(q: float, df: float | None) -> float:
    return float(special.ndtri(q) if df is None else special.stdtrit(df, q))


def superiority_p_value(effect: float, se: float, df: float | None = None) -> float:
    """Two-sided p-value of ``H0: effect = 0``."""
    return min(1.0, 2.0 * _cdf(-abs(effect) / se, df))


def non_inferiority_p_value(effect: float, se: float, margin: float, df: float | None = None) -> float:
    """One-sided p-value of ``H0: effect ≤ -margin`` (``effect`` oriented so that positive is good)."""
    return _cdf(-(effect + margin) / se, df)


def harm_p_value(effect: float, se: float, margin: float, df: float | None = None) -> float:
    """One-sided p-value of ``H0: effect ≥ -margin``: evidence the deterioration exceeds the margin."""
    return _cdf((effect + margin) / se, df)


def lower_bound(effect: float, se: float, alpha: float, df: float | None = None) -> float:
    """The one-sided (1 - alpha) lower bound of an oriented effect."""
    return effect - _quantile(1.0 - alpha, df) * se


# ------------------------------------------------------------------------------------- evaluation


def _raw_test(decl: MetricDeclaration, ev: MetricEvidence) -> float | None:
    if not ev.testable or ev.lift is None or ev.se is None:
        return None
    effect = decl.oriented(ev.lift)
    if decl.role == "guardrail":
        return non_inferiority_p_value(effect, ev.se, decl.margin, ev.df)
    return superiority_p_value(effect, ev.se, ev.df)


def _outcome(decl: MetricDeclaration, ev: MetricEvidence, p: float | None, p_adj: float | None,
             level: float, in_scope: bool, alpha: float) -> MetricOutcome:
    base = MetricOutcome(ev.metric, ev.variant, decl.role, decl.direction, "not_tested", lift=ev.lift,
                         in_scope=in_scope, message=ev.message)
    if p is None or p_adj is None or ev.lift is None or ev.se is None:
        return base
    sign = 1.0 if decl.direction == "higher" else -1.0
    effect = decl.oriented(ev.lift)
    if decl.role == "guardrail":
        harm = harm_p_value(effect, ev.se, decl.margin, ev.df)
        outcome: Outcome = "non_inferior" if p_adj < alpha else ("harmful" if harm < alpha else "inconclusive")
        bound = sign * lower_bound(effect, ev.se, level, ev.df)
        return MetricOutcome(ev.metric, ev.variant, decl.role, decl.direction, outcome, ev.lift, p, p_adj,
                             bound=bound, threshold=-sign * decl.margin, harm_p_value=harm, in_scope=in_scope,
                             message=ev.message)
    significant = p_adj < alpha
    outcome = "inconclusive" if not significant else ("better" if effect > 0 else "worse")
    # the two-sided interval's end nearest 0: it excludes 0 exactly when the goal is significant
    half_width = _quantile(1.0 - level / 2.0, ev.df) * ev.se
    bound = ev.lift - half_width if ev.lift >= 0 else ev.lift + half_width
    return MetricOutcome(ev.metric, ev.variant, decl.role, decl.direction, outcome, ev.lift, p, p_adj,
                         bound=bound, in_scope=in_scope, message=ev.message)


def evaluate(
    declarations: Sequence[MetricDeclaration],
    evidence: Sequence[MetricEvidence],
    settings: DecisionSettings = DecisionSettings(),
) -> list[MetricOutcome]:
    """Each piece of evidence tested by its metric's role, the correction applied across the scope.

    Evidence for an undeclared metric is an error (a typo would otherwise silently drop a guardrail);
    a declared metric with no evidence gets a ``not_tested`` outcome per treatment.
    """
    by_name = {d.name: d for d in declarations}
    if len(by_name) != len(declarations):
        raise ValueError("a metric is declared twice")
    unknown = sorted({e.metric for e in evidence} - by_name.keys())
    if unknown:
        raise ValueError(f"evidence for undeclared metrics: {unknown}")
    roles = SCOPES[settings.scope]
    raw = [_raw_test(by_name[e.metric], e) for e in evidence]
    family = {i: p for i, (e, p) in enumerate(zip(evidence, raw, strict=True))
              if p is not None and by_name[e.metric].role in roles}
    adjusted: list[float | None] = list(raw)
    levels = [settings.alpha] * len(evidence)
    if family and settings.correction is not None:
        family_p = list(family.values())
        for i, p_adj, level in zip(family, adjust(family_p, settings.correction),
                                   adjusted_levels(family_p, settings.correction, settings.alpha), strict=True):
            adjusted[i], levels[i] = float(p_adj), float(level)
    outcomes = [_outcome(by_name[e.metric], e, raw[i], adjusted[i], levels[i], i in family, settings.alpha)
                for i, e in enumerate(evidence)]
    seen = {(e.metric, e.variant) for e in evidence}
    for variant in dict.fromkeys(e.variant for e in evidence):
        for d in declarations:
            if (d.name, variant) not in seen:
                outcomes.append(MetricOutcome(d.name, variant, d.role, d.direction, "not_tested",
                                              message="no evidence for this metric"))
    return outcomes


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2%}"


def decide(
    declarations: Sequence[MetricDeclaration],
    evidence: Sequence[MetricEvidence],
    settings: DecisionSettings = DecisionSettings(),
) -> Verdict:
    """The verdict, naming the rule that decided (see the module docstring for the order)."""
    if not any(d.role == "goal" for d in declarations):
        raise ValueError("an experiment needs at least one goal metric to decide")
    outcomes = evaluate(declarations, evidence, settings)
    frozen = tuple(outcomes)
    variants = list(dict.fromkeys(o.variant for o in outcomes))
    by_variant = {v: [o for o in outcomes if o.variant == v] for v in variants}

    shippable: list[MetricOutcome] = []  # per treatment that may ship, its best goal
    for rows in by_variant.values():
        wins = [o for o in rows if o.role == "goal" and o.outcome == "better"]
        if wins and all(o.outcome == "non_inferior" for o in rows if o.role == "guardrail"):
            shippable.append(max(wins, key=MetricOutcome.oriented_lift))
    harmful = [o for o in outcomes if o.outcome == "harmful"]

    if shippable:
        best = max(shippable, key=MetricOutcome.oriented_lift)
        guards = [o.metric for o in by_variant[best.variant] if o.role == "guardrail"]
        reason = (f"ship {best.variant}: {best.metric} is significantly better ({_pct(best.lift)}, "
                  f"{best.direction} is better)")
        reason += f" and every guardrail is within its margin ({', '.join(guards)})" if guards else ""
        if harmful:
            reason += "; other treatments broke guardrails: " + ", ".join(
                sorted({f"{o.variant} on {o.metric}" for o in harmful}))
        return Verdict("ship", reason, best.variant, best.metric, frozen)
    if harmful:
        worst = harmful[0]
        names = ", ".join(f"{o.variant} on {o.metric} ({_pct(o.lift)}, tolerated {_pct(o.threshold)})"
                          for o in harmful)
        return Verdict("stop_guardrail", f"stop: significantly worse than a guardrail's margin — {names}",
                       worst.variant, worst.metric, frozen)
    worse = [o for o in outcomes if o.role == "goal" and o.outcome == "worse"]
    if worse:
        names = ", ".join(f"{o.variant} on {o.metric} ({_pct(o.lift)}, {o.direction} is better)" for o in worse)
        return Verdict("stop_goal", f"stop, keep the control: significantly worse on a goal — {names}",
                       worse[0].variant, worse[0].metric, frozen)
    pending = [o for o in outcomes if o.role == "guardrail" and o.outcome != "non_inferior"
               and any(g.variant == o.variant and g.role == "goal" and g.outcome == "better" for g in outcomes)]
    if settings.planned_reached:
        reason = "no effect: the planned sample is reached and no goal is significantly different"
        if pending:
            reason = ("no effect: the planned sample is reached; a goal improved but guardrails were not shown "
                      "within their margins: " + ", ".join(f"{o.variant} on {o.metric}" for o in pending))
        return Verdict("no_effect", reason, None, None, frozen)
    if pending:
        return Verdict("keep_running", "keep running: a goal improved but guardrails are not yet shown within "
                       "their margins: " + ", ".join(f"{o.variant} on {o.metric}" for o in pending),
                       pending[0].variant, pending[0].metric, frozen)
    return Verdict("keep_running", "keep running: no goal is significantly different yet", None, None, frozen)


# ---------------------------------------------------------------------------------- sample size


@dataclass(frozen=True)
class Remaining:
    """How far an experiment is from its planned sample."""

    more_users_per_arm: int
    days: float | None


def remaining_sample(required_users_per_arm: int, users_per_arm: Sequence[int], users_per_day: float | None,
                     smallest_arm_share: float) -> Remaining:
    """Users the smallest arm still needs, and the days that takes at ``users_per_day`` (all arms)
    when that arm receives ``smallest_arm_share`` of the traffic."""
    more = max(required_users_per_arm - min(users_per_arm), 0)
    days = more / (users_per_day * smallest_arm_share) if users_per_day and more else None
    return Remaining(more, days)

