"""Readout: per metric and variant the lift with its interval and p-value or chance to win, by engine;
SRM, progress, guardrails, the decision in words, lift over time and a CSV export."""

from __future__ import annotations

import functools

import streamlit as st

from engine.console import breakdown_view, shipped
from engine.console import experiments as backend
from engine.console import interleaving_view as ilv
from engine.console import models as mv
from engine.console import over_time_view as otv
from engine.console import readout_health as health
from engine.console import readout_view as view
from engine.experiments import Experiment, ExperimentError, ExperimentReadout
from pages import _experiments_ui as exp_ui
from pages import _models_ui as models_ui
from pages import _resources as res
from pages import _ui as ui

PENDING = "readout_pending"  # a confirmed promotion, run on the next script run (dialog buttons only rerun)
RESULT = "readout_result"

if not ui.header("Readout", "The results of an experiment: lifts with intervals, significance or chance to win, "
                            "guardrails, and what to decide."):
    st.stop()


def posterior_plot(r: ExperimentReadout) -> None:
    if ui.chart(view.posterior_figure(r), "No posterior yet (the Bayesian engine needs users in every arm)."):
        st.caption("Normal approximation matched to each variant's credible interval.")


@st.cache_data(ttl=exp_ui.READOUT_TTL, show_spinner=False)
def diagnostics(key: str, engine: str, phase: int, version: int) -> dict[str, object]:
    """Health, quality and results over time; cached like the readout (per config version, 15 s)."""
    return health.report(res.engine(), key, phase, engine)


def over_time(report: dict[str, object], r: ExperimentReadout, exp: Experiment) -> None:
    """Results over time of any declared metric (built-in or custom), with the engine's own chart."""
    choices = otv.metric_choices(r, exp)
    metric = st.selectbox("Metric over time", list(choices), key=f"readout_over_time_{exp.key}",
                          format_func=lambda m: choices[m].label)
    rows: list[dict[str, object]] = report.get("timeseries") or []  # type: ignore[assignment]
    unit = str(report.get("timeseries_unit") or "day")
    frame = otv.metric_frame(rows, metric)
    if frame.empty:
        ui.notice(otv.missing_notice(rows, r.metrics.get(metric), metric))
    else:
        ui.chart(otv.lift_figure(frame, metric, r.engine, unit))
        if r.engine == "bayesian":
            ui.chart(otv.chance_figure(frame, metric, unit), "No chance to win in any period yet.")
        st.caption(otv.caption(choices[metric], frame, r.engine, unit))
    notes = otv.period_notes(rows, metric)
    if notes:
        st.caption("Periods with a note: " + " · ".join(notes))


def health_section(report: dict[str, object]) -> None:
    checks = report["health"]
    ui.notice(health.health_notice(checks))  # type: ignore[arg-type]
    with st.expander("Health checks"):
        st.dataframe(health.health_frame(checks), hide_index=True)  # type: ignore[arg-type]


def quality_section(report: dict[str, object]) -> None:
    st.subheader("Recommendation quality")
    st.caption("What each arm's lists look like, beside the business metrics: catalog coverage (on equal-size "
               "samples of recent lists), intra-list diversity by category, novelty (mean −log2 popularity), the "
               "share of cold-start and fallback lists, and how much two arms' lists for the same users overlap. "
               "A winner that narrows the catalogue or leans on fallbacks deserves a second look.")
    quality = report["quality"]
    st.table(health.quality_frame(quality))  # type: ignore[arg-type]
    st.caption(health.overlap_text(quality))  # type: ignore[arg-type]


def progress(r: ExperimentReadout) -> None:
    p = view.progress_view(r)
    if p.fraction is None:
        st.caption(p.text)
    else:
        st.progress(p.fraction, text=p.text)


def interleaving_section(block: dict[str, object]) -> None:
    """An interleaving experiment: the users' preference between the two rankers, not per-arm lifts."""
    st.subheader(f"Preference: {block['control']} (A) vs {block['treatment']} (B)")
    st.caption(ilv.caption(block))
    ui.notice(ilv.verdict_notice(block))
    ui.cards(ilv.cards(block))
    left, right = st.columns(2)
    with left:
        ui.chart(ilv.share_figure(block), "No user with a preference yet.")
    with right:
        ui.chart(ilv.position_figure(block), "No impression recorded yet.")
    st.table(ilv.position_frame(block))
    st.caption(f"Impressions {block['impressions']:,}; clicks credited {block['clicks_credited']:,}, ignored "
               f"{block['clicks_ignored']:,} (on an item in no impression they could answer), repeated "
               f"{block['clicks_repeated']:,} (credited once).")


def served_section(arms: list[dict[str, object]]) -> None:
    st.subheader("Served")
    st.caption("The model version and serving settings behind each arm's spec, and the versions its exposures "
               "came from.")
    ui.notice(view.mixed_versions_notice(arms))
    st.table(view.styled_served(arms))


def breakdown_section(key: str, phase: int) -> None:
    with st.expander("Break down by a user dimension", icon=":material/call_split:"):
        breakdown_body(key, phase)


