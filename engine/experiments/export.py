"""A readout to share: CSV tables and one self-contained HTML report (pure; no I/O).

    recops experiments export KEY --format csv                      # the per-arm, per-metric results
    recops experiments export KEY --format csv --what timeseries    # the rows of the results over time
    recops experiments export KEY --format html --out report.html   # everything, one file

The CSV is one flat table a spreadsheet opens (two tables would need two files, or sections a
spreadsheet cannot read): ``--what`` picks which.  The HTML holds the verdict, the health checks,
the results, the results over time (a chart and its table), what each arm served and the
recommendation quality per arm; plotly.js is inlined once, so the file opens offline, without
RecOps, and refers to no URL.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from engine.experiments.results import ExperimentReadout, MetricResult, json_safe

RESULT_COLUMNS = ["metric", "role", "kind", "arm", "control", "users", "mean", "lift", "ci_low", "ci_high",
                  "p_value", "significant", "chance_to_win", "message"]
TIMESERIES_COLUMNS = ["period", "metric", "arm", "engine", "users", "mean", "lift", "ci_low", "ci_high", "p_value",
                      "significant", "boundary", "look", "chance_to_win", "message"]
EXPORT_WHAT = ("results", "timeseries")
CAPTIONS = {
    "frequentist": "What would change the verdict: the interval moving clear of 0 at the planned sample size — "
                   "read the frequentist interval once, at the end; earlier crossings are peeks.",
    "sequential": "What would change the verdict: the always-valid interval moving clear of 0 (a group-sequential "
                  "design: the z-statistic crossing the boundary at a look); it may be read at every period.",
    "bayesian": "What would change the verdict: the chance to win passing the decision threshold (or falling "
                "below its complement), shown as the credible interval clearing 0.",
}


def timeseries_caption(engine: str, unit: str) -> str:
    """The plain-words caption under the results-over-time chart."""
    return (f"The cumulative relative lift of each treatment over the control at the end of each {unit}, with the "
            f"{engine} engine's interval: the readout as it stood then. " + CAPTIONS.get(engine, ""))


def _ci(ci: Sequence[float] | None) -> tuple[float | None, float | None]:
    return (ci[0], ci[1]) if ci else (None, None)


def metric_rows(m: MetricResult) -> list[dict[str, Any]]:
    base = {"metric": m.metric, "role": m.role, "kind": m.kind}
    if m.readout is None:
        return [{**base, "message": m.error}]
    r = m.readout
    rows = [{**base, "arm": r.control, "control": True, "users": r.arms[0].users, "mean": r.arms[0].mean}]
    for t in r.results:
        low, high = _ci(t.ci)
        rows.append({**base, "arm": t.variant, "control": False, "users": t.users, "mean": t.mean, "lift": t.lift,
                     "ci_low": low, "ci_high": high, "p_value": t.decisive_p_value, "significant": t.significant,
                     "chance_to_win": t.chance_to_win, "message": "; ".join(t.messages) or None})
    return rows


def results_rows(readout: ExperimentReadout) -> list[dict[str, Any]]:
    """One row per metric and arm, the control first: what the readout's tables show."""
    return [json_safe(row) for m in readout.metrics.values() for row in metric_rows(m)]


def timeseries_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        low, high = _ci(row.get("ci"))
        out.append({**{k: v for k, v in row.items() if k != "ci"}, "ci_low": low, "ci_high": high})
    return out


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue()


def export_csv(readout: ExperimentReadout, report: Mapping[str, Any], what: str = "results") -> str:
    if what == "timeseries":
        return to_csv(timeseries_table(report.get("timeseries", [])), TIMESERIES_COLUMNS)
    return to_csv(results_rows(readout), RESULT_COLUMNS)


# ------------------------------------------------------------------------------ charts


