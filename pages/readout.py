"""Readout: per metric and variant the lift with its interval and p-value or chance to win, by engine;
SRM, progress, guardrails, the decision in words, lift over time and a CSV export."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from engine.console import breakdown_view, shipped
from engine.console import experiments as backend
from engine.console import models as mv
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
def series(key: str, metric: str, version: int) -> pd.DataFrame:
    return view.series_frame(backend.time_series(res.engine(), key, metric))


def over_time(key: str, metric: str, version: int) -> None:
    ui.chart(view.over_time_figure(series(key, metric, version), metric), "No daily statistics yet.")


def progress(r: ExperimentReadout) -> None:
    p = view.progress_view(r)
    if p.fraction is None:
        st.caption(p.text)
    else:
        st.progress(p.fraction, text=p.text)


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
                   "segment and tenure).")
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
    ui.notice(view.srm_notice(r))
    ui.notice(view.decision_notice(r))
    ui.notice(view.peeking_notice(r))
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
        over_time(key, r.goal.metric, exp.version)
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
    st.download_button("Download the table (CSV)", view.export_csv(table), icon=":material/download:",
                       file_name=view.export_name(key, phase, engine), mime="text/csv")
    if r.messages:
        with st.expander("Notes"):
            for m in r.messages:
                st.markdown(f"- {m}")
