"""The Readout page names the rule that decided, in plain words, with the metric that decided it."""

from __future__ import annotations

from engine.console import experiments as console_experiments
from tests.support.console import console_engine, console_engines, console_env, page, run_traffic, texts, two_arm_spec

__all__ = ["console_engines", "console_env"]  # the fixtures, imported for the test below

# more users who click is worse here: the treatment's boosted clicks break this guardrail
FEWER_CLICKERS = {"name": "clickers", "kind": "indicator", "event_type": "click", "role": "guardrail",
                  "direction": "lower", "margin": 0.01}


def test_a_broken_guardrail_stops_the_experiment_and_is_named(console_env: dict[str, str]) -> None:
    eng = console_engine()
    console_experiments.create(eng, two_arm_spec(key="guarded", metrics=[FEWER_CLICKERS]), "test")
    console_experiments.transition(eng, "guarded", "start", "test")
    run_traffic(eng, eng.features.top_active_users(300), seed=3, boost={"als": 3.0})
    readout = console_experiments.readout(eng, "guarded")
    assert (readout.decision.rule, readout.decision.metric) == ("stop_guardrail", "clickers")
    at = page("readout").run()
    assert texts(at.exception) == []
    notice = next(t for t in texts(at.warning) if t.startswith("**Decision: hold.**"))
    assert "Rule that decided: **stop for a guardrail** (a treatment is worse than a guardrail tolerates)" in notice
    assert "decided by `clickers` (guardrail)." in notice
    # the Bayesian engine reads the guardrail in its direction too (higher is worse here): it holds the winner back
    at.segmented_control(key="readout_engine_guarded").set_value("bayesian").run()
    assert texts(at.exception) == []
    said = "\n".join(texts(at.success) + texts(at.info) + texts(at.warning))
    assert "Rule that decided: **stop for a guardrail**" in said and "decided by `clickers` (guardrail)." in said
