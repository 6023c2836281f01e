"""``recops rehearse``: an A/B test or an interleaving experiment of two rankers, rehearsed on the
demo world's simulated users, with the verdict next to the truth the world knows.

Input the user can fix (a spec that does not parse or names no version, a dataset without ground
truth, a count out of range) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.cli.experiments import USAGE_ERROR
from engine.config import get_settings
from engine.data.dataset_store import DEMO
from engine.models.model_spec import ModelSpecError
from engine.serving.ranker_spec import SYNTAX, RankerSpec, RankerSpecError
from engine.simulator.rehearsal_designs import DESIGNS

MAX_USERS = 1_000_000
MAX_VISITS = 100
MAX_VISIT_DAYS = 365.0
SPEC_HELP = (f"{SYNTAX}; e.g. als, als@production, als@candidate:mmr_lambda=0.3,n=10, "
             "item_item@3:category_cap=2")


def add_rehearse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve two rankers to the demo world's simulated users under an A/B test (users split in halves, "
        "clicks per user, Welch t) or team-draft interleaving (each user sees both lists merged, clicks "
        "credited to the ranker that contributed the item except in the lists' common prefix, Wilcoxon "
        "signed-rank test of the users' credit differences), and print the verdict next to the "
        "truth: the ranker whose lists earn more expected clicks per user under the world's click law. "
        "Lists come from the serving path (no cache). Only the demo dataset has ground truth.")
    parser.add_argument("--design", choices=DESIGNS, required=True, help="ab or interleaving")
    parser.add_argument("--control", required=True, metavar="SPEC", help=f"the control ranker: {SPEC_HELP}")
    parser.add_argument("--treatment", required=True, metavar="SPEC", help="the treatment ranker (same syntax)")
    parser.add_argument("--users", type=int, required=True, help="simulated users in the rehearsal (at least 2)")
    parser.add_argument("--visits", type=int, default=None,
                        help="visits per user, each showing a list (default 1; not with --visit-days)")
    parser.add_argument("--visit-days", default=None, metavar="D",
                        help="instead of --visits: the world's visit law over an experiment of D days (each user "
                             "visits Poisson(their history-based rate) times, only visitors enrol), as "
                             "`python -m bench sensitivity --visit-days D`")
    parser.add_argument("--seed", type=int, default=0, help="seed of the users drawn, the split, drafts and clicks")
    parser.add_argument("--dataset", default=None, help="the dataset (default RECOPS_DATASET); only demo rehearses")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _fail(message: object) -> int:
    print("recops rehearse: " + " ".join(str(message).split()), file=sys.stderr)
    return USAGE_ERROR


def _days(text: str) -> float | None:
    """``--visit-days``' value, or ``None`` when it is not a number of days within range (nan and inf neither)."""
    try:
        days = float(text)
    except ValueError:
        return None
    return days if 0 < days <= MAX_VISIT_DAYS else None


def rehearse_command(args: argparse.Namespace) -> int:
    from engine.data.schema import DatasetError
    from engine.models.training import TrainingError
    from engine.runtime import build_engine
    from engine.simulator.rehearsal import Ranker, RehearsalError, RehearsalPlan, rehearse

    settings = get_settings()
    dataset = args.dataset or settings.dataset
    if dataset != DEMO:  # before anything loads: the answer does not depend on the dataset's contents
        return _fail(f"dataset {dataset!r} has no ground truth: only the demo world knows its users' click "
                     "probabilities, so rehearsals run on --dataset demo only")
    if not 2 <= args.users <= MAX_USERS:
        return _fail(f"--users must be within 2..{MAX_USERS:,}, got {args.users}")
    if args.visits is not None and args.visit_days is not None:
        return _fail("--visits and --visit-days exclude each other: a fixed number of visits per user, "
                     "or the world's visit law over D days")
    visits = 1 if args.visits is None else args.visits
    if not 1 <= visits <= MAX_VISITS:
        return _fail(f"--visits must be within 1..{MAX_VISITS}, got {visits}")
    visit_days = None if args.visit_days is None else _days(args.visit_days)
    if args.visit_days is not None and visit_days is None:
        return _fail(f"--visit-days must be a number of days within (0, {MAX_VISIT_DAYS:g}], got {args.visit_days!r}")
    try:
        specs = RankerSpec.parse(args.control), RankerSpec.parse(args.treatment)
    except RankerSpecError as exc:
        return _fail(exc)
    try:
        engine = build_engine(settings.model_copy(update={"dataset": dataset}), start_listener=False)
    except (DatasetError, TrainingError) as exc:
        return _fail(exc)
    try:
        control, treatment = (Ranker.resolve(engine, spec) for spec in specs)
        plan = RehearsalPlan(args.design, control, treatment, args.users, visits, args.seed, visit_days)
        result = rehearse(engine, plan)
    except (ModelSpecError, RehearsalError) as exc:
        return _fail(exc)
    finally:
        engine.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_rehearsal(result))
    return 0


def format_rehearsal(result: dict[str, Any]) -> str:
    truth, p_value, law = result["truth"], result["p_value"], result["visit_law"]
    verdict = (f"{result['winner'] or 'no winner'} (p = {p_value:.4g})" if p_value is not None
               else f"no test ({result.get('message')})")
    visits = (f"{law['visits_per_user']} visit(s) each" if law["law"] == "fixed" else
              f"visits by the world's law over {law['days']:g} days ({law['mean_per_user']:.2f} per user on "
              f"average, at most {law['max_per_user']})")
    return "\n".join([
        f"{result['design']} rehearsal: {result['users']:,} users, {visits}, seed {result['seed']}",
        f"  control    {result['control']['spec']:<40} truth {truth['control']:.4f} expected clicks per user",
        f"  treatment  {result['treatment']['spec']:<40} truth {truth['treatment']:.4f}",
        f"  verdict    {verdict}",
        f"  truth      {result['truth_winner'] or 'a tie'}",
    ])
