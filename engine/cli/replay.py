"""``recops replay``: flags, the dataset the API serves, the plan, signal handling and the printed summary.

Input the user can fix (a time that does not parse, an API serving another dataset, a window with no
interactions) prints one line on stderr and exits 2; an API that cannot be reached exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx

from engine.cli.experiments import RUNTIME_ERROR, USAGE_ERROR
from engine.cli.signals import until_signalled
from engine.config import get_settings
from engine.data.dataset_store import StoredDataset, open_dataset
from engine.data.logged_events import replay_id_prefix
from engine.data.schema import DatasetError
from engine.simulator.replay import (
    UNREACHABLE,
    ReplayConfig,
    ReplayError,
    ReplayPlan,
    format_summary,
    parse_time,
    plan_replay,
    run_replay,
    utc,
)

HEALTH_TIMEOUT = 5.0


class ApiUnreachableError(RuntimeError):
    pass


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="the dataset whose interactions to replay")
    parser.add_argument("--from", dest="start", required=True, metavar="TIME",
                        help="replay interactions logged at or after TIME (Unix seconds or ISO 8601, UTC)")
    parser.add_argument("--until", default=None, metavar="TIME", help="... and before TIME (default: to the end)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="logged seconds per second of replay (1 = real time; 86400 = a day per second)")
    parser.add_argument("--duration", type=float, default=600.0, help="stop after this many seconds (600)")
    parser.add_argument("--limit", type=int, default=None, help="send at most N events")
    parser.add_argument("--api", default=None, help="API base URL (default: http://RECOPS_API_HOST:RECOPS_API_PORT)")
    parser.add_argument("--n", type=int, default=10, help="list length asked for each arriving user (1-100)")
    parser.add_argument("--dataset-version", type=int, default=None,
                        help="replay this version's interactions (default: the version the API serves)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _fail(message: object, code: int = USAGE_ERROR) -> int:
    print("recops replay: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def served_by(api_url: str) -> dict[str, Any] | None:
    """The dataset the API says it serves (its /health), None when it does not say."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=HEALTH_TIMEOUT)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ApiUnreachableError(f"the API at {api_url} does not answer /health ({type(exc).__name__}: {exc}); "
                                  "start it with `recops up --dataset NAME`, or pass --api URL") from exc
    served = body.get("dataset") if isinstance(body, dict) else None
    return served if isinstance(served, dict) else None


def _load(args: argparse.Namespace, api_url: str) -> tuple[StoredDataset, ReplayPlan]:
    """The replayed version and the plan against the served catalogue (``ReplayError``/``DatasetError``)."""
    settings = get_settings()
    start = parse_time(args.start)
    until = parse_time(args.until) if args.until is not None else None
    if until is not None and until <= start:
        raise ReplayError(f"--until ({utc(until)}) must come after --from ({utc(start)})")
    if args.limit is not None and args.limit < 1:
        raise ReplayError(f"--limit must be at least 1, got {args.limit}")
    served = served_by(api_url)
    if served is not None and served.get("name") != args.dataset:
        raise ReplayError(f"the API at {api_url} serves dataset {served.get('name')!r}, not {args.dataset!r}: its "
                          f"catalogue would refuse the events; start it with `recops up --dataset {args.dataset}`")
    served_version = int(served["version"]) if served is not None else None
    stored = open_dataset(settings, args.dataset, args.dataset_version or served_version)
    catalogue = stored if served_version in (None, stored.version) else open_dataset(
        settings, args.dataset, served_version)
    plan = plan_replay(stored.dataset.events, set(catalogue.dataset.items["item_id"]), start, until, args.limit,
                       id_prefix=replay_id_prefix(stored.name, stored.version))
    if plan.in_window == 0:
        times = stored.dataset.events["timestamp"]
        raise ReplayError(f"dataset {stored.name!r} v{stored.version} has no interaction logged from {utc(start)}"
                          f"{f' until {utc(until)}' if until is not None else ''}; its interactions run from "
                          f"{utc(float(times.min()))} to {utc(float(times.max()))}")
    return stored, plan


def replay_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    api_url = (args.api or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")
    try:
        config = ReplayConfig(api_url=api_url, speed=args.speed, duration=args.duration, n=args.n)
        stored, plan = _load(args, api_url)
    except (ReplayError, DatasetError) as exc:
        return _fail(exc)
    except ApiUnreachableError as exc:
        return _fail(exc, RUNTIME_ERROR)
    if not args.json:
        print(f"replaying {len(plan):,} events of {stored.name} v{stored.version} to {api_url} at {config.speed:g}x "
              f"(at most {config.duration:g} s) ...", flush=True)
    summary = asyncio.run(until_signalled(lambda stop: run_replay(plan, config, stop)))
    if args.json:
        print(json.dumps({"dataset": stored.name, "version": stored.version, **summary.to_dict()}, indent=2))
    else:
        print(format_summary(summary))
    # an API that went away, or took none of what was sent, is a failed run; partial refusals are in the summary
    failed = summary.stopped == UNREACHABLE or (summary.sent > 0 and summary.accepted + summary.duplicates == 0)
    return RUNTIME_ERROR if failed else 0
