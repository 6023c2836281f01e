"""The Readout page's results-over-time pieces, without Streamlit: rows to frames, charts, notes, captions."""

from __future__ import annotations

import pytest

from engine.console import over_time_view as otv

GUARDRAIL = otv.MetricChoice("spend", "guardrail", "lower", custom=True, margin=0.03)


def rows(*periods: tuple[str, float | None, str | None]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for period, lift, message in periods:
        out.append({"period": period, "arm": "control", "metric": "spend", "lift": None, "message": message})
        out.append({"period": period, "arm": "als", "metric": "spend", "lift": lift, "message": message,
                    "ci": [lift - 0.1, lift + 0.1] if lift is not None else None, "chance_to_win": 0.7,
                    "boundary": 2.8, "look": 2})
    return out


def test_frame_keeps_the_treatments_with_a_lift_and_the_figures_draw_them() -> None:
    data = rows(("2026-12-02T04", 0.1, None), ("2026-12-02T05", None, "no interval yet"))
    frame = otv.metric_frame(data, "spend")
    assert list(frame["period"]) == ["2026-12-02T04"] and frame.iloc[0]["ci_high"] == 0.2
    fig = otv.lift_figure(frame, "spend", "sequential", "hour")
    assert fig is not None and "group-sequential repeated interval" in fig.layout.title.text
    assert list(fig.data[0].error_y.array) == pytest.approx([0.1])  # ci_high − lift
    chance = otv.chance_figure(frame, "spend", "hour")
    assert chance is not None and list(chance.data[0].y) == [0.7]
    assert otv.lift_figure(frame.iloc[0:0], "spend", "frequentist", "day") is None


def test_notes_name_each_message_once_with_its_latest_periods() -> None:
    data = rows(*((f"2026-12-02T{h:02d}", 0.1, "no new data") for h in range(9)))
    data.insert(0, {"period": "2026-12-01T23", "arm": "als", "metric": None, "message": "no users exposed yet"})
    notes = otv.period_notes(data, "spend", shown=2)
    assert notes == ["no users exposed yet — 2026-12-01T23 (als)",
                     "no new data — 2026-12-02T07 (control, als), 2026-12-02T08 (control, als) and 7 earlier"]
    assert otv.period_notes(data, "other") == ["no users exposed yet — 2026-12-01T23 (als)"]


def test_captions_say_what_changes_the_verdict_by_role_and_engine() -> None:
    frame = otv.metric_frame(rows(("2026-12-02T04", 0.1, None)), "spend")
    text = otv.caption(GUARDRAIL, frame, "sequential", "hour")
    assert "At look 2 the boundary is |z| ≥ 2.80." in text and "held, not shipped" in text
    text = otv.caption(GUARDRAIL, frame, "frequentist", "hour")
    assert "tolerated deterioration 3%" in text and "peek" in text
    goal = otv.MetricChoice("ctr", "goal", "lower", custom=False, margin=0.0)
    assert "entirely below 0" in otv.role_words(goal, "frequentist")
    assert "chance to win of at most 5%" in otv.role_words(goal, "bayesian")


def test_missing_chart_messages_say_why() -> None:
    assert "no period recorded yet" in otv.missing_notice([], None, "spend").text
    early = [{"period": "2026-12-02T04", "arm": "als", "metric": None, "message": "no users exposed yet"}]
    assert otv.missing_notice(early, None, "spend").text == "No results over time yet: no users exposed yet."
    pending = rows(("2026-12-02T04", None, "an arm has too few users"))
    assert "an arm has too few users" in otv.missing_notice(pending, None, "spend").text


def test_notes_of_one_metric_name_the_period_and_arm_once() -> None:
    data = [{"period": "2026-12-01", "arm": "als", "metric": "ctr", "message": "no data"},
            {"period": "2026-12-01", "arm": "als", "metric": "ctr", "message": "no data"},
            {"period": "2026-12-02", "arm": "als", "metric": "ctr", "message": None},
            {"period": "2026-12-01", "arm": "als", "metric": "clicked", "message": "other"}]
    assert otv.period_notes(data, "ctr") == ["no data — 2026-12-01 (als)"]
    assert otv.metric_frame(data, "ctr").empty  # no lift to plot: the page says why instead


def test_lift_over_time_plots_each_treatment_with_its_interval_per_period() -> None:
    data = [{"period": "2026-12-02T04", "arm": "als", "metric": "ctr", "lift": 0.10, "ci": [0.02, 0.20]},
            {"period": "2026-12-02T05", "arm": "als", "metric": "ctr", "lift": 0.05, "ci": [-0.01, 0.12]},
            {"period": "2026-12-02T05", "arm": "control", "metric": "ctr", "lift": None, "ci": None}]
    fig = otv.lift_figure(otv.metric_frame(data, "ctr"), "ctr", "frequentist", "hour")
    assert fig is not None and [t.name for t in fig.data] == ["als"]
    (trace,) = fig.data
    assert list(trace.x) == ["2026-12-02T04", "2026-12-02T05"] and list(trace.y) == [0.10, 0.05]
    assert list(trace.error_y.array) == pytest.approx([0.20 - 0.10, 0.12 - 0.05])
    assert list(trace.error_y.arrayminus) == pytest.approx([0.10 - 0.02, 0.05 + 0.01])
    assert fig.layout.xaxis.type == "category" and "confidence interval" in fig.layout.title.text
