"""What the Readout page shows of an interleaving experiment: the verdict with the interval of the test
that decides it, the preference share with its (describing) interval, the per-position credit, and a
caption in plain words naming the rule that decides.

Everything here reads the readout's ``interleaving`` block (``engine.experiments.interleaving``);
the statistics are :mod:`analysis.interleaving`'s.  The fixed-horizon verdict is the signed-rank test
of the users' credit differences, and the interval shown next to it is that test inverted
(``pseudomedian_ci``): it leaves out 0 exactly when the verdict calls a preference.  The sequential
engine decides by its always-valid sign test, whose interval is the share's confidence sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.interleaving import SIGNED_RANK, ShiftInterval, sign_test_p_value
from engine.console import charts
from engine.console.cards import MetricCard
from engine.console.notices import Notice

Block = Mapping[str, Any]
EVEN = charts.Rule(0.5, axis="x", label="no preference", color=charts.ZERO_COLOR)
TEAM_COLORS = {"A": "#64748b", "B": "#2563eb"}
POSITION_COLUMNS = ["position", "shown A", "shown B", "clicks A", "clicks B", "click rate A", "click rate B"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def decided_by_signed_rank(block: Block) -> bool:
    """Whether the verdict is the fixed-horizon signed-rank test's (not the sequential engine's, nor an
    older phase's t-test or sign test)."""
    return block["sequential"] is None and block["decided_by"] == SIGNED_RANK


def verdict_interval(block: Block) -> ShiftInterval | None:
    """The interval that goes with the fixed-horizon verdict, from the block (a ``None`` end: unbounded)."""
    ends, closed = block.get("pseudomedian_ci"), block.get("pseudomedian_ci_closed")
    if ends is None or closed is None:
        return None
    low = -math.inf if ends[0] is None else float(ends[0])
    high = math.inf if ends[1] is None else float(ends[1])
    return ShiftInterval(low, high, bool(closed[0]), bool(closed[1]))


def _signed(value: float) -> str:
    if math.isinf(value):
        return "−∞" if value < 0 else "+∞"
    return "0" if value == 0 else f"{value:+g}"


def interval_text(interval: ShiftInterval) -> str:
    """``[a, b]`` with a round bracket on an end that is left out, ``∞`` for an unbounded one."""
    return (f"{'[' if interval.low_closed else '('}{_signed(interval.low)}, {_signed(interval.high)}"
            f"{']' if interval.high_closed else ')'}")


def cards(block: Block) -> list[MetricCard]:
    """Users, their preferences, the share (a description) and the deciding test's p-value and estimate."""
    ci = block["ci"]
    interval = f"{_pct(ci[0])} – {_pct(ci[1])}" if ci else "–"
    p_value = block["sequential"]["p_value"] if block["sequential"] else block["p_value"]
    shown = [
        MetricCard("Users", f"{block['users']:,}", help="enrolled users who were shown at least one merged list"),
        MetricCard(f"Prefer {block['treatment']} (B)", f"{block['wins']:,}"),
        MetricCard(f"Prefer {block['control']} (A)", f"{block['losses']:,}"),
        MetricCard("Ties", f"{block['ties']:,}", help="equal credit, including users who never clicked"),
        MetricCard("Preference share", _pct(block["preference_share"]),
                   help=f"share of users with a preference who preferred B; the sign test's interval {interval} "
                        "(a description: the verdict is the test named under p-value)"),
        MetricCard("p-value", "–" if p_value is None else f"{p_value:.3g}", help=f"{block['decided_by']}"),
    ]
    if decided_by_signed_rank(block) and block.get("pseudomedian") is not None:
        verdicts = verdict_interval(block)
        help_text = ("Hodges–Lehmann estimate of the credit difference (clicks credited to B minus to A) over "
                     "users with a preference; the signed-rank test's interval: "
                     + (interval_text(verdicts) if verdicts else str(block.get("pseudomedian_message"))))
        shown.append(MetricCard("Pseudo-median", f"{_signed(block['pseudomedian'])} clicks", help=help_text))
    return shown


def interval_sentence(block: Block) -> str:
    """The deciding test's interval in a sentence, to stand next to the verdict ('' when it has none)."""
    if not decided_by_signed_rank(block) or block["wins"] + block["losses"] == 0:
        return ""
    interval = verdict_interval(block)
    if interval is None:
        return f" The signed-rank test's interval: none — {block.get('pseudomedian_message')}."
    where = "holds 0" if 0.0 in interval else "leaves out 0"
    return (f" Shifts of the credit difference the signed-rank test accepts: {interval_text(interval)} clicks "
            f"per user; it {where}.")


def verdict_notice(block: Block) -> Notice:
    control, treatment = block["control"], block["treatment"]
    interval = interval_sentence(block)
    if block["verdict"] == "B preferred":
        return Notice("success", f"**Users prefer {treatment}** over {control}.{interval}", ":material/thumb_up:")
    if block["verdict"] == "A preferred":
        return Notice("warning", f"**Users prefer {control}** (the control) over {treatment}.{interval}",
                      ":material/thumb_down:")
    if block["verdict"] == "no data":
        return Notice("info", "No user has been shown a merged list yet.", ":material/info:")
    return Notice("info", f"No preference detected yet.{interval}", ":material/hourglass_top:")


def significant_wins(decided: int, alpha: float) -> int | None:
    """The fewest wins out of ``decided`` users with a preference that the sign test calls significant
    for B (None when no count would be: too few users)."""
    wins = np.arange(decided + 1)
    hits = wins[(sign_test_p_value(wins, np.full(decided + 1, decided)) < alpha) & (wins * 2 > decided)]
    return int(hits[0]) if hits.size else None


