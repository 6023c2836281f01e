"""Users served lists other than the defaults, for the warm tests: two QA users forced into arms of
an A/B experiment (one with its own model, length and re-ranking, one exploring) and everyone else
in an interleaving experiment (both rankers' lists); and what their first request is served from."""

from __future__ import annotations

from dataclasses import dataclass

from engine.api.interleaved_lists import serve_interleaved
from engine.runtime import Engine


@dataclass(frozen=True)
class ArmUsers:
    own_params: str  # forced into ab/treatment: item_item, n=7, mmr_lambda=0.6
    exploring: str  # forced into ab/explore: a Plackett-Luce draw from a pool of 12 per request
    interleaved: str  # in ilv: served both rankers' lists, merged

    @property
    def all(self) -> list[str]:
        return [self.own_params, self.exploring, self.interleaved]


def start_arm_experiments(engine: Engine) -> ArmUsers:
    """The interleaving experiment starts first and covers everyone; forced QA users go before any
    experiment's coverage, so the two forced users are in the A/B one."""
    own, exploring, interleaved = engine.features.top_active_users(3)
    engine.experiments.create({
        "key": "ilv", "name": "ALS against item-item", "kind": "interleaving", "coverage_pct": 100,
        "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "item_item"}],
    })
    engine.experiments.start("ilv")
    engine.experiments.create({
        "key": "ab", "name": "arms with their own lists", "coverage_pct": 100,
        "forced": {own: "treatment", exploring: "explore"},
        "variants": [
            {"name": "control", "model": "als"},
            {"name": "treatment", "model": "item_item", "params": {"n": 7, "mmr_lambda": 0.6}},
            {"name": "explore", "model": "als",
             "params": {"exploration": {"method": "plackett_luce", "temperature": 0.5, "pool": 12}}},
        ],
    })
    engine.experiments.start("ab")
    engine.experiments.refresh(force=True)
    users = ArmUsers(own, exploring, interleaved)
    for user, variant in ((own, "treatment"), (exploring, "explore")):
        a = engine.experiments.assign(user)
        assert a is not None and (a.experiment, a.variant, a.forced) == ("ab", variant, True)
    a = engine.experiments.assign(interleaved)
    assert a is not None and a.experiment == "ilv" and a.rankers is not None
    return users


def served_list_keys(engine: Engine, user: str, n: int) -> list[str]:
    """The cache keys of the lists the API computes for ``user``'s request of ``n`` items."""
    a = engine.experiments.assign(user)
    assert a is not None
    return [engine.service.list_key(user, model, serving.length(n), serving=serving, version=version)
            for _, model, version, serving in a.served_arms]


def first_request_tier(engine: Engine, user: str, n: int) -> str:
    """The cache tier ``user``'s request of ``n`` is answered from, served as the API serves it (an
    interleaved answer's is its slower ranker's)."""
    a = engine.experiments.assign(user)
    assert a is not None
    if a.rankers is not None:
        answer = serve_interleaved(engine, a, n, "first-request")
        assert answer.teams is not None  # merged: neither ranker fell back
        return answer.result.cache_tier
    return engine.service.recommend(user, a.serving.length(n), a.model, version=a.version,
                                    serving=a.serving).cache_tier
