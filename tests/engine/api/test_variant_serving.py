"""Through a real API process: two arms of one experiment that differ only in MMR lambda serve the
same user different lists, and an arm's list length replaces the request's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from engine.experiments import ExperimentService
from engine.models.model_spec import spec_resolver
from engine.models.registry import ModelRegistry
from engine.runtime import prepare_world
from engine.storage.keys import Keys
from tests.support.api import ADMIN_TOKEN, ApiProcess
from tests.support.polling import poll


@pytest.fixture
def experiments(api: ApiProcess) -> ExperimentService:
    """Experiments of the API's dataset (demo), managed from this process as the console would."""
    settings = api.settings()
    return ExperimentService(redis.Redis.from_url(settings.redis_url), Keys(),
                             resolver=spec_resolver(ModelRegistry(settings.models_dir), "demo"))


def active_user(api: ApiProcess) -> str:
    """A user with a long history: MMR has something to re-rank (a cold start is the popular list)."""
    return str(prepare_world(api.settings()).events["user_id"].value_counts().index[0])


def served_as(client: httpx.Client, user: str, variant: str, n: int = 10) -> dict[str, Any]:
    """The API's answer once it serves ``user`` from ``variant`` (it picks up config changes within ~1 s)."""
    answers: list[dict[str, Any]] = []

    def in_variant() -> bool:
        answers.append(client.post("/recommendations", params={"user_id": user, "n": n}).json())
        return answers[-1]["variant"] == variant

    assert poll(in_variant, timeout=10, every=0.1), answers[-1]
    return answers[-1]


def test_arms_differing_only_in_mmr_lambda_serve_one_user_different_lists(
    api: ApiProcess, client: httpx.Client, experiments: ExperimentService
) -> None:
    user = active_user(api)
    experiments.create({
        "key": "mmr-lambda", "name": "MMR lambda",
        "variants": [{"name": "relevance", "model": "als", "params": {"mmr_lambda": 1.0}},
                     {"name": "spread", "model": "als", "params": {"mmr_lambda": 0.0}}],
        "forced": {user: "relevance"},
    })
    experiments.start("mmr-lambda")
    relevance = served_as(client, user, "relevance")
    experiments.update("mmr-lambda", {"forced": {user: "spread"}})
    spread = served_as(client, user, "spread")

    assert relevance["model"] == spread["model"] == "als" and not relevance["fallback"] and not spread["fallback"]
    ids = [[i["item_id"] for i in body["items"]] for body in (relevance, spread)]
    assert len(ids[0]) == len(ids[1]) == 10 and ids[0] != ids[1]
    # λ = 1 is the plain relevance order (under the category cap); λ = 0 trades relevance for spread
    scores = [i["score"] for i in relevance["items"]]
    assert scores == sorted(scores, reverse=True)
    assert sum(i["score"] for i in spread["items"]) < sum(scores)
    # served again: the same list, from the cache (the arm's settings key it apart from the other's)
    again = client.post("/recommendations", params={"user_id": user, "n": 10}).json()
    assert again["variant"] == "spread" and again["cached"] and [i["item_id"] for i in again["items"]] == ids[1]

    # the arm's list length is the treatment: it replaces the request's
    experiments.update("mmr-lambda", {"variants": [
        {"name": "relevance", "model": "als", "params": {"mmr_lambda": 1.0}},
        {"name": "spread", "model": "als", "params": {"mmr_lambda": 0.0, "n": 4}}]})
    assert poll(lambda: len(client.post("/recommendations", params={"user_id": user, "n": 10}).json()["items"]) == 4,
                timeout=10)
    experiments.stop("mmr-lambda")


