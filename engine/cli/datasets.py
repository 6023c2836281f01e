"""``recops import`` and ``recops datasets list|show``.

A file or option the user can fix prints one line on stderr and exits with 2; a failing disk
exits with 1.  Never a traceback.  Rejected rows are summarised (with the first examples) on
stdout, whether or not the import went through.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.cli.experiments import RUNTIME_ERROR, _fail, text_table
from engine.config import get_settings
from engine.data.dataset_import import (
    DEFAULT_MAX_REJECT_SHARE,
    ImportOptions,
    ImportRefused,
    Rejects,
    import_dataset,
)
from engine.data.dataset_store import DatasetStore, datasets_root, read_manifest
from engine.data.interaction_rows import TIMESTAMP_UNITS
from engine.data.schema import DatasetError
from engine.experiments.breakdowns import MAX_CELLS

_PROGRESS_EVERY = 1.0  # seconds between progress lines on a terminal


# ================================================================================ import


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="dataset name (letters, digits, '.', '_', '-')")
    parser.add_argument(
        "--interactions",
        required=True,
        type=Path,
        help="CSV/TSV (.gz too) or Parquet: user_id, item_id[, timestamp, event, rating, weight]",
    )
    parser.add_argument("--items", type=Path, help="CSV/TSV or Parquet: item_id[, title, category, attributes...]")
    parser.add_argument(
        "--users", type=Path,
        help="CSV/TSV or Parquet: user_id[, attributes...] to break experiment results down by (gender, country...)",
    )  # fmt: skip
    parser.add_argument(
        "--max-reject-share",
        type=float,
        default=DEFAULT_MAX_REJECT_SHARE,
        help="refuse the import when a larger share of a file's rows is rejected (default 0.01)",
    )
    parser.add_argument(
        "--timestamp-unit",
        choices=sorted(TIMESTAMP_UNITS),
        default="s",
        help="unit of numeric timestamps (ISO 8601 text needs none)",
    )
    parser.add_argument("--encoding", default="utf-8", help="text encoding of CSV files (default utf-8)")
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="read column NAME from the files' column SOURCE, e.g. item_id=movieId (repeatable)",
    )


def _column_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, source = pair.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise DatasetError(f"--column {pair!r}: expected NAME=SOURCE, e.g. item_id=movieId")
        out[name.strip()] = source.strip()
    return out


class _Progress:
    """A self-overwriting "read N rows" line, on a terminal only."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last >= _PROGRESS_EVERY:
            self._last = now
            print(f"\rread {rows:,} rows", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled and self._last:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _describe_rejects(rejects: Rejects) -> list[str]:
    if not rejects.rejected:
        return []
    reasons = ", ".join(f"{reason} ×{count:,}" for reason, count in rejects.by_reason.most_common())
    lines = [
        f"rejected {rejects.rejected:,} of {rejects.read:,} rows of {rejects.source} ({rejects.share:.2%}): {reasons}"
    ]
    for example in rejects.examples:
        where = "malformed record" if example.row is None else f"row {example.row:,}"
        values = " ".join(f"{k}={v!r}" for k, v in example.values.items())
        lines.append(f"  {where}: {example.reason}: {values}")
    if rejects.file is not None:
        lines.append(f"  all rejected rows: {rejects.file}")
    return lines


def import_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    store = DatasetStore(datasets_root(settings))
    progress = _Progress()
    try:
        options = ImportOptions(
            max_reject_share=args.max_reject_share, timestamp_unit=args.timestamp_unit, encoding=args.encoding,
            columns=_column_map(args.column),
        )  # fmt: skip
        result = import_dataset(
            store, args.name, args.interactions, args.items, options, users=args.users, progress=progress
        )
    except ImportRefused as exc:
        progress.done()
        for rejects in exc.rejects:
            print("\n".join(_describe_rejects(rejects)))
        return _fail(str(exc))
    except DatasetError as exc:
        progress.done()
        return _fail(str(exc))
    except OSError as exc:
        progress.done()
        return _fail(f"import failed, nothing was stored: {exc}", RUNTIME_ERROR)
    progress.done()
    m = result.manifest
    span = m["time_range"]
    when = f", {span['min_utc']} … {span['max_utc']}" if span else ", no timestamps"
    print(
        f"imported {result.name} v{result.version}: {m['rows']['interactions']:,} interactions, "
        f"{m['users']:,} users, {m['rows']['items']:,} items{when}"
    )
    if "users" in m["rows"]:
        print(f"  user attributes: {m['rows']['users']:,} users, {m['users_with_attributes']:,} of them with "
              f"interactions; {_attribute_text(m['columns']['user_attributes'])}")
    print(f"  stored in {result.path}")
    for file_rejects in (result.items, result.users, result.interactions):
        if file_rejects is not None:
            print("\n".join(_describe_rejects(file_rejects)) or f"  no rows of {file_rejects.source} rejected")
    return 0


def _attribute_text(values: dict[str, int]) -> str:
    """``gender (2 values), zip (795 values, too many to break down by)``: each user attribute and its values."""
    return ", ".join(
        f"{name} ({n:,} value{'s' if n != 1 else ''}{', too many to break down by' if n > MAX_CELLS else ''})"
        for name, n in values.items()
    ) or "none"


# ============================================================================== datasets


def add_datasets_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("list", help="imported datasets with their current version")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("show", help="a dataset version's manifest (the demo world's as 'demo')")
    p.add_argument("name")
    p.add_argument("--version", type=int, default=None, help="default: the current version")
    p.add_argument("--json", action="store_true")


def _show_lines(manifest: dict[str, Any]) -> list[str]:
    span = manifest.get("time_range")
    fields: list[tuple[str, str]] = [
        ("interactions", f"{manifest['rows']['interactions']:,}"),
        ("users", f"{manifest['users']:,}"),
        ("items", f"{manifest['rows']['items']:,} ({manifest['items_with_interactions']:,} with interactions)"),
        ("time range", f"{span['min_utc']} … {span['max_utc']}" if span else "none (no timestamps)"),
        ("events", ", ".join(f"{k} {v:,}" for k, v in manifest["events"].items())),
    ]
    if "users" in manifest["rows"]:
        fields.append(("user attributes", _attribute_text(manifest["columns"]["user_attributes"])))
    source = manifest.get("source", {})
    for role in ("interactions", "items", "users"):
        entry = source.get(role)
        if entry:
            fields.append((f"{role} file", f"{entry['file']} ({entry['bytes']:,} bytes, sha256 {entry['sha256']})"))
    for role, summary in (manifest.get("rejects") or {}).items():
        if summary:
            fields.append((f"{role} rejected", f"{summary['rejected']:,} of {summary['read']:,}"))
    if manifest.get("created_at"):
        fields.append(("created", f"{manifest['created_at']} by recops {manifest.get('recops_version')}"))
    width = max(len(label) for label, _ in fields)
    return [f"{manifest['name']} v{manifest['version']}", *(f"  {label:<{width}}  {value}" for label, value in fields)]


def datasets_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    store = DatasetStore(datasets_root(settings))
    try:
        if args.action == "list":
            rows = store.listing()
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(f"no datasets imported yet (they live in {store.root}); the demo world is always available")
            else:
                print(text_table(
                    ["name", "current", "versions", "interactions", "users", "items", "created"],
                    [[r["name"], f"v{r['current_version']}", str(len(r["versions"])), f"{r['interactions']:,}",
                      f"{r['users']:,}", f"{r['items']:,}", r["created_at"] or "-"] for r in rows],
                ))  # fmt: skip
            return 0
        manifest = read_manifest(settings, args.name, args.version)
        print(json.dumps(manifest, indent=2) if args.json else "\n".join(_show_lines(manifest)))
        return 0
    except DatasetError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {store.root}: {exc}", RUNTIME_ERROR)
