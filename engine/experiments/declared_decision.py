"""The experiment's verdict over its declared metrics, naming the rule that decided.

The rule itself is :func:`analysis.decision_rules.decide` (goals, guardrails tested for
non-inferiority against their margins, secondaries, directions, the correction over the declared
scope).  This module feeds it the readout's fixed-horizon evidence and puts the checks that come
before any rule in front of it:

- ``untrustworthy`` (a sample ratio mismatch) and ``not_enough_data`` (no goal readout) — the goal's
  own readout says so, and no rule over the metrics is read;
- peeking: with the fixed-horizon (frequentist) engine, a ``ship`` before the planned sample is
  reached becomes ``keep_running`` (:func:`analysis.decision.peeking`);
- the sequential and Bayesian engines decide on the goal with their own evidence
  (:func:`analysis.decision.experiment_decision`, which reads any time); their verdict is kept, and
  named by the rule it corresponds to.

``action`` keeps the values the console and CLI have always read (ship, hold, keep_running,
no_difference, untrustworthy, not_enough_data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analysis.decision import peeking
from analysis.decision_rules import DecisionSettings, MetricDeclaration, MetricEvidence, MetricOutcome, decide
from analysis.readout import Readout

RULE_ACTION = {"ship": "ship", "stop_guardrail": "hold", "stop_goal": "no_difference", "no_effect": "no_difference",
               "keep_running": "keep_running"}
ACTION_RULE = {"ship": "ship", "hold": "stop_guardrail", "no_difference": "no_effect", "keep_running": "keep_running"}
HEALTH_ACTIONS = ("untrustworthy", "not_enough_data")


@dataclass(frozen=True)
class RuleVerdict:
    action: str
    rule: str
    reason: str
    variant: str | None
    metric: str | None
    outcomes: tuple[MetricOutcome, ...] = ()


def evidence(metric: str, readout: Readout | None) -> list[MetricEvidence]:
    """The fixed-horizon relative lift and its standard error of each treatment."""
    if readout is None:
        return []
    out = []
    for r in readout.results:
        if r.frequentist is not None:
            out.append(MetricEvidence.from_result(metric, r.variant, r.frequentist))
        else:
            out.append(MetricEvidence(metric, r.variant, None, None, message="no fixed-horizon test"))
    return out


def declared_verdict(
    declarations: Sequence[MetricDeclaration],
    readouts: dict[str, Readout | None],
    settings: DecisionSettings,
    engine: str,
    goal_action: str,
    goal_text: str,
    goal_variant: str | None,
    planned_fraction: float | None,
) -> RuleVerdict:
    """The verdict: health first, then the rule over the declared metrics (see the module docstring)."""
    if goal_action in HEALTH_ACTIONS:
        return RuleVerdict(goal_action, goal_action, goal_text, None, None)
    found = [e for d in declarations for e in evidence(d.name, readouts.get(d.name))]
    verdict = decide(declarations, found, settings)
    if engine != "frequentist":
        rule = ACTION_RULE.get(goal_action, "keep_running")
        return RuleVerdict(goal_action, rule, goal_text, goal_variant, None, verdict.outcomes)
    if verdict.rule == "ship" and peeking(engine, planned_fraction):
        reason = (f"keep running: {verdict.reason}, but the fixed-horizon test is valid only at the planned "
                  f"sample ({planned_fraction or 0.0:.0%} reached); to decide before then, read the sequential engine")
        return RuleVerdict("keep_running", "keep_running", reason, verdict.variant, verdict.metric, verdict.outcomes)
    return RuleVerdict(RULE_ACTION[verdict.rule], verdict.rule, verdict.reason, verdict.variant, verdict.metric,
                       verdict.outcomes)
