"""``recops train`` and ``recops models list|promote|rollback``.

Input the user can fix (an unknown dataset, model or version, a ``--param`` that does not parse or
is not a parameter of the model, a dataset with one user, EASE above its size cap, nothing to roll
back to, ``--engine spark`` for a model other than ALS) prints one line on stderr and exits with 2,
the registry untouched.  A Spark job that fails (``--engine spark``: no Java, a master it cannot
reach, a killed JVM) prints one line and exits with 1, nothing registered.  A promotion or
rollback needs the audit log: when Redis cannot be reached it is refused (exit 1) rather than done
unaudited.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from engine.cli.experiments import RUNTIME_ERROR, USAGE_ERROR, text_table
from engine.config import Settings, get_settings

if TYPE_CHECKING:
    from engine.models.lifecycle import AuditSink
    from engine.models.registry import VersionRecord
    from engine.models.training import TrainingResult

log = logging.getLogger(__name__)

# the scores `models list` shows per holdout; --json has every metric
SHOWN_METRICS: tuple[tuple[str, str], ...] = (("precision_at_10", "P@10"), ("ndcg_at_10", "NDCG@10"))
HOLDOUTS: tuple[tuple[str, str], ...] = (("time", "time"), ("per_user", "per-user"))


def _fail(command: str, message: object, code: int = USAGE_ERROR) -> int:
    print(f"recops {command}: " + " ".join(str(message).split()), file=sys.stderr)
    return code


# ---- recops train ----------------------------------------------------------------------------


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="stored dataset to learn from (demo: the demo world)")
    parser.add_argument("--dataset-version", type=int, default=None, help="its version (default: the latest)")
    parser.add_argument("--model", default="all", help="a model (popularity, item_item, als, ease) or all")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="a hyper-parameter (repeatable); MODEL.KEY=VALUE for one model when training several",
    )  # fmt: skip
    parser.add_argument("--tune", type=int, default=0, metavar="N",
                        help="search N trials of hyper-parameters (Optuna TPE) on the time holdout")
    parser.add_argument("--holdout-days", type=float, default=None,
                        help="days at the end kept for the time holdout (default RECOPS_HOLDOUT_DAYS)")
    parser.add_argument("--no-events", action="store_true",
                        help="train on the dataset alone, without the events tracked for it since (its event log)")
    parser.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="fit in this process (local) or, for ALS, on Spark at RECOPS_SPARK_MASTER")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def train_command(args: argparse.Namespace) -> int:
    from engine.models.registry import ModelRegistry
    from engine.models.spark_session import SparkJobError
    from engine.models.training import TRAINING_REFUSALS, plan_training

    settings = get_settings()
    try:
        plan = plan_training(settings, args.dataset, args.dataset_version, args.model, args.param, args.tune,
                             args.holdout_days, events=not args.no_events, engine=args.engine)
        for note in plan.notes:
            print(f"recops train: {note}", file=sys.stderr)
        results = plan.run(ModelRegistry(settings.models_dir), log.info)
    except TRAINING_REFUSALS as exc:
        return _fail("train", exc)
    except SparkJobError as exc:
        return _fail("train", f"{exc}; nothing was registered", RUNTIME_ERROR)
    stored, logged = plan.stored, plan.logged
    if args.json:
        print(json.dumps([_result_json(r) for r in results], indent=2))
        return 0
    print(f"dataset {stored.name} version {stored.version}: {stored.dataset.n_users:,} users, "
          f"{stored.dataset.n_items:,} items; {logged.count:,} logged events"
          + (f" of {logged.users:,} users" if logged.count else ""))
    print(text_table(["model", "version", "stage", *_metric_headers(), "fit s", "total s"],
                     [_result_row(r) for r in results]))
    if plan.spark is not None:
        print(f"fitted by Spark on {plan.spark.master} (its log: {plan.spark.log_path})")
    for r in results:
        if r.tuning is not None:
            print(f"{r.model}: {len(r.tuning.trials)} trials ({r.tuning.sampler}), best {r.tuning.metric} "
                  f"{r.tuning.best_value:.4f} on the time holdout with {_params_text(r.tuning.best_params)}")
    for kind, label in HOLDOUTS:
        why = results[0].lineage["metrics"].get(kind, {}).get("unavailable") if results else None
        if why:
            print(f"{label} holdout unavailable: {why}")
    return 0


def _result_json(r: TrainingResult) -> dict[str, Any]:
    return {"model": r.model, "version": r.version, "stage": r.stage, "total_seconds": r.total_seconds,
            "lineage": r.lineage}


def _metric_headers() -> list[str]:
    return [f"{label} {short}" for _, label in HOLDOUTS for _, short in SHOWN_METRICS]


def _metric_cells(metrics: Mapping[str, Any]) -> list[str]:
    cells = []
    for kind, _ in HOLDOUTS:
        scores = metrics.get(kind, {})
        cells += [f"{scores[key]:.4f}" if isinstance(scores.get(key), float) else "-" for key, _ in SHOWN_METRICS]
    return cells


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={f'{v:.4g}' if isinstance(v, float) else v}" for k, v in sorted(params.items()))


def _result_row(r: TrainingResult) -> list[str]:
    return [r.model, r.version, r.stage, *_metric_cells(r.lineage["metrics"]),
            f"{r.lineage['train_seconds']:.2f}", f"{r.total_seconds:.2f}"]


# ---- recops models ---------------------------------------------------------------------------


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("list", help="every version: dataset, stage, lineage and offline metrics")
    p.add_argument("--dataset", default=None, help="only versions trained on this dataset")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("promote", help="serve VERSION of MODEL for its dataset (the previous one is archived)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--dataset", default=None, help="refuse unless VERSION was trained on this dataset")
    p = sub.add_parser("rollback", help="serve the previous production version of MODEL again")
    p.add_argument("model")
    p.add_argument("--dataset", default="demo", help="dataset whose production version to roll back (demo)")


def models_command(args: argparse.Namespace) -> int:
    from engine.models.registry import LifecycleError, ModelRegistry, RegistryError, UnknownModelError

    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    try:
        if args.action == "list":
            return _list(registry.records(args.dataset), args.json)
        with open_audit_log(settings) as audit:
            return _switch(registry, audit, args)
    except (UnknownModelError, LifecycleError, RegistryError) as exc:
        return _fail(f"models {args.action}", exc)
    except AuditUnreachable as exc:
        return _fail(f"models {args.action}", exc, RUNTIME_ERROR)


def _list(records: Sequence[VersionRecord], as_json: bool) -> int:
    if as_json:
        # a version saved before lineage has no ``events`` of its own: the key is there, null
        print(json.dumps([{"events": None, **r.row()} for r in records], indent=2))
        return 0
    if not records:
        print("no trained models")
        return 0
    # the number (``als@7`` in an experiment's variant) comes last: the columns before it are as they were
    rows = [[r.model, r.version, r.dataset, r.stage, r.trained_at or "-", _count(r.lineage.get("interactions")),
             _count(r.lineage.get("events")), _params_text(r.lineage.get("params", {})) or "-",
             *_metric_cells(r.lineage.get("metrics", {})), str(r.number or "-")] for r in records]
    print(text_table(["model", "version", "dataset", "stage", "trained_at", "interactions", "events", "params",
                      *_metric_headers(), "number"], rows))
    return 0


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


class AuditUnreachable(RuntimeError):
    pass


@contextmanager
def open_audit_log(settings: Settings) -> Iterator[AuditSink]:
    """The audit log in the engine's Redis; ``AuditUnreachable`` when it does not answer."""
    import redis

    from engine.runtime import redis_client
    from engine.storage.audit import AuditLog
    from engine.storage.embedded_redis import RedisUnavailableError, ensure_redis_url, redact_url
    from engine.storage.keys import Keys

    try:
        url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    except (RedisUnavailableError, OSError) as exc:
        raise AuditUnreachable(f"no Redis for the audit log ({exc}); nothing was changed") from exc
    client = redis_client(url)
    try:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise AuditUnreachable(
                f"Redis at {redact_url(url)} does not answer ({exc}); refusing to change models without an "
                "audit record, nothing was changed"
            ) from exc
        yield AuditLog(client, Keys(settings.key_prefix))
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()


def _switch(registry: Any, audit: AuditSink, args: argparse.Namespace) -> int:
    from engine.models import lifecycle

    actor = f"cli:{getpass.getuser()}"
    try:
        if args.action == "promote":
            change = lifecycle.promote(registry, audit, actor, args.model, args.version, args.dataset)
        else:
            change = lifecycle.rollback(registry, audit, actor, args.model, args.dataset)
    except lifecycle.AuditUnavailableError as exc:
        raise AuditUnreachable(str(exc)) from exc
    was = f" (was {change.previous}, now archived)" if change.previous else ""
    print(f"{change.model} on {change.dataset}: {change.version} is production{was}; "
          "serving processes pick it up within RECOPS_MODEL_POLL_SECONDS")
    return 0
