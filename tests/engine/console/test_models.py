"""engine.console.models: the dataset served, version tables and plots, and audited promote / rollback."""

from __future__ import annotations

import dataclasses
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.console import models as mv
from engine.models.popularity import PopularityRecommender
from engine.models.registry import ModelRegistry, VersionRecord
from engine.runtime import Engine, build_engine
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.imported_data import NAME, import_small_dataset

SUMMARY = {"name": "shop", "version": 3, "interactions": 12_345, "users": 678, "items": 90,
           "data_from": "2023-11-14T22:13:20Z", "data_to": "2023-12-15T22:13:20Z"}


def record(model: str, version: str, stage: str, metrics: dict[str, dict[str, float]] | None = None) -> VersionRecord:
    lineage = {"dataset_version": 3, "interactions": 1000, "events": 0, "params": {"factors": 8, "alpha": 0.25},
               "train_seconds": 0.5, "code_version": "git:abc", "trained_at": f"2026-01-0{version[-1]}T10:00:00+00:00",
               "metrics": metrics or {}}
    return VersionRecord(model, version, "shop", stage, lineage)


SCORED = record("als", "v1", "production", {"time": {"precision_at_10": 0.2, "ndcg_at_10": 0.25},
                                            "per_user": {"precision_at_10": 0.4, "ndcg_at_10": 0.45}})
TIME_ONLY = record("als", "v2", "candidate", {"time": {"precision_at_10": 0.3, "ndcg_at_10": 0.35},
                                              "per_user": {"unavailable": "too few users"}})  # type: ignore[dict-item]
UNSCORED = record("popularity", "v3", "production")


def test_the_dataset_served_in_cards_a_line_and_a_caption() -> None:
    cards = mv.dataset_cards(SUMMARY)
    assert [(c.label, c.value) for c in cards] == [("Dataset served", "shop"), ("Version", "v3"),
                                                   ("Interactions", "12,345"), ("Users", "678"), ("Items", "90")]
    assert mv.dataset_text(SUMMARY) == "Serving dataset **shop** v3: 12,345 interactions, 678 users, 90 items."
    caption = mv.dataset_caption(SUMMARY, {"popularity": "p1", "als": "a1"}, "als")
    assert caption == ("Interactions from 2023-11-14T22:13:20Z to 2023-12-15T22:13:20Z. Serving `als` a1, "
                       "`popularity` p1; default model `als`.")
    assert mv.dataset_caption({**SUMMARY, "data_from": None}, {}, None).startswith("The interactions have no times")


def test_versions_frame_has_lineage_and_both_holdouts_side_by_side() -> None:
    frame = mv.versions_frame([SCORED, TIME_ONLY, UNSCORED])
    assert list(frame.columns) == mv.TABLE_COLUMNS
    first = frame.iloc[0]
    assert (first["model"], first["stage"], first["dataset_version"], first["interactions"]) == (
        "als", "production", 3, 1000)
    assert first["params"] == "alpha=0.25 factors=8"
    assert (first["Precision@10 time"], first["NDCG@10 per_user"]) == (0.2, 0.45)
    assert frame.iloc[1]["Precision@10 time"] == 0.3 and math.isnan(frame.iloc[1]["Precision@10 per_user"])
    assert math.isnan(frame.iloc[2]["NDCG@10 time"])


def test_metric_plot_shows_scored_versions_on_both_holdouts() -> None:
    fig = mv.metric_figure([SCORED, TIME_ONLY, UNSCORED], "ndcg_at_10", "NDCG@10")
    assert fig is not None and fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["time holdout", "per-user holdout"]
    labels = ["als 2026-01-01 10:00:00 (production)", "als 2026-01-02 10:00:00 (candidate)"]
    assert [list(t.y) for t in fig.data] == [labels, labels]
    assert list(fig.data[0].x) == [0.25, 0.35] and list(fig.data[1].x) == [0.45, None]
    assert mv.metric_figure([UNSCORED], "ndcg_at_10", "NDCG@10") is None
    assert mv.unscored_text([SCORED, UNSCORED]) is not None and mv.unscored_text([SCORED]) is None


def test_what_can_be_promoted() -> None:
    records = [record("als", "v1", "archived"), record("als", "v2", "production"), record("als", "v3", "candidate"),
               record("als", "v4", "candidate"), record("ease", "v5", "candidate")]
    assert mv.promotable(records, "als") == ["v4", "v3", "v1"]  # candidates, newest first, then archived
    assert mv.production_version(records, "als") == "v2" and mv.production_version(records, "ease") is None


# ------------------------------------------------------------------------------ A/B test a candidate


def test_candidates_that_can_be_tested_against_production() -> None:
    records = [record("als", "v1", "production"), record("als", "v2", "candidate"), record("als", "v4", "candidate"),
               record("ease", "v5", "candidate"), record("popularity", "v3", "candidate"),
               record("popularity", "v6", "production")]
    testable = mv.testable_candidates(records, "shop", "shop")
    assert [(r.model, r.version) for r in testable] == [("als", "v4"), ("als", "v2"), ("popularity", "v3")]
    assert mv.testable_candidates(records, "shop", "demo") == []  # experiments serve the served dataset only
    assert mv.candidate_label(records[2], 4) == "als v4 · trained 2026-01-04 10:00 · 0 events"


