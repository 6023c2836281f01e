"""What the Readout page (and the Overview's running experiments) show of an experiment's readout:
its status badge, the results as tables and charts, the decision and the warnings around it.

Everything here reads an ``ExperimentReadout``; the statistics themselves are computed by
``engine.experiments`` and ``analysis``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler
from scipy import stats

from analysis import decision as decision_rules
from analysis.decision import LOSS_CHANCE, WIN_CHANCE
from engine.console import charts
from engine.console.badges import Badge
from engine.console.notices import Level, Notice
from engine.experiments import ExperimentReadout, MetricResult

UNDERPOWERED_DAYS = 28.0  # a test that needs more than four weeks at current traffic cannot answer in time
VERDICTS = decision_rules.VERDICTS  # decision actions that are a verdict (not "keep running")
Direction = Literal["better", "worse", "inconclusive", "no data"]
CellFormats = dict[Any, str | Callable[[object], str] | None]  # what Styler.format takes, by column
ENGINE_LABELS = {"frequentist": "Frequentist", "sequential": "Sequential (always valid)", "bayesian": "Bayesian"}
RESULT_COLUMNS = ["metric", "role", "variant", "users", "control", "value", "lift", "ci_low", "ci_high", "p_value",
                  "chance_to_win", "direction", "note"]
LABELS = {"control": "control value", "value": "variant value", "lift": "lift", "ci_low": "interval low",
          "ci_high": "interval high", "p_value": "p-value", "chance_to_win": "chance to win"}
RESULT_FORMATS: CellFormats = {
    "control value": "{:.4g}", "variant value": "{:.4g}", "lift": "{:+.2%}", "interval low": "{:+.2%}",
    "interval high": "{:+.2%}", "p-value": "{:.3g}", "chance to win": "{:.1%}", "users": "{:,.0f}"}
ARM_FORMATS: CellFormats = {
    "weight": "{:.0%}", "expected share": "{:.1%}", "users": "{:,.0f}", "observed share": "{:.1%}",
    "impressions": "{:,.0f}", "clicks": "{:,.0f}", "purchases": "{:,.0f}"}
ROW_COLORS = {"better": "background-color: #dcfce7", "worse": "background-color: #fee2e2"}
DIRECTION_COLORS = {"better": "#16a34a", "worse": "#dc2626", "inconclusive": "#64748b"}
DECISION_LEVEL: dict[str, Level] = {"ship": "success", "hold": "warning", "untrustworthy": "error"}
LIFT_AXIS = {"tickformat": "+.0%", "title": {"text": "relative lift"}}
ZERO_LIFT = charts.Rule(0, axis="x", color=charts.ZERO_COLOR)
MISSING = "–"
INTERVAL_NOTE = ("Lift is relative to the control; its interval is the delta-method interval of "
                 "treatment/control − 1 (wider than the absolute interval divided by the control mean).")
SIGNIFICANCE_NOTE = {
    "frequentist": "Significance: p-value below alpha (Holm-adjusted across treatments).",
    "sequential": "Always-valid p-value and confidence sequence: safe to peek.",
    "bayesian": "Chance to win ≥ 95% is better, ≤ 5% worse.",
}
# the rules of analysis.decision_rules (and the health checks before them), as the page says them
RULE_WORDS = {
    "ship": "**ship** (a goal is significantly better and every guardrail holds)",
    "stop_guardrail": "**stop for a guardrail** (a treatment is worse than a guardrail tolerates)",
    "stop_goal": "**stop, keep the control** (a treatment is significantly worse on a goal)",
    "no_effect": "**no effect** (the planned sample is reached and no goal moved)",
    "keep_running": "**keep running** (not conclusive yet)",
    "untrustworthy": "**do not trust the numbers** (the sample ratio check failed)",
    "not_enough_data": "**not enough data** (the goal cannot be read yet)",
}
PEEKING_WARNING = ("The frequentist test is meant to be read once, at the planned sample size: acting on it earlier "
                   "inflates false positives (with 14 looks a 5% test is wrong about 22% of the time). To watch "
                   "the experiment as it runs, switch to the sequential engine.")


# ------------------------------------------------------------------------------ status


def peeking(readout: ExperimentReadout) -> bool:
    """A fixed-horizon verdict read before its planned sample size: a peek (:func:`analysis.decision.peeking`)."""
    return decision_rules.peeking(readout.engine, readout.progress.fraction)


def status_badge(readout: ExperimentReadout) -> Badge:
    """SRM, underpowered, ready to decide or healthy, in that order of precedence.

    Underpowered: the planned sample is smaller than the MDE needs at the observed baseline, or
    reaching it takes more than four weeks at current traffic.  Ready: the planned sample is
    reached, or an engine that may be read at any time (sequential, Bayesian) has a verdict.
    """
    if readout.srm_flag:
        return Badge("SRM", "red", f"sample ratio mismatch (p = {readout.srm_p_value:.2g}): do not trust the numbers")
    progress = readout.progress
    goal = readout.goal.readout
    required = goal.required_users_per_arm if goal is not None else None
    planned = progress.planned_per_variant
    if progress.source == "planned" and required and planned and planned < required:
        return Badge("underpowered", "orange", f"planned {planned:,} users per variant but the MDE needs "
                                               f"{required:,} at the observed baseline")
    verdict = readout.decision.action in VERDICTS
    if decision_rules.ready_to_decide(readout.engine, readout.decision.action, progress.fraction):
        return Badge("ready to decide", "blue", readout.decision_text)
    days = goal.decision.days_remaining if goal is not None else None
    if days is not None and days > UNDERPOWERED_DAYS:
        return Badge("underpowered", "orange", f"about {days:.0f} more days to reach the sample size at current "
                                               "traffic")
    if verdict and peeking(readout):
        return Badge("healthy", "green", f"collecting: {progress.fraction:.0%} of the planned sample; the current "
                                         f"frequentist verdict ({readout.decision_text}) is a peek")
    return Badge("healthy", "green", readout.decision_text)


def exposed_text(readout: ExperimentReadout) -> str:
    if readout.interleaving is not None:  # no arm has users of its own: each saw both rankers
        return f"{readout.interleaving['users']:,} users shown both rankers"
    return f"{sum(a.users for a in readout.arms):,} users exposed"


@dataclass(frozen=True)
class ProgressView:
    fraction: float | None  # None: no bar, the text is a caption
    text: str


def running_progress(readout: ExperimentReadout) -> ProgressView | None:
    """The Overview's progress bar of a running experiment; None without a planned or required size."""
    p = readout.progress
    if p.fraction is None:
        return None
    return ProgressView(p.fraction, f"{p.fraction:.0%} of {p.planned_per_variant:,} users per variant")