def test_experiment_routes_refuse_a_variant_naming_no_version(api: ApiProcess, client: httpx.Client) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    spec = {"key": "api-versions", "name": "versions",
            "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "ease@99"}]}
    assert client.post("/admin/experiments", json=spec).status_code == 401  # behind the admin token
    r = client.post("/admin/experiments", json=spec, headers=admin)
    assert r.status_code == 422 and r.json() == {
        "detail": "variant 'treatment': ease@99: no version of 'ease' on dataset 'demo'; "
                  "models there: als, item_item, popularity", "field": "variants"}
    r = client.post("/admin/experiments", headers=admin, json={
        **spec, "variants": [spec["variants"][0], {"name": "treatment", "model": "als", "params": {"pool": 9}}]})
    assert r.status_code == 422 and "unknown serving parameter 'pool'" in r.json()["detail"]

    spec["variants"][1] = {"name": "treatment", "model": "als@1", "params": {"candidate_pool": 50}}
    r = client.post("/admin/experiments", json=spec, headers=admin)
    assert r.status_code == 201 and r.json()["variants"][1]["params"] == {"candidate_pool": 50}
    r = client.patch("/admin/experiments/api-versions", headers=admin, json={"variants": [
        spec["variants"][0], {"name": "treatment", "model": "als@candidate"}]})
    assert r.status_code == 422 and "als@candidate: no candidate version" in r.json()["detail"]
    assert client.post("/admin/experiments/nope/start", headers=admin).status_code == 404
    r = client.post("/admin/experiments/api-versions/start", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "running"
    served = client.get("/experiments/api-versions/readout").json()["served"]
    assert [(s["variant"], s["spec"], s["number"], s["stage"], s["serving"]) for s in served] == [
        ("control", "als", 1, "production", {}), ("treatment", "als@1", 1, "production", {"candidate_pool": 50})]
    broken_down = client.get("/experiments/api-versions/readout?by=segment&by=zip")
    assert broken_down.status_code == 422 and broken_down.json()["field"] == "by"
    # nobody exposed yet: neither dimension can be broken down, and the message says so for each
    assert broken_down.json()["detail"].count("no exposed user has the dimension") == 2
    assert client.post("/admin/experiments/api-versions/stop", headers=admin).json()["status"] == "stopped"


def test_an_exploring_arm_samples_each_request_and_logs_impressions_with_its_propensities(
    api: ApiProcess, client: httpx.Client, experiments: ExperimentService
) -> None:
    """Plackett-Luce over a pool of 10 served as lists of 10: every list is a permutation of the pool, so
    the response's scores are the pool's and the propensities can be recomputed here."""
    import numpy as np

    from engine.serving.exploration import plackett_luce_propensities
    from engine.serving.exploring_lists import scaled

    user = active_user(api)
    experiments.create({
        "key": "explore", "name": "Exploration",
        "variants": [{"name": "control", "model": "als"},
                     {"name": "explore", "model": "als",
                      "params": {"exploration": {"method": "plackett_luce", "temperature": 0.3, "pool": 10}}}],
        "forced": {user: "explore"},
    })
    experiments.start("explore")
    first = served_as(client, user, "explore")
    answers = [first] + [client.post("/recommendations", params={"user_id": user, "n": 10}).json()
                         for _ in range(7)]
    orders = {tuple(i["item_id"] for i in a["items"]) for a in answers}
    assert len(orders) > 1  # drawn per request ...
    assert all(a["cached"] for a in answers[1:])  # ... from the cached pool
    assert all({i["item_id"] for i in a["items"]} == {i["item_id"] for i in first["items"]} for a in answers)

    stream = Keys().event_stream
    client_redis = redis.Redis.from_url(api.settings().redis_url, decode_responses=True)
    for answer in answers:
        entries = [f for _, f in client_redis.xrange(stream) if f.get("request_id") == answer["request_id"]]
        assert [int(f["position"]) for f in entries] == list(range(10))
        assert [f["item_id"] for f in entries] == [i["item_id"] for i in answer["items"]]
        scores = np.array([i["score"] for i in answer["items"]])
        expected = plackett_luce_propensities(scaled(scores), np.arange(10), 0.3)
        logged = np.array([float(f["propensity"]) for f in entries])
        assert logged == pytest.approx(expected, rel=1e-9)
        assert np.array([float(f["prefix_propensity"]) for f in entries]) == pytest.approx(np.cumprod(expected))
        marginal = np.array([float(f["marginal_propensity"]) for f in entries])
        assert marginal[0] == pytest.approx(expected[0])  # the top slot's marginal is its conditional
        assert (marginal >= np.cumprod(expected) * (1 - 1e-9)).all() and (marginal <= 1).all()
        assert all('"exploration"' in f["policy"] and f["type"] == "impression" for f in entries)
    experiments.stop("explore")
