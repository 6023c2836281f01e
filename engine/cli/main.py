"""The ``recops`` command line.  Each sub-command parses its flags here and calls the engine."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from engine.config import Settings, get_settings, settings_error

Handler = Callable[[argparse.Namespace], int]
DATASET_HELP = ("dataset to serve: demo (the demo world, the default) or one imported with `recops import`; "
                "default RECOPS_DATASET")


def _settings(dataset: str | None = None) -> Settings:
    """The environment's settings; ``dataset`` (``--dataset``) overrides ``RECOPS_DATASET``."""
    settings = get_settings()
    return settings if dataset is None else settings.model_copy(update={"dataset": dataset})


def cmd_demo(args: argparse.Namespace) -> int:
    """Prepare the demo world and models, warm the most active users, print a few lists."""
    from engine.runtime import build_engine

    settings = _settings()
    engine = build_engine(settings, start_listener=False)
    try:
        users = engine.features.top_active_users(args.warm)
        report = engine.warm_now(users, n=args.n)  # each user's experiment arm's lists, else the defaults
        arms = report.arms_text()
        print(f"warmed {report.users} users in {report.seconds:.2f}s" + (f" (lists per arm: {arms})" if arms else ""))
        for user in [*users[:2], "new-user-without-history"]:
            result = engine.service.recommend(user, n=args.n)
            print(f"\n{user}  model={result.model} tier={result.cache_tier} "
                  f"latency={result.latency_seconds * 1000:.2f} ms cold_start={result.cold_start}")
            for rank, item in enumerate(result.items, 1):
                print(f"  {rank:2d}. {item['title']:<40} {item['category']:<16} {item['score']:8.4f}  {item['reason']}")
    finally:
        engine.close()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from engine.cli.up import StackOptions, up

    options = StackOptions(
        prometheus=not args.no_prometheus, simulator=not args.no_simulator, console=not args.no_console,
        api_port=args.api_port, console_port=args.console_port, prometheus_port=args.prometheus_port,
        simulator_rate=args.simulator_rate, workers=args.workers, redis_cluster=args.redis_cluster,
    )
    return up(_settings(args.dataset), options)


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.cli.experiments import USAGE_ERROR
    from engine.cli.serve import serve
    from engine.data.schema import DatasetError
    from engine.models.training import TrainingError

    settings = _settings(args.dataset)
    try:
        serve(settings, host=args.host or settings.api_host, port=args.port or settings.api_port,
              workers=args.workers)
    except (DatasetError, TrainingError) as exc:
        print("recops serve: " + " ".join(str(exc).split()), file=sys.stderr)
        return USAGE_ERROR
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from engine.config import settings_table

    print(settings_table())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.models.evaluation import evaluate_command

    return evaluate_command(args, _settings())


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str,
    add_arguments: Callable[[argparse.ArgumentParser], None], handler: Handler,
) -> None:
    """A sub-command whose flags its own module declares."""
    parser = sub.add_parser(name, help=help_text)
    add_arguments(parser)
    parser.set_defaults(handler=handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recops", description="RecOps recommendation engine and console")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="prepare the demo world and models, warm the cache, print lists")
    p.add_argument("--warm", type=int, default=500, help="warm the N most active users")
    p.add_argument("--n", type=int, default=10)
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("up", help="start the whole stack: Redis, API, Prometheus, simulator, console")
    p.add_argument("--no-prometheus", action="store_true")
    p.add_argument("--no-simulator", action="store_true")
    p.add_argument("--no-console", action="store_true")
    p.add_argument("--api-port", type=int)
    p.add_argument("--console-port", type=int)
    p.add_argument("--prometheus-port", type=int)
    p.add_argument("--simulator-rate", type=float, default=3.0, help="requests per second")
    p.add_argument("--dataset", default=None, help=DATASET_HELP)
    p.add_argument("--workers", type=int, default=1, help="API worker processes")
    p.add_argument("--redis-cluster", action="store_true",
                   help="run against a local 3-master Redis Cluster (started under the data dir, stopped on exit)")
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("serve", help="run the HTTP API alone (REDIS_URL or the embedded Redis)")
    p.add_argument("--dataset", default=None, help=DATASET_HELP)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(handler=cmd_serve)

    from engine.data.fetch import add_fetch_arguments, fetch_command

    _command(sub, "fetch-movielens", "MovieLens-100k from the recbole wheel on PyPI, as u.data/u.item",
             add_fetch_arguments, fetch_command)

    from engine.cli.datasets import add_datasets_arguments, add_import_arguments, datasets_command, import_command

    _command(sub, "import", "import interactions (and items) from CSV or Parquet as a new dataset version",
             add_import_arguments, import_command)

    _command(sub, "datasets", "list imported datasets, show a version's manifest",
             add_datasets_arguments, datasets_command)

    p = sub.add_parser("config", help="print the configuration table (environment variables)")
    p.set_defaults(handler=cmd_config)

    from engine.cli.simulate import add_simulate_arguments, simulate_command

    _command(sub, "simulate", "simulated users of the demo world sending real traffic to the API",
             add_simulate_arguments, simulate_command)

    from engine.cli.replay import add_replay_arguments, replay_command

    _command(sub, "replay", "a dataset's interactions from a time on, sent to the API as live traffic",
             add_replay_arguments, replay_command)

    from engine.cli.consume import add_consume_arguments, consume_command

    _command(sub, "consume", "move tracked events from the Redis stream into the dataset's event log (Parquet)",
             add_consume_arguments, consume_command)

    from engine.cli.experiments import (
        add_analyze_arguments,
        add_experiments_arguments,
        analyze_command,
        experiments_command,
    )

    _command(sub, "analyze", "read out an experiment from a CSV of per-variant sums (no Redis)",
             add_analyze_arguments, analyze_command)

    _command(sub, "experiments", "list, create, start, pause, stop and read out experiments",
             add_experiments_arguments, experiments_command)

    from engine.cli.models import add_models_arguments, add_train_arguments, models_command, train_command

    _command(sub, "train", "train models on a dataset, score them on two holdouts, register versions",
             add_train_arguments, train_command)

    _command(sub, "models", "list model versions with lineage; promote or roll back what serves",
             add_models_arguments, models_command)

    from engine.cli.rehearse import add_rehearse_arguments, rehearse_command

    _command(sub, "rehearse", "rehearse an A/B test or interleaving of two rankers on the demo world's users, "
             "verdict next to the truth", add_rehearse_arguments, rehearse_command)

    from engine.cli.retrain import add_retrain_arguments, retrain_command

    _command(sub, "retrain", "retrain the served dataset's models on a schedule when new events were logged "
             "(candidates only)", add_retrain_arguments, retrain_command)

    from engine.cli.ope import add_ope_arguments, ope_command

    _command(sub, "ope", "estimate a candidate policy's clicks from exploring logs (off-policy evaluation)",
             add_ope_arguments, ope_command)

    p = sub.add_parser("evaluate", help="offline evaluation of every model")
    p.add_argument("--dataset", choices=["demo", "movielens"], default="demo")
    p.add_argument("--path", help="MovieLens directory (ml-100k, ml-latest or ml-latest-small)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except ValidationError as exc:  # an environment variable the settings cannot read: one line, exit 2
        if exc.title != Settings.__name__:
            raise
        print(f"recops {args.command}: {settings_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
