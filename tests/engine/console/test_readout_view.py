"""engine.console.readout_view: a readout as badges, tables, charts and texts, from traffic served through the
real test Redis and the small world."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from engine.console import experiments as console_experiments
from engine.console import preview, readout_view
from engine.experiments import ExperimentReadout
from engine.runtime import Engine
from tests.support.console import run_traffic, two_arm_spec


def _boosted_readout(engine: Engine, decision_engine: str | None = None) -> ExperimentReadout:
    console_experiments.create(engine, two_arm_spec(guardrail_metrics=["conversion_rate"]), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    assert run_traffic(engine, preview.known_users(engine)[:300], seed=1, boost={"als": 3.0}) > 250
    return console_experiments.readout(engine, "exp-1", decision_engine=decision_engine)


def test_readout_tables_and_badges(engine: Engine) -> None:
    r = _boosted_readout(engine)
    table = readout_view.readout_table(r)
    assert list(table["metric"]) == ["ctr", "conversion_rate"] and list(table["variant"]) == ["als", "als"]
    goal = table.iloc[0]
    assert goal["lift"] > 0 and goal["ci_low"] < goal["lift"] < goal["ci_high"] and goal["direction"] == "better"
    assert r.progress.fraction is not None and r.progress.fraction < 1 and readout_view.peeking(r)
    badge = readout_view.status_badge(r)  # a frequentist winner before the planned sample is only a peek
    assert badge.label == "healthy" and badge.reason
    arms = readout_view.arms_table(r)
    assert arms["users"].sum() == sum(a.users for a in r.arms) and arms["observed share"].sum() == pytest.approx(1)
    bayes = console_experiments.readout(engine, "exp-1", decision_engine="bayesian")
    assert readout_view.readout_table(bayes).iloc[0]["chance_to_win"] > 0.95
    assert readout_view.status_badge(bayes).label == "ready to decide"  # a Bayesian verdict may be read any time
    curves = readout_view.posterior_curves(bayes)
    assert set(curves["variant"]) == {"als"} and curves["density"].max() > 0


def test_decision_progress_and_guardrail_texts(engine: Engine) -> None:
    r = _boosted_readout(engine)
    decision = readout_view.decision_notice(r)
    action = r.decision.action.replace("_", " ")
    assert decision.text.startswith(f"**Decision: {action}.** ")
    assert action not in decision.text.removeprefix(f"**Decision: {action}.** ").lower()[: len(action) + 2]
    repeated = dataclasses.replace(r, decision_text=f"{action}: the reason.")
    assert readout_view.decision_notice(repeated).text.startswith(f"**Decision: {action}.** the reason.")
    assert decision.level == readout_view.DECISION_LEVEL.get(r.decision.action, "info")
    peek = readout_view.peeking_notice(r)
    assert (peek is not None) == (r.decision.action in readout_view.VERDICTS)  # a frequentist verdict, read early
    assert readout_view.peeking_notice(console_experiments.readout(engine, "exp-1", decision_engine="sequential")) \
        is None
    progress = readout_view.progress_view(r)
    assert progress.fraction == r.progress.fraction
    assert progress.text.startswith(f"{r.progress.min_users:,} of {r.progress.planned_per_variant:,} users per variant")
    running = readout_view.running_progress(r)
    assert running is not None and running.text.endswith(" users per variant")
    no_plan = dataclasses.replace(r, progress=dataclasses.replace(r.progress, fraction=None))
    assert readout_view.running_progress(no_plan) is None
    assert readout_view.progress_view(no_plan).text.startswith("Smallest arm: ")
    srm = readout_view.srm_notice(r)
    assert srm.level == "caption" and srm.text.startswith("Sample ratio check passed (chi-square p = ")
    passed = dataclasses.replace(r, decision=dataclasses.replace(r.decision, guardrail_failures={}))
    assert readout_view.guardrail_notice(passed).text == "No guardrail is significantly worse."
    failed = dataclasses.replace(r, decision=dataclasses.replace(
        r.decision, guardrail_failures={"conversion_rate": ["als"]}))
    assert readout_view.guardrail_notice(failed).text == "Significantly worse: conversion_rate (als)"
    assert readout_view.exposed_text(r) == f"{sum(a.users for a in r.arms):,} users exposed"
    caption = readout_view.goal_caption(r, "bayesian")
    assert caption.startswith(f"{r.goal.description}. Lift is relative") and caption.endswith("≤ 5% worse.")


def test_tables_and_charts_for_display(engine: Engine) -> None:
    r = _boosted_readout(engine)
    table = readout_view.readout_table(r)
    goal_rows, guard_rows = readout_view.split_roles(table)
    assert list(goal_rows["metric"]) == ["ctr"] and list(guard_rows["metric"]) == ["conversion_rate"]
    frequentist = readout_view.styled_results(goal_rows, "frequentist")
    assert "p-value" in frequentist.data.columns and "chance to win" not in frequentist.data.columns
    assert "background-color: #dcfce7" in frequentist.to_html()  # the better row is green
    assert "chance to win" in readout_view.styled_results(goal_rows, "bayesian").data.columns
    assert list(readout_view.styled_arms(r).data["variant"]) == ["control", "als"]
    interval = readout_view.interval_figure(table, "Lift")
    assert interval is not None and len(interval.data) == table["lift"].notna().sum()  # rows without a lift left out
    assert interval.data[0].y[0] == "ctr · als" and interval.data[0].marker.color == "#16a34a"
    both = table.assign(lift=[0.1, -0.05], ci_low=[0.04, None], ci_high=[0.15, None], direction=["better", "worse"])
    lifts = readout_view.interval_figure(both, "Lift")
    assert lifts is not None and [t.y[0] for t in lifts.data] == ["ctr · als", "conversion_rate · als (guardrail)"]
    assert list(lifts.data[0].error_x.array) == pytest.approx([0.05]) and list(lifts.data[0].error_x.arrayminus) == \
        pytest.approx([0.06])
    assert list(lifts.data[1].error_x.array) == [0] and lifts.data[1].marker.color == "#dc2626"  # no interval
    assert readout_view.interval_figure(table.assign(lift=None), "Lift") is None
    bayes = console_experiments.readout(engine, "exp-1", decision_engine="bayesian")
    posterior = readout_view.posterior_figure(bayes)
    assert posterior is not None and posterior.layout.title.text == "Posterior of the lift on ctr"
    csv = readout_view.export_csv(table).decode()
    assert csv.splitlines()[0] == ",".join(readout_view.RESULT_COLUMNS) and len(csv.splitlines()) == 3
    assert readout_view.export_name("exp-1", 2, "bayesian") == "exp-1-phase2-bayesian.csv"


def test_srm_badge_when_one_arm_loses_exposures(engine: Engine) -> None:
    console_experiments.create(engine, two_arm_spec(), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    svc = engine.experiments
    kept = 0
    for user in preview.known_users(engine)[:400]:
        a = svc.assign(user)
        if a is not None and (a.variant == "control" or kept % 3 == 0):  # two thirds of "als" exposures lost
            svc.record_exposure(a)
        kept += a is not None and a.variant == "als"
    r = svc.readout("exp-1")
    badge = readout_view.status_badge(r)
    assert badge.label == "SRM" and badge.color == "red"
    srm = readout_view.srm_notice(r)
    assert srm.level == "error" and "users per arm (control " in srm.text
    assert "the configured shares (control 50%, als 50%)" in srm.text


def test_underpowered_badge_when_the_plan_is_smaller_than_the_mde_needs(engine: Engine) -> None:
    console_experiments.create(engine, two_arm_spec(planned_sample_size=20), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    run_traffic(engine, preview.known_users(engine)[:200], seed=2)
    r = console_experiments.readout(engine, "exp-1")
    assert r.progress.fraction == 1.0  # the plan is reached ...
    badge = readout_view.status_badge(r)  # ... but it was too small to detect the MDE
    assert badge.label == "underpowered" and "planned 20 users" in badge.reason


def test_direction_by_engine() -> None:
    row = pd.Series({"lift_abs": 0.01, "significant": True, "chance_to_win": 0.5})
    assert readout_view.direction(row, "frequentist") == "better"
    assert readout_view.direction(row, "bayesian") == "inconclusive"
    assert readout_view.direction(pd.Series({"lift_abs": -0.01, "significant": True}), "sequential") == "worse"
    assert readout_view.direction(pd.Series({"lift_abs": 0.02, "significant": False}), "frequentist") == "inconclusive"
    assert readout_view.direction(pd.Series({"lift_abs": None}), "frequentist") == "no data"
    assert readout_view.direction(pd.Series({"lift_abs": -0.01, "chance_to_win": 0.04}), "bayesian") == "worse"


# ------------------------------------------------------------------------------ what each arm served

SERVED = [
    {"variant": "control", "spec": "als@production", "model": "als", "version": "a5", "number": 5,
     "stage": "production", "serving": {}, "exposures_by_version": {"a4": 90, "a5": 30}},
    {"variant": "diverse", "spec": "als@7", "model": "als", "version": "a7", "number": 7, "stage": "candidate",
     "serving": {"mmr_lambda": 0.3, "n": 20}, "exposures_by_version": {"a7": 120}},
]


def test_the_served_table_names_version_settings_and_exposures() -> None:
    table = readout_view.served_table(SERVED)
    assert list(table.columns) == readout_view.SERVED_COLUMNS
    assert table.to_dict("records") == [
        {"variant": "control", "spec": "als@production", "served version": "als v5 (production)", "version id": "a5",
         "serving settings": "defaults", "exposures by version": "a4: 90; v5: 30", "versions served": 2},
        {"variant": "diverse", "spec": "als@7", "served version": "als v7 (candidate)", "version id": "a7",
         "serving settings": "mmr_lambda=0.3, n=20", "exposures by version": "v7: 120", "versions served": 1}]
    styles = readout_view.styled_served(SERVED).to_html()
    highlighted = styles.split(readout_view.MIXED)[0].rsplit("}", 1)[-1]  # the selectors the colour applies to
    assert "row0_col6" in highlighted and "row1" not in highlighted  # the mixed arm's row only
    notice = readout_view.mixed_versions_notice(SERVED)
    assert notice is not None and notice.level == "warning"
    assert "`control` (als@production) served 2 versions: a4: 90; v5: 30" in notice.text
    assert readout_view.mixed_versions_notice(SERVED[1:]) is None
    bare = readout_view.served_table([{"variant": "a", "spec": "als"}]).iloc[0]  # whatever the engine leaves out
    assert (bare["served version"], bare["exposures by version"], bare["versions served"]) == ("– –", "–", 0)


def test_a_readout_without_served_shows_nothing(engine: Engine) -> None:
    if "served" not in ExperimentReadout.__dataclass_fields__:  # the engine before variants name versions
        assert readout_view.served(_boosted_readout(engine)) is None
    assert readout_view.served({"served": SERVED}) == SERVED
    assert readout_view.served({"served": []}) is None and readout_view.served({}) is None
