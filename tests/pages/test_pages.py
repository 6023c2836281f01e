"""Every console page under Streamlit's AppTest, against the real test Redis and the small demo world.

Pages are run from their files with the console's environment set (as ``recops up`` sets it), and
their widgets are driven as an operator would.  Buttons inside ``st.dialog`` do not execute under
AppTest: a confirmed action is handed to the next script run through session state (the page's own
code path), which the tests set directly; the dialogs themselves are exercised in tests/pages/test_browser.py.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from streamlit.testing.v1 import AppTest

from engine.console import cache_actions, interleaving_view
from engine.console import experiments as console_experiments
from engine.data.dataset_store import DatasetStore, stored_demo
from engine.experiments.demo import DEMO_KEY, offer_demo_experiment
from engine.models.als import ALSRecommender
from engine.models.registry import ModelRegistry
from engine.models.training import TrainingOptions, train_models
from engine.runtime import prepare_world
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.console import (
    APP,
    ConsoleEngines,
    console_engine,
    console_engines,
    console_env,
    page,
    run_traffic,
    texts,
    two_arm_spec,
)
from tests.support.imported_data import NAME, import_small_dataset

__all__ = ["console_engines", "console_env"]  # the fixtures, imported for the tests below

NO_EXCEPTION: list[str] = []


def ran(at: AppTest) -> AppTest:
    assert texts(at.exception) == NO_EXCEPTION, [e.stack_trace for e in at.exception]
    return at


def button(at: AppTest, label: str) -> object:
    return next(b for b in at.button if b.label == label)


def text_input(at: AppTest, label: str) -> object:
    return next(t for t in at.text_input if t.label == label)


def table_with(at: AppTest, column: str) -> object:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def joined(elements: object) -> str:
    return "\n".join(texts(elements))


# ------------------------------------------------------------------------------ navigation


def test_app_routes_every_page_in_three_sections(console_env: dict[str, str]) -> None:
    at = ran(AppTest.from_file(str(APP), default_timeout=120).run())
    assert texts(at.title) == ["Overview"]
    for path, title in (("pages/recommendations.py", "Recommendations"), ("pages/models.py", "Models"),
                        ("pages/experiments.py", "Experiments"),
                        ("pages/readout.py", "Readout"), ("pages/monitoring.py", "Monitoring"),
                        ("pages/cache.py", "Cache and features")):
        at.switch_page(path).run()
        ran(at)
        assert texts(at.title) == [title]


# ------------------------------------------------------------------------------ overview and monitoring


def test_overview_without_api_or_prometheus(console_env: dict[str, str]) -> None:
    at = ran(page("overview").run())
    assert texts(at.subheader) == ["Key metrics", "Running experiments", "Alerts firing"]
    assert "No metrics source" in joined(at.info)
    assert "No experiment is running" in joined(at.caption)


def test_overview_and_monitoring_read_the_api_metrics_without_prometheus(
    console_env: dict[str, str], api: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOPS_API_URL", api.url)  # type: ignore[attr-defined]
    for user in ("u00001", "u00002", "u00001"):
        httpx.post(f"{api.url}/recommendations", params={"user_id": user}, timeout=10)  # type: ignore[attr-defined]
    at = ran(page("overview").run())
    assert "totals since the API started" in joined(at.caption)
    labels = [m.label for m in at.metric]
    assert labels == ["CTR", "Conversion rate", "p95 latency", "Cache hit rate", "Catalog coverage", "Diversity",
                      "Error ratio"]
    p95 = next(m for m in at.metric if m.label == "p95 latency")
    assert p95.value.endswith("ms")
    mon = ran(page("monitoring").run())
    assert "Prometheus is not running" in joined(mon.info)
    assert len(mon.dataframe) == 4  # requests by status, latency quantiles, hit ratio per tier, misses by cause
    statuses = mon.dataframe[0].value
    assert int(statuses.loc[statuses["status"] == "ok", "requests"].iloc[0]) >= 3
    causes = mon.dataframe[3].value.set_index("cause")["lists computed"]
    assert causes["first_seen"] >= 2  # u00001's and u00002's first lists
    assert "first_seen" in joined(mon.caption)


def test_monitoring_without_any_source(console_env: dict[str, str]) -> None:
    at = ran(page("monitoring").run())
    assert "Neither Prometheus nor the API" in joined(at.info)


# ------------------------------------------------------------------------------ recommendations


def test_recommendations_preview_compare_and_cold_start(console_env: dict[str, str]) -> None:
    eng = console_engine()
    top = eng.features.top_active_users(1)[0]
    at = ran(page("recommendations").run())
    assert texts(at.subheader) == [f"Recommended to {top}"]  # the most active user by default
    table = at.dataframe[0].value
    assert list(table.columns[:5]) == ["rank", "title", "category", "score", "reason"] and len(table) == 10
    assert "as served: not in a running experiment" in joined(at.caption)
    assert {m.label for m in at.metric} == {"Cache tier", "Latency", "Diversity", "Items", "Known user",
                                           "Items in history", "Purchases"}
    at.session_state["rec_tabs"] = "Compare two models"  # lazy tabs: only the open one runs
    at.run()
    ran(at)
    assert {m.label for m in at.metric} >= {"Jaccard overlap", "Rank-biased overlap", "Diversity A / B",
                                           "Novelty A / B"}
    assert len(at.dataframe) == 3  # the list, then model A's and model B's side by side

    at.selectbox(key="rec_model").select("popularity").run()
    at.number_input(key="rec_n").set_value(5).run()
    ran(at)
    assert len(at.dataframe[0].value) == 5
    assert "Model **popularity** — chosen here" in joined(at.caption)

    at.text_input(key="rec_query").input("bad id!").run()
    assert "not a valid user id" in joined(at.error)
    at.text_input(key="rec_query").input("").run()
    at.segmented_control(key="rec_mode").set_value("New user").run()
    ran(at)
    assert "cold start" in joined(at.info).lower()
    assert texts(at.subheader)[0].startswith("Recommended to new-")


# ------------------------------------------------------------------------------ models and datasets


@pytest.fixture
def own_data_dir(console_env: dict[str, str], small_world_dir: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the small world for the console: this test's registry changes stay its own."""
    data_dir = tmp_path / "data"
    shutil.copytree(small_world_dir, data_dir)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(data_dir))
    return data_dir