def progress_view(readout: ExperimentReadout) -> ProgressView:
    p = readout.progress
    if p.fraction is None:
        return ProgressView(None, f"Smallest arm: {p.min_users:,} users. No sample size planned, and none computable "
                                  "yet.")
    source = "planned" if p.source == "planned" else "required for the MDE at the observed baseline"
    return ProgressView(p.fraction, f"{p.min_users:,} of {p.planned_per_variant:,} users per variant ({source}) — "
                                    f"{p.fraction:.0%}")


def srm_notice(readout: ExperimentReadout) -> Notice:
    if not readout.srm_flag:
        return Notice("caption", f"Sample ratio check passed (chi-square p = {readout.srm_p_value:.3g} against the "
                                 "configured weights).")
    observed = ", ".join(f"{a.name} {a.users:,}" for a in readout.arms)
    expected = ", ".join(f"{a.name} {s:.0%}" for a, s in zip(readout.arms, readout.expected_shares, strict=True))
    return Notice("error", f"**Sample ratio mismatch** (chi-square p = {readout.srm_p_value:.2g} < 0.001): users per "
                           f"arm ({observed}) do not match the configured shares ({expected}). Assignment or exposure "
                           "logging is broken: do not trust any result below until the cause is found.",
                  ":material/error:")


def deciding_metric(readout: ExperimentReadout) -> str | None:
    """The metric that decided: the rule's own, else (the sequential and Bayesian engines decide on the
    goal) the broken guardrail of a held winner, or the goal; None for a verdict before any rule."""
    d = readout.decision
    if d.metric:
        return d.metric
    if d.rule in ("untrustworthy", "not_enough_data", ""):
        return None
    if d.rule == "stop_guardrail":
        broken = [m for m, variants in d.guardrail_failures.items() if d.variant is None or d.variant in variants]
        return broken[0] if broken else None
    return readout.goal.metric


