"""Variants that name model versions and serving parameters, on a real engine and Redis: resolved at
save (refused when they name nothing), served (a candidate version, a different pool), re-resolved
when the registry moves a stage, and named in the readout's ``served`` block."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Settings
from engine.experiments import ExperimentError
from engine.experiments.assignment import Assignment
from engine.models.als import ALSRecommender
from engine.models.registry import ModelRegistry
from engine.runtime import Engine, build_engine
from engine.serving.service import RecommendationResult
from engine.serving.serving_params import ServingParams
from tests.support.cli import Recops
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.polling import poll


@pytest.fixture
def own_data_dir(small_world_dir: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(small_world_dir, data_dir)  # its own registry: the shared one stays untouched
    return data_dir


@pytest.fixture
def engine(own_data_dir: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Engine]:
    settings = Settings(data_dir=own_data_dir, redis_url=redis_url, refresh_after_invalidation=False,
                        model_poll_seconds=0.1, **SMALL_WORLD)
    eng = build_engine(settings)
    yield eng
    eng.close()


def train_candidate(engine: Engine) -> str:
    """A second, differently trained ALS on the served dataset: a candidate (``registry.save``)."""
    model = ALSRecommender(factors=4, iterations=3, random_state=7).fit(engine.dataset.interactions())
    return ModelRegistry(engine.settings.models_dir).save("als", model, dataset=engine.dataset.name)


def serve(engine: Engine, user: str, n: int = 10) -> tuple[Assignment | None, RecommendationResult]:
    """What the API does for ``user``: assign, serve the arm's list, record the exposure."""
    a = engine.experiments.assign(user)
    if a is None:
        return None, engine.service.recommend(user, n)
    result = engine.service.recommend(user, a.serving.length(n), a.model, version=a.version, serving=a.serving)
    engine.experiments.record_exposure(a)
    return a, result


def item_ids(result: RecommendationResult) -> list[str]:
    return [i["item_id"] for i in result.items]


