"""The Readout page's health, quality and over-time pieces, without Streamlit."""

from __future__ import annotations

from engine.console import readout_health as view

CHECKS = [
    {"name": "srm", "status": "ok", "message": "fine", "details": {}},
    {"name": "arm_traffic", "status": "failed", "message": "als received no exposure", "details": {}},
    {"name": "freshness", "status": "warning", "message": "last exposure 2.0 h ago", "details": {}},
]


def test_health_notice_is_as_loud_as_the_worst_check_and_names_each_finding() -> None:
    notice = view.health_notice(CHECKS)
    assert notice.level == "error"
    assert "arm_traffic: als received no exposure" in notice.text and "freshness:" in notice.text
    assert "srm" not in notice.text
    assert view.health_notice(CHECKS[2:]).level == "warning"
    assert view.health_notice(CHECKS[:1]).level == "success"
    frame = view.health_frame(CHECKS)
    assert list(frame["check"]) == ["srm", "arm_traffic", "freshness"] and frame["status"][1].endswith("failed")


def test_quality_frame_and_overlap_text() -> None:
    quality = {"arms": [{"variant": "control", "lists": 3, "coverage": 0.5}, {"variant": "als", "lists": 0,
                                                                               "message": "no list recorded"}],
               "overlap": [{"variants": ["control", "als"], "users": 8, "jaccard": 0.25}]}
    frame = view.quality_frame(quality)
    assert list(frame["arm"]) == ["control", "als"] and frame["coverage"][0] == 0.5
    assert frame["note"][1] == "no list recorded"
    assert view.overlap_text(quality) == "control vs als: mean Jaccard 0.25 over 8 users"
    assert view.overlap_text({"overlap": None, "overlap_message": "needs the engine"}) == "needs the engine"


def test_period_messages_name_the_period_and_arm_once() -> None:
    rows = [{"period": "2026-12-01", "arm": "als", "metric": "ctr", "message": "no data"},
            {"period": "2026-12-01", "arm": "als", "metric": "ctr", "message": "no data"},
            {"period": "2026-12-02", "arm": "als", "metric": "ctr", "message": None},
            {"period": "2026-12-01", "arm": "als", "metric": "clicked", "message": "other"}]
    assert view.period_messages({"timeseries": rows}, "ctr") == ["2026-12-01 · als: no data"]
    assert view.over_time({"timeseries": rows}, "ctr") is None  # no lift to plot: the page says so
    assert "hour" in view.over_time_caption({"timeseries_unit": "hour"}, "sequential")


def test_over_time_plots_each_treatment_with_its_interval_per_period() -> None:
    rows = [{"period": "2026-12-02T04", "arm": "als", "metric": "ctr", "lift": 0.10, "ci": [0.02, 0.20]},
            {"period": "2026-12-02T05", "arm": "als", "metric": "ctr", "lift": 0.05, "ci": [-0.01, 0.12]},
            {"period": "2026-12-02T05", "arm": "control", "metric": "ctr", "lift": None, "ci": None}]
    fig = view.over_time({"timeseries": rows}, "ctr")
    assert fig is not None and [t.name for t in fig.data] == ["als"]
    (trace,) = fig.data
    assert list(trace.x) == ["2026-12-02T04", "2026-12-02T05"] and list(trace.y) == [0.10, 0.05]
    assert list(trace.error_y.array) == [0.20 - 0.10, 0.12 - 0.05]
    assert list(trace.error_y.arrayminus) == [0.10 - 0.02, 0.05 + 0.01]
    assert fig.layout.xaxis.type == "category"