def breakdown_body(key: str, phase: int) -> None:
    dims = backend.dimensions(res.engine())
    if not dims:
        st.caption("Exposures record no user dimensions for this dataset (the demo world has device, country, "
                   "segment and tenure; an imported dataset the columns of its users file, `recops import --users`).")
        return
    dimension = st.selectbox("Dimension", ["(none)", *dims], key=f"readout_by_{key}")
    if dimension == "(none)":
        return
    b = backend.breakdown(res.engine(), key, dimension, phase)
    for notice in breakdown_view.breakdown_notices(b):
        ui.notice(notice)
    if not b.get("error"):
        st.caption(breakdown_view.CAPTION)
        st.dataframe(breakdown_view.breakdown_frame(b), hide_index=True)


def promote_section(r: ExperimentReadout, exp: Experiment, arms: list[dict[str, object]] | None) -> None:
    """After a ship: promoting the version the winning arm served, one confirmed (audited) click."""
    if arms is None or shipped.shipped_treatment(r) is None:
        return  # nothing shipped, or an engine that does not say what each arm served: nothing to offer
    dataset = res.engine().dataset.name
    try:
        production = mv.open_registry(res.engine()).served(dataset)
    except mv.RegistryError as exc:
        st.error(f"The model registry cannot be read: {exc}")
        return
    offer = shipped.promote_offer(r, exp.engine, arms, production, dataset)
    if not isinstance(offer, shipped.PromoteOffer):
        ui.notice(offer)
        return
    who = ui.writer("promote the version that shipped", "readout-promote")
    if who is not None and st.button(f"{offer.label} …", key="readout_promote_btn", type="primary",
                                     icon=":material/upgrade:"):
        models_ui.confirm_promote(offer.model, offer.version, offer.dataset, offer.current, PENDING)


with ui.guard("promoting the version that shipped"):
    ui.run_confirmed(PENDING, "promote models", functools.partial(mv.run_confirmed, res.engine()), RESULT)
ui.show_result(RESULT)

exps = backend.started(exp_ui.experiments())
if not exps:
    st.info("No experiment has started yet: start one on the Experiments page to read it out here.",
            icon=":material/info:")
    st.stop()
labels = backend.key_labels(exps)
if st.session_state.get("readout_key") not in labels:
    st.session_state["readout_key"] = next(iter(labels))
top = st.columns([3, 3, 1])
key = top[0].selectbox("Experiment", list(labels), key="readout_key", format_func=labels.get)
exp = next(e for e in exps if e.key == key)
ui.notice(backend.demo_notice([exp]))
engine = top[1].segmented_control("Engine", list(view.ENGINE_LABELS), default=exp.engine,
                                  format_func=view.ENGINE_LABELS.get, key=f"readout_engine_{key}") or exp.engine
phase = top[2].selectbox("Phase", backend.phases(exp), key=f"readout_phase_{key}") if exp.phase > 1 else exp.phase

with ui.guard("computing the readout"):
    try:
        r = exp_ui.readout(key, engine, phase, exp.version)
    except ExperimentError as exc:
        st.error(str(exc))
        st.stop()
    badge = view.status_badge(r)
    st.badge(f"{exp.status} · {badge.label}", color=badge.color)
    extras = diagnostics(key, engine, phase, exp.version)
    health_section(extras)
    ui.notice(view.srm_notice(r))
    ui.notice(view.decision_notice(r))
    ui.notice(view.peeking_notice(r))
    if r.interleaving is not None:
        interleaving_section(r.interleaving)
        st.stop()
    arms = view.served(r)
    promote_section(r, exp, arms)
    progress(r)
    table = view.readout_table(r)
    goal_rows, guard_rows = view.split_roles(table)

    st.subheader(f"Goal: {r.goal.metric}")
    st.caption(view.goal_caption(r, engine))
    st.table(view.styled_results(goal_rows, engine))
    left, right = st.columns(2)
    with left:
        ui.chart(view.interval_figure(table, "Lift with its interval, every metric"), "No interval to plot yet.")
    with right:
        over_time(extras, r, exp)
    if engine == "bayesian":
        posterior_plot(r)

    st.subheader("Guardrails")
    if guard_rows.empty:
        st.caption("No guardrail metric configured.")
    else:
        ui.notice(view.guardrail_notice(r))
        st.table(view.styled_results(guard_rows, engine))

    breakdown_section(key, phase)

    st.subheader("Arms")
    st.table(view.styled_arms(r))
    if arms:
        served_section(arms)
    quality_section(extras)
    down = st.columns(2)
    down[0].download_button("Download the table (CSV)", view.export_csv(table), icon=":material/download:",
                            file_name=view.export_name(key, phase, engine), mime="text/csv")
    down[1].download_button("Download the report (HTML)", health.html_report(r, extras),
                            icon=":material/download:", file_name=health.html_name(key, phase, engine),
                            mime="text/html", key="readout_html")
    if r.messages:
        with st.expander("Notes"):
            for m in r.messages:
                st.markdown(f"- {m}")