def test_the_editor_prefill_built_from_a_candidate_record() -> None:
    cand = VersionRecord("als", "20261202T014523123456Z-ab12", "shop", "candidate",
                         {"dataset": "shop", "dataset_version": 3, "interactions": 12_345, "events": 678})
    form = mv.ab_test_form(cand, 7, 5, taken=set())
    assert [v.spec() for v in form.variants] == [{"name": "control", "model": "als@production", "weight": 0.5},
                                                 {"name": "treatment", "model": "als@7", "weight": 0.5}]
    assert (form.key, form.name) == ("als-v7-vs-production", "als v7 (candidate) vs production")
    assert form.hypothesis == ("candidate als v7 trained on shop v3 (12,345 interactions, 678 logged events) beats "
                               "production als v5 on the goal metric")
    assert form.spec(None)["key"] == "als-v7-vs-production" and form.kind == "ab"
    again = mv.ab_test_form(cand, 7, None, taken={"als-v7-vs-production", "als-v7-vs-production-2"})
    assert again.key == "als-v7-vs-production-3" and again.hypothesis.endswith("beats production als on the goal "
                                                                                 "metric")
    bare = mv.ab_test_form(VersionRecord("ease", "e1", "shop", "candidate", {}), 2, 1, taken=())
    assert bare.hypothesis == "candidate ease v2 trained on shop beats production ease v1 on the goal metric"


# ------------------------------------------------------------------------------ switches on a real engine


@pytest.fixture
def shop_engine(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Engine]:
    data_dir = tmp_path / "data"
    import_small_dataset(data_dir)
    engine = build_engine(Settings(data_dir=data_dir, redis_url=redis_url, dataset=NAME), start_listener=False)
    yield engine
    engine.close()


def candidate(engine: Engine) -> str:
    model = PopularityRecommender(half_life_days=1.0).fit(engine.dataset.interactions())
    return ModelRegistry(engine.settings.models_dir).save("popularity", model, dataset=NAME)


def test_promote_and_roll_back_are_audited_and_reach_the_engine_at_once(
    shop_engine: Engine, redis_client: redis.Redis
) -> None:
    engine = shop_engine
    registry = ModelRegistry(engine.settings.models_dir)
    old = registry.current_version("popularity", NAME)
    new = candidate(engine)
    assert mv.rollback_choice(registry, "popularity", NAME) is None

    assert mv.promote_action("popularity", new, NAME) == {"kind": "promote", "model": "popularity", "version": new,
                                                          "dataset": NAME}
    done = mv.run_confirmed(engine, mv.promote_action("popularity", new, NAME), "ada")
    assert done.succeeded and f"`{new}` is production (`{old}` archived)" in done.text
    assert registry.current_version("popularity", NAME) == new
    assert engine.service.models["popularity"].version == new  # this console's engine, without waiting
    entry = AuditLog(redis_client, Keys()).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("ada", "promote_model", f"popularity:{NAME}")

    choice = mv.rollback_choice(registry, "popularity", NAME)
    assert choice == mv.Rollback("popularity", NAME, current=new, target=old)
    assert f"version `{old}`" in mv.confirm_rollback_text(choice, 2.0)
    done = mv.run_confirmed(engine, {"kind": "rollback", "model": "popularity", "dataset": NAME}, "ada")
    assert done.succeeded and registry.current_version("popularity", NAME) == old
    assert engine.service.models["popularity"].version == old
    assert AuditLog(redis_client, Keys()).recent(1)[0].action == "rollback_model"


def test_a_switch_that_cannot_be_done_changes_nothing(shop_engine: Engine, redis_client: redis.Redis) -> None:
    engine = shop_engine
    registry_file = engine.settings.models_dir / "registry.json"
    before = registry_file.read_bytes()
    current = ModelRegistry(engine.settings.models_dir).current_version("als", NAME)
    for action, message in [
        ({"kind": "promote", "model": "als", "version": "nope", "dataset": NAME}, "has no version 'nope'"),
        ({"kind": "promote", "model": "als", "version": current, "dataset": NAME}, "already production"),
        ({"kind": "promote", "model": "als", "version": current, "dataset": "demo"}, "not 'demo'"),
        ({"kind": "rollback", "model": "als", "dataset": NAME}, "no earlier production version"),
        ({"kind": "retrain"}, "Unknown action"),
    ]:
        outcome = mv.run_confirmed(engine, action, "ada")
        assert outcome.level == "error" and message in outcome.text and "nothing was changed" in outcome.text.lower()
    # the audit log does not answer: refused before anything is switched
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        down = redis.Redis(port=held.getsockname()[1], socket_connect_timeout=0.5)
        offline = dataclasses.replace(engine, redis=down)
        new = candidate(engine)
        before = registry_file.read_bytes()
        outcome = mv.run_confirmed(offline, {"kind": "promote", "model": "popularity", "version": new,
                                             "dataset": NAME}, "ada")
    assert outcome.level == "error" and "does not answer" in outcome.text
    assert registry_file.read_bytes() == before and AuditLog(redis_client, Keys()).recent(1) == []
