"""``recops analyze`` (a CSV of per-variant sums, no Redis) and ``recops experiments ...``.

Errors a user can fix (a bad CSV, an invalid experiment, a forbidden state change) print one line
on stderr and exit with 2; an unreachable Redis exits with 1.  Never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Heavier modules (scipy via analysis, redis) load inside the commands: building the parser for
# `recops --help` should not import them.
if TYPE_CHECKING:
    from analysis.readout import AnalysisSettings, Engine, Readout
    from engine.experiments.results import ExperimentReadout, MetricResult

USAGE_ERROR = 2
RUNTIME_ERROR = 1


def _fail(message: str, code: int = USAGE_ERROR) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _share(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _interval(ci: tuple[float, float] | None, fmt: Callable[[float | None], str]) -> str:
    return "-" if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _lift_format(test: str) -> Callable[[float | None], str]:
    return _pct if test == "relative" else _num


def treatment_table(readout: Readout) -> str:
    """One row per arm.  Lift, interval, p and the verdict are one test's (the ``test`` column says
    which pair); with CUPED the means shown are the adjusted ones the lift is computed from."""
    control = readout.arms[0]
    cuped = readout.cuped_theta is not None
    rows = [[f"{control.name} (control)", str(control.users), _num(control.adjusted_mean if cuped else control.mean),
             "", "", "", "", "", "", "", ""]]
    for r in readout.results:
        fmt = _lift_format(r.test)
        rows.append([
            r.variant, str(r.users), _num(r.adjusted_mean if cuped else r.mean), fmt(r.lift), _interval(r.ci, fmt),
            _num(r.decisive_p_value, 3), r.test, r.method or "-",
            "yes" if r.significant else ("no" if r.significant is not None else "-"),
            _num(r.chance_to_win, 3), _num(r.expected_loss, 3),
        ])
    mean = "mean (CUPED-adjusted)" if cuped else "mean"
    p = "adjusted p" if any(r.p_value_adjusted is not None for r in readout.results) else "p"
    return text_table(
        ["variant", "users", mean, "lift", "ci", p, "test", "method", "significant", "chance to win", "expected loss"],
        rows,
    )


# ================================================================================ analyze


def compact(readout: Readout) -> dict[str, Any]:
    """The ``--json`` shape: one object per treatment under ``results`` and the verdict on top."""
    from engine.experiments.results import json_safe

    results = [
        {
            "variant": r.variant,
            "users": r.users,
            "mean": r.mean,
            "control_mean": r.control_mean,
            "adjusted_mean": r.adjusted_mean,
            "control_adjusted_mean": r.control_adjusted_mean,
            "lift_abs": r.lift_abs,
            "lift_rel": r.lift_rel,
            "test": r.test,
            "method": r.method,
            "p_value_abs": r.p_value_abs,
            "ci_abs": r.ci_abs,
            "p_value_rel": r.p_value_rel,
            "ci_rel": r.ci_rel,
            "p_value": r.p_value,
            "p_value_adjusted": r.p_value_adjusted,
            "ci": r.ci,
            "significant": r.significant,
            "chance_to_win": r.chance_to_win,
            "expected_loss": r.expected_loss,
            "prob_best": r.prob_best,
            "messages": r.messages,
        }
        for r in readout.results
    ]
    control = readout.arms[0]
    return json_safe({
        "metric_type": readout.metric_type,
        "engine": readout.engine,
        "decision_engine": readout.decision_engine,
        "test": readout.test,
        "control": {"variant": control.name, "users": control.users, "mean": control.mean,
                    "adjusted_mean": control.adjusted_mean},
        "results": results,
        "srm_p_value": readout.srm_p_value,
        "srm_flag": readout.srm_flag,
        "required_users_per_arm": readout.required_users_per_arm,
        "cuped_theta": readout.cuped_theta,
        "decision": readout.decision.action,
        "decision_text": readout.decision_text,
        "messages": readout.messages,
    })


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="CSV: variant,users,sum[,sum_squares][,pre_sum,"
                        "pre_sum_squares,sum_product][,weight]; the first row is the control")
    parser.add_argument("--metric-type", choices=["binomial", "mean"], default="binomial")
    parser.add_argument("--engine", choices=["frequentist", "sequential", "bayesian", "all"], default=None,
                        help="frequentist by default; sequential when --sequential is given")
    parser.add_argument("--alpha", default="0.05")
    parser.add_argument("--test", choices=["relative", "absolute"], default="relative",
                        help="the pair (p-value with its interval) the verdict uses")
    parser.add_argument("--sequential", choices=["msprt", "group"], default=None,
                        help="the sequential engine's method: mSPRT tuned to the plan, or group-sequential")
    parser.add_argument("--planned-users", default=None, help="planned users per arm (default: what --mde needs)")
    parser.add_argument("--looks", default=None, help="planned, equally spaced looks (required by --sequential group)")
    parser.add_argument("--mde", default=None, help="relative minimum detectable effect, e.g. 0.05 (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, skipinitialspace=True)
        if not reader.fieldnames:
            raise ValueError("the file is empty: expected a header row variant,users,sum,...")
        rows = [row for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    for index, row in enumerate(rows, start=1):
        if None in row:
            raise ValueError(f"row {index}: more values than the header has columns")
    return rows


def _number_flag(args: argparse.Namespace, name: str, *, whole: bool = False) -> float | None:
    """A numeric flag parsed here rather than by argparse, so a bad value is one line on stderr."""
    text = getattr(args, name)
    if text is None:
        return None
    flag = "--" + name.replace("_", "-")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag}: expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{flag}: must be a positive finite number, got {text!r}")
    if whole and value != int(value):
        raise ValueError(f"{flag}: expected a whole number, got {text!r}")
    return value


def analysis_settings(args: argparse.Namespace) -> tuple[Engine, AnalysisSettings]:
    """The engine and :class:`analysis.readout.AnalysisSettings` the ``analyze`` flags ask for."""
    from analysis.readout import AnalysisSettings
    from analysis.sequential import SequentialPlan

    alpha = _number_flag(args, "alpha") or 0.05
    mde = _number_flag(args, "mde")
    planned = _number_flag(args, "planned_users", whole=True)
    looks = _number_flag(args, "looks", whole=True)
    if args.sequential is not None and args.engine not in (None, "sequential", "all"):
        raise ValueError(f"--sequential reads the sequential engine, not --engine {args.engine}")
    if args.sequential == "group" and looks is None:
        raise ValueError("--sequential group needs --looks (the planned number of equally spaced looks)")
    engine: Engine = args.engine or ("sequential" if args.sequential else "frequentist")
    plan = SequentialPlan(
        method=args.sequential or "msprt",
        planned_users_per_arm=int(planned) if planned else None,
        looks=int(looks) if looks else None,
        mde=mde,
    )
    settings = AnalysisSettings(
        alpha=alpha,
        mde=mde or AnalysisSettings.mde,
        test=args.test,
        sequential=plan,
        decision_engine="sequential" if args.sequential and engine == "all" else None,
    )
    return engine, settings


def analyze_command(args: argparse.Namespace) -> int:
    from analysis.readout import analyze, summaries_from_rows

    try:
        engine, settings = analysis_settings(args)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        rows = read_rows(Path(args.input))
        variants = summaries_from_rows(rows)
        readout = analyze(variants, args.metric_type, engine, settings)
    except OSError as exc:
        return _fail(f"cannot read {args.input}: {exc.strerror or exc}")
    except (ValueError, csv.Error, UnicodeDecodeError, ArithmeticError) as exc:
        # ArithmeticError: the analysis reports overflow as messages; should any slip through, the
        # user still gets one line, not a traceback.
        return _fail(f"{args.input}: {exc}")
    if args.json:
        print(json.dumps(compact(readout), indent=2))
        return 0
    print(f"{readout.metric_type} metric, {readout.engine} engine (deciding: {readout.decision_engine})")
    print(treatment_table(readout))
    print(f"SRM p = {_num(readout.srm_p_value, 3)}{' (MISMATCH)' if readout.srm_flag else ''}")
    for message in readout.messages:
        print(f"note: {message}")
    for r in readout.results:
        for message in r.messages:
            print(f"note ({r.variant}): {message}")
    print(f"decision: {readout.decision_text}")
    return 0


# ============================================================================ experiments


def add_experiments_arguments(parser: argparse.ArgumentParser) -> None:
    # every action reads the experiments of one dataset (their Redis keys and the model versions
    # their variants name are the dataset's): the flag is on each, where a user types it
    served = argparse.ArgumentParser(add_help=False)
    served.add_argument("--dataset", default=None,
                        help="the served dataset whose experiments these are (default RECOPS_DATASET)")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("list", help="every experiment with its status and phase", parents=[served])
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("show", help="one experiment's configuration as JSON", parents=[served])
    p.add_argument("key")
    p = sub.add_parser("create", help="create a draft from a JSON file ('-' reads stdin); a variant's model "
                       "is a spec: als, als@production, als@candidate, als@7 or als@<version>", parents=[served])
    p.add_argument("--file", required=True)
    for action, text in (("start", "start a draft or resume a paused experiment"),
                         ("pause", "pause a running experiment"), ("stop", "stop an experiment for good")):
        sub.add_parser(action, help=text, parents=[served]).add_argument("key")
    p = sub.add_parser("readout", help="goal, guardrails, SRM, progress, the decision and what each arm served",
                       parents=[served])
    p.add_argument("key")
    p.add_argument("--phase", type=int, default=None)
    p.add_argument("--engine", choices=["frequentist", "sequential", "bayesian", "all"], default=None)
    p.add_argument("--metric", action="append", default=None, help="an extra metric to read (repeatable)")
    p.add_argument("--by", action="append", default=[], metavar="DIMENSION",
                   help="break the goal down by a user dimension recorded at exposure, e.g. device (repeatable)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", help="the readout to share: CSV (results, or --what timeseries) or one "
                       "self-contained HTML report", parents=[served])
    p.add_argument("key")
    p.add_argument("--format", choices=["csv", "html"], required=True)
    p.add_argument("--what", choices=["results", "timeseries"], default="results",
                   help="which table the CSV holds (the HTML holds everything)")
    p.add_argument("--out", default=None, help="file to write (default: standard output)")
    p.add_argument("--phase", type=int, default=None)
    p.add_argument("--engine", choices=["frequentist", "sequential", "bayesian", "all"], default=None)


def _service(dataset: str | None) -> Any:
    """The experiments of the served dataset (``--dataset``, else ``RECOPS_DATASET``): its keys, and its
    registry entries to check and resolve the variants' model specs against."""
    from engine.config import get_settings
    from engine.experiments.service import ExperimentService
    from engine.models.model_spec import spec_resolver
    from engine.models.registry import ModelRegistry
    from engine.runtime import dataset_keys
    from engine.storage.client import redis_client
    from engine.storage.embedded_redis import ensure_redis_url

    settings = get_settings()
    served = dataset or settings.dataset
    url, embedded = ensure_redis_url(settings.redis_url, settings.data_dir)
    registry = ModelRegistry(settings.models_dir)
    # nothing trained for the dataset yet: experiments can still be drafted (as before specs), and a
    # serving engine, which trains its first models before anything else, resolves them
    resolver = spec_resolver(registry, served) if registry.names(served) else None
    service = ExperimentService(redis_client(url), dataset_keys(settings, served), resolver=resolver,
                                catalog=lambda: _catalog(settings, served))
    return service, embedded