def test_models_page_lists_plots_promotes_and_rolls_back_after_confirmation(
    own_data_dir: Path, redis_client: redis.Redis
) -> None:
    registry = ModelRegistry(own_data_dir / "models")
    old = registry.current_version("popularity")
    stored = stored_demo(prepare_world(console_engine().settings))
    new = train_models(stored, registry, ["popularity"], {"popularity": {"half_life_days": 3.0}},
                       TrainingOptions(holdout_days=7.0))[0].version
    at = ran(page("models").run())
    assert texts(at.subheader)[:3] == ["Served", "Versions", "Promote or roll back"]  # then the Data sections
    assert [m.value for m in at.metric][:2] == ["demo", "v1"]
    versions = at.dataframe[0].value
    assert sorted(zip(versions["model"], versions["stage"], strict=True)) == [
        ("als", "production"), ("item_item", "production"), ("popularity", "candidate"),
        ("popularity", "production")]
    assert len(at.get("plotly_chart")) == 2  # precision and NDCG, both holdouts, for the scored version
    assert "3 version(s) have no holdout scores" in joined(at.caption)  # the first start's plain fits
    at.selectbox(key="promote_model").select("popularity").run()
    assert at.selectbox(key="promote_version").value == new
    at.button(key="promote_btn").click().run()  # opens the confirmation dialog
    ran(at)
    assert registry.current_version("popularity") == old  # nothing happens before the confirmation

    # what the dialog's "Promote" button stores before it reruns the page
    at.session_state["models_pending"] = {"kind": "promote", "model": "popularity", "version": new, "dataset": "demo"}
    at.run()
    ran(at)
    assert f"Promoted **popularity** on demo: `{new}` is production (`{old}` archived)." in joined(at.success)
    assert registry.current_version("popularity") == new
    entry = AuditLog(redis_client, Keys()).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("console", "promote_model", "popularity:demo")
    at.selectbox(key="rollback_model").select("popularity").run()
    assert f"Serves `{old}` again instead of `{new}`." in joined(at.caption)
    at.session_state["models_pending"] = {"kind": "rollback", "model": "popularity", "dataset": "demo"}
    at.run()
    assert "Rolled back **popularity**" in joined(at.success) and registry.current_version("popularity") == old
    at.session_state["models_pending"] = {"kind": "promote", "model": "popularity", "version": "v-none",
                                          "dataset": "demo"}
    at.run()
    assert "has no version 'v-none'" in joined(at.error) and registry.current_version("popularity") == old


