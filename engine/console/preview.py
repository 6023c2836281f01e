"""What the Recommendations page shows: users to pick, their profile, and two models' lists compared."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.ranking import intra_list_diversity, jaccard, novelty, rbo
from engine.data.schema import Dataset
from engine.runtime import Engine
from engine.serving.service import RecommendationResult, RecommendedItem
from engine.storage.feature_store import ItemFeatures, UserFeatures

RBO_P = 0.9  # top-heavy: the first ten ranks carry ~86% of the weight


def known_users(engine: Engine) -> list[str]:
    """Users of the dataset, most active first."""
    return engine.features.top_active_users(len(engine.features.source.users))


def search_users(engine: Engine, query: str, limit: int = 25) -> list[str]:
    """Known users whose id contains ``query`` (case-insensitive), most active first."""
    needle = query.strip().lower()
    users = known_users(engine)
    if not needle:
        return users[:limit]
    out: list[str] = []
    for user in users:
        if needle in user.lower():
            out.append(user)
            if len(out) == limit:
                break
    return out


def random_user(engine: Engine, rng: random.Random | None = None) -> str:
    return (rng or random.Random()).choice(known_users(engine))


def new_user_id() -> str:
    """An id no dataset user has: the page previews a cold start with it."""
    return f"new-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class ServedChoice:
    model: str
    experiment: str | None = None
    variant: str | None = None

    @property
    def text(self) -> str:
        if self.experiment is None:
            return f"not in a running experiment: the default model `{self.model}`"
        return f"experiment `{self.experiment}`, variant `{self.variant}`: model `{self.model}`"


def served_choice(engine: Engine, user_id: str) -> ServedChoice:
    """The model the API serves this user: the assigned variant's, else the default."""
    assignment = engine.experiments.assign(user_id) if engine.experiments is not None else None
    if assignment is None:
        return ServedChoice(engine.service.default_model)
    return ServedChoice(assignment.model, assignment.experiment, assignment.variant)


def items_frame(result: RecommendationResult) -> pd.DataFrame:
    rows = [{"rank": r, "title": i["title"], "category": i["category"], "score": i["score"],
             "reason": i["reason"], "item_id": i["item_id"]} for r, i in enumerate(result.items, 1)]
    return pd.DataFrame(rows, columns=["rank", "title", "category", "score", "reason", "item_id"])


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    known: bool
    features: UserFeatures
    history: pd.DataFrame  # item_id, title, category (most recent first)
    affinity: pd.DataFrame  # category, share


def _item_rows(engine: Engine, item_ids: Sequence[str]) -> pd.DataFrame:
    cat = engine.catalog
    rows = [{"item_id": i, "title": cat.titles[cat.index[i]], "category": cat.categories[cat.index[i]]}
            for i in item_ids if i in cat.index]
    return pd.DataFrame(rows, columns=["item_id", "title", "category"])


def user_profile(engine: Engine, user_id: str) -> UserProfile:
    feats = engine.features.get_user(user_id)
    affinity = pd.DataFrame(sorted(feats.category_affinity.items(), key=lambda kv: -kv[1]),
                            columns=["category", "share"])
    return UserProfile(user_id, engine.features.known_user(user_id), feats, _item_rows(engine, feats.history),
                       affinity)


def item_profile(engine: Engine, item_id: str) -> ItemFeatures | None:
    return engine.features.get_items([item_id.strip()]).get(item_id.strip())


def popularity_shares(dataset: Dataset) -> dict[str, float]:
    """Share of users who interacted with each item (the popularity novelty is measured against).

    A pass over every event: the console computes it once per process.
    """
    events = dataset.events
    users = max(int(events["user_id"].nunique()), 1)
    per_item = events.groupby("item_id", observed=True)["user_id"].nunique()
    return {str(k): float(v) / users for k, v in per_item.items()}


@dataclass(frozen=True)
class ListComparison:
    jaccard: float
    rbo: float
    shared: list[str]  # item ids in both lists
    diversity_a: float
    diversity_b: float
    novelty_a: float
    novelty_b: float


def compare_lists(
    a: Sequence[RecommendedItem], b: Sequence[RecommendedItem], shares: Mapping[str, float]
) -> ListComparison:
    ids_a = [i["item_id"] for i in a]
    ids_b = [i["item_id"] for i in b]
    categories = {i["item_id"]: i["category"] for i in [*a, *b]}
    return ListComparison(
        jaccard=jaccard(ids_a, ids_b),
        rbo=rbo(ids_a, ids_b, p=RBO_P) if ids_a or ids_b else 1.0,
        shared=[i for i in ids_a if i in set(ids_b)],
        diversity_a=intra_list_diversity([ids_a], categories=categories),
        diversity_b=intra_list_diversity([ids_b], categories=categories),
        novelty_a=novelty([ids_a], shares),
        novelty_b=novelty([ids_b], shares),
    )
