"""What the Models page shows and does: the dataset served, every model version of a dataset with
its lineage and offline metrics, and promotions and rollbacks confirmed by an operator.

A switch goes through ``engine.models.lifecycle`` with the engine's audit log, as ``recops models
promote|rollback`` does, so the console and the CLI leave the same record; every serving process
picks it up by itself (``engine.models.watch``), and this console's engine is reloaded at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import redis

from engine.console import charts, model_specs
from engine.console.cards import MetricCard
from engine.console.experiment_form import ExperimentForm, VariantRow
from engine.console.notices import Notice
from engine.models import lifecycle
from engine.models.registry import (
    CANDIDATE,
    PRODUCTION,
    LifecycleError,
    ModelRegistry,
    RegistryError,
    UnknownModelError,
    VersionRecord,
)
from engine.runtime import Engine

HOLDOUTS: tuple[tuple[str, str], ...] = (("time", "time holdout"), ("per_user", "per-user holdout"))
METRICS: tuple[tuple[str, str], ...] = (("precision_at_10", "Precision@10"), ("ndcg_at_10", "NDCG@10"))
TABLE_COLUMNS = ["model", "version", "stage", "trained_at", "dataset_version", "interactions", "events",
                 *(f"{label} {holdout}" for holdout, _ in HOLDOUTS for _, label in METRICS), "params",
                 "fit_seconds", "code_version"]
BAR_HEIGHT = 26  # px per bar of the metrics plot (two per version)


# ----------------------------------------------------------------------------- the dataset served


def dataset_cards(summary: Mapping[str, Any]) -> list[MetricCard]:
    """``StoredDataset.summary()`` as cards: which dataset is served, its version and its size."""
    return [MetricCard("Dataset served", str(summary["name"]), "RECOPS_DATASET / `recops up --dataset NAME`"),
            MetricCard("Version", f"v{summary['version']}"),
            MetricCard("Interactions", f"{summary['interactions']:,}"),
            MetricCard("Users", f"{summary['users']:,}"),
            MetricCard("Items", f"{summary['items']:,}")]


def dataset_text(summary: Mapping[str, Any]) -> str:
    """One line for the Overview: ``Serving **ml-100k** v1: 100,000 interactions, 943 users, 1,682 items.``"""
    return (f"Serving dataset **{summary['name']}** v{summary['version']}: {summary['interactions']:,} "
            f"interactions, {summary['users']:,} users, {summary['items']:,} items.")


def dataset_caption(summary: Mapping[str, Any], served: Mapping[str, str], default: str | None) -> str:
    """The time range of the data and the production version of each model this process serves."""
    span = (f"Interactions from {summary['data_from']} to {summary['data_to']}." if summary.get("data_from")
            else "The interactions have no timestamps.")
    models = ", ".join(f"`{name}` {version}" for name, version in sorted(served.items())) or "none"
    return f"{span} Serving {models}; default model `{default or '-'}`."


# ----------------------------------------------------------------------------- versions and lineage


def open_registry(engine: Engine) -> ModelRegistry:
    """The registry as every process sees it (read afresh: another process may have changed it)."""
    return ModelRegistry(engine.settings.models_dir)


def dataset_choices(registry: ModelRegistry, served: str) -> list[str]:
    """Datasets with trained versions, the served one first (even before it has any)."""
    return [served, *(d for d in registry.datasets() if d != served)]


def _metric(record: VersionRecord, holdout: str, key: str) -> float | None:
    value = record.lineage.get("metrics", {}).get(holdout, {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}" for k, v in sorted(params.items()))


def versions_frame(records: Sequence[VersionRecord]) -> pd.DataFrame:
    """One row per version: stage, lineage and the offline metrics of both holdouts (NaN when not scored)."""
    rows = []
    for r in records:
        lin = r.lineage
        row: dict[str, Any] = {
            "model": r.model, "version": r.version, "stage": r.stage, "trained_at": r.trained_at,
            "dataset_version": lin.get("dataset_version"), "interactions": lin.get("interactions"),
            "events": lin.get("events"), "params": _params_text(lin.get("params", {})),
            "fit_seconds": lin.get("train_seconds"), "code_version": lin.get("code_version"),
        }
        for holdout, _ in HOLDOUTS:
            for key, label in METRICS:
                row[f"{label} {holdout}"] = _metric(r, holdout, key)
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def version_label(record: VersionRecord) -> str:
    """``als 2026-12-02 01:45:23 (production)``: model, when it was trained, stage."""
    trained = record.trained_at
    moment = datetime.fromisoformat(trained).strftime("%Y-%m-%d %H:%M:%S") if trained else record.version
    return f"{record.model} {moment} ({record.stage})"


def scored(records: Sequence[VersionRecord]) -> list[VersionRecord]:
    """The versions with at least one holdout score (versions trained at a first start have none)."""
    return [r for r in records if any(_metric(r, h, k) is not None for h, _ in HOLDOUTS for k, _ in METRICS)]


def metric_figure(records: Sequence[VersionRecord], key: str, title: str) -> go.Figure | None:
    """``key`` (a metric at 10) of every scored version on both holdouts, side by side; None when none is scored."""
    shown = scored(records)
    if not shown:
        return None
    labels = [version_label(r) for r in shown]
    bars = [{"type": "bar", "orientation": "h", "name": name, "y": labels,
             "x": [_metric(r, holdout, key) for r in shown], "hovertemplate": "%{x:.4f}"}
            for holdout, name in HOLDOUTS]
    return charts.figure(bars, title, height=80 + BAR_HEIGHT * len(HOLDOUTS) * len(shown), fit_labels=True,
                         barmode="group", showlegend=True, yaxis={"autorange": "reversed"},
                         xaxis={"tickformat": ".2f", "rangemode": "tozero"})


def unscored_text(records: Sequence[VersionRecord]) -> str | None:
    missing = len(records) - len(scored(records))
    if not missing:
        return None
    return (f"{missing} version(s) have no holdout scores (trained at the engine's first start); "
            "`recops train` scores every version it makes.")


# ----------------------------------------------------------------------------- promote and roll back


def promotable(records: Sequence[VersionRecord], model: str) -> list[str]:
    """Versions of ``model`` that can be promoted (candidates first, newest first; then archived ones)."""
    mine = [r for r in records if r.model == model and r.stage != PRODUCTION]
    candidates = sorted((r.version for r in mine if r.stage == CANDIDATE), reverse=True)
    archived = sorted((r.version for r in mine if r.stage != CANDIDATE), reverse=True)
    return candidates + archived


def production_version(records: Sequence[VersionRecord], model: str) -> str | None:
    return next((r.version for r in records if r.model == model and r.stage == PRODUCTION), None)


@dataclass(frozen=True)
class Rollback:
    model: str
    dataset: str
    current: str
    target: str


def rollback_choice(registry: ModelRegistry, model: str, dataset: str) -> Rollback | None:
    """What rolling ``model`` back on ``dataset`` would do; None when there is nothing to go back to."""
    history = registry.production_history(model, dataset)
    return Rollback(model, dataset, history[-1], history[-2]) if len(history) >= 2 else None


def confirm_promote_text(model: str, version: str, dataset: str, current: str | None, poll_seconds: float) -> str:
    was = f"`{current}` is archived" if current else "nothing served it before"
    return (f"Serve **{model}** version `{version}` on dataset **{dataset}**: {was}. Every serving process "
            f"switches within {poll_seconds:g} s, and the change is written to the audit log.")


def confirm_rollback_text(choice: Rollback, poll_seconds: float) -> str:
    return (f"Serve **{choice.model}** version `{choice.target}` on dataset **{choice.dataset}** again: "
            f"`{choice.current}` is archived. Every serving process switches within {poll_seconds:g} s, and the "
            "change is written to the audit log.")


def promote_action(model: str, version: str, dataset: str) -> dict[str, Any]:
    """What a promotion's confirmation dialog stores for ``run_confirmed``."""
    return {"kind": "promote", "model": model, "version": version, "dataset": dataset}