def experiment(key: str, *variants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": key, "name": key, "variants": list(variants), **extra}


def test_an_arm_naming_a_candidate_serves_that_version(engine: Engine, redis_client: redis.Redis) -> None:
    candidate = train_candidate(engine)
    production = engine.service.models["als"].version
    user = engine.features.top_active_users(1)[0]
    engine.experiments.create(experiment(
        "cand", {"name": "control", "model": "als"}, {"name": "treatment", "model": "als@candidate"},
        forced={user: "treatment"}))
    engine.experiments.start("cand")

    a, result = serve(engine, user)
    assert a is not None and (a.variant, a.model, a.version) == ("treatment", "als", candidate)
    assert engine.service.loaded_versions() == [("als", candidate)]
    assert engine.service.models["als"].version == production  # production still serves everyone else
    key = engine.service.list_key(user, "als", 10, version=candidate)
    assert f"als@{candidate}" in key and redis_client.sismember(engine.keys.rec_index(user), key)
    assert item_ids(result) != item_ids(engine.service.recommend(user, 10))
    # served again: a cache hit of the candidate's list, the version still loaded
    assert engine.service.recommend_from_l1(user, 10, "als", version=candidate) is not None


def test_arms_differing_only_in_mmr_lambda_serve_different_lists(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    arms = ({"name": "relevance", "model": "als", "params": {"mmr_lambda": 1.0}},
            {"name": "spread", "model": "als", "params": {"mmr_lambda": 0.0}})
    engine.experiments.create(experiment("mmr", *arms, forced={user: "relevance"}))
    engine.experiments.start("mmr")
    a, first = serve(engine, user)
    assert a is not None and a.variant == "relevance" and a.serving == ServingParams(mmr_lambda=1.0)
    engine.experiments.update("mmr", {"forced": {user: "spread"}})
    b, second = serve(engine, user)
    assert b is not None and b.variant == "spread" and b.version == a.version
    assert len(first.items) == len(second.items) == 10
    assert item_ids(first) != item_ids(second)
    # the relevance arm is the plain score order of the candidates
    assert [i["score"] for i in first.items] == sorted((i["score"] for i in first.items), reverse=True)


def test_cache_keys_differ_by_candidate_pool(engine: Engine, redis_client: redis.Redis) -> None:
    user = engine.features.top_active_users(1)[0]
    small = ServingParams(candidate_pool=12)
    default_key = engine.service.list_key(user, "als", 10)
    pool_key = engine.service.list_key(user, "als", 10, serving=small)
    assert default_key != pool_key and pool_key.endswith("p12") and default_key.endswith(
        f"p{engine.settings.candidate_pool}")
    engine.service.recommend(user, 10, "als")
    engine.service.recommend(user, 10, "als", serving=small)
    assert {default_key, pool_key} <= redis_client.smembers(engine.keys.rec_index(user))


def test_the_readout_names_what_each_arm_served(engine: Engine) -> None:
    candidate = train_candidate(engine)
    production = engine.service.models["als"].version
    engine.experiments.create(experiment(
        "served", {"name": "control", "model": "als"},
        {"name": "treatment", "model": "als@candidate", "params": {"mmr_lambda": 0.3, "candidate_pool": 100}}))
    engine.experiments.start("served")
    users = [f"u{i:05d}" for i in range(60)]
    arms = Counter(a.variant for a, _ in (serve(engine, u) for u in users) if a is not None)
    assert arms["control"] > 0 and arms["treatment"] > 0 and sum(arms.values()) == len(users)

    expected = [
        {"variant": "control", "spec": "als", "model": "als", "version": production, "number": 1,
         "stage": "production", "serving": {}, "exposures_by_version": {production: arms["control"]}},
        {"variant": "treatment", "spec": "als@candidate", "model": "als", "version": candidate, "number": 2,
         "stage": "candidate", "serving": {"mmr_lambda": 0.3, "candidate_pool": 100},
         "exposures_by_version": {candidate: arms["treatment"]}},
    ]
    readout = engine.experiments.readout("served")
    assert list(readout.served) == expected
    assert json.loads(json.dumps(readout.to_dict()))["served"] == expected

    # the candidate is promoted: the spec names nothing now, but the exposures keep what was served
    ModelRegistry(engine.settings.models_dir).promote("als", candidate)
    engine.reload_models()
    served = engine.experiments.readout("served").served
    assert (served[0]["version"], served[0]["number"], served[0]["stage"]) == (candidate, 2, "production")
    assert (served[1]["version"], served[1]["stage"]) == (None, None)
    assert served[1]["exposures_by_version"] == {candidate: arms["treatment"]}


def test_a_stage_is_re_resolved_when_the_registry_moves_it(engine: Engine) -> None:
    candidate = train_candidate(engine)
    production = engine.service.models["als"].version
    user = engine.features.top_active_users(1)[0]
    engine.experiments.create(experiment(
        "stage", {"name": "control", "model": "popularity"}, {"name": "treatment", "model": "als@production"},
        forced={user: "treatment"}))
    engine.experiments.start("stage")
    assert engine.experiments.assign(user).version == production  # type: ignore[union-attr]
    ModelRegistry(engine.settings.models_dir).promote("als", candidate)  # as the CLI would, in another process
    # the registry watcher reloads the models, and the snapshot re-resolves the spec
    assert poll(lambda: engine.experiments.assign(user).version == candidate)  # type: ignore[union-attr]
    assert poll(lambda: engine.service.models["als"].version == candidate)
    assert engine.service.loaded_versions() == []


def test_a_variant_naming_no_version_is_refused_at_save(engine: Engine) -> None:
    with pytest.raises(ExperimentError) as caught:
        engine.experiments.create(experiment(
            "bad", {"name": "control", "model": "als"}, {"name": "treatment", "model": "ease@99"}))
    assert caught.value.field == "variants"
    assert str(caught.value) == ("variant 'treatment': ease@99: no version of 'ease' on dataset 'demo'; "
                                 "models there: als, item_item, popularity")
    with pytest.raises(ExperimentError, match=r"als@7: no version 7; als on 'demo' has 1 version: #1 "):
        engine.experiments.create(experiment(
            "bad", {"name": "control", "model": "als"}, {"name": "treatment", "model": "als@7"}))
    assert engine.experiments.list_experiments() == []

    # a draft that named a candidate, which was promoted since: refused at start, and on update
    candidate = train_candidate(engine)
    engine.experiments.create(experiment(
        "later", {"name": "control", "model": "als@1"}, {"name": "treatment", "model": "als@candidate"}))
    ModelRegistry(engine.settings.models_dir).promote("als", candidate)
    with pytest.raises(ExperimentError, match="als@candidate: no candidate version; als on 'demo' has 2 versions"):
        engine.experiments.start("later")
    with pytest.raises(ExperimentError, match="ease@99"):
        engine.experiments.update("later", {"variants": [{"name": "a", "model": "als"},
                                                         {"name": "b", "model": "ease@99"}]})
    assert engine.experiments.get("later").status == "draft"
    engine.experiments.update("later", {"variants": [{"name": "a", "model": "als@1"},
                                                     {"name": "b", "model": f"als@{candidate}"}]})
    assert engine.experiments.start("later").status == "running"


def test_the_cli_refuses_a_missing_version_with_exit_2(
    own_data_dir: Path, redis_url: str, redis_client: redis.Redis, recops: Recops, tmp_path: Path
) -> None:
    recops.env(REDIS_URL=redis_url, RECOPS_DATA_DIR=str(own_data_dir))
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps(experiment(
        "cli", {"name": "control", "model": "als"}, {"name": "treatment", "model": "ease@99"})))
    code, out, err = recops(["experiments", "create", "--file", str(spec)])
    assert (code, out) == (2, "") and err.count("\n") == 1 and "Traceback" not in err
    assert "ease@99: no version of 'ease' on dataset 'demo'; models there: als, item_item, popularity" in err
    spec.write_text(json.dumps(experiment(
        "cli", {"name": "control", "model": "als"}, {"name": "treatment", "model": "als", "params": {"k": 1}})))
    code, _, err = recops(["experiments", "create", "--file", str(spec)])
    assert code == 2 and "unknown serving parameter 'k'" in err and err.count("\n") == 1
    spec.write_text(json.dumps(experiment(
        "cli", {"name": "control", "model": "als"},
        {"name": "treatment", "model": "als@1", "params": {"category_cap": 2}})))
    code, out, _ = recops(["experiments", "create", "--file", str(spec)])
    assert code == 0 and "created cli" in out
    assert recops(["experiments", "start", "cli"])[0] == 0
    code, out, _ = recops(["experiments", "readout", "cli", "--json"])
    production = ModelRegistry(own_data_dir / "models").current_version("als")
    assert code == 0 and [(s["spec"], s["version"], s["number"], s["stage"], s["serving"])
                          for s in json.loads(out)["served"]] == [
        ("als", production, 1, "production", {}), ("als@1", production, 1, "production", {"category_cap": 2})]
    code, out, _ = recops(["experiments", "readout", "cli"])
    assert code == 0 and f"#1 {production} (production)" in out and "category_cap=2" in out
    code, out, _ = recops(["models", "list", "--json"])
    assert code == 0 and {(r["model"], r["number"]) for r in json.loads(out)} == {
        ("als", 1), ("item_item", 1), ("popularity", 1)}

    # another dataset's experiments live under its own keys (nothing trained there: drafts are not checked)
    assert recops(["experiments", "list", "--dataset", "shop"])[1].strip() == "no experiments"
    assert recops(["experiments", "create", "--file", str(spec), "--dataset", "shop"])[0] == 0
    assert redis_client.exists("recops@shop:exp:cfg:{e:cli}") and redis_client.exists("recops:exp:cfg:{e:cli}")


def test_a_config_stored_with_recorded_params_stays_readable(engine: Engine, redis_client: redis.Redis) -> None:
    """Before serving parameters, ``params`` were recorded only and could hold any key: such a stored
    config reads back with them under ``recorded_params`` (kept, not applied), and serves."""
    engine.experiments.create(experiment("old", {"name": "control", "model": "als"},
                                         {"name": "treatment", "model": "item_item"}))
    key = engine.keys.experiment_config("old")
    raw = json.loads(redis_client.get(key))
    raw["variants"][1]["params"] = {"factors": 64, "mmr_lambda": 0.4}
    redis_client.set(key, json.dumps(raw))
    exp = engine.experiments.get("old")
    assert exp.variants[1].params == {"mmr_lambda": 0.4} and exp.variants[1].recorded_params == {"factors": 64}
    assert engine.experiments.start("old").variants[1].recorded_params == {"factors": 64}
    assert [e.key for e in engine.experiments.list_experiments()] == ["old"]
    assert engine.experiments.readout("old").served[1]["serving"] == {"mmr_lambda": 0.4}
