"""Overview: health of Redis, the API and Prometheus; the KPIs against their targets; experiments; alerts."""

from __future__ import annotations

import streamlit as st

from engine.console.monitoring_panels import KPIS
from pages import _experiments_ui as exp_ui
from pages import _resources as res
from pages import _ui as ui

KPI_COLUMNS = 4

redis_ok_at_load = ui.header(
    "Overview", "Health of the stack, the seed's key metrics against their targets, running experiments and "
    "firing alerts."
)


def health_row() -> bool:
    s, o = res.settings(), res.options()
    redis_h = res.redis_health()
    api_h, prom_h = res.service_health(o.api_url, s.prometheus_url)
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
        values = res.current_kpis(source.kind, res.source_url(source))
        st.caption(f"Source: {source.window}.")
        for start in range(0, len(KPIS), KPI_COLUMNS):
            row = KPIS[start:start + KPI_COLUMNS]
            for col, kpi in zip(st.columns(KPI_COLUMNS), row, strict=False):
                with col:
                    ui.kpi_card(kpi, values.get(kpi.key))


def firing_alerts() -> None:
    st.subheader("Alerts firing")
    s = res.settings()
    _, prom = res.service_health(res.options().api_url, s.prometheus_url)
    if not (prom.ok and s.prometheus_url):
        st.caption("Alerts are evaluated by Prometheus, which is not running: none can be shown.")
        return
    with ui.guard("reading alerts"):
        firing = [a for a in res.alerts(s.prometheus_url) if a.state == "firing"]
        if not firing:
            st.success("No alert is firing.", icon=":material/check_circle:")
        for alert in firing:
            with st.container(border=True):
                ui.status_badge(alert.severity, {"critical": ("red", "critical"), "warning": ("orange", "warning")})
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


live()
