"""What the Recommendations page shows: users to pick, a user's list under any model and diversity
setting, their profile, and two models' lists compared."""

from __future__ import annotations

import random
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pandas as pd
import plotly.graph_objects as go

from analysis.ranking import intra_list_diversity, jaccard, novelty, rbo
from engine.console import charts
from engine.console.cache_actions import check_user_id
from engine.console.cards import MetricCard
from engine.console.formatting import milliseconds, when
from engine.console.notices import Notice
from engine.data.schema import Dataset
from engine.experiments import quality
from engine.runtime import Engine
from engine.serving.diversity import DiversitySettings
from engine.serving.service import RecommendationResult, RecommendedItem
from engine.serving.serving_params import DEFAULT_SERVING, ServingParams
from engine.storage.feature_store import ItemFeatures, UserFeatures

RBO_P = 0.9  # top-heavy: the first ten ranks carry ~86% of the weight
AS_SERVED = "as served"
USER_MODES = ("Search", "Random", "New user")
MIN_SCORE_SCALE = 1e-9  # the score bar's upper end when every score is 0 or below
SIDE_COLUMNS = ["rank", "title", "category", "score"]


def model_names(engine: Engine) -> list[str]:
    return sorted(engine.service.models)


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


def user_choices(engine: Engine, query: str) -> list[str]:
    """Users to pick for ``query``: it first when it is a valid id (known or not: any id can be
    previewed), then the known users containing it; the most active when empty.  ``ValueError``
    with a message fit for the page when the query is not a valid id."""
    typed = query.strip()
    if typed:
        check_user_id(typed)
    matches = search_users(engine, query)
    return [typed, *matches] if typed and typed not in matches else matches


def example_ids(engine: Engine) -> dict[str, str]:
    """Ids of the served dataset to show as input placeholders: its most active user and most popular item."""
    users = engine.features.top_active_users(1)
    items = engine.catalog.most_popular(1)
    return {"User": users[0] if users else "user-1",
            "Item": str(engine.catalog.item_ids[items[0]]) if items else "item-1"}


def random_user(engine: Engine, rng: random.Random | None = None) -> str:
    return (rng or random.Random()).choice(known_users(engine))


def new_user_id() -> str:
    """An id no dataset user has: the page previews a cold start with it."""
    return f"new-{uuid.uuid4().hex[:10]}"


def cold_start_text(user_id: str) -> str:
    return f"`{user_id}` has no history: a cold start."


def diversity_settings(capped: bool, cap: int, mmr_lambda: float) -> DiversitySettings:
    return DiversitySettings(category_cap=int(cap) if capped else None, mmr_lambda=float(mmr_lambda))


@dataclass(frozen=True)
class ServedChoice:
    """What the API serves a user: their arm's model, version and serving settings, else the default model."""

    model: str
    experiment: str | None = None
    variant: str | None = None
    version: str | None = None  # the version the arm's spec resolved to (None: production)
    serving: ServingParams = DEFAULT_SERVING

    @property
    def text(self) -> str:
        if self.experiment is None:
            return f"not in a running experiment: the default model `{self.model}`"
        version = f" version `{self.version}`" if self.version else ""
        settings = ", ".join(f"{k}={v}" for k, v in self.serving.non_default().items())
        serving = f" with {settings}" if settings else ""
        return f"experiment `{self.experiment}`, variant `{self.variant}`: model `{self.model}`{version}{serving}"


def served_choice(engine: Engine, user_id: str) -> ServedChoice:
    """What the API serves this user: the assigned variant's model, version and serving settings, else the default."""
    assignment = engine.experiments.assign(user_id)
    if assignment is None:
        return ServedChoice(engine.service.default_model)
    return ServedChoice(assignment.model, assignment.experiment, assignment.variant, assignment.version,
                        assignment.serving)


@dataclass(frozen=True)
class Preview:
    result: RecommendationResult
    caption: str  # which model, and why


def preview_list(engine: Engine, user_id: str, model_choice: str, n: int, diversity: DiversitySettings) -> Preview:
    """``user_id``'s list under ``model_choice`` (``AS_SERVED``: the model the API serves them)."""
    choice = served_choice(engine, user_id)
    if model_choice == AS_SERVED and choice.experiment is not None:
        # the API's own call for an arm (engine/api/routes/recommendations.py): its version and serving
        # settings over the engine's defaults, not the page's, and its n in place of the page's
        result = engine.service.recommend(user_id, choice.serving.length(n), choice.model, version=choice.version,
                                          serving=choice.serving)
    else:
        model = choice.model if model_choice == AS_SERVED else model_choice
        result = engine.service.recommend(user_id, n=n, model=model, diversity=diversity)
    why = (f"as served: {choice.text}." if model_choice == AS_SERVED else
           f"chosen here; the API serves this user {choice.text}.")
    return Preview(result, f"Model **{result.model}** — {why}")


def items_frame(result: RecommendationResult) -> pd.DataFrame:
    rows = [{"rank": r, "title": i["title"], "category": i["category"], "score": i["score"],
             "reason": i["reason"], "item_id": i["item_id"]} for r, i in enumerate(result.items, 1)]
    return pd.DataFrame(rows, columns=["rank", "title", "category", "score", "reason", "item_id"])


def score_scale(frame: pd.DataFrame) -> float:
    """The upper end of the score bars: the best score, at least ``MIN_SCORE_SCALE``."""
    top = float(frame["score"].max()) if len(frame) else 1.0
    return max(top, MIN_SCORE_SCALE)


def result_cards(result: RecommendationResult) -> list[MetricCard]:
    return [MetricCard("Cache tier", result.cache_tier, "l1 (in process), l2 (Redis), miss (computed) or fallback"),
            MetricCard("Latency", milliseconds(result.latency_seconds)),
            MetricCard("Diversity", f"{result.diversity:.2f}", "1 − share of same-category pairs in the list"),
            MetricCard("Items", len(result.items))]