def caption(block: Block) -> str:
    """What the section shows, and what would change the verdict, in plain words."""
    control, treatment = block["control"], block["treatment"]
    decided = block["wins"] + block["losses"]
    shows = (f"Every enrolled user saw one list merging {control} (A) and {treatment} (B) by team draft; each click "
             f"counts for the ranker that contributed the clicked item. A user prefers the ranker their clicks "
             f"credited more; the share is the part of users with a preference who preferred {treatment}. "
             "50% means no preference.")
    if decided == 0:
        return f"{shows} No user has a preference yet: the verdict needs clicks."
    if block["sequential"] is not None:
        change = ("The sequential engine decides by its always-valid sign test of the preference share: it may "
                  "be read at any time, a preference it detects stays detected, and without one more users "
                  "narrow its interval until it leaves 50% or settles around it.")
    elif decided_by_signed_rank(block):
        change = f"{signed_rank_rule(block)} {DESCRIPTION}"
    elif block["decided_by"] != "exact sign test":  # an older phase: the t-test of the mean decides
        ci = block.get("mean_credit_difference_ci")
        interval = f", whose interval is {ci[0]:+.3g} to {ci[1]:+.3g} clicks per user" if ci else ""
        change = (f"This phase kept no credit differences by value, so the verdict is the {block['decided_by']}"
                  f"{interval}: it calls a preference when that interval leaves out 0. {DESCRIPTION}")
    else:
        needed = significant_wins(decided, block["alpha"])
        if needed is None:
            change = (f"With {decided} users with a preference no split would be significant yet: it needs more "
                      "users.")
        else:
            change = (f"This phase kept only the signs of the users' preferences, so the sign test decides: with "
                      f"{decided} users with a preference, it calls a preference from {needed} "
                      f"choosing one ranker ({needed / decided:.0%}) on; the verdict changes when the share "
                      "crosses that line, and more users move the line towards 50%. Read it once, at the "
                      "planned size, or use the sequential engine to watch it.")
    return f"{shows} {change}"


def signed_rank_rule(block: Block) -> str:
    """The fixed-horizon rule in words: the signed-rank test, its interval, and what would change the verdict."""
    decided = block["wins"] + block["losses"]
    rule = (f"The verdict is the Wilcoxon signed-rank test of the users' credit differences (clicks credited to "
            f"B minus to A; the {decided} users with a preference, ranked by how much), at α = {block['alpha']:g}.")
    interval = verdict_interval(block)
    if interval is None:
        return (f"{rule} It has no interval here: {block.get('pseudomedian_message')}; the verdict stands on its "
                "p-value.")
    shown = (f"{rule} Its interval is the shifts of those differences the same test accepts, "
             f"{interval_text(interval)} clicks per user: it calls a preference exactly when the interval leaves "
             "out 0.")
    if 0.0 in interval:
        return (f"{shown} It holds 0 now, so no preference is detected; a preference is called when more users "
                "push the whole interval to one side of 0.")
    return (f"{shown} It leaves out 0 now; the verdict would return to no preference only if further users' "
            "differences brought 0 back inside.")


# the share and the sign test's interval stay on the page, said to be a description
DESCRIPTION = ("The share and its interval (the sign test's) describe the users; they do not decide. Read the "
               "verdict once, at the planned size, or use the sequential engine to watch it.")


def share_figure(block: Block) -> go.Figure | None:
    """The preference share as a point with the sign test's interval (a description), against 50%; with
    the sequential engine, the confidence sequence that decides."""
    share, ci = block["preference_share"], block["ci"]
    if share is None or ci is None:
        return None
    traces = [{"type": "scatter", "x": [share], "y": ["share (sign test)"], "mode": "markers", "name": "share",
               "marker": {"size": 12, "color": TEAM_COLORS["B"]},
               "error_x": {"type": "data", "symmetric": False, "array": [ci[1] - share],
                           "arrayminus": [share - ci[0]]}}]
    if block["sequential"] is not None and block["sequential"]["ci"]:
        lo, hi = block["sequential"]["ci"]
        traces.append({"type": "scatter", "x": [share], "y": ["always valid"], "mode": "markers",
                       "name": "confidence sequence", "marker": {"size": 12, "color": "#9333ea"},
                       "error_x": {"type": "data", "symmetric": False, "array": [hi - share],
                                   "arrayminus": [share - lo]}})
    return charts.figure(traces, "Preference share for B, with the sign test's interval", height=200, rules=[EVEN],
                         xaxis={"range": [0, 1], "tickformat": ".0%"}, fit_labels=True, showlegend=False)


def position_frame(block: Block) -> pd.DataFrame:
    """Per position (1-based): how often each ranker filled it, the clicks it earned there, the rates."""
    rows = [{"position": p["position"] + 1, "shown A": p["shown_a"], "shown B": p["shown_b"],
             "clicks A": p["clicks_a"], "clicks B": p["clicks_b"],
             "click rate A": p["clicks_a"] / p["shown_a"] if p["shown_a"] else None,
             "click rate B": p["clicks_b"] / p["shown_b"] if p["shown_b"] else None}
            for p in block["positions"]]
    return pd.DataFrame(rows, columns=POSITION_COLUMNS)


def position_figure(block: Block) -> go.Figure | None:
    """Clicks credited per position, one bar per ranker."""
    frame = position_frame(block)
    if frame.empty:
        return None
    traces = [{"type": "bar", "x": frame["position"], "y": frame[f"clicks {team}"],
               "name": f"{block['control' if team == 'A' else 'treatment']} ({team})",
               "marker": {"color": TEAM_COLORS[team]}} for team in ("A", "B")]
    return charts.figure(traces, "Clicks credited per position", xaxis={"title": {"text": "position"}, "dtick": 1},
                         barmode="group", showlegend=True)