def _catalog(settings: Any, dataset: str) -> Any:
    """The catalogue the readout's quality block measures lists against; None when the dataset is gone."""
    from engine.data.dataset_store import open_dataset
    from engine.data.schema import DatasetError
    from engine.experiments.quality import catalog_of

    try:
        data = open_dataset(settings, dataset).dataset
    except DatasetError:
        return None
    return catalog_of(data.items, data.events)


def _load_spec(path: str) -> Any:
    from engine.experiments.model import ExperimentError

    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExperimentError(f"{path} is not valid JSON: {exc}") from None


def _metric_lines(m: MetricResult) -> list[str]:
    title = f"{m.role} metric {m.metric} ({m.kind}: {m.description})"
    if m.readout is None:
        return [title, f"  no readout: {m.error}"]
    return [title, treatment_table(m.readout)]


def format_readout(r: ExperimentReadout) -> str:
    lines = [
        f"{r.key}: {r.name} [{r.status}, {r.kind}, phase {r.phase} of {r.phases}, engine {r.engine}]",
        text_table(
            ["variant", "model", "weight", "users", "impressions", "clicks", "purchases", "revenue"],
            [[a.name, a.model, f"{a.weight:.3f}", str(a.users), *(_num(a.totals[c], 6) for c in
              ("impressions", "clicks", "purchases", "revenue"))] for a in r.arms],
        ),
        "",
    ]
    if r.served:
        lines += [served_table(r.served), ""]
    if r.interleaving is not None:  # no arm has users of its own: the per-arm tables do not apply
        lines += [interleaving_text(r.interleaving), "", *(f"note: {m}" for m in r.messages),
                  f"decision: {r.decision_text}"]
        return "\n".join(lines)
    for m in (r.goal, *r.guardrails, *r.secondary):
        lines += [*_metric_lines(m), ""]
    p = r.progress
    planned = "-" if p.planned_per_variant is None else f"{p.planned_per_variant:,} per variant ({p.source})"
    done = "" if p.fraction is None else f", {p.fraction:.0%} done"
    lines.append(f"progress: smallest arm {p.min_users:,} users of {planned}{done}")
    lines.append(f"SRM p = {_num(r.srm_p_value, 3)}{' (MISMATCH)' if r.srm_flag else ''}")
    lines += [f"note: {m}" for m in r.messages]
    for b in r.breakdowns:
        lines += ["", *breakdown_lines(b)]
    lines.append(f"decision: {r.decision_text}")
    if r.decision.rule:
        lines.append(f"rule: {r.decision.rule}" + (f" (metric {r.decision.metric})" if r.decision.metric else ""))
    return "\n".join(lines)


