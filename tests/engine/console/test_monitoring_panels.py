"""engine.console.monitoring_panels: KPIs and panels from Prometheus, or from the API's /metrics."""

from __future__ import annotations

import datetime as dt
import math

import httpx
import pytest

from engine.console import monitoring_panels
from engine.local_processes import free_port
from tests.engine.console.exposition_sample import EXPOSITION


def test_exposition_snapshot_computes_the_kpis() -> None:
    snap = monitoring_panels.ExpositionSnapshot.parse(EXPOSITION)
    kpis = snap.kpis()
    assert kpis["ctr"] == pytest.approx(0.04)
    assert kpis["conversion"] == pytest.approx(0.005)
    assert kpis["error_ratio"] == pytest.approx(0.03)
    assert kpis["cache_hit"] == pytest.approx(0.6)  # l1 answered 60 of 100 requests
    assert kpis["diversity"] == pytest.approx(0.82)
    assert kpis["coverage"] == pytest.approx(0.42)
    # 95th of 100: rank 95 falls in (0.01, 0.1] holding ranks 61..100 -> 0.01 + 0.09 * 35/40
    assert kpis["p95_latency"] == pytest.approx(0.01 + 0.09 * 35 / 40)
    assert snap.tier_hit_ratios() == {"l1": pytest.approx(0.6), "l2": pytest.approx(0.25)}
    assert snap.requests() == {"ok": 97.0, "error": 3.0}


def test_exposition_without_traffic_has_no_ratios() -> None:
    kpis = monitoring_panels.ExpositionSnapshot.parse("# TYPE recops_events_total counter\n").kpis()
    assert all(v is None for v in kpis.values())


def test_histogram_quantile_matches_prometheus_rules() -> None:
    buckets = [(0.1, 10.0), (0.2, 20.0), (math.inf, 20.0)]
    assert monitoring_panels.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert monitoring_panels.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert monitoring_panels.histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # first bucket starts at 0
    # beyond the last finite bucket Prometheus answers its upper bound
    assert monitoring_panels.histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == pytest.approx(0.1)
    assert monitoring_panels.histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert monitoring_panels.histogram_quantile(0.5, [(0.1, 3.0)]) is None  # no +Inf bucket
    with pytest.raises(ValueError):
        monitoring_panels.histogram_quantile(1.5, buckets)


def test_kpi_status_against_targets() -> None:
    kpi = monitoring_panels.KPI_BY_KEY
    assert kpi["ctr"].status(0.031) == "ok" and kpi["ctr"].status(0.029) == "bad"
    assert kpi["p95_latency"].status(0.2) == "ok" and kpi["p95_latency"].status(0.21) == "bad"
    assert kpi["error_ratio"].status(0.02) == "bad" and kpi["cache_hit"].status(0.8) == "ok"
    assert kpi["coverage"].status(0.49) == "bad" and kpi["diversity"].status(0.71) == "ok"
    assert kpi["conversion"].status(0.01) == "info" and kpi["ctr"].status(None) == "no data"
    assert kpi["ctr"].status(float("nan")) == "no data"
    assert kpi["p95_latency"].format(0.0421) == "42.1 ms" and kpi["ctr"].target_text == "≥ 3.00%"


def test_alerts_are_ordered_firing_and_critical_first() -> None:
    raw = [
        {"labels": {"alertname": "B", "severity": "warning"}, "state": "firing", "annotations": {"summary": "b"}},
        {"labels": {"alertname": "A", "severity": "warning"}, "state": "pending", "annotations": {}},
        {"labels": {"alertname": "C", "severity": "critical"}, "state": "firing",
         "annotations": {"summary": "c", "runbook": "1) look"}, "activeAt": "2026-01-01T00:00:00Z"},
    ]
    alerts = monitoring_panels.parse_alerts(raw)
    assert [a.name for a in alerts] == ["C", "B", "A"]
    assert alerts[0].runbook == "1) look" and alerts[0].active_at == "2026-01-01T00:00:00Z"


def test_prometheus_source_refuses_naive_times_and_reports_unreachable_servers() -> None:
    source = monitoring_panels.PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(monitoring_panels.MetricsUnavailableError):
        source.current()
    with pytest.raises(monitoring_panels.MetricsUnavailableError):
        source.alerts()
    with pytest.raises(ValueError, match="timezone-aware"):
        source.range_frame(monitoring_panels.PANELS[0], dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), 60)
    with pytest.raises(monitoring_panels.MetricsUnavailableError):
        monitoring_panels.ExpositionSource(f"http://127.0.0.1:{free_port()}", timeout=0.5).current()


def test_exposition_source_reads_a_live_api(api: object) -> None:
    httpx.post(f"{api.url}/recommendations", params={"user_id": "u00003"}, timeout=10)  # type: ignore[attr-defined]
    snap = monitoring_panels.ExpositionSource(api.url).snapshot()  # type: ignore[attr-defined]
    assert sum(snap.requests().values()) >= 1
    assert snap.kpis()["p95_latency"] is not None


def test_source_choice_prefers_a_live_prometheus_then_the_api() -> None:
    prom, api = "http://prom:9090", "http://api:8000"
    assert monitoring_panels.choose_source(True, prom, api) == monitoring_panels.SourceChoice("prometheus", prom)
    assert monitoring_panels.choose_source(False, prom, api) == monitoring_panels.SourceChoice("api", api)
    assert monitoring_panels.choose_source(True, None, api) == monitoring_panels.SourceChoice("api", api)
    assert monitoring_panels.choose_source(False, prom, None) is None


def test_window_ends_now_with_a_step_of_at_least_the_scrape_interval() -> None:
    end = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    short = monitoring_panels.window("15 minutes", end)
    assert (short.start, short.end, short.step) == (end - dt.timedelta(minutes=15), end, 5.0)
    assert monitoring_panels.window("2 days", end).step == math.ceil(2 * 86_400 / 240)
