"""engine.console.experiment_form: the experiment editor's spec, its problems by field (carried as data by
``ExperimentError.field`` and pydantic's locations), saving, and the sample-size calculator."""

from __future__ import annotations

import dataclasses

import pytest

from engine.console import experiment_form
from engine.console import experiments as console_experiments
from engine.console.experiment_form import GENERAL, Editor, VariantRow
from engine.experiments import ExperimentError, parse_experiment
from engine.runtime import Engine
from engine.serving.serving_params import MAX_CANDIDATE_POOL, MAX_LIST_LENGTH
from tests.support.console import two_arm_spec

MODELS = ["als", "item_item", "popularity"]


# ------------------------------------------------------------------------------ problems by field


def test_form_errors_point_at_the_field() -> None:
    models = ["als", "popularity", "item_item"]
    assert experiment_form.form_errors(two_arm_spec(), models) == {}
    bad_weights = two_arm_spec(variants=[{"name": "a", "model": "als", "weight": 0.7},
                                         {"name": "b", "model": "als", "weight": 0.7}])
    errors = experiment_form.form_errors(bad_weights, models)
    assert list(errors) == ["variants"] and "sum to 1" in errors["variants"][0]
    assert "key" in experiment_form.form_errors(two_arm_spec(key="bad key!"), models)
    assert "coverage_pct" in experiment_form.form_errors(two_arm_spec(coverage_pct=0), models)
    assert "guardrail_metrics" in experiment_form.form_errors(two_arm_spec(guardrail_metrics=["ctr"]), models)
    assert "guardrail_metrics" in experiment_form.form_errors(two_arm_spec(guardrail_metrics=["nope"]), models)
    assert "goal_metric" in experiment_form.form_errors(two_arm_spec(goal_metric="nope"), models)
    missing = experiment_form.form_errors(two_arm_spec(), ["als"])
    assert "variants" in missing and "popularity" in missing["variants"][0]
    # specs pass on their model's name; the version they name is the service's check on save
    specs = two_arm_spec(variants=[{"name": "a", "model": "als@production"}, {"name": "b", "model": "als@candidate"}])
    assert experiment_form.form_errors(specs, ["als"]) == {}
    assert experiment_form.form_errors(two_arm_spec(variants=[
        {"name": "a", "model": "als@7"}, {"name": "b", "model": "ease@candidate"}]), ["als"]) == {
        "variants": ["variant 'b': model 'ease' (ease@candidate) is not trained here", "available: ['als']"]}
    malformed = experiment_form.form_errors(two_arm_spec(variants=[
        {"name": "a", "model": "als@latest"}, {"name": "b", "model": "als"}]), ["als"])
    assert list(malformed) == ["variants"] and "after '@' expected production or candidate" in malformed["variants"][0]


def test_problems_across_fields_go_each_to_its_own_field_whole() -> None:
    spec = two_arm_spec(goal_metric="nope", guardrail_metrics=["ctr", "also-nope"], variants=[
        {"name": "a", "model": "als", "weight": 0.5}, {"name": "a", "model": "als", "weight": 0.5}])
    errors = experiment_form.form_errors(spec, MODELS)
    # a message with "; " inside stays one message, beside its own field (no splitting of texts)
    assert errors["variants"] == ["variant names must be unique; repeated: ['a']"]
    assert [e.split(";")[0] for e in errors["goal_metric"]] == ["unknown metric 'nope'"]
    assert [e.split(";")[0] for e in errors["guardrail_metrics"]] == ["unknown metric 'also-nope'"]
    assert list(errors) == ["variants", "goal_metric", "guardrail_metrics"]
    bandit = experiment_form.form_errors(two_arm_spec(kind="bandit", goal_metric="revenue"), MODELS)
    assert list(bandit) == ["kind"] and "needs a rate as its goal" in bandit["kind"][0]
    forced = experiment_form.form_errors(two_arm_spec(forced={"u1": "gone"}), MODELS)
    assert list(forced) == ["variants"] and forced["variants"][0].startswith("forced user 'u1': no variant 'gone'")
    where = experiment_form.form_errors(two_arm_spec(variants=[
        {"name": "control", "model": "popularity", "weight": 0.5}, {"name": "b", "model": "als", "weight": 0}]), MODELS)
    assert where["variants"][0].startswith("1.weight: Input should be greater than 0")  # the place within the field
    salt = experiment_form.form_errors(two_arm_spec(salt="x" * 200), MODELS)
    assert list(salt) == [GENERAL]  # a field the form does not show


