"""Overview: health of Redis, the API and Prometheus; the KPIs against their targets; experiments; alerts."""

from __future__ import annotations

import streamlit as st

from engine.console import badges
from engine.console.models import dataset_caption, dataset_text
from engine.console.monitoring_view import firing
from pages import _experiments_ui as exp_ui
from pages import _resources as res
from pages import _ui as ui

KPI_COLUMNS = 4

redis_ok_at_load = ui.header(
    "Overview", "Health of the stack, the seed's key metrics against their targets, running experiments and "
    "firing alerts."
)


def dataset_line() -> None:
    eng = res.engine()
    summary = eng.stored.summary()
    with st.container(border=True):
        st.markdown(dataset_text(summary))
        st.caption(dataset_caption(summary, *eng.served_versions()))


def health_row() -> bool:
    redis_h = res.redis_health()
    api_h, prom_h = res.api_and_prometheus_health()
    if not redis_h.ok and redis_ok_at_load:  # went down since the page loaded (a live refresh found it)
        ui.redis_down_banner(redis_h)
    for col, h in zip(st.columns(3), (redis_h, api_h, prom_h), strict=True):
        with col:
            ui.health_card(h)
    return redis_h.ok


def kpi_grid() -> None:
    st.subheader("Key metrics")
    source = res.metrics_source()
    if source is None:
        st.info("No metrics source: neither Prometheus nor the API is reachable. Start the stack with "
                "`recops up` (it sets PROMETHEUS_URL and RECOPS_API_URL for the console).")
        return
    with ui.guard("reading the key metrics"):
        values = res.current_kpis(source.kind, source.url)
        st.caption(f"Source: {source.window}.")
        ui.kpi_grid(values, KPI_COLUMNS)


def firing_alerts() -> None:
    st.subheader("Alerts firing")
    choice = res.source_choice()
    if choice is None or choice.kind != "prometheus":
        st.caption("Alerts are evaluated by Prometheus, which is not running: none can be shown.")
        return
    with ui.guard("reading alerts"):
        alerts = firing(res.alerts(choice.url))
        if not alerts:
            st.success("No alert is firing.", icon=":material/check_circle:")
        for alert in alerts:
            with st.container(border=True):
                ui.badge(badges.severity_badge(alert.severity))
                st.markdown(f"**{alert.name}** — {alert.summary}")
                if alert.description:
                    st.caption(alert.description)


@st.fragment(run_every=ui.run_every())
def live() -> None:
    redis_ok = health_row()
    kpi_grid()
    st.subheader("Running experiments")
    if redis_ok:
        with ui.guard("reading experiments"):
            exp_ui.running_summary()
    else:
        st.caption("Experiments are stored in Redis, which is unreachable.")
    firing_alerts()


dataset_line()
live()
