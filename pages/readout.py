"""Readout: per metric and variant the lift with its interval and p-value or chance to win, by engine;
SRM, progress, guardrails, the decision in words, lift over time and a CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.console import experiments as backend
from engine.experiments import ExperimentError, ExperimentReadout
from pages import _experiments_ui as exp_ui
from pages import _resources as res
from pages import _ui as ui

ENGINES = {"frequentist": "Frequentist", "sequential": "Sequential (always valid)", "bayesian": "Bayesian"}
ROW_COLORS = {"better": "background-color: #dcfce7", "worse": "background-color: #fee2e2"}
DECISION_STYLE = {"ship": st.success, "hold": st.warning, "untrustworthy": st.error}
INTERVAL_NOTE = ("Lift is relative to the control; its interval is the delta-method interval of "
                 "treatment/control − 1 (wider than the absolute interval divided by the control mean).")

if not ui.header("Readout", "The results of an experiment: lifts with intervals, significance or chance to win, "
                            "guardrails, and what to decide."):
    st.stop()
if not exp_ui.available():
    st.stop()


LABELS = {"control": "control value", "value": "variant value", "lift": "lift", "ci_low": "interval low",
          "ci_high": "interval high", "p_value": "p-value", "chance_to_win": "chance to win"}


def styled(table: pd.DataFrame, engine: str) -> object:
    shown = table.drop(columns=["chance_to_win"] if engine != "bayesian" else ["p_value"]).rename(columns=LABELS)
    fmt = {"control value": "{:.4g}", "variant value": "{:.4g}", "lift": "{:+.2%}", "interval low": "{:+.2%}",
           "interval high": "{:+.2%}", "p-value": "{:.3g}", "chance to win": "{:.1%}", "users": "{:,.0f}"}
    return shown.style.hide(axis="index") \
        .apply(lambda row: [ROW_COLORS.get(row["direction"], "")] * len(row), axis=1) \
        .format({k: v for k, v in fmt.items() if k in shown.columns}, na_rep="–")


def interval_plot(table: pd.DataFrame, title: str) -> None:
    data = table.dropna(subset=["lift"])
    if data.empty:
        st.caption("No interval to plot yet.")
        return
    colors = {"better": "#16a34a", "worse": "#dc2626", "inconclusive": "#64748b"}
    traces = []
    for row in data.to_dict("records"):
        label = f"{row['metric']} · {row['variant']}" + (" (guardrail)" if row["role"] == "guardrail" else "")
        has_ci = pd.notna(row["ci_low"]) and pd.notna(row["ci_high"])
        traces.append({
            "type": "scatter", "x": [row["lift"]], "y": [label], "mode": "markers",
            "marker": {"size": 11, "color": colors.get(row["direction"])},
            "error_x": {"type": "data", "symmetric": False, "array": [row["ci_high"] - row["lift"]] if has_ci else [0],
                        "arrayminus": [row["lift"] - row["ci_low"]] if has_ci else [0]},
            "name": label, "showlegend": False, "hovertemplate": f"{label}<br>lift %{{x:+.2%}}<extra></extra>"})
    fig = ui.figure(traces, title, height=max(220, 60 * len(data) + 90),
                    xaxis={"tickformat": "+.0%", "title": {"text": "relative lift"}}, yaxis={"autorange": "reversed"},
                    rules=[ui.Rule(0, axis="x", color=ui.ZERO_COLOR)], fit_labels=True)
    st.plotly_chart(fig, width="stretch")


def posterior_plot(r: ExperimentReadout) -> None:
    curves = backend.posterior_curves(r)
    if curves.empty:
        st.caption("No posterior yet (the Bayesian engine needs users in every arm).")
        return
    fig = ui.line_chart(curves, "lift", "density", "variant", f"Posterior of the lift on {r.goal.metric}",
                        xaxis={"tickformat": "+.0%", "title": {"text": "relative lift"}},
                        yaxis={"showticklabels": False}, rules=[ui.Rule(0, axis="x", color=ui.ZERO_COLOR)])
    st.plotly_chart(fig, width="stretch")
    st.caption("Normal approximation matched to each variant's credible interval.")


@st.cache_data(ttl=exp_ui.READOUT_TTL, show_spinner=False)
def series(key: str, metric: str, version: int) -> pd.DataFrame:
    return backend.series_frame(res.engine().experiments.time_series(key, metric))  # type: ignore[union-attr]


def over_time(key: str, metric: str, version: int) -> None:
    frame = series(key, metric, version)
    if frame.empty:
        st.caption("No daily statistics yet.")
        return
    # error bars rather than a band: a young experiment has a single day, which a band cannot show
    traces = [{"type": "scatter", "x": rows["day"], "y": rows["lift"], "mode": "lines+markers", "name": str(variant),
               "error_y": {"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["lift"],
                           "arrayminus": rows["lift"] - rows["ci_low"]}}
              for variant, rows in frame.groupby("variant", sort=False)]
    fig = ui.figure(traces, f"Cumulative lift on {metric} (frequentist, end of each UTC day)",
                    xaxis={"type": "category"},
                    yaxis={"tickformat": "+.0%", "title": {"text": "cumulative relative lift"}},
                    rules=[ui.Rule(0, color=ui.ZERO_COLOR)])
    st.plotly_chart(fig, width="stretch")


def decision(r: ExperimentReadout) -> None:
    show = DECISION_STYLE.get(r.decision.action, st.info)
    show(f"**Decision: {r.decision.action.replace('_', ' ')}.** {r.decision_text}")
    if backend.peeking(r) and r.decision.action in ("ship", "hold", "no_difference"):
        st.warning("The frequentist test is meant to be read once, at the planned sample size: acting on it earlier "
                   "inflates false positives (with 14 looks a 5% test is wrong about 22% of the time). To watch "
                   "the experiment as it runs, switch to the sequential engine.", icon=":material/visibility:")


def progress(r: ExperimentReadout) -> None:
    p = r.progress
    if p.fraction is None:
        st.caption(f"Smallest arm: {p.min_users:,} users. No sample size planned, and none computable yet.")
        return
    source = "planned" if p.source == "planned" else "required for the MDE at the observed baseline"
    st.progress(p.fraction, text=f"{p.min_users:,} of {p.planned_per_variant:,} users per variant ({source}) — "
                                 f"{p.fraction:.0%}")


def srm_banner(r: ExperimentReadout) -> None:
    if not r.srm_flag:
        st.caption(f"Sample ratio check passed (chi-square p = {r.srm_p_value:.3g} against the configured weights).")
        return
    observed = ", ".join(f"{a.name} {a.users:,}" for a in r.arms)
    expected = ", ".join(f"{a.name} {s:.0%}" for a, s in zip(r.arms, r.expected_shares, strict=True))
    st.error(f"**Sample ratio mismatch** (chi-square p = {r.srm_p_value:.2g} < 0.001): users per arm ({observed}) do "
             f"not match the configured shares ({expected}). Assignment or exposure logging is broken: do not "
             "trust any result below until the cause is found.", icon=":material/error:")


exps = [e for e in exp_ui.experiments() if e.phase > 0]
if not exps:
    st.info("No experiment has started yet: start one on the Experiments page to read it out here.",
            icon=":material/info:")
    st.stop()
keys = [e.key for e in exps]
if st.session_state.get("readout_key") not in keys:
    st.session_state["readout_key"] = keys[0]
top = st.columns([3, 3, 1])
key = top[0].selectbox("Experiment", keys, key="readout_key",
                       format_func=lambda k: f"{k} — {next(e.name for e in exps if e.key == k)}")
exp = next(e for e in exps if e.key == key)
engine = top[1].segmented_control("Engine", list(ENGINES), default=exp.engine, format_func=ENGINES.get,
                                  key=f"readout_engine_{key}") or exp.engine
phase = top[2].selectbox("Phase", list(range(exp.phase, 0, -1)), key=f"readout_phase_{key}") if exp.phase > 1 \
    else exp.phase

with ui.guard("computing the readout"):
    try:
        r = exp_ui.readout(key, engine, phase, exp.version)
    except ExperimentError as exc:
        st.error(str(exc))
        st.stop()
    badge = backend.status_badge(r)
    st.badge(f"{exp.status} · {badge.label}", color=badge.color)  # type: ignore[arg-type]
    srm_banner(r)
    decision(r)
    progress(r)
    table = backend.readout_table(r)
    goal_rows = table[table["role"] != "guardrail"]
    guard_rows = table[table["role"] == "guardrail"]

    st.subheader(f"Goal: {r.goal.metric}")
    st.caption(f"{r.goal.description}. {INTERVAL_NOTE} "
               + ("Significance: p-value below alpha (Holm-adjusted across treatments)." if engine == "frequentist"
                  else "Always-valid p-value and confidence sequence: safe to peek." if engine == "sequential"
                  else "Chance to win ≥ 95% is better, ≤ 5% worse."))
    st.table(styled(goal_rows, engine))
    left, right = st.columns(2)
    with left:
        interval_plot(table, "Lift with its interval, every metric")
    with right:
        over_time(key, r.goal.metric, exp.version)
    if engine == "bayesian":
        posterior_plot(r)

    st.subheader("Guardrails")
    if guard_rows.empty:
        st.caption("No guardrail metric configured.")
    else:
        failures = r.decision.guardrail_failures
        if failures:
            st.warning("Significantly worse: " + "; ".join(f"{m} ({', '.join(v)})" for m, v in failures.items()))
        else:
            st.success("No guardrail is significantly worse.", icon=":material/check_circle:")
        st.table(styled(guard_rows, engine))

    st.subheader("Arms")
    st.table(backend.arms_table(r).style.hide(axis="index").format(
        {"weight": "{:.0%}", "expected share": "{:.1%}", "users": "{:,.0f}", "observed share": "{:.1%}",
         "impressions": "{:,.0f}", "clicks": "{:,.0f}", "purchases": "{:,.0f}"}, na_rep="–"))
    st.download_button("Download the table (CSV)", table.to_csv(index=False).encode(), icon=":material/download:",
                       file_name=f"{key}-phase{phase}-{engine}.csv", mime="text/csv")
    if r.messages:
        with st.expander("Notes"):
            for m in r.messages:
                st.markdown(f"- {m}")