def run_confirmed(engine: Engine, action: Mapping[str, Any], actor: str) -> Notice:
    """Run the switch a confirmation dialog stored (``{"kind": "promote", "model", "version", "dataset"}`` or
    ``{"kind": "rollback", "model", "dataset"}``) as ``actor``; what happened, or why nothing did."""
    kind = action.get("kind")
    if kind not in ("promote", "rollback"):
        return Notice("error", f"Unknown action {kind!r}; nothing was changed.")
    models = open_registry(engine)
    try:
        engine.redis.ping()  # the audit log must answer before anything is switched
    except redis.RedisError as exc:
        return Notice("error", f"The audit log (Redis) does not answer ({exc}); nothing was changed.")
    try:
        if kind == "promote":
            change = lifecycle.promote(models, engine.audit, actor, action["model"], action["version"],
                                       action["dataset"])
        else:
            change = lifecycle.rollback(models, engine.audit, actor, action["model"], action["dataset"])
    except (UnknownModelError, LifecycleError, RegistryError, lifecycle.AuditUnavailableError) as exc:
        return Notice("error", f"{exc}. Nothing was changed.")
    if change.dataset == engine.dataset.name:
        engine.reload_models()  # this console at once; serving processes through their watchers
    was = f" (`{change.previous}` archived)" if change.previous else ""
    verb = "Promoted" if kind == "promote" else "Rolled back"
    return Notice("success", f"{verb} **{change.model}** on {change.dataset}: `{change.version}` is production{was}.")


