"""The Readout page's "break down by" section with a running experiment on the demo world."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.console import experiments as console_experiments
from tests.support.console import console_engine, console_engines, console_env, page, run_traffic, texts, two_arm_spec

__all__ = ["console_engines", "console_env"]  # the fixtures, imported for the test below


def ran(at: AppTest) -> AppTest:
    assert texts(at.exception) == [], [e.stack_trace for e in at.exception]
    return at


def test_readout_breaks_the_goal_down_and_names_the_rule(console_env: dict[str, str]) -> None:
    eng = console_engine()
    console_experiments.create(eng, two_arm_spec(key="bd"), "test")
    console_experiments.transition(eng, "bd", "start", "test")
    run_traffic(eng, eng.features.top_active_users(300), seed=3, boost={"als": 3.0})
    at = ran(page("readout").run())
    assert "Rule that decided:" in "\n".join(texts(at.info) + texts(at.success) + texts(at.warning))
    assert set(console_experiments.dimensions(eng)) == {"device", "country", "segment", "tenure"}
    at.selectbox(key="readout_by_bd").select("device").run()
    ran(at)
    frame = next(d.value for d in at.dataframe if "cell" in d.value.columns)
    assert set(frame["cell"]) <= {"mobile", "desktop", "tablet"} and len(frame) >= 2
    assert int(frame["users"].sum() + frame["control users"].sum()) == sum(
        a.users for a in eng.experiments.readout("bd").arms)
    assert any("corrected across the cells" in c for c in texts(at.caption))
    # the section's cells carry their sample-ratio check (shown as an error notice when a cell fails it)
    b = console_experiments.breakdown(eng, "bd", "device")
    assert b["srm"]["name"] == "srm_by_dimension" and b["srm"]["details"]["dimension"] == "device"
    assert {c["cell"]: c["users"] for c in b["srm"]["details"]["cells"]} == {c["value"]: c["users"] for c in b["cells"]}