def breakdown_lines(b: dict[str, Any]) -> list[str]:
    """One dimension's breakdown as a table (``engine.experiments.breakdowns``), its Simpson hints."""
    title = f"breakdown of {b['metric']} by {b['dimension']}"
    if b["error"]:
        return [title, f"  {b['error']}"]
    rows = []
    for cell in b["cells"]:
        for res in cell["results"]:
            lift = "too small" if res["too_small"] else _pct(res["lift_rel"])
            rows.append([cell["value"], res["variant"], f"{cell['users'][res['variant']]:,}", lift,
                         _num(res["p_value_adjusted"] if res["p_value_adjusted"] is not None else res["p_value"], 3),
                         "yes" if res["significant"] else "no"])
    hints = [f"  {h['text']}" for h in b["simpson"].values() if h["flagged"]]
    return [title, text_table(["cell", "variant", "users", "lift", "adjusted p", "significant"], rows), *hints]


def interleaving_text(block: dict[str, Any]) -> str:
    """An interleaving readout's block: who preferred which ranker, the tests, the per-position credit."""
    lines = [
        f"interleaving: A = {block['control']}, B = {block['treatment']}",
        f"users {block['users']:,}: {block['wins']:,} prefer B, {block['losses']:,} prefer A, "
        f"{block['ties']:,} ties (incl. no click)",
        f"preference share (B) {_share(block['preference_share'])}, {1 - block['alpha']:.0%} CI "
        f"{_interval(block['ci'], _share)}, "
        f"sign test p = {_num(block['p_value'], 4)}",
    ]
    seq = block["sequential"]
    if seq is not None:
        lines.append(f"sequential ({seq['method']}): p = {_num(seq['p_value'], 4)}, "
                     f"confidence sequence {_interval(seq['ci'], _share)}")
    lines.append(f"verdict ({block['decided_by']}): {block['verdict']}")
    lines.append(f"impressions {block['impressions']:,}; clicks credited {block['clicks_credited']:,}, "
                 f"ignored {block['clicks_ignored']:,} (in no impression), repeated {block['clicks_repeated']:,}")
    rows = [[str(p["position"] + 1), str(p["shown_a"]), str(p["shown_b"]), str(p["clicks_a"]), str(p["clicks_b"])]
            for p in block["positions"]]
    if rows:
        lines.append(text_table(["position", "shown A", "shown B", "clicks A", "clicks B"], rows))
    return "\n".join(lines)


