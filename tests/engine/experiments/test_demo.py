"""The demo experiment of a first start: created and started once per keyspace, on the demo world's
production models, and never again — not after the user deleted it, not when experiments exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.data.dataset_store import DEMO
from engine.experiments import ExperimentError, ExperimentService
from engine.experiments.demo import DEMO_KEY, offer_demo_experiment
from engine.models.model_spec import spec_resolver
from engine.models.registry import ModelRegistry
from engine.storage.keys import Keys


@pytest.fixture
def registry(small_world_dir: Path) -> ModelRegistry:
    return ModelRegistry(small_world_dir / "models")


@pytest.fixture
def service(redis_client: redis.Redis, registry: ModelRegistry) -> Iterator[ExperimentService]:
    svc = ExperimentService(redis_client, Keys(), resolver=spec_resolver(registry, DEMO))
    yield svc
    svc.close()


def test_the_first_offer_runs_the_demo_and_it_never_comes_back(
    service: ExperimentService, redis_client: redis.Redis, registry: ModelRegistry
) -> None:
    offer = offer_demo_experiment(service, redis_client)
    exp = offer.created
    assert exp is not None and exp.key == DEMO_KEY and exp.demo and exp.status == "running"
    assert [(v.name, v.model, v.weight) for v in exp.variants] == [
        ("als", "als@production", 0.5), ("item_item", "item_item@production", 0.5)]
    assert (exp.goal_metric, exp.guardrail_metrics) == ("ctr", ["conversion_rate", "add_to_cart_rate"])
    # the arms serve the versions in production now, two different models
    service.refresh(force=True)
    served = {(a.model, a.version) for a in (service.assign(f"u{i:04d}") for i in range(200)) if a is not None}
    production = registry.served(DEMO)
    assert served == {("als", production["als"]), ("item_item", production["item_item"])}
    assert service.get(DEMO_KEY).demo  # stored with its mark

    again = offer_demo_experiment(service, redis_client)
    assert again.created is None and again.reason == "offered on an earlier start"
    service.stop(DEMO_KEY)
    service.delete(DEMO_KEY)
    assert offer_demo_experiment(service, redis_client).created is None  # deleted stays deleted
    assert service.list_experiments() == []


def test_a_keyspace_with_experiments_gets_no_demo_even_after_they_are_deleted(
    service: ExperimentService, redis_client: redis.Redis
) -> None:
    service.create({"key": "mine", "name": "mine", "variants": [{"name": "a", "model": "als"},
                                                                  {"name": "b", "model": "popularity"}]})
    offer = offer_demo_experiment(service, redis_client)
    assert offer.created is None and offer.reason == "1 experiment(s) exist already"
    service.delete("mine")
    assert offer_demo_experiment(service, redis_client).created is None
    assert service.list_experiments() == []


def test_models_the_registry_lacks_leave_the_offer_open(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    empty = ModelRegistry(tmp_path / "models")
    service = ExperimentService(redis_client, Keys(), resolver=spec_resolver(empty, DEMO))
    with pytest.raises(ExperimentError):
        offer_demo_experiment(service, redis_client)
    assert service.list_experiments() == [] and not redis_client.exists(Keys().experiment_demo_offered)