@pytest.fixture
def routed_app(monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """app.py under AppTest, for a hand-off between pages (``st.switch_page``).  AppTest resets Streamlit's
    legacy-pages flag before every run, so ``leave_legacy_pages_mode`` would rerun every run and drop the
    button click that started it; a real console process leaves that mode once, at its first request."""
    from pages import _ui

    monkeypatch.setattr(_ui, "leave_legacy_pages_mode", lambda: None)
    return AppTest.from_file(str(APP), default_timeout=120)


def test_a_candidate_opens_the_experiment_editor_filled_in(own_data_dir: Path, routed_app: AppTest) -> None:
    """"A/B test this candidate against production" on the Models page: the Experiments page's editor with both
    specs, a suggested key, name and hypothesis; nothing is saved until the draft is created."""
    registry = ModelRegistry(own_data_dir / "models")
    stored = stored_demo(prepare_world(console_engine().settings))
    new = train_models(stored, registry, ["popularity"], {"popularity": {"half_life_days": 3.0}},
                       TrainingOptions(holdout_days=7.0))[0].version
    number = registry.versions("popularity", "demo").index(new) + 1
    at = ran(routed_app.run())
    at.switch_page("pages/models.py").run()
    ran(at)
    assert at.selectbox(key="ab_candidate").value == new  # the only candidate
    at.button(key="ab_candidate_btn").click().run()
    ran(at)
    assert texts(at.title) == ["Experiments"] and texts(at.subheader)[-1] == "New experiment"
    prefix = f"ef-new-popularity-v{number}-vs-production-"
    assert at.text_input(key=f"{prefix}key").value == f"popularity-v{number}-vs-production"
    assert at.text_input(key=f"{prefix}name").value == f"popularity v{number} (candidate) vs production"
    assert at.text_area(key=f"{prefix}hyp").value.startswith(f"candidate popularity v{number} trained on demo v1 (")
    assert [at.selectbox(key=f"{prefix}vmodel{i}").value for i in (0, 1)] == [
        "popularity@production", f"popularity@{number}"]
    assert [at.text_input(key=f"{prefix}vname{i}").value for i in (0, 1)] == ["control", "treatment"]
    assert at.number_input(key=f"{prefix}vmmr_lambda1").value is None  # serving settings: the defaults
    assert "Filled in from the Models page" in joined(at.info)
    assert console_engine().experiments.list_experiments() == []
    at.switch_page("pages/experiments.py")  # AppTest would run the page it last switched to (Models) again
    at.button(key="ef-discard-suggestion").click().run()
    ran(at)
    assert at.selectbox(key="ef-new-vmodel0").value == "als"  # the blank form again


def test_the_suggested_ab_test_saves_its_specs_and_serving_settings(own_data_dir: Path, routed_app: AppTest) -> None:
    registry = ModelRegistry(own_data_dir / "models")
    new = registry.save("als", ALSRecommender(factors=8, iterations=3, random_state=7).fit(
        console_engine().dataset.interactions()))
    number = registry.version_number("als", new)
    at = ran(routed_app.run())
    at.switch_page("pages/models.py").run()
    at.selectbox(key="ab_candidate").select(new).run()
    at.button(key="ab_candidate_btn").click().run()
    ran(at)
    at.switch_page("pages/experiments.py")
    prefix = f"ef-new-als-v{number}-vs-production-"
    at.number_input(key=f"{prefix}vmmr_lambda1").set_value(0.5)
    at.button(key=f"{prefix}submit").click().run()
    ran(at)
    exp = console_engine().experiments.get(f"als-v{number}-vs-production")
    assert [(v.model, v.params) for v in exp.variants] == [("als@production", {}),
                                                            (f"als@{number}", {"mmr_lambda": 0.5})]
    assert "exp_suggested" not in at.session_state  # saved: the suggestion is used up


def test_an_imported_dataset_in_the_console(
    console_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    import_small_dataset(data_dir)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RECOPS_DATASET", NAME)
    overview = ran(page("overview").run())
    assert f"Serving dataset **{NAME}** v1: " in joined(overview.markdown)
    eng = console_engine()
    assert eng.dataset.name == NAME
    top = eng.features.top_active_users(1)[0]
    at = ran(page("recommendations").run())
    assert texts(at.subheader) == [f"Recommended to {top}"]
    table = at.dataframe[0].value
    assert len(table) > 0 and set(table["item_id"]) <= set(eng.catalog.item_ids)
    models = ran(page("models").run())
    assert [m.value for m in models.metric][:2] == [NAME, "v1"]
    assert len(models.get("plotly_chart")) == 2  # trained at the first start through `recops train`'s path: scored


def test_models_page_imports_and_trains_behind_a_login_with_readable_errors(
    own_data_dir: Path, redis_client: redis.Redis
) -> None:
    """AppTest cannot fill a file_uploader: the import itself is tested in tests/engine/console/test_datasets.py;
    here the section renders and an Import without a file is refused beside the form."""
    registry = ModelRegistry(own_data_dir / "models")
    at = ran(page("models").run())
    assert texts(at.subheader) == ["Served", "Versions", "Promote or roll back", "Datasets", "Import a dataset",
                                   "Train"]
    assert "No dataset imported yet" in joined(at.caption)
    assert len(at.get("file_uploader")) == 2 and at.number_input(key="import_share").value == 0.01
    at.text_input(key="import_name").input("shop")
    button(at, "Import").click().run()
    ran(at)
    assert "Choose an interactions file to import; nothing was changed." in joined(at.error)
    assert DatasetStore(own_data_dir / "datasets").names() == []

    before = registry.records("demo")
    at.selectbox(key="train_dataset").select("demo")
    at.selectbox(key="train_model").select("popularity")
    at.text_area(key="train_params").input("half_life_days=soon")
    button(at, "Train").click().run()
    ran(at)
    assert "half_life_days" in joined(at.error) and "Nothing was trained." in joined(at.error)
    assert registry.records("demo") == before

    at.text_area(key="train_params").input("half_life_days=3")
    button(at, "Train").click().run()
    ran(at)
    new = [r for r in registry.records("demo") if r not in before]
    assert [(r.model, r.stage) for r in new] == [("popularity", "candidate")]
    assert f"popularity {new[0].version} (candidate)" in joined(at.success)
    assert table_with(at, "P@10 per-user")["version"].tolist() == [new[0].version]
    assert new[0].version in at.dataframe[0].value["version"].tolist()  # the versions table after the rerun
    entry = AuditLog(redis_client, Keys()).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("console", "train_models", "demo:v1")


def test_import_and_train_need_a_login_when_a_password_is_set(
    own_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOPS_CONSOLE_PASSWORD", "correct horse")
    at = ran(page("models").run())
    assert "Datasets" in texts(at.subheader) and "Train" not in texts(at.subheader)
    assert not at.get("file_uploader") and not [b for b in at.button if b.label in ("Import", "Train")]
    assert "Log in (above) to import datasets and train models." in joined(at.caption)
    text_input(at, "Your name (for the audit log)").input("ada")
    text_input(at, "Console password").input("correct horse")
    button(at, "Log in").click().run()
    ran(at)
    assert texts(at.subheader)[-2:] == ["Import a dataset", "Train"] and len(at.get("file_uploader")) == 2


# ------------------------------------------------------------------------------ cache


def test_cache_page_keyspace_invalidate_user_after_confirmation(
    console_env: dict[str, str], redis_client: redis.Redis
) -> None:
    eng = console_engine()
    user = eng.features.top_active_users(1)[0]
    for model in ("als", "popularity"):
        eng.service.recommend(user, n=5, model=model)
    keys = cache_actions.user_keys(eng.redis, eng.keys, user)
    assert len(keys.lists) == 2

    at = ran(page("cache").run())
    families = at.dataframe[0].value
    assert {"rec", "recidx", "feat:user"} <= set(families["family"])
    at.session_state["cache_tab"] = "Operations"
    at.run()
    at.text_input(key="inv_user").input(user).run()
    assert f"`{user}` has 2 cached list(s) and a cached feature hash." in joined(at.caption)
    at.button(key="inv_user_btn").click().run()  # opens the confirmation dialog
    ran(at)
    assert all(redis_client.exists(k) for k in keys.lists)  # nothing happens before the confirmation

    # what the dialog's "Invalidate" button stores before it reruns the page
    at.session_state["cache_pending"] = {"kind": "invalidate_user", "user": user}
    at.run()
    ran(at)
    assert f"Invalidated `{user}`: 2 cached lists and 1 feature hash deleted." in joined(at.success)
    assert not any(redis_client.exists(k) for k in [*keys.lists, eng.keys.user_features(user)])
    at.session_state["cache_tab"] = "Audit log"
    at.run()
    audit = table_with(at, "who")
    assert list(audit.iloc[0][["who", "what", "target", "keys"]]) == ["console", "invalidate_user", user, 3]


def test_cache_page_invalidate_all_refuses_without_the_typed_phrase(
    console_env: dict[str, str], redis_client: redis.Redis
) -> None:
    eng = console_engine()
    eng.service.warm(eng.features.top_active_users(7), n=5)
    at = page("cache")
    at.session_state["cache_tab"] = "Operations"
    ran(at.run())
    assert "7 cached recommendation lists in Redis." in joined(at.caption)
    at.session_state["cache_pending"] = {"kind": "invalidate_all", "typed": "please"}
    at.run()
    assert "Type “invalidate all” to confirm. Nothing was done." in joined(at.error)
    assert cache_actions.count_cached_lists(eng.redis, eng.keys) == 7
    at.session_state["cache_pending"] = {"kind": "invalidate_all", "typed": "invalidate all"}
    at.run()
    assert "Invalidated every cached list: 7 deleted." in joined(at.success)
    assert cache_actions.count_cached_lists(eng.redis, eng.keys) == 0


def test_cache_page_warms_users_and_rejects_a_bad_list(console_env: dict[str, str]) -> None:
    eng = console_engine()
    at = page("cache")
    at.session_state["cache_tab"] = "Operations"
    ran(at.run())
    at.number_input(key="warm_top").set_value(25)
    button(at, "Warm").click().run()
    ran(at)
    assert "Warmed 25 users: 25 lists written" in joined(at.success)
    assert cache_actions.count_cached_lists(eng.redis, eng.keys) == 25
    entry = eng.audit.recent(1)[0]
    assert (entry.action, entry.target, entry.keys) == ("warm", "25 users (top 25 active)", 25)

    at.radio(key="warm_mode").set_value("Pasted list")
    at.text_area(key="warm_list").input("u00001, ../etc/passwd")
    button(at, "Warm").click().run()
    assert "Not valid user ids: '../etc/passwd'. Nothing was warmed." in joined(at.error)
    assert len(eng.audit.recent(10)) == 1


def test_cache_page_inspects_user_and_item_features(console_env: dict[str, str]) -> None:
    eng = console_engine()
    user = eng.features.top_active_users(1)[0]
    at = page("cache")
    at.session_state["cache_tab"] = "Inspect features"
    ran(at.run())
    at.text_input(key="insp_id").input(user).run()
    table = table_with(at, "feature")
    features = dict(zip(table["feature"], table["value"], strict=True))
    assert features["known user"] == "True" and int(features["history items"]) > 0
    item = str(eng.catalog.item_ids[0])
    at.segmented_control(key="insp_kind").set_value("Item").run()
    at.text_input(key="insp_id").input(item).run()
    table = table_with(at, "feature")
    features = dict(zip(table["feature"], table["value"], strict=True))
    assert features["title"] == eng.catalog.titles[0]


# ------------------------------------------------------------------------------ access


def test_writes_need_a_login_when_a_password_is_set(
    console_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("RECOPS_CONSOLE_PASSWORD", "correct horse")
    eng = console_engine()
    user = eng.features.top_active_users(1)[0]
    eng.service.recommend(user, n=5)
    at = page("cache")
    at.session_state["cache_tab"] = "Operations"
    ran(at.run())
    assert not [b for b in at.button if b.key == "inv_user_btn"] and len(at.text_input) == 2  # only the login
    # a forged confirmation without a login does nothing
    at.session_state["cache_pending"] = {"kind": "invalidate_user", "user": user}
    at.run()
    assert "Log in to change the cache; nothing was done." in joined(at.error)
    assert cache_actions.user_keys(eng.redis, eng.keys, user).total == 2

    text_input(at, "Your name (for the audit log)").input("ada")
    text_input(at, "Console password").input("wrong")
    button(at, "Log in").click().run()
    assert "Wrong password." in joined(at.error) and "operator" not in at.session_state

    text_input(at, "Your name (for the audit log)").input("ada")
    text_input(at, "Console password").input("correct horse")
    button(at, "Log in").click().run()
    ran(at)
    assert at.session_state["operator"] == "ada"
    at.text_input(key="inv_user").input(user).run()
    at.session_state["cache_pending"] = {"kind": "invalidate_user", "user": user}
    at.run()
    assert cache_actions.user_keys(eng.redis, eng.keys, user).total == 0
    assert eng.audit.recent(1)[0].actor == "ada"
    # the password is kept nowhere: not in session state (the form clears it), the audit log or the page
    assert all("correct horse" not in str(v) for v in at.session_state.to_dict().values())
    assert all("correct horse" not in f"{e}" for e in eng.audit.recent(10))
    assert "correct horse" not in joined(at.markdown) + joined(at.caption) + joined(at.error)


def test_password_from_secrets_and_login_for_reads(
    console_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOPS_CONSOLE_LOGIN_FOR_READS", "1")
    at = page("overview")
    at.secrets["console_password"] = "from-secrets"
    at.run()
    ran(at)
    assert texts(at.title) == ["RecOps console"] and not at.metric  # nothing but the login
    text_input(at, "Console password").input("from-secrets")
    button(at, "Log in").click().run()
    ran(at)
    assert texts(at.title) == ["Overview"]


# ------------------------------------------------------------------------------ experiments


def fill_new_experiment(at: AppTest, key: str, weights: tuple[float, float]) -> None:
    at.text_input(key="ef-new-key").input(key)
    at.text_input(key="ef-new-name").input("Popularity vs ALS")
    at.text_area(key="ef-new-hyp").input("ALS lifts CTR")
    at.selectbox(key="ef-new-vmodel0").select("popularity")
    at.selectbox(key="ef-new-vmodel1").select("als")
    at.number_input(key="ef-new-vweight0").set_value(weights[0])
    at.number_input(key="ef-new-vweight1").set_value(weights[1])
    at.multiselect(key="ef-new-guard").select("conversion_rate")


def test_experiment_form_rejects_bad_weights_beside_the_field(console_env: dict[str, str]) -> None:
    at = ran(page("experiments").run())
    assert "users per variant" in joined(at.success)  # the calculator, inline
    fill_new_experiment(at, "exp-bad", (0.7, 0.7))
    at.button(key="ef-new-submit").click().run()
    ran(at)
    errors = texts(at.error)
    assert any("variant weights must sum to 1" in e for e in errors)
    assert any("Nothing was saved" in e for e in errors)
    assert console_engine().experiments.list_experiments() == []


def test_experiment_create_then_start_from_the_page(console_env: dict[str, str]) -> None:
    at = ran(page("experiments").run())
    fill_new_experiment(at, "exp-good", (0.5, 0.5))
    at.button(key="ef-new-submit").click().run()
    ran(at)
    svc = console_engine().experiments
    exp = svc.get("exp-good")
    assert exp.status == "draft" and [v.model for v in exp.variants] == ["popularity", "als"]
    assert exp.guardrail_metrics == ["conversion_rate"] and exp.planned_sample_size
    assert "Saved `exp-good` (version 1, draft)." in joined(at.success)
    assert texts(at.subheader)[-1] == "Edit exp-good (version 1)"
    assert console_engine().audit.recent(1)[0].action == "experiment_create"

    at.button(key="act_start").click().run()  # confirmation dialog
    assert svc.get("exp-good").status == "draft"
    at.session_state["exp_pending"] = {"action": "start", "key": "exp-good"}
    at.run()
    ran(at)
    assert svc.get("exp-good").status == "running"
    assert "`exp-good` is now **running** (phase 1)." in joined(at.success)

    at.text_input(key="ef-exp-good-2-name").input("Renamed")
    at.button(key="ef-exp-good-2-submit").click().run()
    ran(at)
    assert svc.get("exp-good").name == "Renamed"


def test_a_sequential_experiment_saves_its_plan_from_the_page(console_env: dict[str, str]) -> None:
    at = ran(page("experiments").run())
    fill_new_experiment(at, "exp-seq", (0.5, 0.5))
    at.selectbox(key="ef-new-engine").select("sequential").run()
    ran(at)
    at.radio(key="ef-new-seqmethod").set_value("group").run()
    at.number_input(key="ef-new-seqlooks").set_value(5).run()
    at.button(key="ef-new-submit").click().run()
    ran(at)
    exp = console_engine().experiments.get("exp-seq")
    assert exp.engine == "sequential" and exp.sequential is not None
    assert (exp.sequential.method, exp.sequential.looks) == ("group", 5)


def test_experiment_service_errors_show_beside_their_field(console_env: dict[str, str]) -> None:
    console_experiments.create(console_engine(), two_arm_spec(key="taken"), "test")
    at = ran(page("experiments").run())
    fill_new_experiment(at, "taken", (0.5, 0.5))
    at.button(key="ef-new-submit").click().run()
    ran(at)
    assert texts(at.error) == ["experiment 'taken' already exists"]  # beside the key, nothing else said
    at.selectbox(key="exp_selected").select("taken").run()
    at.button(key="ef-taken-1-submit").click().run()
    assert "Nothing changed." in joined(at.info)


def test_readout_switches_engine_and_exports_csv(console_env: dict[str, str]) -> None:
    eng = console_engine()
    console_experiments.create(eng, two_arm_spec(key="ro", guardrail_metrics=["conversion_rate"]), "test")
    console_experiments.transition(eng, "ro", "start", "test")
    run_traffic(eng, eng.features.top_active_users(300), seed=3, boost={"als": 3.0})
    at = ran(page("readout").run())
    assert texts(at.subheader) == ["Goal: ctr", "Guardrails", "Arms", "Served", "Recommendation quality"]
    assert "**Decision:" in joined(at.info) + joined(at.success)  # frequentist, far from its sample size
    health = at.dataframe[0].value  # the health checks, before the numbers
    assert list(health["check"])[:2] == ["srm", "srm_by_period"]
    quality = at.table[-1].value
    assert list(quality["arm"]) == ["control", "als"] and (quality["lists"] > 0).all()
    assert (quality["coverage"] > 0).all() and (quality["novelty"] > 0).all()
    assert "mean Jaccard" in joined(at.caption)
    assert "Sample ratio check passed" in joined(at.caption)
    goal = at.table[0].value
    assert "p-value" in goal.columns and goal.iloc[0]["direction"] == "better"
    for engine, column in (("sequential", "p-value"), ("bayesian", "chance to win")):
        at.segmented_control(key="readout_engine_ro").set_value(engine).run()
        ran(at)
        assert column in at.table[0].value.columns
    assert "Decision: ship." in joined(at.success)  # a Bayesian verdict may be read at any time
    assert len(at.get("download_button")) == 2  # the table (CSV) and the report (HTML)


def test_readout_names_what_each_arm_served_and_promotes_the_shipped_candidate(
    own_data_dir: Path, redis_client: redis.Redis
) -> None:
    eng = console_engine()
    registry = ModelRegistry(own_data_dir / "models")
    old = registry.current_version("als", "demo")
    new = registry.save("als", ALSRecommender(factors=8, iterations=3, random_state=7).fit(eng.dataset.interactions()))
    assert registry.version_number("als", new) == 2
    # the treatment serves the candidate by its number, re-ranked differently: the engine's own `served` block
    console_experiments.create(eng, two_arm_spec(key="ship", engine="bayesian", variants=[
        {"name": "control", "model": "popularity", "weight": 0.5},
        {"name": "als", "model": "als@2", "weight": 0.5, "params": {"mmr_lambda": 0.5}}]), "test")
    console_experiments.transition(eng, "ship", "start", "test")
    exposed = run_traffic(eng, eng.features.top_active_users(300), seed=3, boost={"als": 3.0})
    served = {s["variant"]: s for s in console_experiments.readout(eng, "ship").served}
    assert served["als"]["exposures_by_version"] == {new: pytest.approx(exposed / 2, rel=0.3)}

    at = ran(page("readout").run())
    assert "Decision: ship." in joined(at.success)
    assert texts(at.subheader) == ["Goal: ctr", "Guardrails", "Arms", "Served", "Recommendation quality"]
    table = next(t.value for t in at.table if "spec" in t.value.columns)  # the Served table
    assert list(table["spec"]) == ["popularity", "als@2"] and list(table["serving settings"]) == [
        "defaults", "mmr_lambda=0.5"]
    assert table.iloc[1]["served version"] == "als v2 (candidate)"
    at.button(key="readout_promote_btn").click().run()  # opens the confirmation dialog
    ran(at)
    assert at.button(key="readout_promote_btn").label == "Promote als v2 to production …"
    assert registry.current_version("als", "demo") == old  # nothing happens before the confirmation

    # what the dialog's "Promote" button stores before it reruns the page
    at.session_state["readout_pending"] = {"kind": "promote", "model": "als", "version": new, "dataset": "demo"}
    at.run()
    ran(at)
    assert f"Promoted **als** on demo: `{new}` is production (`{old}` archived)." in joined(at.success)
    assert registry.current_version("als", "demo") == new
    entry = AuditLog(redis_client, Keys()).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("console", "promote_model", "als:demo")
    assert "already production: nothing to promote" in joined(at.info)
    assert not [b for b in at.button if b.key == "readout_promote_btn"]


def test_the_demo_experiment_says_so_wherever_it_is_shown(console_env: dict[str, str]) -> None:
    eng = console_engine()
    offer_demo_experiment(eng.experiments, eng.redis)
    run_traffic(eng, eng.features.top_active_users(100), seed=3)
    readout = ran(page("readout").run())
    assert console_experiments.DEMO_BANNER in joined(readout.info) and f"`{DEMO_KEY}`" in joined(readout.info)
    assert texts(readout.subheader)[0] == "Goal: ctr"  # the readout itself, below the banner
    assert console_experiments.DEMO_BANNER in joined(ran(page("experiments").run()).info)
    assert console_experiments.DEMO_BANNER in joined(ran(page("overview").run()).caption)
    # an experiment of one's own gets no banner
    eng.experiments.stop(DEMO_KEY)
    eng.experiments.delete(DEMO_KEY)
    console_experiments.create(eng, two_arm_spec(key="mine"), "test")
    console_experiments.transition(eng, "mine", "start", "test")
    assert console_experiments.DEMO_BANNER not in joined(ran(page("readout").run()).info)


def test_experiment_pages_without_experiments(console_env: dict[str, str]) -> None:
    at = ran(page("readout").run())
    assert "No experiment has started yet" in joined(at.info)


# ------------------------------------------------------------------------------ Redis down


@pytest.fixture
def redis_down(
    console_env: dict[str, str], console_engines: ConsoleEngines, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """REDIS_URL on a port we hold bound but never listen on: refused, and nobody else can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{held.getsockname()[1]}/0"
        monkeypatch.setenv("REDIS_URL", url)
        yield url
        console_engines.close(url)  # the engine the page built on that port: its threads would retry forever


@pytest.mark.parametrize("name", ["overview", "recommendations", "models", "experiments", "readout", "monitoring",
                                  "cache"])
def test_every_page_shows_a_banner_when_redis_is_down(redis_down: str, name: str) -> None:
    at = ran(page(name).run())
    assert "Redis is unreachable" in joined(at.error)


def test_pages_are_files_with_their_url_names() -> None:
    # pages._ui.leave_legacy_pages_mode relies on the URL path being the file name
    source = APP.read_text()
    for path in sorted(Path(APP.parent, "pages").glob("[a-z]*.py")):
        assert f'st.Page("pages/{path.name}"' in source and f'url_path="{path.stem}"' in source


def test_srm_shows_as_a_banner_on_the_readout_and_a_badge_on_the_overview(console_env: dict[str, str]) -> None:
    eng = console_engine()
    console_experiments.create(eng, two_arm_spec(key="skewed"), "test")
    console_experiments.transition(eng, "skewed", "start", "test")
    svc = eng.experiments
    assert svc is not None
    treated = 0
    for user in eng.features.top_active_users(400):
        a = svc.assign(user)
        if a is not None and a.variant == "als":
            treated += 1
            if treated % 3:
                continue  # two thirds of the treatment's exposures never logged
        svc.record_exposure(a)
    readout = ran(page("readout").run())
    assert "Sample ratio mismatch" in joined(readout.error)
    overview = ran(page("overview").run())
    assert "sample ratio mismatch" in joined(overview.caption)


def test_an_interleaving_experiment_is_designed_in_the_editor_and_read_out_as_a_preference(
    console_env: dict[str, str],
) -> None:
    from engine.api.interleaved_lists import serve_interleaved
    from engine.events.tracker import Event

    at = ran(page("experiments").run())
    fill_new_experiment(at, "exp-ilv", (0.5, 0.5))
    at.segmented_control(key="ef-new-kind").set_value("interleaving").run()
    ran(at)
    assert any("every user sees both lists merged" in c for c in texts(at.caption))
    at.button(key="ef-new-submit").click().run()
    ran(at)
    eng = console_engine()
    assert eng.experiments.get("exp-ilv").kind == "interleaving"
    console_experiments.transition(eng, "exp-ilv", "start", "test")

    # users shown merged lists through the engine, clicking by the demo world's click law
    rng = np.random.default_rng(5)
    events = []
    for k, user in enumerate(eng.features.top_active_users(200)):
        assignment = eng.experiments.assign(user)
        assert assignment is not None and assignment.rankers is not None
        answer = serve_interleaved(eng, assignment, 10, f"req-{k}")
        items = [i["item_id"] for i in answer.result.items]
        p = eng.world.click_probability(user, items, np.arange(len(items)))
        events += [Event(user_id=user, item_id=i, type="click", request_id=f"req-{k}")
                   for i, clicked in zip(items, rng.random(len(items)) < np.asarray(p), strict=True) if clicked]
    eng.events.track_many(events)

    readout = ran(page("readout").run())
    assert texts(readout.subheader) == ["Preference: control (A) vs treatment (B)"]
    assert any("merging control (A) and treatment (B) by team draft" in c for c in texts(readout.caption))
    positions = readout.table[0].value
    assert list(positions.columns[:3]) == ["position", "shown A", "shown B"] and len(positions) == 10
    assert int(positions["shown A"].sum() + positions["shown B"].sum()) == 2000
    block = eng.experiments.readout("exp-ilv").interleaving
    # every click is credited, or falls in the rankers' common prefix (credited to neither)
    assert block is not None and block["users"] == 200
    assert block["clicks_credited"] + block["clicks_shared"] == len(events) and block["clicks_credited"] > 0
    labels = [m.label for m in readout.metric]
    assert "Preference share" in labels and "p-value" in labels
    # the caption names the rule that decides, and the interval shown by the verdict agrees with it
    assert "Wilcoxon signed-rank test" in joined(readout.caption) and block["sequential"] is None
    notices = joined(readout.success) + joined(readout.info) + joined(readout.warning)
    interval = interleaving_view.verdict_interval(block)
    preferred = block["verdict"] in ("B preferred", "A preferred")
    if interval is None:  # the test rejects every shift on the verdict's side: said so
        assert preferred and "interval: none" in notices
    else:
        assert (0.0 not in interval) == preferred
        assert interleaving_view.interval_text(interval) in notices and interleaving_view.interval_text(
            interval) in joined(readout.caption)
    overview = ran(page("overview").run())
    assert "200 users shown both rankers" in joined(overview.caption) + joined(overview.markdown)


def test_models_page_runs_the_offline_check_against_the_logs(own_data_dir: Path, redis_client: redis.Redis) -> None:
    at = ran(page("models").run())
    assert "Offline check" in joined(at.markdown)
    at.selectbox(key="ope_spec").select("als@production").run()
    at.button(key="ope_run").click().run()
    ran(at)
    assert "No exploring impressions are logged" in joined(at.info)  # a fresh data dir: no logs yet
    at.checkbox(key="ope_sim").check().run()
    at.number_input(key="ope_sim_n").set_value(1_000).run()
    text_input(at, "Serving parameters (optional)").input("mmr_lambda=1").run()  # type: ignore[attr-defined]
    at.button(key="ope_run").click().run()
    ran(at)
    labels = [m.label for m in at.metric]
    assert {"Candidate (estimated)", "Logging policy (observed)", "Truth (demo world)"} <= set(labels)
    frame = table_with(at, "clicks per list")
    assert "SNIPS" in frame["estimate"].tolist()  # type: ignore[index]
    assert "als@production:mmr_lambda=1.0" in joined(at.caption)
