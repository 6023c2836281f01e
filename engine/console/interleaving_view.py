"""What the Readout page shows of an interleaving experiment: the preference share with its interval,
the test, the verdict, the per-position credit, and a caption in plain words.

Everything here reads the readout's ``interleaving`` block (``engine.experiments.interleaving``);
the statistics are :mod:`analysis.interleaving`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.interleaving import sign_test_p_value
from engine.console import charts
from engine.console.cards import MetricCard
from engine.console.notices import Notice

Block = Mapping[str, Any]
EVEN = charts.Rule(0.5, axis="x", label="no preference", color=charts.ZERO_COLOR)
TEAM_COLORS = {"A": "#64748b", "B": "#2563eb"}
POSITION_COLUMNS = ["position", "shown A", "shown B", "clicks A", "clicks B", "click rate A", "click rate B"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def cards(block: Block) -> list[MetricCard]:
    """Users, their preferences, the share and the p-value, as metric cards."""
    ci = block["ci"]
    interval = f"{_pct(ci[0])} – {_pct(ci[1])}" if ci else "–"
    p_value = block["sequential"]["p_value"] if block["sequential"] else block["p_value"]
    return [
        MetricCard("Users", f"{block['users']:,}", help="enrolled users who were shown at least one merged list"),
        MetricCard(f"Prefer {block['treatment']} (B)", f"{block['wins']:,}"),
        MetricCard(f"Prefer {block['control']} (A)", f"{block['losses']:,}"),
        MetricCard("Ties", f"{block['ties']:,}", help="equal credit, including users who never clicked"),
        MetricCard("Preference share", _pct(block["preference_share"]),
                   help=f"share of users with a preference who preferred B; interval {interval}"),
        MetricCard("p-value", "–" if p_value is None else f"{p_value:.3g}", help=f"{block['decided_by']}"),
    ]


def verdict_notice(block: Block) -> Notice:
    control, treatment = block["control"], block["treatment"]
    if block["verdict"] == "B preferred":
        return Notice("success", f"**Users prefer {treatment}** over {control}.", ":material/thumb_up:")
    if block["verdict"] == "A preferred":
        return Notice("warning", f"**Users prefer {control}** (the control) over {treatment}.", ":material/thumb_down:")
    if block["verdict"] == "no data":
        return Notice("info", "No user has been shown a merged list yet.", ":material/info:")
    return Notice("info", "No preference detected yet.", ":material/hourglass_top:")


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
        change = ("The sequential test may be read at any time: a preference it detects stays detected, and "
                  "without one more users narrow the interval until it leaves 50% or settles around it.")
    else:
        needed = significant_wins(decided, block["alpha"])
        if needed is None:
            change = (f"With {decided} users with a preference no split would be significant yet: it needs more "
                      "users.")
        else:
            change = (f"With {decided} users with a preference, the sign test calls a preference from {needed} "
                      f"choosing one ranker ({needed / decided:.0%}) on; the verdict changes when the share "
                      "crosses that line, and more users move the line towards 50%. Read it once, at the "
                      "planned size, or use the sequential engine to watch it.")
    return f"{shows} {change}"


def share_figure(block: Block) -> go.Figure | None:
    """The preference share as a point with its interval, against 50%."""
    share, ci = block["preference_share"], block["ci"]
    if share is None or ci is None:
        return None
    traces = [{"type": "scatter", "x": [share], "y": ["preference for B"], "mode": "markers", "name": "share",
               "marker": {"size": 12, "color": TEAM_COLORS["B"]},
               "error_x": {"type": "data", "symmetric": False, "array": [ci[1] - share],
                           "arrayminus": [share - ci[0]]}}]
    if block["sequential"] is not None and block["sequential"]["ci"]:
        lo, hi = block["sequential"]["ci"]
        traces.append({"type": "scatter", "x": [share], "y": ["always valid"], "mode": "markers",
                       "name": "confidence sequence", "marker": {"size": 12, "color": "#9333ea"},
                       "error_x": {"type": "data", "symmetric": False, "array": [hi - share],
                                   "arrayminus": [share - lo]}})
    return charts.figure(traces, "Preference share with its interval", height=200, rules=[EVEN],
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