# ----------------------------------------------------------------------------- A/B test a candidate


def testable_candidates(records: Sequence[VersionRecord], dataset: str, served_dataset: str) -> list[VersionRecord]:
    """Candidates an experiment can test against production, by model, newest first: versions of the served dataset (the
    only one experiments serve) whose model has a production version there."""
    if dataset != served_dataset:
        return []
    newest_first = sorted((r for r in records if r.stage == CANDIDATE and production_version(records, r.model)),
                          key=lambda r: r.version, reverse=True)
    return sorted(newest_first, key=lambda r: r.model)


def candidate_label(record: VersionRecord, number: int) -> str:
    """``als v7 · trained 2026-12-02 01:45 · 1,234 events``: a candidate in a select box."""
    trained = (record.trained_at or "")[:16].replace("T", " ")
    events = record.lineage.get("events")
    return " · ".join(p for p in (f"{record.model} v{number}", f"trained {trained}" if trained else "",
                                  f"{events:,} events" if isinstance(events, int) else "") if p)


def _training_words(record: VersionRecord) -> str:
    lin = record.lineage
    words = [f"{lin.get('dataset', record.dataset)}" + (f" v{lin['dataset_version']}" if lin.get("dataset_version")
                                                          else "")]
    counts = [f"{lin[k]:,} {label}" for k, label in (("interactions", "interactions"), ("events", "logged events"))
              if isinstance(lin.get(k), int)]
    if counts:
        words.append(f"({', '.join(counts)})")
    return " ".join(words)


def suggested_key(base: str, taken: Collection[str]) -> str:
    """``base``, or ``base-2``, ``base-3``… when an experiment already has it."""
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}-{n}"
    return key


def ab_test_form(record: VersionRecord, number: int, production_number: int | None, taken: Collection[str]
                 ) -> ExperimentForm:
    """The experiment editor's values for testing candidate ``record`` (version ``number`` on the served dataset)
    against its model's production version: control ``<model>@production``, treatment ``<model>@<number>``,
    half the traffic each, with a key, a name and a hypothesis that say so."""
    model = record.model
    against = f"production {model}" + (f" v{production_number}" if production_number else "")
    return ExperimentForm(
        key=suggested_key(f"{model}-v{number}-vs-production", taken),
        name=f"{model} v{number} (candidate) vs production",
        hypothesis=f"candidate {model} v{number} trained on {_training_words(record)} beats {against} on the goal "
                   "metric",
        variants=(VariantRow("control", model_specs.spec(model, PRODUCTION), 0.5),
                  VariantRow("treatment", model_specs.spec(model, number), 0.5)))
