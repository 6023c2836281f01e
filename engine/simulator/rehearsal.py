"""Rehearsals on ground truth: two rankers served by the real service to the demo world's users.

A rehearsal resolves each ranker spec on the served dataset's registry, asks the recommendation
service for every rehearsal user's list (the real serving path: features, candidates, scores,
re-ranking — no cache), computed once per (user, ranker), and reads each list through the demo
world's click law (:meth:`DemoWorld.click_probability`).  The draws and tests are
:mod:`engine.simulator.rehearsal_designs`'s; the truth is the world's: the ranker whose lists earn
more expected clicks per user (the sum over positions of the click probability, one view, averaged
over the rehearsal's users).

Users are drawn from the world's users at random, without replacement while there are enough,
with replacement beyond (each draw is then one more visitor with that user's tastes), and come a
fixed number of visits each.  Or the world's visit law decides (:func:`world_visit_law`, as
``python -m bench sensitivity --visit-days D`` does): over an experiment of D days each user visits
Poisson(their history-based rate) times, only users who visit enrol, so the rehearsal's users are
drawn by their chance of visiting (with replacement), with a zero-truncated Poisson number of
visits each; every visit shows one of the user's :data:`DRAFTS` team-draft merges, drawn at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from analysis.interleaving import InterleavingSettings, preference_test, team_draft
from engine.config import Settings
from engine.data.demo import DemoWorld
from engine.data.schema import Dataset
from engine.models.model_spec import ResolvedModel
from engine.models.registry import ModelRegistry
from engine.serving.ranker_spec import RankerSpec
from engine.serving.service import RecommendationService
from engine.simulator.rehearsal_designs import (
    DRAFTS,
    Design,
    Interleavings,
    ListClicks,
    VisitLaw,
    ab_clicks,
    ab_clicks_over_visits,
    ab_test,
    click_count_cdf,
    interleaving_credits,
    interleaving_credits_over_visits,
    preference_counts_of,
)
from engine.simulator.visits import visit_rates

Winner = Literal["control", "treatment"]
ALPHA = 0.05


class Engine(Protocol):
    """What a rehearsal reads of the engine (``engine.runtime.Engine`` has it; this part may not import it)."""

    settings: Settings
    world: DemoWorld | None
    dataset: Dataset
    registry: ModelRegistry
    service: RecommendationService


class RehearsalError(ValueError):
    """A rehearsal that cannot run as asked (no ground truth, a list the service could not compute)."""


def ground_truth(engine: Engine) -> DemoWorld:
    """The demo world behind the served dataset; ``RehearsalError`` for any other dataset."""
    if engine.world is None:
        raise RehearsalError(
            f"dataset {engine.dataset.name!r} has no ground truth: only the demo world knows its users' click "
            "probabilities, so rehearsals run on --dataset demo only")
    return engine.world


@dataclass(frozen=True)
class Ranker:
    """A ranker spec resolved on the served dataset: what its lists are computed with."""

    spec: RankerSpec
    model: ResolvedModel

    @classmethod
    def resolve(cls, engine: Engine, spec: RankerSpec) -> Ranker:
        """``ModelSpecError`` when the spec names no version on the served dataset."""
        return cls(spec, spec.model.resolve(engine.registry, engine.dataset.name))

    def length(self, engine: Engine) -> int:
        return self.spec.serving.length(engine.settings.default_n)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": str(self.spec), "model": self.model.name, "version": self.model.version,
                "number": self.model.number, "serving": self.spec.serving.non_default()}


def served_lists(engine: Engine, ranker: Ranker, users: Sequence[str]) -> list[list[str]]:
    """Each user's list from the service, computed (never read from the cache) with the ranker's settings."""
    lists = []
    for user in users:
        result = engine.service.recommend(user, n=ranker.length(engine), model=ranker.model.name,
                                          version=ranker.model.version, serving=ranker.spec.serving, use_cache=False)
        if result.fallback:  # the popular snapshot would be rehearsed in the ranker's name
            raise RehearsalError(f"{ranker.spec}: the service could not compute {user}'s list "
                                 f"({result.fallback_reason}); see the log (-v)")
        lists.append([item["item_id"] for item in result.items])
    return lists


def list_clicks(world: DemoWorld, users: Sequence[str], lists: Sequence[Sequence[str]], width: int) -> np.ndarray:
    """``(users, width)`` click probabilities of each list's item at each position; 0 past a list's end."""
    rows = np.repeat(np.arange(len(users)), [len(items) for items in lists])
    positions = np.concatenate([np.arange(len(items)) for items in lists]) if len(rows) else np.zeros(0, int)
    out = np.zeros((len(users), width))
    if len(rows):
        items = [item for items in lists for item in items]
        out[rows, positions] = world.click_probability(np.asarray(users)[rows], items, positions)
    return out


def interleave(
    world: DemoWorld, users: Sequence[str], lists_a: Sequence[Sequence[str]], lists_b: Sequence[Sequence[str]],
    width: int, drafts: int, rng: np.random.Generator,
) -> Interleavings:
    """``drafts`` team-draft merges of each user's two lists, as the click law sees them."""
    merged = [team_draft(a, b, width, rng) for a, b in zip(lists_a, lists_b, strict=True) for _ in range(drafts)]
    draft_users = [user for user in users for _ in range(drafts)]
    probability = list_clicks(world, draft_users, [[str(i) for i in m.items] for m in merged], width)
    team_b = np.zeros((len(merged), width), dtype=bool)
    for row, m in enumerate(merged):
        team_b[row, : len(m.teams)] = [team == "B" for team in m.teams]
    shape = (len(users), drafts, width)
    shared = np.array([m.shared_prefix for m in merged], dtype=np.int64).reshape(shape[:2])
    return Interleavings(probability.reshape(shape), team_b.reshape(shape), shared)


