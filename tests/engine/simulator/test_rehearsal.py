"""Rehearsals on the small demo world: real lists from the service, verdicts against the world's truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import redis

from engine.runtime import Engine
from engine.serving.ranker_spec import RankerSpec
from engine.serving.serving_params import ServingParams
from engine.simulator.rehearsal import (
    Ranker,
    RehearsalError,
    RehearsalPlan,
    ground_truth,
    interleave,
    list_clicks,
    rehearse,
    served_lists,
    world_visit_law,
)
from engine.simulator.rehearsal_designs import ListClicks, RehearsalBench
from engine.simulator.visits import activity


def ranker(engine: Engine, text: str) -> Ranker:
    return Ranker.resolve(engine, RankerSpec.parse(text))


def test_lists_are_the_services_computed_with_the_specs_settings_and_never_cached(
    engine: Engine, redis_client: redis.Redis
) -> None:
    users = engine.world.user_ids[:20]  # type: ignore[union-attr]
    plain = served_lists(engine, ranker(engine, "als"), users)
    greedy = served_lists(engine, ranker(engine, "als:mmr_lambda=1,n=5"), users)
    assert not redis_client.keys(f"{engine.keys.prefix}:rec*")  # computed, not cached
    assert all(len(items) == 10 for items in plain) and all(len(items) == 5 for items in greedy)
    assert any(g != p[:5] for g, p in zip(greedy, plain, strict=True))  # λ 1 re-ranks differently from 0.7
    for user, items in zip(users[:3], greedy[:3], strict=True):
        served = engine.service.recommend(user, n=5, model="als", serving=ServingParams(mmr_lambda=1.0),
                                          use_cache=False)
        assert [i["item_id"] for i in served.items] == items


def test_list_clicks_are_the_worlds_click_law(engine: Engine) -> None:
    world = engine.world
    assert world is not None
    users = world.user_ids[:3]
    lists = [["i00001", "i00002"], [], ["i00003"]]
    p = list_clicks(world, users, lists, 3)
    assert p[0, :2].tolist() == world.click_probability(users[0], lists[0], [0, 1]).tolist()
    assert p[2, 0] == world.click_probability(users[2], "i00003", 0) and p[1].sum() == p[0, 2] == 0


@pytest.mark.parametrize(("design", "users"), [("ab", 800), ("interleaving", 300)])
def test_rehearsal_picks_the_truth_on_the_clear_pair(engine: Engine, design: str, users: int) -> None:
    plan = RehearsalPlan(design, ranker(engine, "popularity"), ranker(engine, "als"), users, seed=4)  # type: ignore[arg-type]
    result = rehearse(engine, plan)
    assert result["truth_winner"] == "treatment"
    assert result["truth"]["treatment"] > result["truth"]["control"] > 0
    assert result["significant"] and result["p_value"] < 0.05 and result["winner"] == "treatment"
    assert result["users"] == users and result["control"]["model"] == "popularity"


@pytest.mark.parametrize("design", ["ab", "interleaving"])
def test_rehearsal_under_the_worlds_visit_law(engine: Engine, design: str) -> None:
    """Users enrol by their chance of visiting in D days and come a zero-truncated Poisson number of
    times, heavy users more: more visits than users, the truth weighting views as users make them, and
    the clear pair's verdict with fewer users than one visit each needs."""
    plan = RehearsalPlan(design, ranker(engine, "popularity"), ranker(engine, "als"), 200, seed=4,  # type: ignore[arg-type]
                         visit_days=14)
    result = rehearse(engine, plan)
    law = result["visit_law"]
    assert law["law"] == "world" and law["days"] == 14 and result["visits"] is None
    assert law["total"] > 200 and law["mean_per_user"] == law["total"] / 200 and law["max_per_user"] > 2
    assert result["truth_winner"] == result["winner"] == "treatment" and result["significant"]
    if design == "ab":
        arms = result["arms"]
        assert arms["control"]["users"] + arms["treatment"]["users"] == 200
        assert arms["control"]["clicks_per_user"] > result["truth"]["control"]  # several views per user
    else:
        counts = result["counts"]
        assert counts["wins"] + counts["losses"] + counts["ties"] == 200
    assert rehearse(engine, plan) == result  # seeded
    fixed = rehearse(engine, RehearsalPlan(design, plan.control, plan.treatment, 200, visits=2, seed=4))  # type: ignore[arg-type]
    assert fixed["visits"] == 2 and fixed["visit_law"] == {"law": "fixed", "visits_per_user": 2, "total": 400,
                                                          "mean_per_user": 2.0, "max_per_user": 2}


def test_world_visit_law_is_the_worlds_rates(engine: Engine) -> None:
    world = engine.world
    assert world is not None
    users = list(world.user_ids[:50])
    law = world_visit_law(world, users, 14)
    weights = activity(world, users)
    assert law.rate == pytest.approx(weights * (law.rate[0] / weights[0]))  # shares of the history's activity
    assert world_visit_law(world, users, 28).rate == pytest.approx(2 * law.rate)  # proportional to the days
    for days in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number"):
            world_visit_law(world, users, days)


def test_same_ranker_has_no_truth_winner_and_no_credited_click(engine: Engine) -> None:
    """One ranker on both sides: its list is the common prefix of both, so no click is credited."""
    plan = RehearsalPlan("interleaving", ranker(engine, "als"), ranker(engine, "als"), 400, visits=2, seed=1)
    result = rehearse(engine, plan)
    assert result["truth_winner"] is None and result["truth"]["lift"] == 0.0
    assert result["counts"] == {"wins": 0, "losses": 0, "ties": 400} and result["clicks"] == {"control": 0,
                                                                                               "treatment": 0}
    assert result["winner"] is None and result["p_value"] is None and not result["significant"]


def test_equally_good_real_lists_are_calibrated(engine: Engine) -> None:
    """The balanced null on the world's lists and click law: ALS against ALS with MMR λ 0.75, every user
    once in each orientation, so both sides are exactly equally good while their lists differ (and share
    a prefix) as the real pair's do; many seeds at once."""
    world = engine.world
    assert world is not None
    rng = np.random.default_rng(21)
    users = list(world.user_ids[:300])
    lists_a = served_lists(engine, ranker(engine, "als"), users)
    lists_b = served_lists(engine, ranker(engine, "als:mmr_lambda=0.75"), users)
    side_a, side_b = lists_a + lists_b, lists_b + lists_a
    merged = interleave(world, users + users, side_a, side_b, 10, 8, rng)
    assert merged.shared_prefix.mean() > 1  # the null exercises the common-prefix rule
    clicks_a, clicks_b = (ListClicks(list_clicks(world, users + users, side, 10)) for side in (side_a, side_b))
    rate = RehearsalBench(clicks_a, clicks_b, merged).run("interleaving", 300, 1_000, rng).significant.mean()
    assert abs(rate - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / 1_000)


def test_only_the_demo_world_has_ground_truth() -> None:
    shop = SimpleNamespace(world=None, dataset=SimpleNamespace(name="shop"))
    with pytest.raises(RehearsalError, match="dataset 'shop' has no ground truth"):
        ground_truth(shop)  # type: ignore[arg-type]