def served_table(served: Sequence[dict[str, Any]]) -> str:
    """What each arm served: the version its spec names now, its serving parameters, and the
    versions its exposures were served by (see ``engine.experiments.served``)."""
    rows = []
    for s in served:
        now = "-" if s["version"] is None else f"#{s['number']} {s['version']} ({s['stage']})"
        serving = ", ".join(f"{k}={v}" for k, v in s["serving"].items()) or "defaults"
        exposed = ", ".join(f"{v}: {n:,}" for v, n in s["exposures_by_version"].items()) or "-"
        rows.append([s["variant"], s["spec"], now, serving, exposed])
    return text_table(["variant", "spec", "version now", "serving", "exposures by version"], rows)


def experiments_command(args: argparse.Namespace) -> int:
    import redis

    from engine.experiments.model import ExperimentError

    embedded = None
    try:
        service, embedded = _service(getattr(args, "dataset", None))
        return _run_action(service, args)
    except ExperimentError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(str(exc))
    except redis.RedisError as exc:
        return _fail(f"Redis: {exc}", RUNTIME_ERROR)
    finally:
        if embedded is not None:
            embedded.stop()


def _run_action(service: Any, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        exps = service.list_experiments()
        if args.json:
            print(json.dumps([e.model_dump(mode="json") for e in exps], indent=2))
            return 0
        rows = [[e.key, e.name, e.status, e.kind, str(e.phase), e.goal_metric,
                 ", ".join(f"{v.name}:{v.model}@{v.weight:.2f}" for v in e.variants)] for e in exps]
        print(text_table(["key", "name", "status", "kind", "phase", "goal", "variants"], rows) if rows
              else "no experiments")
        return 0
    if action == "show":
        print(service.get(args.key).model_dump_json(indent=2))
        return 0
    if action == "create":
        exp = service.create(_load_spec(args.file))
        print(f"created {exp.key} (draft, version {exp.version})")
        return 0
    if action in ("start", "pause", "stop"):
        exp = getattr(service, action)(args.key)
        print(f"{exp.key}: {exp.status} (phase {exp.phase}, version {exp.version})")
        return 0
    if action == "export":
        return _export(service, args)
    from engine.experiments.readout_document import assemble

    readout = service.readout(args.key, phase=args.phase, metrics=args.metric, engine=args.engine, by=args.by)
    document = assemble(readout, service.report(args.key, phase=args.phase, engine=args.engine))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(format_readout(readout))
        print(format_health(document["health"]))
    return 0


def format_health(checks: Sequence[dict[str, Any]]) -> str:
    return "health:\n" + "\n".join(f"  {c['status']:>7}  {c['name']}: {c['message']}" for c in checks)


def _export(service: Any, args: argparse.Namespace) -> int:
    from engine.experiments.readout_document import export_document

    text = export_document(service, args.key, args.format, args.what, args.phase, args.engine).text
    if args.out is None:
        sys.stdout.write(text)
        return 0
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode('utf-8')):,} bytes)")
    return 0
