"""engine.console.monitoring_view: what the Overview and Monitoring pages show of the metrics."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, generate_latest

from engine.console import monitoring_view
from engine.console.cards import MetricCard
from engine.console.monitoring_panels import PANELS, Alert, ExpositionSnapshot, Window, parse_alerts
from tests.engine.console.exposition_sample import EXPOSITION

LATENCY = next(p for p in PANELS if p.key == "latency")
END = dt.datetime(2026, 1, 2, 12, tzinfo=dt.timezone.utc)
SPAN = Window(END - dt.timedelta(hours=1), END, 15.0)


def test_panel_figure_draws_seconds_as_milliseconds_with_the_target() -> None:
    frame = pd.DataFrame({"time": [END - dt.timedelta(minutes=1), END], "series": ["p95", "p95"],
                          "value": [0.05, 0.25]})
    fig = monitoring_view.panel_figure(LATENCY, frame, SPAN)
    assert list(fig.data[0].y) == [50.0, 250.0] and fig.data[0].name == "p95"
    (target,) = fig.layout.shapes
    assert target.y0 == 200.0 and fig.layout.annotations[0].text == "target 200.0 ms"
    # the whole range asked for, even before the data began
    assert [pd.Timestamp(x) for x in fig.layout.xaxis.range] == [pd.Timestamp(SPAN.start), pd.Timestamp(END)]
    assert fig.layout.yaxis.rangemode == "tozero" and fig.layout.title.text == "Latency"
    assert list(frame["value"]) == [0.05, 0.25]  # the caller's frame is left as it was


def test_alerts_firing_and_their_captions() -> None:
    alerts = parse_alerts([
        {"labels": {"alertname": "Slow", "severity": "critical"}, "state": "firing",
         "annotations": {"description": "p95 above 200 ms."}, "activeAt": "2026-01-01T10:20:30.123Z"},
        {"labels": {"alertname": "Cold", "severity": "warning"}, "state": "pending", "annotations": {}},
    ])
    assert [a.name for a in monitoring_view.firing(alerts)] == ["Slow"]
    assert monitoring_view.alert_caption(alerts[0]) == "p95 above 200 ms. Active since 2026-01-01 10:20:30 UTC."
    assert monitoring_view.alert_caption(Alert("x", "pending", "warning", "s")) == ""


def test_exposition_tables_and_hit_ratio_cards() -> None:
    snap = ExpositionSnapshot.parse(EXPOSITION)
    requests = monitoring_view.requests_table(snap)
    assert requests.to_dict("records") == [{"status": "error", "requests": 3.0}, {"status": "ok", "requests": 97.0}]
    latency = monitoring_view.latency_table(snap)
    assert list(latency["quantile"]) == ["p50", "p95", "p99"] and latency["latency"].str.endswith(" ms").all()
    assert monitoring_view.hit_ratio_table(snap).to_dict("records") == [{"tier": "l1", "hit ratio": "60.0%"},
                                                                       {"tier": "l2", "hit ratio": "25.0%"}]
    cards = monitoring_view.hit_ratio_cards(snap.tier_hit_ratios(), snap.kpis())
    assert cards == [MetricCard("Served from cache (L1 or L2)", "60.0%", "target ≥ 80%"),
                     MetricCard("L1 hit ratio", "60.0%", None),
                     MetricCard("L2 hit ratio", "25.0%", "L2 is consulted only after an L1 miss")]
    assert [c.label for c in monitoring_view.hit_ratio_cards({}, {})] == ["Served from cache (L1 or L2)"]


def test_the_lists_computed_by_cause_from_a_real_exposition() -> None:
    registry = CollectorRegistry()
    misses = Counter("recops_cache_misses_total", "misses", ["tier", "cause"], registry=registry)
    misses.labels(tier="l2", cause="first_seen").inc(30)
    misses.labels(tier="l2", cause="invalidated").inc(10)
    misses.labels(tier="l1", cause="evicted").inc(500)  # an L1 miss served from L2: no list computed
    table = monitoring_view.miss_causes_table(ExpositionSnapshot.parse(generate_latest(registry).decode()))
    assert table.to_dict("records") == [
        {"cause": "first_seen", "lists computed": 30, "share": "75.0%"},
        {"cause": "invalidated", "lists computed": 10, "share": "25.0%"},
        {"cause": "model_changed", "lists computed": 0, "share": "0.00%"},
        {"cause": "expired", "lists computed": 0, "share": "0.00%"},
        {"cause": "evicted", "lists computed": 0, "share": "0.00%"},
    ]
    empty = monitoring_view.miss_causes_table(ExpositionSnapshot.parse(EXPOSITION))
    assert empty["lists computed"].sum() == 0 and (empty["share"] == "–").all()  # no share of nothing
