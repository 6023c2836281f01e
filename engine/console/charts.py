"""Plotly figures in the console's house style, built from plain dicts in one validated construction.

Each ``update_layout``/``update_yaxes``/``add_hline`` on a graph_objects figure walks and re-validates
the figure, which made building the Monitoring page's six charts 3-5x slower than the page's
Prometheus queries; so every figure here is one ``go.Figure(data=..., layout=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go

from engine.console.formatting import Unit

Trace = dict[str, Any]  # one plotly trace as a plain dict, e.g. {"type": "scatter", "x": ..., "y": ...}
AXIS_FORMAT: dict[str, dict[str, str]] = {"seconds": {"ticksuffix": " ms"}, "percent": {"tickformat": ".1%"},
                                          "per_second": {"ticksuffix": "/s"}, "ratio": {"tickformat": ".2f"}}
TARGET_COLOR = "#ef4444"
ZERO_COLOR = "#334155"
Y_TICKS_MARGIN = 60  # px for numeric tick labels such as "1,250 ms" or "+12%"
X_TICKS_MARGIN = 44  # px for time ticks, which plotly writes on two lines ("02:05" over the date)
TITLE_MARGIN = 22  # px more for an axis title


@dataclass(frozen=True)
class Rule:
    """A dotted reference line across the plot: horizontal at ``y = at`` (a target) or vertical at ``x = at``."""

    at: float
    axis: Literal["x", "y"] = "y"
    label: str | None = None
    color: str = TARGET_COLOR

    def shape(self) -> dict[str, Any]:
        across = "y" if self.axis == "x" else "x"
        return {"type": "line", "xref" if self.axis == "y" else "yref": f"{across} domain",
                f"{across}0": 0, f"{across}1": 1, f"{self.axis}ref": self.axis, f"{self.axis}0": self.at,
                f"{self.axis}1": self.at, "line": {"dash": "dot", "color": self.color}}

    def annotation(self) -> dict[str, Any] | None:
        if self.label is None:
            return None
        across = "y" if self.axis == "x" else "x"
        return {"text": self.label, "showarrow": False, "xanchor": "left", "yanchor": "bottom",
                f"{across}ref": f"{across} domain", across: 0 if self.axis == "y" else 1,
                f"{self.axis}ref": self.axis, self.axis: self.at}


def figure(data: Sequence[Trace], title: str | None = None, *, height: int = 320, unit: Unit | None = None,
           xaxis: Mapping[str, Any] | None = None, yaxis: Mapping[str, Any] | None = None,
           rules: Sequence[Rule] = (), fit_labels: bool = False, **layout: Any) -> go.Figure:
    """A figure in the house style: title top left, legend top right on the same line, axis formats by
    unit (seconds are shown as milliseconds: the caller scales the data with ``scale``).

    Margins are fixed, sized for numeric tick labels and axis titles: letting plotly.js grow them to
    fit the labels costs the browser a second layout pass per chart (about 60 ms each on this
    machine, measured with six charts).  ``fit_labels`` keeps that growth for charts whose category
    labels have no bounded width (bar names, metric names).
    """
    x, y = dict(xaxis or {}), {**AXIS_FORMAT.get(unit or "", {}), **(yaxis or {})}
    if fit_labels:
        margin: dict[str, Any] = {"l": 8, "r": 8, "t": 48, "b": 8}
    else:
        margin = {"l": Y_TICKS_MARGIN + (TITLE_MARGIN if "title" in y else 0), "r": 16, "t": 48,
                  "b": X_TICKS_MARGIN + (TITLE_MARGIN if "title" in x else 0), "autoexpand": False}
        x, y = {"automargin": False, **x}, {"automargin": False, **y}
    notes = [a for a in (r.annotation() for r in rules) if a is not None]
    full: dict[str, Any] = {
        "height": height, "margin": margin,
        "title": {"x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top", "font": {"size": 15},
                  **({"text": title} if title else {})},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        "hovermode": "x unified" if unit else "closest",
        "xaxis": x,
        "yaxis": y,
        **({"shapes": [r.shape() for r in rules]} if rules else {}),
        **({"annotations": notes} if notes else {}),
        **layout,
    }
    return go.Figure(data=list(data), layout=full)


def line_traces(frame: pd.DataFrame, x: str, y: str, group: str, mode: str = "lines") -> list[Trace]:
    """One line per ``group`` value, in order of appearance."""
    return [{"type": "scatter", "x": rows[x], "y": rows[y], "name": str(name), "mode": mode}
            for name, rows in frame.groupby(group, sort=False)]


def line_chart(frame: pd.DataFrame, x: str, y: str, group: str, title: str, **style: Any) -> go.Figure:
    """One line per ``group`` value, legend always shown; ``style`` as for ``figure``."""
    return figure(line_traces(frame, x, y, group), title, showlegend=True, **style)


def hbar_chart(labels: list[str], values: list[float], title: str | None = None, text: list[str] | None = None,
               *, xaxis: Mapping[str, Any] | None = None, **style: Any) -> go.Figure:
    """Horizontal bars, the first label on top."""
    bars = {"type": "bar", "x": values, "y": labels, "orientation": "h", "textposition": "auto",
            **({"text": text} if text is not None else {})}
    return figure([bars], title, xaxis=xaxis, yaxis={"autorange": "reversed"}, fit_labels=True, **style)


def scale(unit: Unit) -> float:
    """The factor a value is multiplied by for its axis (seconds are drawn in milliseconds)."""
    return 1000.0 if unit == "seconds" else 1.0