def test_the_field_travels_on_the_error_as_data() -> None:
    with pytest.raises(ExperimentError) as one:
        parse_experiment(two_arm_spec(guardrail_metrics=["ctr"]))
    assert one.value.field == "guardrail_metrics"
    assert str(one.value) == "invalid experiment: the goal metric 'ctr' cannot also be a guardrail"
    with pytest.raises(ExperimentError) as several:
        parse_experiment(two_arm_spec(goal_metric="nope", guardrail_metrics=["nope2"]))
    assert several.value.field is None  # two fields: none names them all
    assert experiment_form.slot_of(None) == GENERAL and experiment_form.slot_of("salt") == GENERAL
    assert experiment_form.slot_of("layer") == "layer"


# ------------------------------------------------------------------------------ the editor


def test_a_new_experiment_starts_from_two_arms_and_strips_what_was_typed() -> None:
    ed = Editor(None, MODELS, "als")
    assert (ed.creating, ed.prefix, ed.title, ed.submit_label) == (True, "ef-new-", "New experiment", "Create draft")
    assert not ed.locked and not ed.started and not ed.opens_phase
    start = ed.initial
    assert start.variants == (VariantRow("control", "als", 0.5), VariantRow("treatment", "item_item", 0.5))
    assert (start.goal_metric, start.engine, start.use_plan, start.coverage_pct) == ("ctr", "frequentist", True, 100.0)
    assert ed.variant_default(2) == VariantRow("variant_2", "item_item", 0.0)
    assert ed.model_index("popularity") == 2 and ed.model_index("gone") == 0
    form = dataclasses.replace(start, key=" k1 ", name=" Name ", hypothesis=" H ", layer="  ",
                               variants=(VariantRow(" a ", "als", 0.5), VariantRow("b", "popularity", 0.5)),
                               guardrail_metrics=("clicked",))
    spec = form.spec(planned=1234)
    assert (spec["key"], spec["name"], spec["hypothesis"], spec["layer"]) == ("k1", "Name", "H", None)
    assert spec["variants"][0] == {"name": "a", "model": "als", "weight": 0.5}
    assert spec["guardrail_metrics"] == ["clicked"] and spec["planned_sample_size"] == 1234
    assert dataclasses.replace(form, use_plan=False).spec(1234)["planned_sample_size"] is None
    assert form.spec(None)["planned_sample_size"] is None and form.weights == [0.5, 0.5]


def test_submit_creates_refuses_and_updates(engine: Engine) -> None:
    new = experiment_form.editor(engine, None)
    assert list(new.models) == sorted(engine.service.models) and new.default_model == engine.service.default_model
    form = dataclasses.replace(new.initial, key="exp-f", name="Form", guardrail_metrics=("clicked",))
    bad = new.submit(engine, dataclasses.replace(form, variants=(VariantRow("a", "als", 0.7),
                                                                 VariantRow("b", "als", 0.7))), None, "ada")
    assert bad.invalid and bad.saved is None and "sum to 1" in bad.errors["variants"][0]
    assert console_experiments.listed(engine) == []  # nothing was sent
    created = new.submit(engine, form, 500, "ada")
    assert created.saved is not None and created.saved.planned_sample_size == 500 and not created.errors
    assert experiment_form.saved_text(created.saved) == "Saved `exp-f` (version 1, draft)."
    again = new.submit(engine, form, 500, "ada")  # the service refuses: its error names the key field
    assert again.errors == {"key": ["experiment 'exp-f' already exists"]} and not again.invalid

    exp = console_experiments.get(engine, "exp-f")
    svc = engine.experiments
    svc.update("exp-f", {"forced": {"qa-user": "treatment"}, "variants": [
        {**v.model_dump(), "params": {"mmr_lambda": 0.5} if v.name == "control" else {}} for v in exp.variants]})
    exp = console_experiments.get(engine, "exp-f")
    ed = Editor(exp, MODELS, "als")
    assert ed.prefix == f"ef-exp-f-{exp.version}-" and ed.title == f"Edit exp-f (version {exp.version})"
    assert ed.initial.guardrail_metrics == ("clicked",) and ed.initial.use_plan
    assert ed.submit(engine, ed.initial, 500, "ada").unchanged
    renamed = ed.submit(engine, dataclasses.replace(ed.initial, name="Renamed"), 500, "bob")
    assert renamed.saved is not None and renamed.saved.name == "Renamed"
    kept = console_experiments.get(engine, "exp-f")
    # not on the form: kept
    assert kept.variants[0].params == {"mmr_lambda": 0.5} and kept.forced == {"qa-user": "treatment"}
    assert engine.audit.recent(1)[0].detail.endswith("fields ['name']")
    stale = ed.submit(engine, dataclasses.replace(ed.initial, name="Stale"), 500, "ada")  # read before the rename
    assert list(stale.errors) == [GENERAL] and stale.errors[GENERAL][0].endswith(
        ". Reload the page to see the current version.")