def timeseries_figure(rows: Sequence[Mapping[str, Any]], metric: str) -> go.Figure | None:
    """Each treatment's cumulative lift on ``metric`` per period, with its interval as error bars
    (bars, not a band: a run's first period is a single point)."""
    mine = [r for r in rows if r.get("metric") == metric and r.get("lift") is not None]
    if not mine:
        return None
    fig = go.Figure()
    for arm in dict.fromkeys(r["arm"] for r in mine):
        points = [r for r in mine if r["arm"] == arm]
        lifts = [r["lift"] for r in points]
        up = [r["ci"][1] - r["lift"] if r.get("ci") and r["ci"][1] is not None else None for r in points]
        down = [r["lift"] - r["ci"][0] if r.get("ci") and r["ci"][0] is not None else None for r in points]
        fig.add_trace(go.Scatter(x=[r["period"] for r in points], y=lifts, mode="lines+markers", name=arm,
                                 error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down}))
    fig.add_hline(y=0, line={"color": "#64748b", "dash": "dot"})
    # periods are labels (``2026-12-02T04``), not timestamps for plotly to re-scale
    fig.update_xaxes(type="category")
    fig.update_layout(title=f"{metric}: lift over time", yaxis={"tickformat": "+.0%"}, height=320,
                      margin={"l": 40, "r": 10, "t": 40, "b": 30})
    return fig


# ------------------------------------------------------------------------------ HTML


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{html.escape(str(k))}: {_cell(v)}" for k, v in value.items())
    return html.escape(str(value))


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "<p class='empty'>nothing yet</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#0f172a;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{border:1px solid #cbd5e1;padding:.25em .5em;text-align:left}th{background:#f1f5f9}
.ok{color:#16a34a}.warning{color:#b45309}.failed{color:#dc2626;font-weight:bold}
.verdict{font-size:1.2em;padding:.6em;background:#eff6ff;border-left:4px solid #2563eb}
.caption{color:#475569;font-size:.85em}
"""


def _health_html(checks: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c['name'])}</td><td class='{html.escape(c['status'])}'>{html.escape(c['status'])}</td>"
        f"<td>{html.escape(c['message'])}</td></tr>" for c in checks)
    return f"<table><thead><tr><th>check</th><th>status</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>"


def report_html(readout: ExperimentReadout, report: Mapping[str, Any]) -> str:
    """One self-contained HTML file: verdict, health, results, results over time, served, quality."""
    rows = report.get("timeseries", [])
    unit = report.get("timeseries_unit", "day")
    charts: list[str] = []
    for metric in readout.metrics:
        fig = timeseries_figure(rows, metric)
        if fig is not None:
            # plotly.js once, inline: the file must open offline and refer to no URL
            charts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if not charts else False,
                                      config={"displaylogo": False}))
    quality = report.get("quality") or {}
    overlap = quality.get("overlap") or []
    sections = [
        f"<h1>{html.escape(readout.name)} <small>({html.escape(readout.key)})</small></h1>",
        f"<p>{html.escape(readout.status)}, {html.escape(readout.kind)}, phase {readout.phase} of {readout.phases}, "
        f"engine {html.escape(readout.engine)}</p>",
        f"<p class='verdict'>{html.escape(readout.decision_text)}</p>",
        "<h2>Health</h2>", _health_html(report.get("health", [])),
        "<h2>Results</h2>", html_table(results_rows(readout), RESULT_COLUMNS),
        "<h2>Results over time</h2>",
        f"<p class='caption'>{html.escape(timeseries_caption(readout.engine, unit))}</p>",
        *charts,
        html_table(timeseries_table(rows), TIMESERIES_COLUMNS),
        "<h2>Served</h2>",
        html_table(list(readout.served), ["variant", "spec", "version", "number", "stage", "serving",
                                          "exposures_by_version"]),
        "<h2>Recommendation quality</h2>",
        html_table(quality.get("arms", []), ["variant", "lists", "sampled_lists", "coverage", "diversity", "novelty",
                                             "cold_start_share", "fallback_share", "message"]),
        html_table(overlap, ["variants", "users", "jaccard"]) if overlap
        else f"<p class='caption'>{html.escape(quality.get('overlap_message') or '')}</p>",
        "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in readout.messages) + "</ul>",
    ]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(readout.key)} readout</title><style>{STYLE}</style></head><body>"
            + "\n".join(sections) + "</body></html>")
