"""Offline evaluation of the models, following Microsoft Recommenders' protocol.

1. ``stratified_split`` each user's distinct items 75/25 with seed 42 — Recommenders' own
   ``python_stratified_split``, row for row (``engine.data.split``; their published MovieLens table
   stratifies by item instead: ``EvaluationSplit.build(..., by="item")``);
2. train every model on the train events;
3. for each test user (known at training time), recommend ``k`` items, never one of their train
   items; every test item of theirs is relevant;
4. precision, recall, NDCG and MAP at k (``analysis.ranking``; MAP divides by min(k, |relevant|)),
   then beyond-accuracy: catalog coverage over the training items, intra-list diversity by
   category, novelty as the mean −log2 of the fraction of training users who had the item.

``recops evaluate`` runs it: ``--dataset demo`` on the demo world the settings describe
(``RECOPS_DEMO_SEED``, ``RECOPS_DEMO_USERS``, ``RECOPS_DEMO_ITEMS``; the split keeps its own seed 42),
``--dataset movielens --path DIR`` on a MovieLens directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.ranking import catalog_coverage, intra_list_diversity, novelty, ranking_metrics
from engine.config import Settings
from engine.data.demo import DemoWorld, position_bias
from engine.data.schema import Dataset, DatasetError, InteractionMatrix
from engine.data.split import StratifyBy, stratified_split
from engine.models.base import Recommender
from engine.models.registry import MODEL_CLASSES, new_model

DEFAULT_MODELS: tuple[str, ...] = ("popularity", "item_item", "als")


@dataclass(frozen=True)
class ModelReport:
    model: str
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    diversity: float
    novelty: float
    train_seconds: float
    n_users: int
    # demo world only: expected clicks of the lists as a share of the best possible lists
    truth_share: float | None = None


@dataclass
class EvaluationSplit:
    """What every model of one evaluation shares: the training matrix and each test user's items."""

    train: InteractionMatrix
    test_users: list[str]
    relevant: list[set[str]]
    # keyed by item id; typed as analysis.ranking takes them (its Mapping keys are any Hashable)
    categories: Mapping[Hashable, Hashable]
    user_share: Mapping[Hashable, float]  # item → fraction of training users who had it (for novelty)

    @classmethod
    def build(
        cls, dataset: Dataset, seed: int = 42, min_rating: float | None = None, by: StratifyBy = "user"
    ) -> EvaluationSplit:
        """The stratified split (``engine.data.split``), per user unless ``by="item"``."""
        train_events, test_events = stratified_split(dataset.events, seed=seed, min_rating=min_rating, by=by)
        if train_events.empty or test_events.empty:
            raise DatasetError(f"{dataset.name}: too few interactions per user to hold any out for testing")
        return cls.from_halves(dataset, train_events, test_events)

    @classmethod
    def from_halves(cls, dataset: Dataset, train_events: pd.DataFrame, test_events: pd.DataFrame) -> EvaluationSplit:
        """Train on ``train_events``; each user known in training must find their test items.

        A test item the user already had in training is not counted: the lists never show it.
        """
        train = dataset.with_events(train_events, name=f"{dataset.name}-train").interactions()
        test = test_events[test_events["user_id"].isin(train.user_index)]
        had = pd.MultiIndex.from_frame(train_events[["user_id", "item_id"]])
        test = test[~pd.MultiIndex.from_frame(test[["user_id", "item_id"]]).isin(had)]
        if test.empty:
            raise DatasetError(f"{dataset.name}: no user known in training has a new item to find in the test half")
        grouped = test.groupby("user_id", sort=True)["item_id"].agg(set)
        binary = train.matrix.copy()
        binary.data[:] = 1.0
        users_per_item = np.asarray(binary.sum(axis=0)).ravel()
        n_train_users = max(binary.shape[0], 1)
        return cls(
            train=train,
            test_users=[str(u) for u in grouped.index],
            relevant=list(grouped.to_numpy()),
            categories=dict(zip(dataset.items["item_id"], dataset.items["category"], strict=True)),
            user_share={
                str(train.item_ids[i]): float(users_per_item[i] / n_train_users)
                for i in np.flatnonzero(users_per_item)
            },
        )

    @property
    def n_train_items(self) -> int:
        return len(self.user_share)


def truth_share(world: DemoWorld, split: EvaluationSplit, lists: Sequence[Sequence[str]], k: int,
                sample: int = 2_000, seed: int = 0) -> float:
    """Mean over (sampled) test users of E[clicks of their list] / E[clicks of the ideal list].

    Only the demo world knows the truth.  Offline metrics reward predicting what the old system
    happened to show (every held-out view is "relevant"); this says how good the list really is.
    The ideal list is the user's k most attractive items outside their train items: sorting by
    attractiveness maximises expected clicks under any decreasing position bias.
    """
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(split.test_users), size=min(sample, len(split.test_users)), replace=False)
    bias = position_bias(np.arange(k))
    shares = []
    for row in chosen:
        user = split.test_users[row]
        attract = world.relevance(user)
        u = split.train.user_index[user]
        seen = split.train.matrix.indices[split.train.matrix.indptr[u] : split.train.matrix.indptr[u + 1]]
        seen_items = world.item_index(split.train.item_ids[seen]) if len(seen) else np.empty(0, dtype=np.int64)
        candidates = attract.copy()
        candidates[seen_items] = -np.inf
        ideal = np.sort(candidates)[::-1][:k]
        best = float(np.sum(bias[: len(ideal)] * np.where(np.isfinite(ideal), ideal, 0.0)))
        got = attract[world.item_index(list(lists[row]))] if lists[row] else np.empty(0)
        shares.append(float(np.sum(bias[: len(got)] * got)) / best if best > 0 else 0.0)
    return float(np.mean(shares)) if shares else 0.0


