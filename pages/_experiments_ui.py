"""Experiment helpers shared by the Overview, Experiments and Readout pages."""

from __future__ import annotations

import streamlit as st

from engine.console import experiments as backend
from engine.console import readout_view
from engine.console.experiment_form import ExperimentForm
from engine.experiments import Experiment, ExperimentError, ExperimentReadout
from pages import _resources as res
from pages import _ui as ui

READOUT_TTL = 15
NEW = "(new experiment)"
SELECT_NEXT = "exp_select_next"  # a widget's own key cannot be set once it is drawn: handed over to the next run
SUGGESTED = "exp_suggested"  # a new experiment's suggested values, kept until saved or discarded


def open_editor(form: ExperimentForm) -> None:
    """Go to the Experiments page with a new experiment's editor filled in from ``form``."""
    st.session_state[SUGGESTED] = form
    st.session_state[SELECT_NEXT] = NEW
    st.switch_page("pages/experiments.py")


def experiments() -> list[Experiment]:
    return backend.listed(res.engine())


@st.cache_data(ttl=READOUT_TTL, show_spinner="Computing the readout …")
def readout(key: str, engine: str | None, phase: int | None, version: int) -> ExperimentReadout:
    """Cached per config version: a changed experiment is read afresh, statistics at most 15 s old."""
    return backend.readout(res.engine(), key, phase, engine)


def running_summary() -> None:
    running = backend.running(experiments())
    if not running:
        st.caption("No experiment is running. Create one on the Experiments page.")
        return
    for exp in running:
        with st.container(border=True):
            cols = st.columns([3, 2, 5])
            cols[0].markdown(f"**{exp.name}**  \n`{exp.key}` · phase {exp.phase} · goal {exp.goal_metric}")
            if exp.demo:
                cols[0].caption(backend.DEMO_BANNER)
            try:
                r = readout(exp.key, None, None, exp.version)
            except ExperimentError as exc:
                cols[1].badge("no readout", color="gray")
                cols[2].caption(str(exc))
                continue
            badge = readout_view.status_badge(r)
            with cols[1]:
                ui.badge(badge)
                st.caption(readout_view.exposed_text(r))
            with cols[2]:
                st.caption(badge.reason)
                bar = readout_view.running_progress(r)
                if bar is not None:
                    st.progress(bar.fraction, text=bar.text)
