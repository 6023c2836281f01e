"""What the Overview and Monitoring pages show: panel charts, alerts, and the API's /metrics as tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from engine.console import charts
from engine.console.cards import MetricCard
from engine.console.formatting import format_value
from engine.console.monitoring_panels import (
    PANELS,
    QUANTILES,
    Alert,
    ExpositionSnapshot,
    Panel,
    PrometheusSource,
    Window,
    now_utc,
    window,
)

CACHE_HIT_TARGET_HELP = "target ≥ 80%"
MISS_CAUSES_CAPTION = (
    "Why lists were computed instead of served from the cache: **first_seen** — never cached (a first visit; "
    "warming the most active users at start covers the likely ones); **invalidated** — dropped by the user's "
    "purchase, cart add or rating (refresh-ahead recomputes it in the background; this counts the requests that "
    "came first); **model_changed** — a new model version or a reload; **expired** — past its TTL; **evicted** — "
    "gone before its TTL (Redis memory)."
)


@dataclass(frozen=True)
class PanelFrames:
    frames: dict[str, pd.DataFrame]  # by panel key
    window: Window


def panel_frames(source: PrometheusSource, range_label: str) -> PanelFrames:
    """Every panel's series over the range ending now, queried together."""
    w = window(range_label, now_utc())
    return PanelFrames(source.range_frames(PANELS, w.start, w.end, w.step), w)


def panel_figure(panel: Panel, frame: pd.DataFrame, span: Window) -> go.Figure:
    """The panel's series over the whole range asked for (even before data began), with its target."""
    factor = charts.scale(panel.unit)
    target = [] if panel.target is None else [
        charts.Rule(panel.target * factor, label=f"target {format_value(panel.target, panel.unit)}")]
    return charts.line_chart(frame.assign(value=frame["value"] * factor), "time", "value", "series", panel.title,
                             unit=panel.unit, rules=target, xaxis={"range": [span.start, span.end]},
                             yaxis={"rangemode": "tozero"})


def firing(alerts: Sequence[Alert]) -> list[Alert]:
    return [a for a in alerts if a.state == "firing"]


def alert_caption(alert: Alert) -> str:
    since = f" Active since {alert.active_at[:19].replace('T', ' ')} UTC." if alert.active_at else ""
    return f"{alert.description}{since}"


def requests_table(snap: ExpositionSnapshot) -> pd.DataFrame:
    return pd.DataFrame(sorted(snap.requests().items()), columns=["status", "requests"])


def latency_table(snap: ExpositionSnapshot) -> pd.DataFrame:
    q = snap.latency_quantiles()
    return pd.DataFrame([{"quantile": f"p{round(k * 100)}", "latency": format_value(q[k], "seconds")}
                         for k in QUANTILES])


def hit_ratio_table(snap: ExpositionSnapshot) -> pd.DataFrame:
    return pd.DataFrame([{"tier": t, "hit ratio": format_value(v, "percent")}
                         for t, v in snap.tier_hit_ratios().items()])


def miss_causes_table(snap: ExpositionSnapshot) -> pd.DataFrame:
    """Lists computed since the API started, by cause, with each cause's share."""
    causes = snap.miss_causes()
    total = sum(causes.values())
    return pd.DataFrame([{"cause": cause, "lists computed": int(n),
                          "share": format_value(n / total if total else None, "percent")}
                         for cause, n in causes.items()])


def hit_ratio_cards(ratios: dict[str, float | None], kpis: dict[str, float | None]) -> list[MetricCard]:
    """Served from cache (either tier), then each tier's own hit ratio."""
    return [MetricCard("Served from cache (L1 or L2)", format_value(kpis.get("cache_hit"), "percent"),
                       CACHE_HIT_TARGET_HELP),
            *(MetricCard(f"{tier.upper()} hit ratio", format_value(ratio, "percent"),
                         "L2 is consulted only after an L1 miss" if tier == "l2" else None)
              for tier, ratio in sorted(ratios.items()))]