def rule_words(readout: ExperimentReadout) -> str:
    """The rule that decided, in plain words, and the metric (with its role) that decided it."""
    d = readout.decision
    words = RULE_WORDS.get(d.rule, d.rule.replace("_", " "))
    metric = deciding_metric(readout)
    if metric is None:
        return f"Rule that decided: {words}."
    found = readout.metrics.get(metric)
    role = f" ({found.role})" if found is not None else ""
    return f"Rule that decided: {words} — decided by `{metric}`{role}."


def decision_notice(readout: ExperimentReadout) -> Notice:
    d = readout.decision
    rule = f" {rule_words(readout)}" if d.rule else ""
    action = d.action.replace("_", " ")
    text = readout.decision_text.rstrip(".")
    if text.lower().startswith(action):  # the analysis' reason often opens with the action's own words
        text = text[len(action):].lstrip(" :—-")
    reason = f" {text}." if text else ""
    return Notice(DECISION_LEVEL.get(d.action, "info"), f"**Decision: {action}.**{reason}{rule}")


def peeking_notice(readout: ExperimentReadout) -> Notice | None:
    """A warning when a frequentist verdict is read before its planned sample size."""
    if peeking(readout) and readout.decision.action in VERDICTS:
        return Notice("warning", PEEKING_WARNING, ":material/visibility:")
    return None


def guardrail_notice(readout: ExperimentReadout) -> Notice:
    failures = readout.decision.guardrail_failures
    if failures:
        return Notice("warning", "Significantly worse: " + "; ".join(f"{m} ({', '.join(v)})"
                                                                      for m, v in failures.items()))
    return Notice("success", "No guardrail is significantly worse.", ":material/check_circle:")


def goal_caption(readout: ExperimentReadout, decision_engine: str) -> str:
    return f"{readout.goal.description}. {INTERVAL_NOTE} {SIGNIFICANCE_NOTE[decision_engine]}"


# ------------------------------------------------------------------------------ tables


def direction(result: Any, decision_engine: str) -> Direction:
    if result.lift_abs is None:
        return "no data"
    if decision_engine == "bayesian":
        ctw = result.chance_to_win
        if ctw is None:
            return "inconclusive"
        return "better" if ctw >= WIN_CHANCE else "worse" if ctw < LOSS_CHANCE else "inconclusive"
    if not result.significant:
        return "inconclusive"
    return "better" if result.lift_abs > 0 else "worse"


def readout_table(readout: ExperimentReadout) -> pd.DataFrame:
    """One row per metric × treatment: control and variant values, relative lift and its interval,
    the p-value (frequentist, sequential) or chance to win (Bayesian), and the direction."""
    rows = []
    for m in (readout.goal, *readout.goals, *readout.guardrails, *readout.secondary):
        rows.extend(_metric_rows(m, readout.engine))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _metric_rows(m: MetricResult, decision_engine: str) -> list[dict[str, Any]]:
    if m.readout is None:
        return [{"metric": m.metric, "role": m.role, "variant": MISSING, "direction": "no data", "note": m.error or ""}]
    rows = []
    for r in m.readout.results:
        # the interval of the test whose p-value stands beside it (adjusted with it under Holm/BH)
        ci = (r.ci if r.test == "relative" else None) or (None, None)
        rows.append({
            "metric": m.metric, "role": m.role, "variant": r.variant, "users": r.users,
            "control": r.control_mean, "value": r.mean, "lift": r.lift_rel, "ci_low": ci[0], "ci_high": ci[1],
            "p_value": None if decision_engine == "bayesian" else (
                r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value),
            "chance_to_win": r.chance_to_win,
            "direction": oriented_direction(direction(r, decision_engine), m.direction),
            "note": "; ".join(r.messages),
        })
    return rows


