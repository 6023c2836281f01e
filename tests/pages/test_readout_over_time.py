"""The Readout page's results over time under AppTest: any declared metric (built-in or custom) for
every engine, each chart with its caption, and a message in place of a chart that cannot be drawn
(a ratio whose denominator is zero in one arm, periods without data, no exposure yet)."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.console import experiments as console_experiments
from engine.events.tracker import Event
from tests.support.console import console_engine, console_engines, console_env, page, run_traffic, texts, two_arm_spec

__all__ = ["console_engines", "console_env"]  # the fixtures, imported for the tests below

# a count the ratio divides by, the ratio itself, and an indicator declared as a guardrail
CUSTOM = [
    {"name": "carts", "kind": "count", "event_type": "add_to_cart"},
    {"name": "clicks_per_cart", "kind": "ratio", "numerator": "clicks", "denominator": "carts"},
    {"name": "clickers", "kind": "indicator", "event_type": "click", "role": "guardrail", "margin": 0.05},
]
HOUR = 3_600.0


def ran(at: AppTest) -> AppTest:
    assert texts(at.exception) == [], [e.stack_trace for e in at.exception]
    return at


def joined(*groups: object) -> str:
    return "\n".join(t for g in groups for t in texts(g))


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def over_time_box(at: AppTest, key: str) -> object:
    return at.selectbox(key=f"readout_over_time_{key}")


def test_any_declared_metric_over_time_for_every_engine(console_env: dict[str, str]) -> None:
    eng = console_engine()
    console_experiments.create(eng, two_arm_spec(key="cm", metrics=CUSTOM), "test")
    console_experiments.transition(eng, "cm", "start", "test")
    users = eng.features.top_active_users(300)
    run_traffic(eng, users, seed=3, boost={"als": 3.0})
    # add-to-carts in the control only: the treatment's denominator of clicks_per_cart is zero
    carts = [Event(user_id=u, item_id=eng.catalog.item_ids[0], type="add_to_cart") for u in users
             if (a := eng.experiments.assign(u)) is not None and a.variant == "control"]
    assert carts
    eng.events.track_many(carts)

    at = ran(page("readout").run())
    box = over_time_box(at, "cm")
    assert box.value == "ctr"  # the goal by default
    assert box.options == ["ctr · goal (built-in, higher is better)",
                           "clickers · guardrail (custom, higher is better)",
                           "carts · secondary (custom, higher is better)",
                           "clicks_per_cart · secondary (custom, higher is better)"]
    assert charts(at) == 2  # every metric's interval, and the goal's lift over time
    caption = joined(at.caption)
    assert "cumulative relative lift on ctr" in caption and "ctr is a goal (higher is better)" in caption

    box.select("clickers").run()
    ran(at)
    assert charts(at) == 2
    caption = joined(at.caption)
    assert "cumulative relative lift on clickers" in caption
    assert "clickers is a guardrail (higher is better, tolerated deterioration 5%)" in caption

    over_time_box(at, "cm").select("clicks_per_cart").run()
    ran(at)
    assert charts(at) == 1  # only the intervals of every metric: the message stands in place of the chart
    warning = joined(at.warning)
    assert "clicks_per_cart cannot be plotted over time" in warning
    assert "sums to 0 in arm 'als'" in warning

    for engine, words in (("sequential", "always-valid interval"), ("bayesian", "chance that each treatment beats")):
        at.segmented_control(key="readout_engine_cm").set_value(engine).run()
        ran(at)
        over_time_box(at, "cm").select("carts").run()
        ran(at)
        assert words in joined(at.caption)
        assert "carts is a secondary metric: it is reported, and never changes the verdict" in joined(at.caption)
    # one cart per control user and none in the treatment: no spread, so no chance to win, said in place
    assert "No chance to win in any period yet." in joined(at.caption)
    assert "zero variance in both arms" in joined(at.caption)
    over_time_box(at, "cm").select("clickers").run()
    ran(at)
    # Bayesian: the intervals, the lift over time, the chance to win over time and the goal's posterior
    assert charts(at) == 4
    assert "a winner that is significantly worse here is held" in joined(at.caption)
    over_time_box(at, "cm").select("ctr").run()
    ran(at)
    assert "a ship needs a treatment's chance to win of at least 95%" in joined(at.caption)


def test_periods_without_data_get_a_note_beside_the_chart(
    console_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = console_engine()
    svc = eng.experiments
    started = (time.time() // HOUR - 3) * HOUR + 60  # early in the hour three hours ago: no hour is crossed below
    with monkeypatch.context() as past:  # started three hours ago, every exposure and event in its first hour
        past.setattr(svc.lifecycle, "clock", lambda: started)
        past.setattr(svc.exposures, "clock", lambda: started + 60)
        console_experiments.create(eng, two_arm_spec(key="quiet"), "test")
        console_experiments.transition(eng, "quiet", "start", "test")
        at = ran(page("readout").run())
        assert "No results over time yet: no users exposed yet." in joined(at.info)
        run_traffic(eng, eng.features.top_active_users(300), seed=3, boost={"als": 3.0}, at=started + 120)

    st.cache_data.clear()  # the page keeps a readout for 15 s: read the traffic just sent
    at = ran(page("readout").run())
    assert charts(at) == 2
    notes = next(c for c in texts(at.caption) if c.startswith("Periods with a note: "))
    assert "no new data in this period" in notes and "(control, als)" in notes
    assert notes.count("(control, als)") == 3  # the three hours after the first, each named once