def test_a_stopped_experiment_is_locked(engine: Engine) -> None:
    console_experiments.create(engine, two_arm_spec(), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    running = Editor(console_experiments.get(engine, "exp-1"), MODELS, "als")
    assert running.started and running.opens_phase and not running.locked
    console_experiments.transition(engine, "exp-1", "stop", "ada")
    stopped = Editor(console_experiments.get(engine, "exp-1"), MODELS, "als")
    assert stopped.locked and not stopped.opens_phase
    refused = stopped.submit(engine, dataclasses.replace(stopped.initial, coverage_pct=50.0), None, "ada")
    assert list(refused.errors) == [GENERAL] and "only ['hypothesis', 'name'] can change" in refused.errors[GENERAL][0]


def test_serving_settings_and_model_specs_in_the_form() -> None:
    row = VariantRow(" fast ", "als@candidate ", 0.5, {"n": 20.0, "mmr_lambda": 0.3, "candidate_pool": None})
    assert row.spec() == {"name": "fast", "model": "als@candidate", "weight": 0.5,
                          "params": {"n": 20, "mmr_lambda": 0.3}}  # empty = default: not sent
    assert isinstance(row.spec()["params"]["n"], int)
    assert experiment_form.serving_params({"category_cap": 2, "other": 1}) == {"category_cap": 2}
    assert [p.key for p in experiment_form.SERVING_PARAMS] == ["n", "candidate_pool", "mmr_lambda", "category_cap"]
    # the engine's limits, as ServingParams checks them
    limits = {p.key: (p.integer, p.minimum, p.maximum) for p in experiment_form.SERVING_PARAMS}
    assert limits == {"n": (True, 1, MAX_LIST_LENGTH), "candidate_pool": (True, 1, MAX_CANDIDATE_POOL),
                      "mmr_lambda": (False, 0, 1), "category_cap": (True, 1, None)}
    assert experiment_form.SERVING_PARAMS[2].help.endswith("default: RECOPS_MMR_LAMBDA")
    ed = Editor(None, MODELS, "als", specs=["als", "als@production", "als@3"], spec_labels={"als@3": "als@3 · cand"})
    assert ed.spec_choices("als@3") == ["als", "als@production", "als@3"]
    assert ed.spec_choices("als@2026x") == ["als@2026x", "als", "als@production", "als@3"]  # a typed or older one
    assert Editor(None, MODELS, "als").spec_choices("als") == MODELS  # no registry read: the plain names
    assert (ed.spec_label("als@3"), ed.spec_label("als")) == ("als@3 · cand", "als")
    suggested = dataclasses.replace(ed.initial, key="als-v3-vs-production", variants=(
        VariantRow("control", "als@production", 0.5), VariantRow("treatment", "als@3", 0.5)))
    prefilled = dataclasses.replace(ed, start=suggested)
    assert prefilled.initial == suggested and prefilled.prefix == "ef-new-als-v3-vs-production-"
    assert prefilled.variant_default(1).model == "als@3"


def test_the_editor_offers_the_served_datasets_versions(engine: Engine) -> None:
    ed = experiment_form.editor(engine, None)
    assert {"als", "als@production", "als@1", "popularity@production"} <= set(ed.specs)
    assert ed.spec_labels["als@1"].startswith("als@1 · production")
    assert experiment_form.editor(engine, None, ed.initial).start == ed.initial
    console_experiments.create(engine, two_arm_spec(), "ada")
    assert experiment_form.editor(engine, console_experiments.get(engine, "exp-1"), ed.initial).start is None


def test_editing_replaces_serving_settings(engine: Engine) -> None:
    spec = two_arm_spec()
    spec["variants"][1]["params"] = {"mmr_lambda": 0.5}
    console_experiments.create(engine, spec, "ada")
    ed = Editor(console_experiments.get(engine, "exp-1"), MODELS, "als")
    assert ed.initial.variants[1].serving == {"mmr_lambda": 0.5}  # the form shows the serving settings only
    assert ed.submit(engine, ed.initial, None, "ada").unchanged
    changed = dataclasses.replace(ed.initial, variants=(ed.initial.variants[0], dataclasses.replace(
        ed.initial.variants[1], serving={"n": 20, "mmr_lambda": None})))
    saved = ed.submit(engine, changed, None, "ada").saved
    assert saved is not None and saved.variants[1].params == {"n": 20}


def test_specs_are_saved_and_a_missing_version_is_refused_beside_the_variants(engine: Engine) -> None:
    new = experiment_form.editor(engine, None)
    form = dataclasses.replace(new.initial, key="exp-spec", name="Specs", variants=(
        VariantRow("control", "als@production", 0.5), VariantRow("treatment", "als@99", 0.5, {"mmr_lambda": 0.4})))
    refused = new.submit(engine, form, None, "ada")
    assert refused.saved is None and "variants" in refused.errors and "als@99" in " ".join(refused.errors["variants"])
    assert console_experiments.listed(engine) == []
    saved = new.submit(engine, dataclasses.replace(form, variants=(
        form.variants[0], dataclasses.replace(form.variants[1], model="als@1"))), None, "ada").saved
    assert saved is not None and [(v.model, v.params) for v in saved.variants] == [
        ("als@production", {}), ("als@1", {"mmr_lambda": 0.4})]


# ------------------------------------------------------------------------------ sample-size calculator


def test_plan_and_traffic() -> None:
    p = experiment_form.plan("ctr", 0.05, 0.1, 0.05, 0.8, [0.5, 0.5], traffic_per_day=2000, coverage_pct=50)
    assert p.users_per_variant > 1000 and p.days == pytest.approx(p.total_users / 1000, rel=0.05)
    with pytest.raises(ValueError):
        experiment_form.plan("ctr", 0.05, 0.1, 0.05, 0.8, [1.0], None)
    assert experiment_form.plan("revenue", 10.0, 0.05, 0.05, 0.8, [0.5, 0.5], None, std=20).days is None
    assert experiment_form.duration_text(0.5) == "about 12.0 hours at current traffic"
    assert experiment_form.duration_text(None).startswith("no traffic")
    assert experiment_form.plan_text(p).startswith(f"Needs **{p.users_per_variant:,} users per variant** "
                                                   f"({p.total_users:,} in total), about ")
    assert "MDE 10.0% relative, alpha 0.05 per comparison." in experiment_form.plan_text(p)
    assert experiment_form.traffic_text(257_431).startswith("Current traffic: about 257.4k users per day")
    assert experiment_form.traffic_text(None).startswith("Current traffic: unknown")


def test_baseline_from_the_live_kpi_when_plausible() -> None:
    assert experiment_form.baseline("ctr", {"ctr": 0.042}) == experiment_form.Baseline(0.042, True)
    assert experiment_form.baseline("ctr", {"ctr": 0.042}).help == "current control value (measured now)"
    assert experiment_form.baseline("ctr", {}) == experiment_form.Baseline(0.05, False)
    assert experiment_form.baseline("ctr", {"ctr": None}).help == "current control value"
    assert experiment_form.baseline("conversion_rate", {"conversion": 0.0}).value == 0.005
    assert experiment_form.baseline("revenue", {"ctr": 0.04}) == experiment_form.Baseline(1.0, False)
    assert experiment_form.measured_kpi("conversion_rate") == "conversion"
    assert experiment_form.measured_kpi("revenue") is None
    assert experiment_form.needs_std("revenue") and not experiment_form.needs_std("ctr")
    assert experiment_form.metric_label("ctr").startswith("ctr — ")


def test_the_sequential_plan_is_saved_from_the_form_and_read_back(engine: Engine) -> None:
    new = experiment_form.editor(engine, None)
    base = dataclasses.replace(new.initial, key="exp-seq", name="Sequential")
    assert base.spec(500)["sequential"] is None  # only the sequential engine has a plan
    msprt = dataclasses.replace(base, engine="sequential", sequential_looks=7)
    assert msprt.spec(500)["sequential"] == {"method": "msprt", "looks": None}  # looks are the group method's
    group = dataclasses.replace(msprt, sequential_method="group")
    saved = new.submit(engine, group, 800, "ada").saved
    assert saved is not None and saved.sequential is not None
    assert (saved.sequential.method, saved.sequential.looks, saved.planned_sample_size) == ("group", 7, 800)
    back = Editor(console_experiments.get(engine, "exp-seq"), MODELS, "als").initial
    assert (back.engine, back.sequential_method, back.sequential_looks) == ("sequential", "group", 7)
    assert Editor(saved, MODELS, "als").submit(engine, back, 800, "ada").unchanged