def draw_users(world: DemoWorld, users: int, rng: np.random.Generator) -> list[str]:
    """``users`` of the world's users at random; with replacement only when the world has fewer."""
    picked = rng.choice(world.n_users, size=users, replace=users > world.n_users)
    return [world.user_ids[i] for i in picked]


def world_visit_law(world: DemoWorld, users: Sequence[str] | np.ndarray, days: float) -> VisitLaw:
    """The world's visit law for ``users`` over an experiment of ``days`` days: Poisson visits at each
    user's history-based rate (:func:`engine.simulator.visits.visit_rates`, as ``recops simulate``
    draws its traffic).  ``ValueError`` unless ``days`` is a positive number."""
    if not (math.isfinite(days) and days > 0):
        raise ValueError(f"an experiment's days must be a positive number, got {days}")
    return VisitLaw(visit_rates(world, users, days))


@dataclass(frozen=True)
class RehearsalPlan:
    design: Design
    control: Ranker
    treatment: Ranker
    users: int
    visits: int = 1
    seed: int = 0
    visit_days: float | None = None  # instead of ``visits``: the world's visit law over this many days


def rehearse(engine: Engine, plan: RehearsalPlan) -> dict[str, Any]:
    """One rehearsal of ``plan`` on the demo world: the readout next to the truth, as a JSON-ready dict."""
    world = ground_truth(engine)
    rng = np.random.default_rng(plan.seed)
    law = None if plan.visit_days is None else world_visit_law(world, world.user_ids, plan.visit_days)
    if law is None:
        users = draw_users(world, plan.users, rng)
        visits = np.full(plan.users, plan.visits, dtype=np.int64)
    else:
        picked, visits = law.draw((plan.users,), rng)
        users = [world.user_ids[i] for i in picked]
    distinct = list(dict.fromkeys(users))
    index = {user: k for k, user in enumerate(distinct)}
    rows = np.array([index[u] for u in users])
    width = max(plan.control.length(engine), plan.treatment.length(engine))
    lists_c = served_lists(engine, plan.control, distinct)
    same = plan.treatment == plan.control  # an A/A rehearsal: one ranker's lists, computed once
    lists_t = lists_c if same else served_lists(engine, plan.treatment, distinct)
    clicks_c = ListClicks(list_clicks(world, distinct, lists_c, width))
    clicks_t = ListClicks(list_clicks(world, distinct, lists_t, width))
    # views weighted as the users make them (all alike with a fixed number of visits)
    truth_c = float(visits @ clicks_c.expected_clicks[rows] / visits.sum())
    truth_t = float(visits @ clicks_t.expected_clicks[rows] / visits.sum())
    base = {
        "design": plan.design, "users": plan.users, "visits": plan.visits if law is None else None,
        "visit_law": _visit_law(plan, visits), "seed": plan.seed,
        "control": plan.control.to_dict(), "treatment": plan.treatment.to_dict(),
        "truth_winner": _truth_winner(truth_c, truth_t),
        "truth": {"metric": "expected clicks per user per view", "control": truth_c, "treatment": truth_t,
                  "lift": truth_t / truth_c - 1.0 if truth_c > 0 else None},
    }
    if law is None:  # every user alike: each visit's draw is the k-th of the user's plan.visits merges
        if plan.design == "ab":
            shuffled = rng.permutation(rows)
            return base | _ab_readout(*ab_clicks(click_count_cdf(clicks_c, plan.visits),
                                                 click_count_cdf(clicks_t, plan.visits), shuffled, rng))
        merged = interleave(world, distinct, lists_c, lists_t, width, plan.visits, rng)
        drafts = np.broadcast_to(np.arange(plan.visits), (rows.size, plan.visits))
        # a user drawn twice (with replacement) is two visitors: their draft rows are the same merges
        return base | _interleaving_readout(*interleaving_credits(merged, rows, drafts, rng))
    # visits vary by user: the sensitivity bench's draws, visit by visit
    if plan.design == "ab":
        order = rng.permutation(rows.size)  # the first half of the shuffled users is control
        return base | _ab_readout(*ab_clicks_over_visits(click_count_cdf(clicks_c, 1), click_count_cdf(clicks_t, 1),
                                                         rows[order], visits[order], rng))
    merged = interleave(world, distinct, lists_c, lists_t, width, DRAFTS, rng)
    return base | _interleaving_readout(*interleaving_credits_over_visits(merged, rows, visits, rng))


