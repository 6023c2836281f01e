"""Turn a readout's evidence into one recommendation in words: the only place the ship/stop rule lives.

Order of precedence: an SRM makes every number untrustworthy, so it wins; then a significant
winner is shipped (the largest significant lift if several); a treatment that is significantly
worse, with no winner, means keeping the control; otherwise the experiment either needs more
users (to reach the sample size planned for the MDE) or has reached it without a detectable
difference.  Higher metric values are assumed to be better.

An experiment adds two rules on top (:func:`experiment_decision`): reading a fixed-horizon engine
before its planned sample size is peeking, so its "ship" becomes "keep running" (only engines
that may be read at any time — sequential, Bayesian — stop early); and a winner that is
significantly worse on a guardrail metric is put on "hold".

This is the readout's single-goal rule (one goal, higher is better, guardrails only hold a winner).
The rule over declared metrics — goals, guardrails tested for non-inferiority against a tolerated
deterioration, secondaries, each with a direction, and the correction's scope — is
:mod:`analysis.decision_rules`; both share its sample-size arithmetic (:func:`remaining_sample`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from analysis.decision_rules import remaining_sample

Action = Literal["ship", "keep_running", "no_difference", "untrustworthy", "not_enough_data"]
ExperimentAction = Literal["ship", "keep_running", "no_difference", "untrustworthy", "not_enough_data", "hold"]

ANYTIME_ENGINES = frozenset({"sequential", "bayesian"})  # valid whenever they are read
VERDICTS = frozenset({"ship", "hold", "no_difference"})  # actions that end an experiment
WIN_CHANCE = 0.95  # a Bayesian verdict needs at least this chance to win (gbstats' default)
LOSS_CHANCE = 0.05  # a Bayesian guardrail fails when the chance the treatment is better is below this


@dataclass(frozen=True)
class Evidence:
    """One treatment's verdict from the deciding engine."""

    variant: str
    users: int
    lift_abs: float | None
    lift_rel: float | None
    significant: bool
    detail: str = ""
    final: bool = False  # a group-sequential design reached its last look


@dataclass(frozen=True)
class Decision:
    action: Action
    text: str
    variant: str | None = None
    more_users_per_arm: int | None = None
    days_remaining: float | None = None


def _lift_words(e: Evidence) -> str:
    if e.lift_rel is not None:
        return f"{e.lift_rel:+.1%}"
    return f"{e.lift_abs:+.4g}" if e.lift_abs is not None else "n/a"


def _with_detail(e: Evidence) -> str:
    return f"{_lift_words(e)}, {e.detail}" if e.detail else _lift_words(e)


def decide(
    control: str,
    control_users: int,
    evidence: Sequence[Evidence],
    srm_flagged: bool = False,
    srm_detail: str = "",
    required_users_per_arm: int | None = None,
    users_per_day: float | None = None,
    arms_share_of_traffic: float | None = None,
) -> Decision:
    """The recommendation.  ``users_per_day`` (all arms) turns "more users" into days, assuming an
    equal split unless ``arms_share_of_traffic`` gives the smallest arm's share."""
    if srm_flagged:
        suffix = f": {srm_detail}" if srm_detail else ""
        return Decision(
            "untrustworthy", f"data untrustworthy (SRM){suffix}; fix assignment before reading results"
        )

    winners = [e for e in evidence if e.significant and (e.lift_abs or 0.0) > 0]
    if winners:
        best = max(winners, key=lambda e: e.lift_abs or 0.0)
        return Decision("ship", f"ship {best.variant} ({_with_detail(best)})", variant=best.variant)
    losers = [e for e in evidence if e.significant and (e.lift_abs or 0.0) < 0]
    if losers:
        worst = ", ".join(f"{e.variant} {_with_detail(e)}" for e in losers)
        return Decision("ship", f"ship {control}: no winner, worse: {worst}", variant=control)

    if any(e.final for e in evidence):
        return Decision("no_difference", "no detectable difference (final planned look reached)")
    if required_users_per_arm is None:
        return Decision(
            "not_enough_data",
            "keep running: no sample size could be planned from the data yet (see messages)",
        )
    share = arms_share_of_traffic or 1.0 / (len(evidence) + 1)
    left = remaining_sample(required_users_per_arm, [control_users, *(e.users for e in evidence)], users_per_day,
                            share)
    more = left.more_users_per_arm
    if more == 0:
        return Decision(
            "no_difference",
            f"no detectable difference (planned {required_users_per_arm:,} users per arm reached)",
        )
    text = f"keep running (about {more:,} more users per arm"
    if left.days is not None:
        text += f", ~{math.ceil(left.days)} more days at current traffic"
    return Decision("keep_running", text + ")", more_users_per_arm=more, days_remaining=left.days)


