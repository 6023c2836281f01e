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