def evaluate_model(
    split: EvaluationSplit,
    name: str,
    k: int = 10,
    params: Mapping[str, Any] | None = None,
    world: DemoWorld | None = None,
    fit: Callable[[Recommender, InteractionMatrix], Recommender] | None = None,
) -> ModelReport:
    """Train model ``name`` on the split's train half and score its top-k lists for the test users.

    ``fit`` fits the model elsewhere than in this process (``recops train --engine spark``)."""
    model = new_model(name, params)
    started = time.perf_counter()
    model = fit(model, split.train) if fit is not None else model.fit(split.train)
    train_seconds = time.perf_counter() - started
    lists = [[item for item, _ in model.recommend(user, n=k)] for user in split.test_users]
    accuracy = ranking_metrics(lists, split.relevant, k)
    return ModelReport(
        model=name,
        precision=accuracy["precision"],
        recall=accuracy["recall"],
        ndcg=accuracy["ndcg"],
        map=accuracy["map"],
        coverage=catalog_coverage(lists, split.n_train_items),
        diversity=intra_list_diversity(lists, categories=split.categories),
        novelty=novelty(lists, split.user_share),
        train_seconds=train_seconds,
        n_users=len(split.test_users),
        truth_share=truth_share(world, split, lists, k) if world is not None else None,
    )


def evaluate(
    dataset: Dataset,
    k: int = 10,
    models: Sequence[str] = DEFAULT_MODELS,
    seed: int = 42,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    min_rating: float | None = None,
    world: DemoWorld | None = None,
) -> list[ModelReport]:
    """One report per model, all trained and tested on the same split (see the module docstring)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    unknown = [m for m in models if m not in MODEL_CLASSES]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {sorted(MODEL_CLASSES)}")
    split = EvaluationSplit.build(dataset, seed=seed, min_rating=min_rating)
    params = params or {}
    return [evaluate_model(split, name, k, params.get(name), world) for name in models]


# ---- output ----------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "{}"),
    ("precision", "prec@k", "{:.4f}"),
    ("recall", "recall@k", "{:.4f}"),
    ("ndcg", "ndcg@k", "{:.4f}"),
    ("map", "map@k", "{:.4f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("diversity", "diversity", "{:.3f}"),
    ("novelty", "novelty", "{:.2f}"),
    ("truth_share", "truth", "{:.3f}"),
    ("train_seconds", "train s", "{:.2f}"),
    ("n_users", "users", "{}"),
)


def format_table(reports: Sequence[ModelReport]) -> str:
    """A plain-text table, one row per model, columns aligned."""
    header = [title for _, title, _ in _COLUMNS]
    rows = [["-" if getattr(r, attr) is None else fmt.format(getattr(r, attr)) for attr, _, fmt in _COLUMNS]
            for r in reports]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def reports_to_json(reports: Sequence[ModelReport], **meta: Any) -> str:
    """``{"reports": [...], **meta}`` as JSON (``meta``: dataset name, k, ...)."""
    return json.dumps({**meta, "reports": [asdict(r) for r in reports]}, indent=2)


# ---- command line ----------------------------------------------------------------------------


def load_dataset(kind: str, path: str | None, settings: Settings) -> tuple[Dataset, DemoWorld | None]:
    """The dataset to evaluate on; the demo world is the one ``RECOPS_DEMO_*`` describe."""
    if kind == "demo":
        world = DemoWorld.generate(seed=settings.demo_seed, n_users=settings.demo_users, n_items=settings.demo_items)
        return world.dataset(), world
    if kind == "movielens":
        if not path:
            raise DatasetError("--dataset movielens needs --path DIR (an ml-100k or ml-latest directory)")
        from engine.data.movielens import load_movielens

        return load_movielens(Path(path)), None
    raise DatasetError(f"unknown dataset {kind!r}: use demo or movielens")


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    """``recops evaluate``: print the table (or JSON); a dataset problem is one line and exit code 2."""
    k = int(getattr(args, "k", 10))
    kind = getattr(args, "dataset", "demo")
    try:
        dataset, world = load_dataset(kind, getattr(args, "path", None), settings)
        reports = evaluate(dataset, k=k, world=world)
    except DatasetError as exc:
        print(f"recops evaluate: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(reports_to_json(reports, dataset=dataset.name, k=k))
    else:
        print(f"{dataset.name}: {dataset.n_users} users, {dataset.n_items} items, k={k}")
        print(format_table(reports))
        if world is not None:
            print("truth: expected clicks of the lists as a share of the ideal lists (the demo world's ground "
                  "truth; offline metrics there reward predicting past exposure)")
    return 0
