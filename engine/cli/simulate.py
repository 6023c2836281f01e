"""``recops simulate``: flags, the world the API serves, signal handling and the printed summary."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from engine.cli.signals import until_signalled
from engine.config import get_settings
from engine.data.demo import DemoWorld
from engine.simulator.scheduler import SimulationConfig, run_simulation
from engine.simulator.summary import SimulationSummary, format_summary


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _list_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be within 1..100, got {text}")
    return value


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=_positive_float, required=True, help="recommendation requests per second")
    parser.add_argument("--duration", type=_positive_float, required=True, help="seconds to run")
    parser.add_argument("--users", type=_positive_int, default=None, help="only the first N users of the world visit")
    parser.add_argument("--api", default=None, help="API base URL (default: http://RECOPS_API_HOST:RECOPS_API_PORT)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the user schedule and of their behaviour")
    parser.add_argument("--n", type=_list_size, default=10, help="list length (1-100)")
    parser.add_argument("--concurrency", type=_positive_int, default=64, help="most visits in flight at once")
    parser.add_argument("--timeout", type=_positive_float, default=5.0, help="per HTTP call, seconds")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--dataset", default=None,
                        help="the dataset the API serves (default RECOPS_DATASET); only the demo world simulates")


async def run_until_signalled(world: DemoWorld, config: SimulationConfig) -> SimulationSummary:
    """``run_simulation`` that ends early, with its summary, on SIGINT or SIGTERM."""
    return await until_signalled(lambda stop: run_simulation(world, config, stop=stop))


def simulate_command(args: argparse.Namespace) -> int:
    from engine.cli.experiments import USAGE_ERROR
    from engine.cli.up import simulator_skipped
    from engine.data.dataset_store import DEMO
    from engine.runtime import prepare_world

    settings = get_settings()
    dataset = args.dataset or settings.dataset
    if dataset != DEMO:
        # the shoppers would be the demo world's, asking an API that serves other users and items
        print(f"recops simulate: {simulator_skipped(dataset)}", file=sys.stderr)
        return USAGE_ERROR
    config = SimulationConfig(
        api_url=(args.api or f"http://{settings.api_host}:{settings.api_port}").rstrip("/"),
        rate=args.rate,
        duration=args.duration,
        users=args.users,
        n=args.n,
        seed=args.seed,
        max_in_flight=args.concurrency,
        timeout=args.timeout,
    )
    world = prepare_world(settings)
    summary = asyncio.run(run_until_signalled(world, config))
    if args.json:
        sys.stdout.write(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_summary(summary))
    # Nothing answered at all is a failed run (wrong URL, API down); partial errors are in the summary.
    return 0 if summary.ok > 0 else 1
