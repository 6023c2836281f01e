"""engine.console.badges: the colour and label of each state."""

from __future__ import annotations

from engine.console import badges
from engine.console.badges import Badge
from engine.console.monitoring_panels import KPI_BY_KEY


def test_health_severity_alert_and_experiment_badges() -> None:
    assert badges.health_badge("up") == Badge("up", "green")
    assert badges.health_badge("absent") == Badge("not configured", "gray")
    assert badges.health_badge("weird") == Badge("weird", "gray")  # an unknown state is shown as it is
    assert badges.severity_badge("critical") == Badge("critical", "red")
    assert badges.alert_state_badge("firing").color == "red" and badges.alert_state_badge("pending").color == "gray"
    assert badges.experiment_status_badge("paused") == Badge("paused", "orange")


def test_kpi_badge_says_the_target() -> None:
    ctr, conversion = KPI_BY_KEY["ctr"], KPI_BY_KEY["conversion"]
    assert badges.kpi_badge(ctr, 0.05) == Badge("on target · target ≥ 3.00%", "green")
    assert badges.kpi_badge(ctr, 0.01) == Badge("off target · target ≥ 3.00%", "red")
    assert badges.kpi_badge(ctr, None) == Badge("no data · target ≥ 3.00%", "gray")
    assert badges.kpi_badge(conversion, 0.01) == Badge("no target", "blue")