# ------------------------------------------------------------------------------- experiments


def reads_anytime(engine: str) -> bool:
    """Whether ``engine``'s verdict is valid at any look (sequential, Bayesian), not only at the plan."""
    return engine in ANYTIME_ENGINES


def peeking(engine: str, planned_fraction: float | None) -> bool:
    """A fixed-horizon verdict read before its planned sample size: with 14 looks a 5% test
    rejects a true null about 22% of the time (Armitage et al.)."""
    return not reads_anytime(engine) and planned_fraction is not None and planned_fraction < 1


def ready_to_decide(engine: str, action: str, planned_fraction: float | None) -> bool:
    """The planned sample is reached, or an engine that may be read any time has a verdict."""
    return (planned_fraction or 0.0) >= 1 or (action in VERDICTS and reads_anytime(engine))


def bayesian_call(
    chance_to_win: float | None,
    expected_loss: float | None,
    expected_loss_control: float | None,
    control_mean: float | None,
    ctw_threshold: float = WIN_CHANCE,
    loss_threshold: float = 0.0025,
) -> bool:
    """The Bayesian verdict: ship when the chance to win passes the threshold at an expected loss
    below the limit, keep the control in the mirror case.  The limit is relative to the control mean
    (gbstats' default 0.25%)."""
    if chance_to_win is None or not control_mean:
        return False
    cheap = loss_threshold * abs(control_mean)
    ship = chance_to_win >= ctw_threshold and (expected_loss or 0.0) <= cheap
    keep = chance_to_win <= 1 - ctw_threshold and (expected_loss_control or 0.0) <= cheap
    return ship or keep


def significantly_worse(
    decision_engine: str, significant: bool | None, lift_abs: float | None, chance_to_win: float | None,
    lower_is_better: bool = False,
) -> bool:
    """A treatment's guardrail verdict: worse than the control with the engine's own evidence, in the
    metric's direction (``chance_to_win`` is the chance the treatment's value is the higher one)."""
    if decision_engine == "bayesian":
        if chance_to_win is None:
            return False
        return chance_to_win > 1 - LOSS_CHANCE if lower_is_better else chance_to_win < LOSS_CHANCE
    lift = lift_abs or 0.0
    return bool(significant) and (lift > 0 if lower_is_better else lift < 0)


@dataclass(frozen=True)
class ExperimentVerdict:
    action: ExperimentAction
    text: str
    variant: str | None = None


def experiment_decision(
    goal: Decision | None,
    goal_metric: str,
    control: str,
    engine: str,
    guardrail_failures: Mapping[str, Sequence[str]],
    planned_fraction: float | None = None,
    planned_users: int | None = None,
    planned_source: str = "planned",
    goal_error: str | None = None,
) -> ExperimentVerdict:
    """The goal metric's :func:`decide`, with the peeking and guardrail rules of an experiment."""
    if goal is None:
        return ExperimentVerdict("not_enough_data", f"no readout: {goal_error}")
    text, action = goal.text, goal.action
    if action == "ship" and peeking(engine, planned_fraction):
        return ExperimentVerdict(
            "keep_running",
            f"keep running: the fixed-horizon test looks significant ({text}) but is valid only at the "
            f"{planned_source} {planned_users or 0:,} users per arm ({planned_fraction or 0.0:.0%} reached); "
            "to decide before then, read the sequential engine",
        )
    out_action: ExperimentAction = action
    if action == "ship" and goal.variant and goal.variant != control:
        broken = sorted(m for m, variants in guardrail_failures.items() if goal.variant in variants)
        if broken:
            out_action = "hold"
            text = f"hold {goal.variant}: it wins on {goal_metric} ({text}) but is significantly worse on {broken}"
    if guardrail_failures and out_action != "hold":
        warned = "; ".join(f"{m}: {', '.join(v)}" for m, v in sorted(guardrail_failures.items()))
        text += f" (guardrails significantly worse — {warned})"
    return ExperimentVerdict(out_action, text, goal.variant)