def _visit_law(plan: RehearsalPlan, visits: np.ndarray) -> dict[str, Any]:
    """Which visit law the rehearsal's users followed, and the visits they made."""
    made = {"total": int(visits.sum()), "mean_per_user": float(visits.mean()), "max_per_user": int(visits.max())}
    if plan.visit_days is None:
        return {"law": "fixed", "visits_per_user": plan.visits} | made
    return {"law": "world", "days": plan.visit_days} | made


def _truth_winner(control: float, treatment: float) -> Winner | None:
    if control == treatment:
        return None
    return "treatment" if treatment > control else "control"


def _winner(significant: bool, treatment_better: bool) -> Winner | None:
    if not significant:
        return None
    return "treatment" if treatment_better else "control"


def _ab_readout(clicks_c: np.ndarray, clicks_t: np.ndarray) -> dict[str, Any]:
    """The A/B readout of the control's and the treatment's users' clicks (each user's over their visits)."""
    result = ab_test(clicks_c, clicks_t, ALPHA)
    return {
        "winner": _winner(result.significant, (result.lift_abs or 0.0) > 0),
        "p_value": result.p_value,
        "significant": result.significant,
        "metric": "clicks per user",
        "arms": {"control": {"users": int(clicks_c.size), "clicks_per_user": result.control_mean},
                 "treatment": {"users": int(clicks_t.size), "clicks_per_user": result.treatment_mean}},
        "effect": {"lift": result.lift_rel, "ci": result.ci_rel, "difference": result.lift_abs,
                   "difference_ci": result.ci_abs},
        "test": result.test,
        "message": result.message,
    }


def _interleaving_readout(credit_a: np.ndarray, credit_b: np.ndarray) -> dict[str, Any]:
    """The interleaving readout of each user's credits over their visits."""
    result = preference_test(preference_counts_of(credit_a, credit_b), InterleavingSettings(alpha=ALPHA))
    share = result.preference_share
    return {
        "winner": _winner(result.significant, result.verdict == "B preferred"),
        "p_value": result.p_value,
        "significant": result.significant,
        "metric": "credit difference (treatment − control clicks per user, common prefix not credited)",
        "counts": {"wins": result.counts.wins, "losses": result.counts.losses, "ties": result.counts.ties},
        "effect": {"mean_credit_difference": result.mean_difference,
                   "mean_credit_difference_ci": result.mean_difference_ci,
                   "t_test_p_value": result.t_test_p_value, "preference_share": share, "ci": result.ci,
                   "sign_test_p_value": result.sign_test_p_value},
        "clicks": {"control": int(credit_a.sum()), "treatment": int(credit_b.sum())},
        "test": result.method,
        "message": result.message,
    }
