"""The Readout page's results over time: which metric to plot (any the experiment declares, built-in or
custom), the chart of each engine, its plain-words caption and, in place of a chart that cannot be
drawn, the reason.

The rows are the readout report's ``timeseries`` (``engine.experiments.timeseries``: one per period,
arm and metric, the readout as it stood at the end of the period); nothing is computed here but
what to draw and what to say.

- every engine: each treatment's cumulative relative lift with the engine's interval (frequentist
  confidence interval, always-valid confidence sequence, group-sequential repeated interval, Bayesian
  credible interval);
- Bayesian: the chance to win per period too, against the decision thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analysis.decision import LOSS_CHANCE, WIN_CHANCE
from analysis.decision_rules import MetricDeclaration
from engine.console import charts
from engine.console.notices import Notice
from engine.experiments import Experiment, ExperimentReadout, MetricResult
from engine.experiments.metric_definitions import declarations
from engine.experiments.metrics import METRICS

Row = Mapping[str, Any]
FRAME_COLUMNS = ["period", "arm", "lift", "ci_low", "ci_high", "chance_to_win", "boundary", "look", "message"]
CHANCE_RULES = [charts.Rule(WIN_CHANCE, label=f"{WIN_CHANCE:.0%}: higher wins"),
                charts.Rule(LOSS_CHANCE, label=f"{LOSS_CHANCE:.0%}: lower wins", color=charts.ZERO_COLOR)]
ZERO = charts.Rule(0, color=charts.ZERO_COLOR)
NOTED_PERIODS = 6  # a note names its latest periods; a week of quiet hours would otherwise fill the page


@dataclass(frozen=True)
class MetricChoice:
    """A metric the over-time chart can show: its name, role, direction and where it comes from."""

    name: str
    role: str
    direction: str
    custom: bool
    margin: float

    @property
    def label(self) -> str:
        origin = "custom" if self.custom else "built-in"
        return f"{self.name} · {self.role} ({origin}, {self.direction} is better)"


def metric_choices(readout: ExperimentReadout, exp: Experiment) -> dict[str, MetricChoice]:
    """Every metric of the readout, goal first then guardrails and secondaries, as the tables list them;
    margins from the experiment's declarations (built-in guardrails share ``guardrail_margin``)."""
    declared = {d.name: d for d in declarations(exp.goal_metric, exp.guardrail_metrics, exp.metrics,
                                                exp.guardrail_margin)}
    out = {}
    for m in readout.metrics.values():
        d = declared.get(m.metric, MetricDeclaration(m.metric, m.role))
        out[m.metric] = MetricChoice(m.metric, m.role, m.direction, m.metric not in METRICS, d.margin)
    return out


# ------------------------------------------------------------------------------ rows


def metric_frame(rows: Sequence[Row], metric: str) -> pd.DataFrame:
    """The treatments' rows of ``metric`` (rows with a lift), oldest period first."""
    data = []
    for r in rows:
        if r.get("metric") != metric or r.get("lift") is None:
            continue
        ci = r.get("ci") or (None, None)
        data.append({"period": r["period"], "arm": r["arm"], "lift": r["lift"], "ci_low": ci[0], "ci_high": ci[1],
                     "chance_to_win": r.get("chance_to_win"), "boundary": r.get("boundary"), "look": r.get("look"),
                     "message": r.get("message")})
    return pd.DataFrame(data, columns=FRAME_COLUMNS)


def period_notes(rows: Sequence[Row], metric: str, shown: int = NOTED_PERIODS) -> list[str]:
    """Each note on ``metric`` (no new data, no users yet, an undefined ratio ...) once, with the periods
    and arms it concerns, the latest ``shown`` periods named:
    ``no new data in this period: ... — 2026-12-02T05 (als, control), 2026-12-02T06 (als, control)``."""
    notes: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        # a period before the first exposure has rows with no metric: they concern every metric
        if r.get("metric") not in (metric, None) or not r.get("message"):
            continue
        arms = notes.setdefault(str(r["message"]), {}).setdefault(str(r["period"]), [])
        if r["arm"] not in arms:
            arms.append(str(r["arm"]))
    out = []
    for message, periods in notes.items():
        named = [f"{p} ({', '.join(arms)})" for p, arms in periods.items()]
        earlier = len(named) - shown
        out.append(f"{message} — " + ", ".join(named[-shown:]) + (f" and {earlier} earlier" if earlier > 0 else ""))
    return out


def missing_notice(rows: Sequence[Row], result: MetricResult | None, metric: str) -> Notice:
    """What stands in place of the chart when no period has a lift on ``metric``, and why: nothing
    recorded yet, no user exposed yet, or the metric's own problem (an undefined ratio ...)."""
    mine = [r for r in rows if r.get("metric") == metric]
    if not mine:
        why = next((str(r["message"]) for r in reversed(rows) if r.get("message")), "no period recorded yet")
        return Notice("info", f"No results over time yet: {why}.", ":material/hourglass_empty:")
    if result is not None and result.readout is None and result.error:
        return Notice("warning", f"**{metric} cannot be plotted over time**: {result.error}. It will be once "
                                 "every arm has data for it.", ":material/warning:")
    why = next((str(r["message"]) for r in reversed(mine) if r.get("message")), "no interval yet")
    return Notice("info", f"No lift on **{metric}** in any period yet: {why}.", ":material/hourglass_empty:")


