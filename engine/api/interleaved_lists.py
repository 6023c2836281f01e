"""The list of a user enrolled in an interleaving experiment: both rankers' lists, merged.

Each ranker's list is computed as an A/B arm's is (its model at its spec's version, with its
serving parameters, through the service and its cache); the two are merged by team draft seeded
from the request (``engine.experiments.interleaving``), and the impression is recorded.  When
either ranker fell back to the popular snapshot, that fallback is served as it is and nothing is
recorded: a merge with the fallback would credit the snapshot's clicks to a ranker.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.experiments.assignment import Assignment
from engine.runtime import Engine
from engine.serving.service import RecommendationResult, RecommendedItem

CACHE_TIERS = ("l1", "l2", "miss")  # fastest first: a merged list is as slow as its slower half


@dataclass(frozen=True)
class InterleavedAnswer:
    result: RecommendationResult
    teams: tuple[str, ...] | None  # None: not merged (a ranker fell back)


def serve_interleaved(engine: Engine, assignment: Assignment, n: int, request_id: str) -> InterleavedAnswer:
    """Blocking (the service may compute and Redis is written): run it off the event loop."""
    if assignment.rankers is None:
        raise ValueError(f"{assignment.experiment} is not an interleaving experiment")
    user = assignment.user_id
    results = [
        engine.service.recommend(user, arm.serving.length(n), arm.model, version=arm.version, serving=arm.serving)
        for arm in assignment.rankers
    ]
    fallen = next((r for r in results if r.fallback), None)
    if fallen is not None:
        return InterleavedAnswer(fallen, None)
    lists = [[item["item_id"] for item in r.items] for r in results]
    merged = engine.experiments.interleave(assignment, request_id, lists[0], lists[1], n)
    by_team: dict[str, dict[str, RecommendedItem]] = {
        team: {item["item_id"]: item for item in r.items} for team, r in zip(("A", "B"), results, strict=True)}
    items = [by_team[team][str(item_id)] for item_id, team in zip(merged.items, merged.teams, strict=True)]
    tier = max((r.cache_tier for r in results), key=CACHE_TIERS.index)
    a, b = assignment.rankers
    result = RecommendationResult(
        user_id=user, items=items, model=f"{a.model}+{b.model}", cached=all(r.cached for r in results),
        cache_tier=tier, cold_start=all(r.cold_start for r in results),
    )
    return InterleavedAnswer(result, tuple(merged.teams))
