"""``recops ope``: a target policy's clicks per list estimated from the dataset's exploring logs.

    recops ope --dataset demo --target als@candidate:mmr_lambda=0.5 --simulate 20000 --json

Bad input (an unknown spec, --simulate off the demo world, no exploring impressions logged) prints
one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.experiments import USAGE_ERROR
from engine.config import get_settings
from engine.data.dataset_store import DEMO
from engine.data.event_log import EventLog
from engine.data.schema import DatasetError
from engine.experiments.off_policy import ESTIMATOR_NAMES, LOW_SUPPORT, NoLogsError, OffPolicyResult
from engine.experiments.offline_check import NotDemoError, OfflineCheck
from engine.models.model_spec import ModelSpecError
from engine.serving.ranker_spec import SYNTAX, RankerSpec, RankerSpecError

MAX_SIMULATED = 1_000_000


def add_ope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="the dataset whose event log holds the exploring impressions")
    parser.add_argument("--target", required=True, metavar="SPEC",
                        help=f"the policy to evaluate, {SYNTAX}; e.g. als@candidate:mmr_lambda=0.3,n=10")
    parser.add_argument("--estimator", choices=[*ESTIMATOR_NAMES, "all"], default="all",
                        help="ipw, snips, dr or all (default)")
    parser.add_argument("--simulate", type=int, default=0, metavar="N",
                        help="demo world only: first log N exploring lists of its users and their clicks")
    parser.add_argument("--seed", type=int, default=None, help="seed of the simulation and the bootstrap")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _fail(message: object) -> int:
    print("recops ope: " + " ".join(str(message).split()), file=sys.stderr)
    return USAGE_ERROR


def format_result(result: OffPolicyResult) -> str:
    lines = [f"target {result.target}: expected clicks per shown list, from {result.requests:,} logged lists "
             f"({result.depth} slots; the target's item was shown at {result.matched:.1%} of logged slots)",
             f"  {'estimator':<10} {'value':>8} {'95% CI':>20}"]
    for name, est in result.estimates.items():
        lo, hi = est["ci"]
        lines.append(f"  {name:<10} {est['value']:>8.4f} {f'[{lo:.4f}, {hi:.4f}]':>20}")
    lines.append(f"  {'logging':<10} {result.logging_value:>8.4f}   (observed, the exploring policy)")
    if result.truth is not None:
        lines.append(f"  {'truth':<10} {result.truth:>8.4f}   (the demo world's click law)")
    if result.mean_weight < LOW_SUPPORT:
        lines.append(f"  caution: mean weight {result.mean_weight:.2f} (1 when the logs cover the target): the "
                     "logging policy rarely shows the target's items where it puts them; the estimate may be biased")
    return "\n".join(lines)


def ope_command(args: argparse.Namespace) -> int:
    from engine.runtime import build_engine

    try:
        RankerSpec.parse(args.target)
    except RankerSpecError as exc:
        return _fail(exc)
    if args.simulate and args.dataset != DEMO:
        return _fail(f"--simulate needs the demo world's click law; dataset {args.dataset!r} has none")
    if not 0 <= args.simulate <= MAX_SIMULATED:
        return _fail(f"--simulate takes 1 to {MAX_SIMULATED:,} lists, got {args.simulate}")
    settings = get_settings().model_copy(update={"dataset": args.dataset})
    try:
        engine = build_engine(settings, start_listener=False)
    except DatasetError as exc:
        return _fail(exc)
    try:
        check = OfflineCheck(engine.service, engine.registry, engine.dataset.name,
                             EventLog.for_dataset(settings, engine.dataset.name), engine.world, settings.default_n)
        if args.simulate:
            check.simulate(args.simulate, seed=args.seed)
        estimators = ESTIMATOR_NAMES if args.estimator == "all" else (args.estimator,)
        result = check.run(args.target, estimators, seed=args.seed)
    except (NoLogsError, NotDemoError, ModelSpecError, RankerSpecError) as exc:
        return _fail(exc)
    finally:
        engine.close()
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_result(result))
    return 0
