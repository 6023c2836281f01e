"""engine.console.experiments: the experiment list and audited life-cycle actions, against the real test Redis."""

from __future__ import annotations

import pytest

from engine.console import experiments as console_experiments
from engine.runtime import Engine
from tests.support.console import two_arm_spec


def test_life_cycle_actions_are_audited_and_refused_when_not_allowed(engine: Engine) -> None:
    console_experiments.create(engine, two_arm_spec(), "ada")
    with pytest.raises(Exception, match="only a running experiment can pause"):
        console_experiments.transition(engine, "exp-1", "pause", "ada")
    for action, status in (("start", "running"), ("pause", "paused"), ("start", "running"), ("stop", "stopped")):
        assert console_experiments.transition(engine, "exp-1", action, "ada").status == status
    actions = [e.action for e in reversed(engine.audit.recent(10))]
    assert actions == ["experiment_create", "experiment_start", "experiment_pause", "experiment_start",
                       "experiment_stop"]
    with pytest.raises(ValueError, match="unknown action"):
        console_experiments.transition(engine, "exp-1", "explode", "ada")


def test_a_confirmed_action_says_what_happened(engine: Engine) -> None:
    exp = console_experiments.create(engine, two_arm_spec(), "ada")
    assert console_experiments.allowed_actions(exp) == ("start",)
    assert console_experiments.consequence("start", exp).startswith("Users start being assigned")
    started = console_experiments.run_confirmed(engine, {"action": "start", "key": "exp-1"}, "ada")
    assert (started.level, started.text) == ("success", "`exp-1` is now **running** (phase 1).")
    running = console_experiments.get(engine, "exp-1")
    assert console_experiments.consequence("start", running) == "Assignment and statistics resume in the same phase."
    again = console_experiments.run_confirmed(engine, {"action": "start", "key": "exp-1"}, "ada")
    assert (again.level, again.text) == ("error", "Could not start `exp-1`: experiment 'exp-1' is already running")
    assert [e.action for e in engine.audit.recent(5)] == ["experiment_start", "experiment_create"]


def test_the_list_running_first_as_a_table(engine: Engine) -> None:
    assert console_experiments.listed(engine) == []
    console_experiments.create(engine, two_arm_spec(key="draft-one"), "ada")
    console_experiments.create(engine, two_arm_spec(key="live", layer="home", coverage_pct=50), "ada")
    console_experiments.transition(engine, "live", "start", "ada")
    exps = console_experiments.listed(engine)
    assert [e.key for e in exps] == ["live", "draft-one"]
    assert [e.key for e in console_experiments.running(exps)] == ["live"]
    assert [e.key for e in console_experiments.started(exps)] == ["live"]
    assert console_experiments.key_labels(exps) == {"live": "live — Popularity vs ALS",
                                                    "draft-one": "draft-one — Popularity vs ALS"}
    assert console_experiments.phases(exps[0]) == [1]
    styled = console_experiments.listing(exps)
    frame = styled.data
    assert list(frame.columns) == ["key", "name", "status", "kind", "phase", "variants", "coverage", "layer", "goal",
                                   "started"]
    live, draft = frame.iloc[0], frame.iloc[1]
    assert live["variants"] == "control: popularity (50%), als: als (50%)" and live["coverage"] == 0.5
    assert (live["layer"], draft["layer"], draft["started"]) == ("home", "–", "–")
    assert live["started"].endswith(" UTC")
    html = styled.to_html()
    assert "background-color: #dcfce7" in html and "50%" in html  # running is green; coverage as a percentage


