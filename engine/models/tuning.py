"""Hyper-parameter search for ``recops train --tune N``: Optuna's TPE sampler, seeded.

Each trial fits the model on the time holdout's training half and scores NDCG@k on what users did
afterwards; the best trial's parameters win.  The first trial is always the model's defaults (with
the user's fixed ``--param`` values), so tuning never picks something worse than not tuning on
the holdout it optimises.  Parameters given with ``--param`` are held fixed, not searched.

The per-user holdout is not used to choose, so its scores in the lineage stay an honest estimate.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.models.evaluation import EvaluationSplit, evaluate_model
from engine.models.registry import model_class

SEED = 42
SAMPLER = f"optuna TPE (seed {SEED})"

# name → (parameter, how to draw it); each draw is (kind, low, high[, log]) or ("choice", options)
Space = dict[str, tuple[Any, ...]]
SEARCH_SPACES: dict[str, Space] = {
    "popularity": {"half_life_days": ("float", 1.0, 365.0, True)},
    "item_item": {
        "similarity": ("choice", ("cosine", "jaccard", "lift")),
        "time_decay_half_life_days": ("float", 1.0, 365.0, True),
        "top_k_neighbours": ("int", 10, 400, True),
    },
    "als": {
        "factors": ("choice", (32, 48, 64, 96, 128)),
        "regularization": ("float", 1.0, 200.0, True),
        "alpha": ("float", 0.05, 5.0, True),
        "iterations": ("int", 5, 30, False),
        "bm25_k1": ("float", 0.5, 200.0, True),
        "bm25_b": ("float", 0.0, 1.0, False),
    },
    "ease": {
        "regularization": ("float", 10.0, 5_000.0, True),
        "dropout": ("float", 0.0, 0.9, False),
    },
}


@dataclass(frozen=True)
class TuningReport:
    model: str
    best_params: dict[str, Any]
    best_value: float
    metric: str
    trials: list[tuple[dict[str, Any], float]] = field(repr=False)
    sampler: str = SAMPLER

    def summary(self) -> dict[str, Any]:
        """What the lineage keeps: how the parameters were chosen."""
        return {"sampler": self.sampler, "trials": len(self.trials), "metric": self.metric,
                "objective": "time holdout", "best_value": self.best_value}


def _draw(trial: Any, name: str, spec: tuple[Any, ...]) -> Any:
    kind = spec[0]
    if kind == "choice":
        return trial.suggest_categorical(name, list(spec[1]))
    if kind == "int":
        return trial.suggest_int(name, spec[1], spec[2], log=spec[3])
    return trial.suggest_float(name, spec[1], spec[2], log=spec[3])


def defaults(name: str) -> dict[str, Any]:
    signature = inspect.signature(model_class(name).__init__)
    return {p.name: p.default for p in signature.parameters.values() if p.name != "self"}


def tune(
    split: EvaluationSplit,
    name: str,
    n_trials: int,
    fixed: Mapping[str, Any] | None = None,
    k: int = 10,
    on_trial: Callable[[int, dict[str, Any], float], None] | None = None,
) -> TuningReport:
    """Search ``name``'s parameters over ``n_trials`` trials, maximising NDCG@k on ``split``."""
    import optuna  # imported here: a second of import time that only tuning should pay

    fixed = dict(fixed or {})
    space = {p: spec for p, spec in SEARCH_SPACES.get(name, {}).items() if p not in fixed}
    trials: list[tuple[dict[str, Any], float]] = []

    def objective(trial: Any) -> float:
        params = {**fixed, **{p: _draw(trial, p, spec) for p, spec in space.items()}}
        value = evaluate_model(split, name, k, params).ndcg
        trials.append((params, value))
        if on_trial is not None:
            on_trial(len(trials), params, value)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED))
    start = {p: v for p, v in defaults(name).items() if p in space}
    if start:
        study.enqueue_trial(start)
    study.optimize(objective, n_trials=max(n_trials, 1) if space else 1)
    best_params, best_value = max(trials, key=lambda t: t[1])
    return TuningReport(name, best_params, best_value, f"ndcg_at_{k}", trials)