# ------------------------------------------------------------------------------ charts

INTERVAL_NAME = {"frequentist": "confidence interval", "sequential": "always-valid interval",
                 "group": "group-sequential repeated interval", "bayesian": "credible interval"}


def _interval_kind(frame: pd.DataFrame, engine: str) -> str:
    return "group" if engine == "sequential" and frame["boundary"].notna().any() else engine


def _error_bars(rows: pd.DataFrame) -> dict[str, Any]:
    return {"type": "data", "symmetric": False, "array": (rows["ci_high"] - rows["lift"]).tolist(),
            "arrayminus": (rows["lift"] - rows["ci_low"]).tolist()}


def lift_figure(frame: pd.DataFrame, metric: str, engine: str, unit: str) -> go.Figure | None:
    """Each treatment's cumulative relative lift on ``metric`` at the end of each period, with the
    engine's interval as error bars (a run's first period is a single point, which a band cannot show)."""
    if frame.empty:
        return None
    traces = [{"type": "scatter", "x": rows["period"].tolist(), "y": rows["lift"].tolist(), "mode": "lines+markers",
               "name": str(arm), "error_y": _error_bars(rows),
               "hovertemplate": f"{arm} · %{{x}}<br>lift %{{y:+.2%}}<extra></extra>"}
              for arm, rows in frame.groupby("arm", sort=False)]
    interval = INTERVAL_NAME.get(_interval_kind(frame, engine), "interval")
    # periods are the store's labels (``2026-12-02T04``): categories, not timestamps for plotly to re-scale
    return charts.figure(traces, f"{metric}: cumulative lift per {unit}, {interval}", showlegend=True,
                         xaxis={"type": "category"}, yaxis={"tickformat": "+.0%", "title": {"text": "relative lift"}},
                         rules=[ZERO])


def chance_figure(frame: pd.DataFrame, metric: str, unit: str) -> go.Figure | None:
    """The Bayesian chance each treatment beats the control on ``metric``, per period, against the
    thresholds that decide; None without a chance to win."""
    data = frame.dropna(subset=["chance_to_win"])
    if data.empty:
        return None
    traces = charts.line_traces(data, "period", "chance_to_win", "arm", mode="lines+markers")
    return charts.figure(traces, f"{metric}: chance to beat the control per {unit}", showlegend=True,
                         xaxis={"type": "category"}, yaxis={"tickformat": ".0%", "range": [0, 1],
                                                            "title": {"text": "chance to win"}},
                         rules=CHANCE_RULES)


# ------------------------------------------------------------------------------ captions

SHOWS = {
    "frequentist": "the readout as it stood then, with its 95% confidence interval. Read it once, at the planned "
                   "sample size: an interval that clears 0 earlier is a peek, not a verdict",
    "sequential": "the readout as it stood then, with the always-valid interval (a confidence sequence), which may "
                  "be read at every period",
    "group": "the readout as it stood then, with the group-sequential repeated interval: it clears 0 exactly when "
             "the z-statistic crosses the boundary at a look",
    "bayesian": "the readout as it stood then, with the credible interval; the second chart is the chance that each "
                "treatment beats the control",
}


def _better(direction: str) -> str:
    return "above" if direction == "higher" else "below"


def _worse(direction: str) -> str:
    return "below" if direction == "higher" else "above"


def role_words(choice: MetricChoice, engine: str) -> str:
    """What on this metric would change the verdict, by its role and the engine's rule."""
    name, d = choice.name, choice.direction
    if choice.role == "secondary":
        return f"{name} is a secondary metric: it is reported, and never changes the verdict."
    if choice.role == "goal":
        if engine == "bayesian":
            win = f"at least {WIN_CHANCE:.0%}" if d == "higher" else f"at most {LOSS_CHANCE:.0%}"
            return (f"{name} is a goal ({d} is better): a ship needs a treatment's chance to win of {win} "
                    "(with no guardrail significantly worse); until then the verdict is keep running.")
        return (f"{name} is a goal ({d} is better): a ship needs a treatment's interval entirely {_better(d)} 0 "
                f"(and every guardrail holding); an interval entirely {_worse(d)} 0 stops the experiment and keeps "
                "the control; an interval across 0 means keep running.")
    if engine == "frequentist":
        return (f"{name} is a guardrail ({d} is better, tolerated deterioration {choice.margin:.0%}): the "
                f"experiment stops if a treatment is shown worse than that margin, and a ship needs it shown within "
                "the margin (non-inferiority), which can take more users than the goal.")
    return (f"{name} is a guardrail ({d} is better): a winner that is significantly worse here is held, "
            "not shipped.")


def caption(choice: MetricChoice, frame: pd.DataFrame, engine: str, unit: str) -> str:
    """The plain-words caption under the chart: what it shows, then what would change the verdict."""
    kind = _interval_kind(frame, engine)
    text = (f"Each treatment's cumulative relative lift on {choice.name} over the control at the end of each {unit}: "
            f"{SHOWS.get(kind, SHOWS['frequentist'])}. ")
    if kind == "group" and not frame.empty:
        last = frame.dropna(subset=["boundary"]).iloc[-1]
        text += f"At look {int(last['look'])} the boundary is |z| ≥ {float(last['boundary']):.2f}. "
    return text + role_words(choice, engine)
