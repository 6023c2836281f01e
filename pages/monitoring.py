"""Monitoring: request rate, errors, latency, cache, CTR and quality over time from Prometheus; firing alerts.

Without Prometheus, a plain notice and the current values read from the API's /metrics.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from engine.console.monitoring_panels import (
    KPIS,
    PANELS,
    QUANTILES,
    TIME_RANGES,
    Panel,
    format_value,
    now_utc,
    step_for,
)
from pages import _resources as res
from pages import _ui as ui

DEFAULT_RANGE = "15 minutes"
SEVERITY = {"critical": ("red", "critical"), "warning": ("orange", "warning")}

ui.header("Monitoring", "Serving and business signals over time, from Prometheus' recording rules, and the alerts "
                        "built on them.")


@st.cache_data(ttl=res.METRICS_TTL, show_spinner=False)
def panel_frames(url: str, range_label: str) -> tuple[dict[str, pd.DataFrame], datetime, datetime]:
    end = now_utc()
    span = TIME_RANGES[range_label]
    return res.prometheus(url).range_frames(PANELS, end - span, end, step_for(span)), end - span, end


def chart(panel: Panel, frame: pd.DataFrame, start: datetime, end: datetime) -> None:
    with st.container(border=True):
        if frame.empty:
            st.markdown(f"**{panel.title}**")
            st.caption("No data in this range yet (recording rules need a few minutes of traffic).")
            return
        factor = ui.scale(panel.unit)
        target = [] if panel.target is None else [
            ui.Rule(panel.target * factor, label=f"target {format_value(panel.target, panel.unit)}")]
        fig = ui.line_chart(frame.assign(value=frame["value"] * factor), "time", "value", "series", panel.title,
                            unit=panel.unit, rules=target,
                            xaxis={"range": [start, end]},  # the whole range asked for, even before data began
                            yaxis={"rangemode": "tozero"})
        st.plotly_chart(fig, width="stretch")


def alerts_section(url: str) -> None:
    st.subheader("Alerts")
    alerts = res.alerts(url)
    if not alerts:
        st.success("No alert is firing or pending.", icon=":material/check_circle:")
    for alert in alerts:
        with st.container(border=True):
            cols = st.columns([1, 5])
            with cols[0]:
                ui.status_badge(alert.severity, SEVERITY)
                st.badge(alert.state, color="red" if alert.state == "firing" else "gray")
            with cols[1]:
                st.markdown(f"**{alert.name}** — {alert.summary}")
                since = f" Active since {alert.active_at[:19].replace('T', ' ')} UTC." if alert.active_at else ""
                st.caption(f"{alert.description}{since}")
                if alert.runbook:
                    with st.expander("Runbook"):
                        st.markdown(alert.runbook)


def from_prometheus(url: str) -> None:
    range_label = st.segmented_control("Time range", list(TIME_RANGES), default=DEFAULT_RANGE, key="mon_range") \
        or DEFAULT_RANGE

    @st.fragment(run_every=ui.run_every())
    def live() -> None:
        with ui.guard("querying Prometheus"):
            frames, start, end = panel_frames(url, range_label)
            for row in range(0, len(PANELS), 2):
                for col, panel in zip(st.columns(2), PANELS[row:row + 2], strict=False):
                    with col:
                        chart(panel, frames[panel.key], start, end)
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
            values = snap.kpis()
            for start in range(0, len(KPIS), 4):
                for col, kpi in zip(st.columns(4), KPIS[start:start + 4], strict=False):
                    with col:
                        ui.kpi_card(kpi, values.get(kpi.key))
            left, mid, right = st.columns(3)
            with left:
                st.markdown("**Requests by status**")
                st.dataframe(pd.DataFrame(sorted(snap.requests().items()), columns=["status", "requests"]),
                             hide_index=True, width="stretch")
            with mid:
                st.markdown("**Latency quantiles** (all tiers)")
                q = snap.latency_quantiles()
                st.dataframe(pd.DataFrame([{"quantile": f"p{round(k * 100)}", "latency": format_value(q[k], "seconds")}
                                           for k in QUANTILES]), hide_index=True, width="stretch")
            with right:
                st.markdown("**Cache hit ratio per tier**")
                ratios = snap.tier_hit_ratios()
                st.dataframe(pd.DataFrame([{"tier": t, "hit ratio": format_value(v, "percent")}
                                           for t, v in ratios.items()]), hide_index=True, width="stretch")

    live()


s, o = res.settings(), res.options()
api_h, prom_h = res.service_health(o.api_url, s.prometheus_url)
if prom_h.ok and s.prometheus_url:
    from_prometheus(s.prometheus_url)
elif o.api_url:
    if s.prometheus_url:
        st.warning(f"Prometheus at {s.prometheus_url} does not answer ({prom_h.detail}).")
    from_api(o.api_url)
else:
    st.info("Neither Prometheus nor the API is configured: start the stack with `recops up`, which gives the "
            "console PROMETHEUS_URL and RECOPS_API_URL.", icon=":material/info:")
