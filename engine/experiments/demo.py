"""The demo experiment: what a first start on the demo world runs, so that the Readout page shows
the product working before anyone created an experiment.

``recops up`` offers it once per keyspace (a fresh data dir with its embedded Redis, or a fresh
external Redis): the offer is recorded in Redis whatever it decided, so an experiment the user
deleted — the demo or any other — never brings it back, and a keyspace that already holds
experiments gets none.  Only the demo world has it: its simulator is the traffic that fills it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from engine.experiments.model import Experiment
from engine.experiments.service import ExperimentService

DEMO_KEY = "demo-als-vs-item-item"
# two trained models of the demo world, each pinned to its production version as promoted now
DEMO_MODELS = ("als@production", "item_item@production")


def demo_spec() -> dict[str, Any]:
    """ALS against item-item on the click-through rate, guarded by conversion and add-to-cart rate."""
    control, treatment = DEMO_MODELS
    return {
        "key": DEMO_KEY,
        "name": "Demo: ALS vs item-item",
        "hypothesis": ("Item-item neighbours raise the click-through rate over ALS without costing conversions. "
                       "Created by `recops up` on the first start and filled by the simulator's traffic; "
                       "stop or delete it when you create your own."),
        "variants": [{"name": "als", "model": control, "weight": 0.5},
                     {"name": "item_item", "model": treatment, "weight": 0.5}],
        "goal_metric": "ctr",
        "guardrail_metrics": ["conversion_rate", "add_to_cart_rate"],
        "demo": True,
    }


@dataclass(frozen=True)
class DemoOffer:
    """What the first-start check did: ``created`` the demo (running), or why not (``reason``)."""

    created: Experiment | None
    reason: str = ""


def offer_demo_experiment(service: ExperimentService, client: redis.Redis) -> DemoOffer:
    """Create and start the demo experiment when this keyspace never decided about it and holds no
    experiment.  ``ExperimentError`` (a model the registry does not have) leaves the offer open for
    the next start; the caller reports it."""
    marker = service.keys.experiment_demo_offered
    if client.exists(marker):
        return DemoOffer(None, "offered on an earlier start")
    existing = service.list_experiments()
    if existing:
        client.set(marker, "skipped: experiments existed")
        return DemoOffer(None, f"{len(existing)} experiment(s) exist already")
    exp = service.create(demo_spec())
    # marked before it starts: a start that fails leaves a draft the user can start or delete, never a second one
    client.set(marker, exp.key)
    return DemoOffer(service.start(exp.key))
