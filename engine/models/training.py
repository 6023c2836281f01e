"""Train models on a stored dataset, score them on two holdouts, and register them with lineage.

``train_models`` is what ``recops train`` runs:

1. check everything first — the model names, the ``--param`` values (each must be a parameter of
   the model and parse as its type), the dataset (at least two users with interactions), EASE's
   catalogue cap — so bad input fails before any work and leaves the registry untouched;
2. build the time holdout and the per-user holdout once (``engine.models.holdout``);
3. per model: optionally tune on the time holdout (``engine.models.tuning``), score the chosen
   parameters on both holdouts, refit on every interaction for serving, and save a new version
   whose lineage records what it learnt from and how well it did (``engine.models.lineage``).

What a model learns from: the stored dataset's events plus the events tracked for it since (its
event log, ``engine.data.event_log``) up to the moment training starts — ``plan_training`` reads
them, ``train_models`` merges them in (``engine.data.logged_events``: weighted by type, events of
items outside the catalogue dropped and counted) and the lineage counts them (``events``,
``events_from``, ``events_to``).  ``events=False`` (``recops train --no-events``) trains on the
dataset alone.

Where models are fitted — the engine: in this process (``local``, the default), or for ALS on
Spark (``recops train --engine spark``, ``engine.models.spark_als``), on the master
``RECOPS_SPARK_MASTER`` names.  Everything else is the same for both — the merged data, the
holdouts, the saved format, the lineage (which adds ``engine: "spark"`` and Spark's parameters) —
so serving and experiments do not tell the versions apart.  A Spark job that fails raises
``SparkJobError`` before anything is saved: the registry is unchanged.

Logged events take part in both holdouts, as any event does.  They are the newest events, so the
time holdout — the last ``holdout_days`` before the newest event — is mostly made of them: it then
scores the question production asks, "from everything before, what did live users do next?".
Keeping them out would score every retrained version on the same, ageing slice of the import,
which says nothing about the users the model serves now.  A user seen only in the log is unknown
before the cutoff and so counts in no time-holdout score (``EvaluationSplit.from_halves`` tests
known users), while the per-user holdout splits their events like everyone's.  Holdout scores of
versions trained on different amounts of log are therefore scores on different test sets: compare
versions with an experiment, not by their offline numbers alone.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.config import Settings
from engine.data.dataset_store import StoredDataset, open_dataset
from engine.data.event_log import EventLog
from engine.data.logged_events import LoggedEvents, read_logged_events, replay_id_prefix
from engine.data.schema import Dataset, DatasetError, InteractionMatrix
from engine.data.split import interaction_events
from engine.models.base import Recommender
from engine.models.ease import CatalogueTooLargeError, check_catalogue
from engine.models.evaluation import ModelReport, evaluate_model
from engine.models.holdout import Holdout, per_user_holdout, time_holdout
from engine.models.lineage import lineage
from engine.models.registry import (
    MODEL_CLASSES,
    ModelRegistry,
    RegistryError,
    UnknownModelError,
    model_class,
    new_model,
)
from engine.models.tuning import TuningReport, tune

ALL = "all"
K = 10
LOCAL = "local"
SPARK = "spark"
ENGINES: tuple[str, ...] = (LOCAL, SPARK)
SPARK_MODELS: tuple[str, ...] = ("als",)  # the models with a Spark engine


class TrainingError(ValueError):
    """Input that training cannot use: the message says what and how to fix it."""


# what ``plan_training`` and ``train_models`` raise for input the user can fix (the registry untouched)
TRAINING_INPUT_ERRORS: tuple[type[Exception], ...] = (
    DatasetError, TrainingError, CatalogueTooLargeError, UnknownModelError,
)  # fmt: skip
# ... and a registry that cannot be read: what the CLI, the console and the retrain schedule report
# instead of trained versions (the API tells the two apart: 400 and 500)
TRAINING_REFUSALS: tuple[type[Exception], ...] = (*TRAINING_INPUT_ERRORS, RegistryError)


@dataclass(frozen=True)
class TrainingOptions:
    holdout_days: float = 7.0
    ease_max_items: int = 10_000
    tune_trials: int = 0
    k: int = K
    ann_min_items: int | None = None  # catalogues this large get an ANN index (None: never)


@dataclass(frozen=True)
class TrainingResult:
    model: str
    version: str
    stage: str
    lineage: dict[str, Any]
    total_seconds: float
    tuning: TuningReport | None = None


class FitEngine(Protocol):
    """Where models are fitted (see the module docstring): ``engine.models.spark_als.SparkFit`` is one."""

    def fit(self, model: Recommender, interactions: InteractionMatrix) -> Recommender: ...

    def lineage(self) -> dict[str, Any]:
        """What the lineage of the model fitted last adds (nothing, in process)."""
        ...


class InProcess:
    """The default engine: each model's own ``fit``, here."""

    def fit(self, model: Recommender, interactions: InteractionMatrix) -> Recommender:
        return model.fit(interactions)

    def lineage(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class SparkOptions:
    """Where ``--engine spark`` runs (``RECOPS_SPARK_*``) and keeps its scratch files and log."""

    master: str
    memory: str | None
    work_dir: Path
    log_path: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkOptions:
        return cls(settings.spark_master, settings.spark_memory, settings.data_dir / "spark",
                   settings.data_dir / "logs" / "spark.log")


def check_engine(engine: str, names: Sequence[str], tune_trials: int) -> None:
    """``--engine``: a known one; Spark fits ALS only, and does not tune (each trial would be a Spark job)."""
    if engine not in ENGINES:
        raise TrainingError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine != SPARK:
        return
    others = [n for n in names if n not in SPARK_MODELS]
    if others:
        raise TrainingError(f"--engine spark trains {', '.join(SPARK_MODELS)} only, not {', '.join(others)}; "
                            "use --model als")
    if tune_trials:
        raise TrainingError("--engine spark does not tune: tune in process (--tune), then train on Spark "
                            "with the chosen --param values")


# ---- parameters ------------------------------------------------------------------------------


def model_names(requested: str | None) -> list[str]:
    """``--model``: one known model, or ``all`` (every model, in registry order)."""
    if requested in (None, ALL):
        return list(MODEL_CLASSES)
    model_class(requested)
    return [requested]


def chosen_models(requested: str | None, n_items: int, cap: int) -> tuple[list[str], list[str]]:
    """The models to train and notes on those left out: ``all`` skips EASE above its cap (with a
    note); asking for EASE by name above it is an error raised by training."""
    names = model_names(requested)
    if requested not in (None, ALL) or "ease" not in names:
        return names, []
    try:
        check_catalogue(n_items, cap)
    except CatalogueTooLargeError as exc:
        return [n for n in names if n != "ease"], [f"ease skipped: {exc}"]
    return names, []


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(model_class(name).__init__)
    return {p.name: p for p in signature.parameters.values() if p.name != "self"}


def _coerce(name: str, parameter: inspect.Parameter, raw: str) -> Any:
    """``raw`` as the type of the parameter's default (None allowed when its annotation says so)."""
    default = parameter.default
    if raw.strip().lower() in ("none", "null") and "None" in str(parameter.annotation):
        return None
    try:
        if isinstance(default, bool):
            if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.strip().lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float) or default is None:
            return float(raw)
    except ValueError:
        kind = type(default).__name__ if default is not None else "number"
        raise TrainingError(f"--param {parameter.name}={raw!r}: {name} needs {kind} here") from None
    return raw


