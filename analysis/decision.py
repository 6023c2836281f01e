"""Turn a readout's evidence into one recommendation in words.

Order of precedence: an SRM makes every number untrustworthy, so it wins; then a significant
winner is shipped (the largest significant lift if several); a treatment that is significantly
worse, with no winner, means keeping the control; otherwise the experiment either needs more
users (to reach the sample size planned for the MDE) or has reached it without a detectable
difference.  Higher metric values are assumed to be better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Action = Literal["ship", "keep_running", "no_difference", "untrustworthy", "not_enough_data"]


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
    have = min([control_users, *(e.users for e in evidence)])
    more = max(required_users_per_arm - have, 0)
    if more == 0:
        return Decision(
            "no_difference",
            f"no detectable difference (planned {required_users_per_arm:,} users per arm reached)",
        )
    days = None
    text = f"keep running (about {more:,} more users per arm"
    if users_per_day:
        share = arms_share_of_traffic or 1.0 / (len(evidence) + 1)
        days = more / (users_per_day * share)
        text += f", ~{math.ceil(days)} more days at current traffic"
    return Decision("keep_running", text + ")", more_users_per_arm=more, days_remaining=days)
