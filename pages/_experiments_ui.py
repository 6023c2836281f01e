"""Experiment helpers shared by the Overview, Experiments and Readout pages."""

from __future__ import annotations

import streamlit as st

from engine.console import experiments as backend
from engine.experiments import Experiment, ExperimentError, ExperimentReadout
from pages import _resources as res

STATUS_COLORS = {"draft": "gray", "running": "green", "paused": "orange", "stopped": "violet"}
READOUT_TTL = 15


def available() -> bool:
    """Whether this engine has an experiment service; a notice when it does not."""
    if res.engine().experiments is None or not hasattr(res.engine().experiments, "readout"):
        st.info("Experiments are not available in this engine (no experiment service is wired into "
                "`build_engine`).", icon=":material/info:")
        return False
    return True


def experiments() -> list[Experiment]:
    return sorted(res.engine().experiments.list_experiments(),  # type: ignore[union-attr]
                  key=lambda e: (e.status != "running", -(e.start_time or e.created_at)))


@st.cache_data(ttl=READOUT_TTL, show_spinner="Computing the readout …")
def readout(key: str, engine: str | None, phase: int | None, version: int) -> ExperimentReadout:
    """Cached per config version: a changed experiment is read afresh, statistics at most 15 s old."""
    return res.engine().experiments.readout(key, phase=phase, engine=engine)  # type: ignore[union-attr]


def running_summary() -> None:
    if not available():
        return
    running = [e for e in experiments() if e.status == "running"]
    if not running:
        st.caption("No experiment is running. Create one on the Experiments page.")
        return
    for exp in running:
        with st.container(border=True):
            cols = st.columns([3, 2, 5])
            cols[0].markdown(f"**{exp.name}**  \n`{exp.key}` · phase {exp.phase} · goal {exp.goal_metric}")
            try:
                r = readout(exp.key, None, None, exp.version)
            except ExperimentError as exc:
                cols[1].badge("no readout", color="gray")
                cols[2].caption(str(exc))
                continue
            badge = backend.status_badge(r)
            with cols[1]:
                st.badge(badge.label, color=badge.color)  # type: ignore[arg-type]
                users = sum(a.users for a in r.arms)
                st.caption(f"{users:,} users exposed")
            with cols[2]:
                st.caption(badge.reason)
                if r.progress.fraction is not None:
                    st.progress(r.progress.fraction, text=f"{r.progress.fraction:.0%} of "
                                f"{r.progress.planned_per_variant:,} users per variant")