def parse_params(pairs: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--param key=value`` (or ``model.key=value``) → typed parameters per model in ``names``.

    An unqualified key goes to every chosen model that has it; a key no chosen model has is an error.
    """
    out: dict[str, dict[str, Any]] = {name: {} for name in names}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainingError(f"--param {pair!r}: expected key=value")
        target, dot, bare = key.rpartition(".")
        targets = [target] if dot else list(names)
        if dot and target not in out:
            raise TrainingError(f"--param {pair!r}: {target!r} is not among the models trained ({', '.join(names)})")
        matched = [t for t in targets if bare in _parameters(t)]
        if not matched:
            known = {t: sorted(_parameters(t)) for t in targets}
            raise TrainingError(f"--param {pair!r}: not a parameter of {', '.join(targets)}; parameters: {known}")
        for t in matched:
            out[t][bare] = _coerce(t, _parameters(t)[bare], raw)
    for name, params in out.items():
        try:
            new_model(name, params)  # the model's own checks (ranges, allowed values)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"--param for {name}: {exc}") from None
    return out


# ---- checks ----------------------------------------------------------------------------------


def check_dataset(dataset: Dataset, label: str) -> None:
    """Training needs at least two users and one item with interactions (events that carry taste)."""
    rows = interaction_events(dataset.events)
    rows = rows[rows["item_id"].isin(set(dataset.items["item_id"]))]
    users = rows["user_id"].nunique()
    if users < 2:
        raise TrainingError(
            f"dataset {label} has {users} user{'s' if users != 1 else ''} with interactions; "
            "collaborative models need at least 2"
        )


# ---- a training request ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingPlan:
    """What ``recops train``, ``POST /admin/train`` and the console asked for, checked: ``run`` it."""

    stored: StoredDataset
    names: list[str]
    params: dict[str, dict[str, Any]]
    options: TrainingOptions
    notes: list[str]  # models left out of ``all`` and logged events dropped, and why
    logged: LoggedEvents  # the logged events learnt from besides the dataset (none with ``events=False``)
    spark: SparkOptions | None = None  # ``--engine spark``: where; None fits in process

    def run(self, registry: ModelRegistry, progress: Callable[[str], None] | None = None) -> list[TrainingResult]:
        """Train and register; raises ``SparkJobError`` (registry unchanged) when a Spark job fails."""
        if self.spark is None:
            return train_models(self.stored, registry, self.names, self.params, self.options, progress, self.logged)
        from engine.models.spark_als import spark_fit

        spark = self.spark
        (progress or (lambda _: None))(f"starting Spark on {spark.master}")
        with spark_fit(spark.master, spark.memory, spark.work_dir, spark.log_path) as engine:
            return train_models(self.stored, registry, self.names, self.params, self.options, progress,
                                self.logged, engine)


def logged_events(settings: Settings, stored: StoredDataset, until: float) -> LoggedEvents:
    """The events logged for ``stored``'s dataset up to ``until``, checked against its catalogue."""
    return read_logged_events(EventLog.for_dataset(settings, stored.name), stored.dataset, until,
                              replay_id_prefix(stored.name, stored.version))


def logged_events_note(stored: StoredDataset, logged: LoggedEvents) -> list[str]:
    """What training says about logged events it did not use (none when it used them all)."""
    notes, version = [], f"dataset {stored.name!r} version {stored.version}"
    if logged.unknown_items:
        n = logged.unknown_items
        what = "1 logged event left out: its item is" if n == 1 else f"{n:,} logged events left out: their item is"
        notes.append(f"{what} not in the catalogue of {version}")
    if logged.replayed:
        n = logged.replayed
        what = "1 logged event left out: it is" if n == 1 else f"{n:,} logged events left out: they are"
        notes.append(f"{what} `recops replay` of rows {version} already holds")
    return notes


def plan_training(
    settings: Settings,
    dataset: str,
    dataset_version: int | None = None,
    model: str = ALL,
    param_pairs: Sequence[str] = (),
    tune_trials: int = 0,
    holdout_days: float | None = None,
    events: bool = True,
    engine: str = LOCAL,
) -> TrainingPlan:
    """Open the dataset (and, with ``events``, read its event log up to now) and check the models and
    ``key=value`` parameters, before any work.

    Raises ``DatasetError`` (no such dataset or version, an event log that does not match its
    manifests), ``UnknownModelError`` or ``TrainingError``.
    """
    stored = open_dataset(settings, dataset, dataset_version)
    logged = logged_events(settings, stored, until=time.time()) if events else LoggedEvents.none()
    names, notes = chosen_models(model, stored.dataset.n_items, settings.ease_max_items)
    notes += logged_events_note(stored, logged)
    check_engine(engine, names, tune_trials)
    params = parse_params(param_pairs, names)
    options = TrainingOptions(
        holdout_days=holdout_days if holdout_days is not None else settings.holdout_days,
        ease_max_items=settings.ease_max_items,
        tune_trials=tune_trials,
        ann_min_items=settings.ann_min_items,
    )
    if options.holdout_days <= 0:
        raise TrainingError(f"--holdout-days must be positive, got {options.holdout_days:g}")
    spark = SparkOptions.from_settings(settings) if engine == SPARK else None
    return TrainingPlan(stored, names, params, options, notes, logged, spark)


# ---- training --------------------------------------------------------------------------------


def holdout_metrics(holdout: Holdout, name: str, params: Mapping[str, Any], k: int,
                    engine: FitEngine | None = None) -> dict[str, Any]:
    """A holdout's scores for one model, keyed ``precision_at_10`` etc., with the holdout's definition."""
    if holdout.split is None:
        return {**holdout.definition, "unavailable": holdout.unavailable}
    report = evaluate_model(holdout.split, name, k, params, fit=engine.fit if engine is not None else None)
    return {**holdout.definition, **report_metrics(report, k)}


def report_metrics(report: ModelReport, k: int) -> dict[str, Any]:
    return {
        f"precision_at_{k}": report.precision,
        f"recall_at_{k}": report.recall,
        f"ndcg_at_{k}": report.ndcg,
        f"map_at_{k}": report.map,
        "coverage": report.coverage,
        "diversity": report.diversity,
        "novelty": report.novelty,
        "users": report.n_users,
        "fit_seconds": report.train_seconds,
    }


def train_models(
    stored: StoredDataset,
    registry: ModelRegistry,
    names: Sequence[str],
    params: Mapping[str, Mapping[str, Any]],
    options: TrainingOptions,
    progress: Callable[[str], None] | None = None,
    logged: LoggedEvents | None = None,
    engine: FitEngine | None = None,
) -> list[TrainingResult]:
    """Train, score and register each of ``names`` on ``stored`` and the ``logged`` events, fitting
    them with ``engine`` (in process by default; see the module docstring)."""
    say = progress or (lambda _: None)
    engine = engine if engine is not None else InProcess()
    dataset = logged.merged_into(stored.dataset) if logged is not None else stored.dataset
    label = f"{stored.name!r} (version {stored.version})"
    if logged is not None and logged.count:
        say(f"learning from {logged.count:,} logged events of {logged.users:,} users besides the dataset")
    check_dataset(dataset, label)
    if "ease" in names:
        check_catalogue(dataset.n_items, options.ease_max_items)
    if options.tune_trials < 0:
        raise TrainingError(f"--tune needs a number of trials >= 0, got {options.tune_trials}")

    holdouts = [time_holdout(dataset, options.holdout_days), per_user_holdout(dataset)]
    time_split = holdouts[0]
    if options.tune_trials and time_split.split is None:
        raise TrainingError(f"--tune chooses on the time holdout, which dataset {label} does not have: "
                            f"{time_split.unavailable}; try another --holdout-days")
    for h in holdouts:
        if h.unavailable:
            say(f"{h.kind} holdout unavailable: {h.unavailable}")
    interactions = dataset.interactions()

    results = []
    for name in names:
        started = time.perf_counter()
        chosen = dict(params.get(name, {}))
        report = None
        if options.tune_trials and time_split.split is not None:
            say(f"{name}: tuning, {options.tune_trials} trials on the time holdout")
            report = tune(time_split.split, name, options.tune_trials, fixed=chosen, k=options.k)
            chosen = report.best_params
        say(f"{name}: scoring on the holdouts")
        metrics = {h.kind: holdout_metrics(h, name, chosen, options.k, engine) for h in holdouts}
        say(f"{name}: fitting on all {interactions.matrix.nnz:,} user-item pairs")
        fit_started = time.perf_counter()
        model = engine.fit(new_model(name, chosen), interactions)
        fit_seconds = time.perf_counter() - fit_started
        record = lineage(dataset=stored.name, dataset_version=stored.version, events=stored.dataset.events,
                         params=model.params(), train_seconds=fit_seconds, metrics=metrics, logged=logged)
        record.update(engine.lineage())
        if report is not None:
            record["tuning"] = report.summary()
        version = registry.save(name, model, dataset=stored.name, lineage=record,
                                ann_min_items=options.ann_min_items)
        stage = registry.record(name, version).stage
        results.append(TrainingResult(name, version, stage, record, time.perf_counter() - started, report))
    return results

