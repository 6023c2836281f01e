"""Through a real API process: ``GET /experiments/{key}/readout`` is the CLI's readout document (health,
quality, results over time, breakdowns with their per-cell SRM), ``GET /experiments/{key}/export`` the
CLI's export bytes, and bad input is a 4xx with a message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from engine.events.tracker import Event
from engine.experiments import ExperimentService
from engine.experiments.dimensions import UserDimensions
from engine.experiments.readout_document import export_document, readout_document
from engine.models.model_spec import spec_resolver
from engine.models.registry import ModelRegistry
from engine.runtime import prepare_world
from engine.storage.keys import Keys
from tests.support.api import ApiProcess
from tests.support.cli import Recops
from tests.support.engine_fixtures import small_world_env

KEY = "readout-api"


@pytest.fixture(scope="module")
def running(api: ApiProcess) -> Iterator[ExperimentService]:
    """A running experiment of the API's dataset with every user of the world exposed and some clicks.

    Exposures are recorded from this process with the world's user attributes plus a per-user ``zip``
    (800 values: too many for a breakdown), as a serving process records them."""
    settings = api.settings()
    users = prepare_world(settings).user_attributes()
    table = {str(u): {"device": str(d), "zip": f"z{i}"} for i, (u, d) in enumerate(zip(users["user_id"],
                                                                                       users["device"], strict=True))}
    svc = ExperimentService(redis.Redis.from_url(settings.redis_url), Keys(),  # the demo dataset's keys
                            resolver=spec_resolver(ModelRegistry(settings.models_dir), "demo"),
                            attributes=UserDimensions(table))
    svc.create({"key": KEY, "name": "readout over HTTP", "goal_metric": "ctr",
                "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "item_item"}]})
    svc.start(KEY)
    events = []
    for i, user in enumerate(table):
        a = svc.assign(user)
        assert a is not None
        svc.record_exposure(a)
        events.append(Event(user_id=user, item_id="i1", type="impression"))
        if i % 4 == 0 or (a.variant == "treatment" and i % 4 == 1):
            events.append(Event(user_id=user, item_id="i1", type="click"))
    svc.observe(events)
    yield svc
    svc.stop(KEY)
    svc.close()


def test_readout_carries_what_the_cli_prints(client: httpx.Client, running: ExperimentService) -> None:
    r = client.get(f"/experiments/{KEY}/readout", params={"by": ["device", "device"]})
    assert r.status_code == 200, r.text
    body = r.json()
    local = readout_document(running, KEY, by=["device"])
    assert set(body) == set(local)
    assert {"health", "quality", "timeseries", "timeseries_unit", "breakdowns", "goal", "served"} <= set(body)
    assert body["breakdowns"] == local["breakdowns"] and [b["dimension"] for b in body["breakdowns"]] == ["device"]
    assert body["timeseries"] == local["timeseries"] and body["goal"] == local["goal"]
    assert [c["name"] for c in body["health"]] == [c["name"] for c in local["health"]]
    srm = next(c for c in body["health"] if c["name"] == "srm_by_dimension")
    assert srm["details"]["dimension"] == "device" and srm["status"] == "ok"
    cells = {c["value"]: c["users"] for c in body["breakdowns"][0]["cells"]}
    assert {c["cell"]: c["users"] for c in srm["details"]["cells"]} == cells
    assert sum(sum(u.values()) for u in cells.values()) == 800
    assert {a["variant"] for a in body["quality"]["arms"]} == {"control", "treatment"}
    # the API is a serving engine: it computes what the other arm would serve the same users (the CLI cannot)
    assert local["quality"]["overlap"] is None and "serving engine" in local["quality"]["overlap_message"]
    pairs = body["quality"]["overlap"]
    assert pairs and body["quality"]["overlap_message"] is None, body["quality"]
    assert [pair["variants"] for pair in pairs] == [["control", "treatment"]]
    # without ?by: no breakdown, no per-dimension check; the engine can be chosen as on the CLI
    plain = client.get(f"/experiments/{KEY}/readout", params={"engine": "bayesian"}).json()
    assert plain["breakdowns"] == [] and plain["engine"] == "bayesian"
    assert "srm_by_dimension" not in [c["name"] for c in plain["health"]]
    assert {r["engine"] for r in plain["timeseries"]} == {"bayesian"}


def test_export_is_the_cli_export(client: httpx.Client, running: ExperimentService, api: ApiProcess,
                                  recops: Recops) -> None:
    r = client.get(f"/experiments/{KEY}/export", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="{KEY}-phase1-frequentist-results.csv"'
    assert r.content == export_document(running, KEY, "csv").text.encode("utf-8")
    recops.env(REDIS_URL=api.env["REDIS_URL"], RECOPS_DATA_DIR=api.env["RECOPS_DATA_DIR"], **small_world_env())
    code, out, err = recops(["experiments", "export", KEY, "--format", "csv"])
    assert code == 0, err
    assert out.encode("utf-8") == r.content
    assert r.text.startswith("metric,role,kind,arm") and "\nctr,goal," in r.text

    page = client.get(f"/experiments/{KEY}/export", params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-disposition"] == f'attachment; filename="{KEY}-phase1-frequentist-readout.html"'
    assert page.text.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page.text
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page.text, re.I)
    series = client.get(f"/experiments/{KEY}/export", params={"format": "csv", "what": "timeseries"})
    assert series.status_code == 200 and series.text.startswith("period,metric,arm")


@pytest.mark.parametrize(("path", "params", "code", "says"), [
    (f"/experiments/{KEY}/readout", {"by": "nope"}, 422, "no exposed user has the dimension 'nope'"),
    (f"/experiments/{KEY}/readout", {"by": ["device", "zip"]}, 422, "the dimension 'zip' has 800 values"),
    (f"/experiments/{KEY}/readout", {"by": [f"d{i}" for i in range(11)]}, 422, "at most 10 dimensions"),
    (f"/experiments/{KEY}/readout", {"engine": "magic"}, 422, "engine"),
    (f"/experiments/{KEY}/readout", {"phase": 7}, 422, "has phases 1..1, not 7"),
    ("/experiments/nope/readout", {}, 404, "no experiment 'nope'"),
    (f"/experiments/{KEY}/export", {"format": "pdf"}, 422, "format"),
    (f"/experiments/{KEY}/export", {}, 422, "format"),
    (f"/experiments/{KEY}/export", {"format": "csv", "what": "everything"}, 422, "what"),
    ("/experiments/nope/export", {"format": "html"}, 404, "no experiment 'nope'"),
])
def test_bad_input_is_a_4xx_with_a_message(client: httpx.Client, running: ExperimentService, path: str,
                                          params: dict[str, Any], code: int, says: str) -> None:
    r = client.get(path, params=params)
    assert r.status_code == code, r.text
    assert says in str(r.json()["detail"])


def test_an_experiment_not_started_is_a_422(client: httpx.Client, running: ExperimentService) -> None:
    running.create({"key": "draft-only", "name": "draft",
                    "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "als"}]})
    for path in ("/experiments/draft-only/readout", "/experiments/draft-only/export?format=csv"):
        r = client.get(path)
        assert r.status_code == 422 and "has not started" in r.json()["detail"]