def oriented_direction(d: Direction, metric_direction: str) -> Direction:
    """A lower-is-better metric (declared ``direction: lower``) is better when it falls."""
    if metric_direction != "lower":
        return d
    return "worse" if d == "better" else "better" if d == "worse" else d


def split_roles(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The goal's (and secondary metrics') rows, and the guardrails' rows."""
    guardrail = table["role"] == "guardrail"
    return table[~guardrail], table[guardrail]


def styled_results(table: pd.DataFrame, decision_engine: str) -> Styler:
    """Rows of ``readout_table`` for display: the engine's own significance column, readable headers,
    percentages, and better/worse rows coloured."""
    shown = table.drop(columns=["chance_to_win"] if decision_engine != "bayesian" else ["p_value"]) \
        .rename(columns=LABELS)
    return shown.style.hide(axis="index") \
        .apply(lambda row: [ROW_COLORS.get(row["direction"], "")] * len(row), axis=1) \
        .format({k: v for k, v in RESULT_FORMATS.items() if k in shown.columns}, na_rep=MISSING)


def arms_table(readout: ExperimentReadout) -> pd.DataFrame:
    total = sum(a.users for a in readout.arms)
    return pd.DataFrame([{
        "variant": a.name, "model": a.model, "weight": a.weight, "users": a.users,
        "expected share": e, "observed share": a.users / total if total else None,
        **{k: v for k, v in a.totals.items() if k in ("impressions", "clicks", "purchases")},
    } for a, e in zip(readout.arms, readout.expected_shares, strict=True)])


def styled_arms(readout: ExperimentReadout) -> Styler:
    return arms_table(readout).style.hide(axis="index").format(ARM_FORMATS, na_rep=MISSING)


# ------------------------------------------------------------------------------ what each arm served

SERVED_COLUMNS = ["variant", "spec", "served version", "version id", "serving settings", "exposures by version",
                  "versions served"]
MIXED = "background-color: #ffedd5"


