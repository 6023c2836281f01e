"""engine.console.shipped: which arm an experiment shipped (the readout's own decision) and the promotion the
Readout offers for the version it served — from a real readout of traffic on the test Redis, and a promotion
run on a real registry and audit log.

``served`` follows the engine's readout contract (one entry per arm: variant, spec, model, version, number,
stage, serving, exposures_by_version); it is written out here so these tests run whether or not the engine
gives it yet.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Settings
from engine.console import experiments as console_experiments
from engine.console import models as mv
from engine.console import preview, shipped
from engine.console.notices import Notice
from engine.experiments import ExperimentReadout
from engine.experiments.results import ExperimentDecision
from engine.models.als import ALSRecommender
from engine.models.registry import ModelRegistry
from engine.runtime import Engine, build_engine
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.console import run_traffic, two_arm_spec
from tests.support.engine_fixtures import SMALL_WORLD


def shipping_readout(engine: Engine) -> ExperimentReadout:
    """popularity (control) against ALS with three times the clicks: the Bayesian engine ships ``als``."""
    console_experiments.create(engine, two_arm_spec(engine="bayesian"), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    assert run_traffic(engine, preview.known_users(engine)[:300], seed=1, boost={"als": 3.0}) > 250
    r = console_experiments.readout(engine, "exp-1")
    assert (r.engine, r.decision.action, r.decision.variant, r.control) == ("bayesian", "ship", "als", "control")
    return r


def arm(variant: str, model: str, version: str, number: int, stage: str, exposures: dict[str, int] | None = None,
        spec: str | None = None) -> dict[str, Any]:
    return {"variant": variant, "spec": spec or f"{model}@{number}", "model": model, "version": version,
            "number": number, "stage": stage, "serving": {},
            "exposures_by_version": {version: 150} if exposures is None else exposures}


SERVED = [arm("control", "popularity", "p1", 1, "production", spec="popularity@production"),
          arm("als", "als", "a2", 2, "candidate")]
PRODUCTION = {"als": "a1", "popularity": "p1"}


@pytest.fixture
def ships(engine: Engine) -> ExperimentReadout:
    return shipping_readout(engine)


def with_decision(r: ExperimentReadout, action: str, variant: str | None) -> ExperimentReadout:
    return dataclasses.replace(r, decision=ExperimentDecision(action, "as decided", variant))


def test_the_shipped_arm_is_the_decisions(ships: ExperimentReadout) -> None:
    assert shipped.shipped_treatment(ships) == "als"
    assert shipped.shipped_treatment(with_decision(ships, "ship", "control")) is None  # the control wins
    for action in ("keep_running", "hold", "no_difference", "untrustworthy", "not_enough_data"):
        assert shipped.shipped_treatment(with_decision(ships, action, "als")) is None


def test_a_shipped_candidate_is_offered_for_promotion(ships: ExperimentReadout) -> None:
    offer = shipped.promote_offer(ships, "bayesian", SERVED, PRODUCTION, "demo")
    assert offer == shipped.PromoteOffer("als", "als", "a2", 2, "demo", current="a1")
    assert offer.label == "Promote als v2 to production"
    assert offer.action == {"kind": "promote", "model": "als", "version": "a2", "dataset": "demo"}


def test_nothing_is_offered_without_a_ship_or_without_served(ships: ExperimentReadout) -> None:
    assert shipped.promote_offer(ships, "bayesian", None, PRODUCTION, "demo") is None  # an engine before `served`
    assert shipped.promote_offer(with_decision(ships, "keep_running", None), "bayesian", SERVED, PRODUCTION,
                                 "demo") is None
    assert shipped.promote_offer(with_decision(ships, "ship", "control"), "bayesian", SERVED, PRODUCTION,
                                 "demo") is None
    assert shipped.promote_offer(ships, "bayesian", SERVED[:1], PRODUCTION, "demo") is None  # no entry for the arm


def test_what_is_said_instead_of_an_offer(ships: ExperimentReadout) -> None:
    already = shipped.promote_offer(ships, "bayesian", SERVED, {"als": "a2"}, "demo")  # promoted since
    assert isinstance(already, Notice) and already.level == "info"
    assert already.text == "`als` ships als v2, which is already production: nothing to promote."
    mixed = shipped.promote_offer(ships, "bayesian", [SERVED[0], arm("als", "als", "a2", 2, "candidate",
                                                                     {"a1": 40, "a2": 110})], PRODUCTION, "demo")
    assert isinstance(mixed, Notice) and mixed.level == "warning" and "served 2 versions of als (a1, a2)" in mixed.text
    other_engine = shipped.promote_offer(ships, "frequentist", SERVED, PRODUCTION, "demo")
    assert isinstance(other_engine, Notice) and "decides with the frequentist engine" in other_engine.text
    old_phase = shipped.promote_offer(dataclasses.replace(ships, phases=2), "bayesian", SERVED, PRODUCTION, "demo")
    assert isinstance(old_phase, Notice) and "only the current phase (2)" in old_phase.text


def test_the_version_exposed_is_promoted_when_the_spec_now_resolves_to_another(ships: ExperimentReadout) -> None:
    # als@candidate served a2 throughout; a newer candidate a3 was trained after the experiment stopped
    moved = arm("als", "als", "a3", 3, "candidate", {"a2": 150}, spec="als@candidate")
    offer = shipped.promote_offer(ships, "bayesian", [SERVED[0], moved], PRODUCTION, "demo")
    assert isinstance(offer, shipped.PromoteOffer) and (offer.version, offer.number) == ("a2", None)
    assert offer.label == "Promote als a2 to production"


@pytest.fixture
def own_engine(small_world_dir: Path, tmp_path: Path, redis_url: str, redis_client: redis.Redis
               ) -> Iterator[Engine]:
    """An engine on a copy of the small world: the promotion below changes its registry."""
    data_dir = tmp_path / "data"
    shutil.copytree(small_world_dir, data_dir)
    engine = build_engine(Settings(data_dir=data_dir, redis_url=redis_url, **SMALL_WORLD), start_listener=False)
    yield engine
    engine.close()


def test_the_offered_promotion_is_one_audited_switch(own_engine: Engine, redis_client: redis.Redis) -> None:
    engine = own_engine
    registry = ModelRegistry(engine.settings.models_dir)
    old = registry.current_version("als", "demo")
    candidate = registry.save("als", ALSRecommender(factors=8, iterations=3, random_state=7).fit(
        engine.dataset.interactions()), dataset="demo")
    served = [arm("control", "popularity", registry.current_version("popularity", "demo"), 1, "production"),
              arm("als", "als", candidate, 2, "candidate")]
    r = shipping_readout(engine)
    offer = shipped.promote_offer(r, "bayesian", served, registry.served("demo"), engine.dataset.name)
    assert isinstance(offer, shipped.PromoteOffer) and offer.current == old
    done = mv.run_confirmed(engine, offer.action, "ada")  # what the dialog's "Promote" leads to
    assert done.succeeded and f"`{candidate}` is production (`{old}` archived)" in done.text
    assert registry.current_version("als", "demo") == candidate
    assert engine.service.models["als"].version == candidate
    entry = AuditLog(redis_client, Keys()).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("ada", "promote_model", "als:demo")
    again = shipped.promote_offer(r, "bayesian", served, registry.served("demo"), engine.dataset.name)
    assert isinstance(again, Notice) and "already production" in again.text
