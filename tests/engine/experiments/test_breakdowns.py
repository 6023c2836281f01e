"""Breakdowns by a user dimension recorded at exposure, on a real Redis, against the demo world's truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from engine.cli.main import main
from engine.config import get_settings
from engine.data.demo import DemoWorld
from engine.data.demo.truth import CART_BIAS, CART_PRICE, sigmoid
from engine.events.tracker import Event
from engine.experiments import ExperimentService
from engine.experiments.breakdowns import MAX_CELLS
from engine.experiments.dimensions import UserDimensions
from engine.runtime import dataset_keys
from engine.storage.keys import Keys

T0 = 1_790_000_000.0
PRICIER = 1.5  # the treatment's lists are this much pricier (log of price over the category median)
CLICKS = 12  # clicks per user, each may lead to a cart


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return DemoWorld.generate(seed=11, n_users=3000, n_items=300)


def spec() -> dict[str, object]:
    return {"key": "exp", "name": "pricier lists", "goal_metric": "add_to_carts",
            "variants": [{"name": "control", "model": "popularity"}, {"name": "pricey", "model": "als"}]}


def feed(svc: ExperimentService, world: DemoWorld, seed: int = 5) -> None:
    """Every user exposed; carts drawn from the truth's cart law: the treatment's pricier items lose
    carts in proportion to the user's price sensitivity (``CART_PRICE``)."""
    rng = np.random.default_rng(seed)
    events = []
    for idx, user in enumerate(world.user_ids):
        a = svc.assign(user)
        assert a is not None
        svc.record_exposure(a)
        shift = PRICIER if a.variant == "pricey" else 0.0
        p = float(sigmoid(np.asarray(CART_BIAS - CART_PRICE * world.truth.price_sensitivity[idx] * shift)))
        carts = int(rng.binomial(CLICKS, p))
        events += [Event(user_id=user, item_id="i00001", type="add_to_cart", timestamp=T0)] * carts
    svc.observe(events)


def test_breakdown_by_segment_finds_the_effect_where_the_truth_puts_it(redis_client: redis.Redis,
                                                                       world: DemoWorld) -> None:
    svc = ExperimentService(redis_client, Keys(), clock=lambda: T0,
                            attributes=UserDimensions.from_frame(world.user_attributes()))
    svc.create(spec())
    svc.start("exp")
    feed(svc, world)
    readout = svc.readout("exp", by=["segment", "device"])
    segment, device = readout.breakdowns
    assert segment["error"] is None and segment["metric"] == "add_to_carts"
    lifts = {c["value"]: c["results"][0]["lift_rel"] for c in segment["cells"]}
    assert set(lifts) == {"premium", "regular", "bargain"}
    # price-sensitive users lose the most carts; the least sensitive the fewest
    assert lifts["bargain"] < lifts["regular"] < lifts["premium"] < 0
    bargain = next(c for c in segment["cells"] if c["value"] == "bargain")["results"][0]
    assert bargain["significant"] and bargain["p_value_adjusted"] >= bargain["p_value"]
    # the cells' users add up to the arms'
    users = {a.name: a.users for a in readout.arms}
    assert {n: sum(c["users"][n] for c in segment["cells"]) for n in users} == users
    # device carries no effect of its own: every cell moves the same way as the total, no Simpson flag
    assert device["error"] is None and not device["simpson"]["pricey"]["flagged"]
    assert readout.to_dict()["breakdowns"][0]["dimension"] == "segment"
    svc.close()


def test_a_dimension_with_too_many_values_or_unknown_gets_a_message(redis_client: redis.Redis,
                                                                     world: DemoWorld) -> None:
    per_user = UserDimensions({u: {"zip": f"z{i}"} for i, u in enumerate(world.user_ids[:600])})
    svc = ExperimentService(redis_client, Keys(), clock=lambda: T0, attributes=per_user)
    svc.create(spec())
    svc.start("exp")
    for u in world.user_ids[:600]:
        svc.record_exposure(svc.assign(u))
    zip_, nope = svc.readout("exp", by=["zip", "nope"]).breakdowns
    assert zip_["cells"] == [] and f"has 600 values; a breakdown shows at most {MAX_CELLS} cells" in zip_["error"]
    assert "no exposed user has the dimension 'nope'" in nope["error"] and "zip" in nope["error"]
    svc.close()


@pytest.fixture
def cli_env(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_readout_by(tmp_path: Path, cli_env: None, redis_client: redis.Redis, world: DemoWorld,
                        capsys: pytest.CaptureFixture[str]) -> None:
    settings = get_settings()
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({**spec(), "metrics": [
        {"name": "carts", "kind": "count", "event_type": "add_to_cart", "role": "goal"}]}))
    assert main(["experiments", "create", "--file", str(path)]) == 0
    assert main(["experiments", "start", "exp"]) == 0
    svc = ExperimentService(redis_client, dataset_keys(settings, settings.dataset), clock=lambda: T0,
                            attributes=UserDimensions.from_frame(world.user_attributes()))
    svc.refresh(force=True)
    feed(svc, world)
    svc.close()
    capsys.readouterr()
    assert main(["experiments", "readout", "exp", "--json", "--by", "segment", "--by", "tenure"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [b["dimension"] for b in data["breakdowns"]] == ["segment", "tenure"]
    assert data["breakdowns"][0]["metric"] == "carts" and data["goal"]["metric"] == "carts"
    # every user exposed by the hash: no dimension's cells depart from the 50/50 split
    srm = [c for c in data["health"] if c["name"] == "srm_by_dimension"]
    assert [(c["details"]["dimension"], c["status"]) for c in srm] == [("segment", "ok"), ("tenure", "ok")]
    assert {c["cell"] for c in srm[0]["details"]["cells"]} == {"premium", "regular", "bargain"}
    assert data["decision"]["rule"] in ("ship", "stop_goal", "keep_running", "no_effect", "stop_guardrail")
    assert main(["experiments", "readout", "exp", "--by", "segment"]) == 0
    out = capsys.readouterr().out
    assert "breakdown of carts by segment" in out and "bargain" in out and "rule: " in out
    assert "srm_by_dimension: segment: no cell's split departs from the weights" in out
