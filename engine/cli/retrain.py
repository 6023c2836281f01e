"""``recops retrain``: retrain the served dataset's models on a schedule, as candidates.

``recops retrain --every 30m`` (default ``RECOPS_RETRAIN_EVERY``) runs until stopped, one line per
run on stdout; ``--once`` checks and retrains now, then exits.  What a run does:
``engine.models.retrain_schedule``.  ``recops up`` starts it when ``RECOPS_RETRAIN_EVERY`` is set.

Runs are written to the audit log, so the command needs Redis: when it does not answer at the start
the command exits 1; a bad ``--every``, an unknown dataset or no schedule at all is one line and exit 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import NoReturn

from engine.cli.experiments import RUNTIME_ERROR, USAGE_ERROR
from engine.cli.models import AuditUnreachable, open_audit_log
from engine.config import get_settings, parse_duration


def add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", default=None, metavar="DURATION",
                        help="how often: seconds or 30m, 6h, 1d (default RECOPS_RETRAIN_EVERY)")
    parser.add_argument("--dataset", default=None, help="dataset whose models to retrain (default RECOPS_DATASET)")
    parser.add_argument("--once", action="store_true", help="check and retrain now, then exit")


def _fail(message: object, code: int = USAGE_ERROR) -> int:
    print("recops retrain: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def _interrupt(signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt(signum)  # SIGTERM (``recops up`` stopping) ends the loop as Ctrl-C does


def retrain_command(args: argparse.Namespace) -> int:
    from engine.data.dataset_store import open_dataset
    from engine.data.schema import DatasetError
    from engine.models.retrain_schedule import FAILED, RetrainRun, retrain_once, run_schedule

    settings = get_settings()
    dataset = args.dataset or settings.dataset
    try:
        every = parse_duration(args.every) if args.every is not None else settings.retrain_every
    except ValueError as exc:
        return _fail(f"--every {exc}")
    if every is None and not args.once:
        return _fail("no schedule: pass --every (30m, 6h, ...) or set RECOPS_RETRAIN_EVERY, or use --once")
    try:
        open_dataset(settings, dataset)
    except DatasetError as exc:
        return _fail(exc)

    def report(run: RetrainRun) -> None:
        print(run.summary(), flush=True)

    try:
        with open_audit_log(settings) as audit:
            if args.once or every is None:  # (no schedule without --once was refused above)
                run = retrain_once(settings, dataset, audit)
                report(run)
                return RUNTIME_ERROR if run.status == FAILED else 0
            print(f"retraining the models of {dataset} every {every:g} s when new events were logged "
                  "(candidates only)", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            run_schedule(settings, dataset, every, audit, threading.Event(), report)
    except AuditUnreachable as exc:
        return _fail(exc, RUNTIME_ERROR)
    return 0
