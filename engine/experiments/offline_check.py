"""The offline check: a candidate policy's click value estimated from an exploring arm's logs, before any
user sees it (``recops ope`` and the console's Models page call it; ``engine.experiments.off_policy``
has the estimation).

    >>> check = OfflineCheck(engine.service, engine.registry, "demo", event_log, world=engine.world)
    >>> check.simulate(20_000, seed=1)        # demo world only: log exploring lists and their clicks
    >>> check.run("als@candidate:mmr_lambda=0.5").to_dict()

Simulated logs are written straight into the event log in one batch, as the rows the consumer would
write for the same events (``off_policy.simulated_rows`` builds them through ``Event.stream_fields``
and ``entry_row``): rehearsing 100k lists through Redis would take minutes and test nothing more.
The logging policy is the production version of the default model, exploring by Plackett-Luce
(:data:`REHEARSAL_EXPLORATION`); clicks are drawn from the world's click law.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.data.demo import DemoWorld
from engine.data.event_log import EventLog
from engine.experiments.off_policy import (
    ESTIMATOR_NAMES,
    OffPolicyResult,
    estimate,
    logged_impressions,
    policy_label,
    simulate_lists,
    simulated_rows,
    true_value,
)
from engine.models.registry import ModelRegistry
from engine.serving.ranker_spec import RankerSpec
from engine.serving.service import RecommendationService
from engine.serving.serving_params import Exploration, ServingParams

# the rehearsal's logging policy: the production model's top 30, drawn by Plackett-Luce (see bench/ope.py)
REHEARSAL_EXPLORATION = Exploration(method="plackett_luce", temperature=0.25, pool=30)


class NotDemoError(ValueError):
    """Simulated logs need the demo world's click law."""


class OfflineCheck:
    def __init__(
        self,
        service: RecommendationService,
        registry: ModelRegistry,
        dataset: str,
        log: EventLog,
        world: DemoWorld | None = None,
        list_length: int = 10,
    ) -> None:
        self.service = service
        self.registry = registry
        self.dataset = dataset
        self.log = log
        self.world = world
        self.list_length = list_length

    def simulate(self, lists: int, seed: int | None = None,
                 exploration: Exploration = REHEARSAL_EXPLORATION) -> int:
        """Log ``lists`` exploring lists of the world's users (drawn uniformly) and their clicks; the rows written."""
        if self.world is None:
            raise NotDemoError(f"--simulate needs the demo world's click law; dataset {self.dataset!r} has none")
        if lists < 1:
            raise ValueError(f"the number of simulated lists must be at least 1, got {lists}")
        rng = np.random.default_rng(seed)
        users = self.world.user_ids[rng.integers(self.world.n_users, size=lists)].tolist()
        serving = ServingParams(exploration=exploration)
        pools = {}
        for user in sorted(set(users)):
            pool = self.service.exploring_pool(user, serving)
            pools[user] = ([i["item_id"] for i in pool], np.asarray([i["score"] for i in pool], dtype=float))
        shown = simulate_lists(pools, users, self.list_length, exploration.policy(), rng)
        flat_users = np.concatenate([np.repeat(s.user_id, len(s.items)) for s in shown])
        flat_items = np.concatenate([s.items for s in shown])
        flat_pos = np.concatenate([np.arange(len(s.items)) for s in shown])
        clicks = self.world.sample_feedback(flat_users, flat_items, flat_pos, rng).click
        ends = np.cumsum([len(s.items) for s in shown])
        per_list = np.split(clicks, ends[:-1])
        model = self.service.default_model
        version = self.service.models[model].version
        rows = simulated_rows(shown, [c.tolist() for c in per_list], policy_label(model, version, serving))
        return self.log.append(rows, batch=f"ope-{rows[0]['stream_id'].partition('-')[0]}") if rows else 0

    def target_lists(self, spec: RankerSpec, users: Sequence[str], depth: int) -> dict[str, list[str]]:
        """The target's deterministic list for each user, through the serving path without the cache."""
        resolved = spec.model.resolve(self.registry, self.dataset)
        n = spec.serving.length(depth)
        return {
            user: [item["item_id"] for item in self.service.recommend(
                user, n=n, model=resolved.name, version=resolved.version, serving=spec.serving, use_cache=False,
            ).items]
            for user in users
        }

    def run(self, target: str, estimators: Sequence[str] = ESTIMATOR_NAMES, seed: int | None = None,
            n_bootstrap: int = 1000) -> OffPolicyResult:
        """The target's estimated value from the logs (``NoLogsError`` without exploring impressions)."""
        spec = RankerSpec.parse(target)
        logged = logged_impressions(self.log.read())
        targets = self.target_lists(spec, logged.users(), logged.depth)
        truth = None
        if self.world is not None:
            truth = true_value(logged, targets, self.world.click_probability)
        return estimate(logged, targets, str(spec), estimators, truth, n_bootstrap, seed)
