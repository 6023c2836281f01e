"""Which colour and label a state gets on the console: dependency health, KPIs, alerts, experiments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.console.monitoring_panels import Kpi

Color = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "primary"]  # st.badge's colours


@dataclass(frozen=True)
class Badge:
    label: str
    color: Color
    reason: str = ""  # a sentence on why, where the page has room for one


HEALTH: dict[str, tuple[Color, str]] = {"up": ("green", "up"), "degraded": ("orange", "degraded"),
                                        "down": ("red", "down"), "absent": ("gray", "not configured")}
KPI: dict[str, tuple[Color, str]] = {"ok": ("green", "on target"), "bad": ("red", "off target"),
                                     "no data": ("gray", "no data"), "info": ("blue", "no target")}
SEVERITY: dict[str, tuple[Color, str]] = {"critical": ("red", "critical"), "warning": ("orange", "warning")}
EXPERIMENT_STATUS: dict[str, Color] = {"draft": "gray", "running": "green", "paused": "orange", "stopped": "violet"}


def _badge(state: str, mapping: dict[str, tuple[Color, str]]) -> Badge:
    color, label = mapping.get(state, ("gray", state))
    return Badge(label, color)


def health_badge(state: str) -> Badge:
    return _badge(state, HEALTH)


def severity_badge(severity: str) -> Badge:
    return _badge(severity, SEVERITY)


def alert_state_badge(state: str) -> Badge:
    return Badge(state, "red" if state == "firing" else "gray")


def kpi_badge(kpi: Kpi, value: float | None) -> Badge:
    """On or off target (with the target), no data, or no target."""
    color, label = KPI[kpi.status(value)]
    return Badge(f"{label} · target {kpi.target_text}" if kpi.target is not None else label, color)


def experiment_status_badge(status: str) -> Badge:
    return Badge(status, EXPERIMENT_STATUS.get(status, "gray"))