def served(readout: ExperimentReadout | Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The readout's ``served`` list (what each arm served); None from an engine that does not give it."""
    value = readout.get("served") if isinstance(readout, Mapping) else getattr(readout, "served", None)
    return [dict(s) for s in value] if value else None


def _version_words(arm: Mapping[str, Any]) -> str:
    number, stage = arm.get("number"), arm.get("stage")
    head = f"{arm.get('model', MISSING)} " + (f"v{number}" if number else str(arm.get("version") or MISSING))
    return f"{head} ({stage})" if stage else head


def _settings_words(serving: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted((serving or {}).items())
                     ) or "defaults"


def _exposure_words(arm: Mapping[str, Any]) -> str:
    """``v7: 1,200; 20261201T…-ab12: 300`` (a version's number when it is the one the arm serves now)."""
    counts = arm.get("exposures_by_version") or {}
    name = {arm.get("version"): f"v{arm['number']}"} if arm.get("number") else {}
    return "; ".join(f"{name.get(v, v)}: {int(n):,}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1])
                     ) or MISSING


def served_table(arms: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per arm: its spec, the version it resolves to (number, stage), its serving settings (the ones
    that differ from the defaults) and its exposures by version."""
    return pd.DataFrame([{
        "variant": a.get("variant"), "spec": a.get("spec"), "served version": _version_words(a),
        "version id": a.get("version") or MISSING, "serving settings": _settings_words(a.get("serving")),
        "exposures by version": _exposure_words(a), "versions served": len(a.get("exposures_by_version") or {}),
    } for a in arms], columns=SERVED_COLUMNS)


def styled_served(arms: Sequence[Mapping[str, Any]]) -> Styler:
    """``served_table`` with the arms that served more than one version highlighted."""
    return served_table(arms).style.hide(axis="index").apply(
        lambda row: [MIXED if row["versions served"] > 1 else ""] * len(row), axis=1)


def mixed_versions_notice(arms: Sequence[Mapping[str, Any]]) -> Notice | None:
    """A warning for every arm that served more than one version: its numbers mix them."""
    mixed = [a for a in arms if len(a.get("exposures_by_version") or {}) > 1]
    if not mixed:
        return None
    said = "; ".join(f"`{a.get('variant')}` ({a.get('spec')}) served {len(a['exposures_by_version'])} versions: "
                     f"{_exposure_words(a)}" for a in mixed)
    return Notice("warning", f"**More than one version served in an arm.** {said}. The version behind a spec changed "
                             "during the experiment (a promotion, a rollback or a newer candidate), so the arm's "
                             "numbers mix them; pin a version (`model@7`) to compare one.", ":material/layers:")


def export_csv(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False).encode()


def export_name(key: str, phase: int, decision_engine: str) -> str:
    return f"{key}-phase{phase}-{decision_engine}.csv"


# ------------------------------------------------------------------------------ charts


def interval_figure(table: pd.DataFrame, title: str) -> go.Figure | None:
    """Each metric's lift with its interval, one row per metric × treatment; None without any lift."""
    data = table.dropna(subset=["lift"])
    if data.empty:
        return None
    traces = []
    for row in data.to_dict("records"):
        label = f"{row['metric']} · {row['variant']}" + (" (guardrail)" if row["role"] == "guardrail" else "")
        has_ci = pd.notna(row["ci_low"]) and pd.notna(row["ci_high"])
        traces.append({
            "type": "scatter", "x": [row["lift"]], "y": [label], "mode": "markers",
            "marker": {"size": 11, "color": DIRECTION_COLORS.get(row["direction"])},
            "error_x": {"type": "data", "symmetric": False, "array": [row["ci_high"] - row["lift"]] if has_ci else [0],
                        "arrayminus": [row["lift"] - row["ci_low"]] if has_ci else [0]},
            "name": label, "showlegend": False, "hovertemplate": f"{label}<br>lift %{{x:+.2%}}<extra></extra>"})
    return charts.figure(traces, title, height=max(220, 60 * len(data) + 90), xaxis=LIFT_AXIS,
                         yaxis={"autorange": "reversed"}, rules=[ZERO_LIFT], fit_labels=True)


def posterior_curves(readout: ExperimentReadout, points: int = 200) -> pd.DataFrame:
    """Density of each treatment's relative lift on the goal metric: a normal matched to the Bayesian
    credible interval (an approximation of the posterior, for display)."""
    goal = readout.goal.readout
    rows: list[dict[str, Any]] = []
    if goal is None:
        return pd.DataFrame(columns=["variant", "lift", "density"])
    for r in goal.results:
        b = r.bayesian
        if b is None or b.lift_rel is None or b.ci_rel is None:
            continue
        z = stats.norm.ppf(0.5 + b.ci_level / 2)
        sd = (b.ci_rel[1] - b.ci_rel[0]) / (2 * z)
        if not sd > 0:
            continue
        xs = np.linspace(b.lift_rel - 4 * sd, b.lift_rel + 4 * sd, points)
        rows.extend({"variant": r.variant, "lift": x, "density": d}
                    for x, d in zip(xs, stats.norm.pdf(xs, b.lift_rel, sd), strict=True))
    return pd.DataFrame(rows, columns=["variant", "lift", "density"])


def posterior_figure(readout: ExperimentReadout) -> go.Figure | None:
    """The approximate posterior of each treatment's lift; None when an arm has no users yet."""
    curves = posterior_curves(readout)
    if curves.empty:
        return None
    return charts.line_chart(curves, "lift", "density", "variant", f"Posterior of the lift on {readout.goal.metric}",
                             xaxis=LIFT_AXIS, yaxis={"showticklabels": False}, rules=[ZERO_LIFT])
