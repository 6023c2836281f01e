"""Monitoring: request rate, errors, latency, cache, CTR and quality over time from Prometheus; firing alerts.

Without Prometheus, a plain notice and the current values read from the API's /metrics.
"""

from __future__ import annotations

import streamlit as st

from engine.console import badges
from engine.console import monitoring_view as view
from engine.console.monitoring_panels import PANELS, TIME_RANGES, Panel
from pages import _resources as res
from pages import _ui as ui

DEFAULT_RANGE = "15 minutes"
KPI_COLUMNS = 4

ui.header("Monitoring", "Serving and business signals over time, from Prometheus' recording rules, and the alerts "
                        "built on them.")


@st.cache_data(ttl=res.METRICS_TTL, show_spinner=False)
def panel_frames(url: str, range_label: str) -> view.PanelFrames:
    return view.panel_frames(res.prometheus(url), range_label)


def chart(panel: Panel, got: view.PanelFrames) -> None:
    frame = got.frames[panel.key]
    with st.container(border=True):
        if frame.empty:
            st.markdown(f"**{panel.title}**")
            st.caption("No data in this range yet (recording rules need a few minutes of traffic).")
            return
        ui.chart(view.panel_figure(panel, frame, got.window))
        if panel.key == "cache_misses":
            st.caption(view.MISS_CAUSES_CAPTION)


def alerts_section(url: str) -> None:
    st.subheader("Alerts")
    alerts = res.alerts(url)
    if not alerts:
        st.success("No alert is firing or pending.", icon=":material/check_circle:")
    for alert in alerts:
        with st.container(border=True):
            cols = st.columns([1, 5])
            with cols[0]:
                ui.badge(badges.severity_badge(alert.severity))
                ui.badge(badges.alert_state_badge(alert.state))
            with cols[1]:
                st.markdown(f"**{alert.name}** — {alert.summary}")
                st.caption(view.alert_caption(alert))
                if alert.runbook:
                    with st.expander("Runbook"):
                        st.markdown(alert.runbook)


def from_prometheus(url: str) -> None:
    range_label = st.segmented_control("Time range", list(TIME_RANGES), default=DEFAULT_RANGE, key="mon_range") \
        or DEFAULT_RANGE

    @st.fragment(run_every=ui.run_every())
    def live() -> None:
        with ui.guard("querying Prometheus"):
            got = panel_frames(url, range_label)
            for col, panel in ui.grid(PANELS, 2):
                with col:
                    chart(panel, got)
            alerts_section(url)

    live()


def from_api(api_url: str) -> None:
    st.info("Prometheus is not running, so there is no history and no alerting. The values below are read "
            "directly from the API's /metrics and are totals since the API started. Install Prometheus "
            "(`apt-get install prometheus`) and restart `recops up` for charts and alerts.",
            icon=":material/info:")

    @st.fragment(run_every=ui.run_every())
    def live() -> None:
        with ui.guard("reading the API's /metrics"):
            snap = res.exposition_snapshot(api_url)
            ui.kpi_grid(snap.kpis(), KPI_COLUMNS)
            left, mid, right = st.columns(3)
            with left:
                st.markdown("**Requests by status**")
                st.dataframe(view.requests_table(snap), hide_index=True, width="stretch")
            with mid:
                st.markdown("**Latency quantiles** (all tiers)")
                st.dataframe(view.latency_table(snap), hide_index=True, width="stretch")
            with right:
                st.markdown("**Cache hit ratio per tier**")
                st.dataframe(view.hit_ratio_table(snap), hide_index=True, width="stretch")
            st.markdown("**Lists computed, by cause**")
            st.dataframe(view.miss_causes_table(snap), hide_index=True, width="stretch")
            st.caption(view.MISS_CAUSES_CAPTION)

    live()


prometheus_url, choice = res.settings().prometheus_url, res.source_choice()
if choice is not None and choice.kind == "prometheus":
    from_prometheus(choice.url)
elif choice is not None:
    if prometheus_url:
        _, prom_h = res.api_and_prometheus_health()
        st.warning(f"Prometheus at {prometheus_url} does not answer ({prom_h.detail}).")
    from_api(choice.url)
else:
    st.info("Neither Prometheus nor the API is configured: start the stack with `recops up`, which gives the "
            "console PROMETHEUS_URL and RECOPS_API_URL.", icon=":material/info:")