def result_notice(result: RecommendationResult) -> Notice | None:
    if result.fallback:
        return Notice("warning", f"Fallback list (popular items): {result.fallback_reason}")
    if result.cold_start:
        return Notice("info", "Cold start: the user has no usable history, so the list is the most popular items.")
    return None


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
    ranked: list[tuple[str, float]] = sorted(feats.category_affinity.items(), key=lambda kv: -kv[1])
    affinity = pd.DataFrame(ranked, columns=["category", "share"])
    return UserProfile(user_id, engine.features.known_user(user_id), feats, _item_rows(engine, feats.history),
                       affinity)


def profile_cards(profile: UserProfile) -> list[MetricCard]:
    f = profile.features
    return [MetricCard("Known user", "yes" if profile.known else "no"), MetricCard("Items in history", len(f.history)),
            MetricCard("Purchases", f.total_purchases)]


def last_active_text(profile: UserProfile) -> str:
    last = profile.features.last_active
    return f"Last active {when(last)}." if last else "Never active."


def affinity_figure(profile: UserProfile) -> go.Figure | None:
    """The user's share of interactions per category; None before they have any."""
    if profile.affinity.empty:
        return None
    return charts.hbar_chart(profile.affinity["category"].tolist(), profile.affinity["share"].tolist(), height=300,
                             xaxis={"tickformat": ".0%"})


def item_profile(engine: Engine, item_id: str) -> ItemFeatures | None:
    return engine.features.get_items([item_id.strip()]).get(item_id.strip())


def popularity_shares(dataset: Dataset) -> dict[str, float]:
    """Share of users who interacted with each item (the popularity novelty is measured against;
    the readout's quality block measures against the same).

    A pass over every event: the console computes it once per process.
    """
    return quality.popularity_shares(dataset.events)


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
    categories: dict[Hashable, Hashable] = {i["item_id"]: i["category"] for i in [*a, *b]}
    # analysis.ranking takes any hashable item id; a Mapping is invariant in its key type, hence the cast
    popularity = cast(Mapping[Hashable, float], shares)
    return ListComparison(
        jaccard=jaccard(ids_a, ids_b),
        rbo=rbo(ids_a, ids_b, p=RBO_P) if ids_a or ids_b else 1.0,
        shared=[i for i in ids_a if i in set(ids_b)],
        diversity_a=intra_list_diversity([ids_a], categories=categories),
        diversity_b=intra_list_diversity([ids_b], categories=categories),
        novelty_a=novelty([ids_a], popularity),
        novelty_b=novelty([ids_b], popularity),
    )


@dataclass(frozen=True)
class ModelComparison:
    model_a: str
    model_b: str
    a: RecommendationResult
    b: RecommendationResult
    lists: ListComparison

    def sides(self) -> list[tuple[str, RecommendationResult]]:
        return [(self.model_a, self.a), (self.model_b, self.b)]


def compare_models(engine: Engine, user_id: str, n: int, model_a: str, model_b: str, diversity: DiversitySettings,
                   shares: Mapping[str, float]) -> ModelComparison:
    """``user_id``'s lists under two models, and how they differ."""
    a = engine.service.recommend(user_id, n=n, model=model_a, diversity=diversity)
    b = engine.service.recommend(user_id, n=n, model=model_b, diversity=diversity)
    return ModelComparison(model_a, model_b, a, b, compare_lists(a.items, b.items, shares))


def comparison_cards(cmp: ListComparison) -> list[MetricCard]:
    return [
        MetricCard("Jaccard overlap", f"{cmp.jaccard:.2f}", "shared items / items in either list"),
        MetricCard("Rank-biased overlap", f"{cmp.rbo:.2f}",
                   f"RBO (p={RBO_P}): agreement weighted towards the top ranks"),
        MetricCard("Diversity A / B", f"{cmp.diversity_a:.2f} / {cmp.diversity_b:.2f}",
                   "intra-list diversity: 1 − share of same-category pairs"),
        MetricCard("Novelty A / B", f"{cmp.novelty_a:.2f} / {cmp.novelty_b:.2f}",
                   "mean −log2(share of users who interacted with the item)"),
    ]


def side_caption(model: str, result: RecommendationResult) -> str:
    return f"**{model}** · {result.cache_tier} · {milliseconds(result.latency_seconds, 1)}"


def side_table(result: RecommendationResult, shared: Sequence[str]) -> pd.DataFrame:
    """One model's list beside the other's: rank, title, category, score and whether both have it."""
    frame = items_frame(result)[SIDE_COLUMNS]
    both = set(shared)
    frame.insert(1, "in both", [i["item_id"] in both for i in result.items])
    return frame


def rank_moves_figure(comparison: ModelComparison) -> go.Figure | None:
    """Each shared item's rank under model A and model B; None when the lists share nothing."""
    shared = comparison.lists.shared
    if not shared:
        return None
    rank_a = {i["item_id"]: r for r, i in enumerate(comparison.a.items, 1)}
    rank_b = {i["item_id"]: r for r, i in enumerate(comparison.b.items, 1)}
    titles = {i["item_id"]: i["title"] for i in comparison.a.items}
    moves = [{"type": "scatter", "x": [comparison.model_a, comparison.model_b], "y": [rank_a[i], rank_b[i]],
              "mode": "lines+markers", "name": titles[i], "hovertemplate": "%{y}"} for i in shared]
    return charts.figure(moves, "Rank of the shared items", showlegend=False,
                         yaxis={"autorange": "reversed", "title": {"text": "rank"}, "dtick": 1})
