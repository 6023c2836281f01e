"""What the Readout page shows around the numbers: the health checks (before them), the recommendation
quality per arm, and the HTML report to download (the results over time: ``over_time_view``).

The checks, rows and blocks are computed by ``engine.experiments`` (``diagnostics``, ``health``,
``timeseries``, ``quality``, ``export``); this module turns them into frames, notices and figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from engine.console.notices import Level, Notice
from engine.experiments import ExperimentReadout
from engine.experiments.export import report_html
from engine.experiments.readout_document import export_filename
from engine.runtime import Engine

STATUS_ICON = {"ok": "✅", "warning": "⚠️", "failed": "⛔"}
QUALITY_COLUMNS = {"variant": "arm", "lists": "lists", "sampled_lists": "sampled", "coverage": "coverage",
                   "diversity": "diversity", "novelty": "novelty", "cold_start_share": "cold start",
                   "fallback_share": "fallback", "message": "note"}


def report(engine: Engine, key: str, phase: int | None, decision_engine: str | None) -> dict[str, Any]:
    """``health``, ``quality`` (with the overlap of the current phase's arms) and ``timeseries``."""
    return engine.experiments.report(key, phase, decision_engine, engine.arm_lists(key, phase))


def health_notice(checks: Sequence[Mapping[str, Any]]) -> Notice:
    """One line before the numbers: the worst check's level, every check that is not ok."""
    bad = [c for c in checks if c["status"] != "ok"]
    if not bad:
        return Notice("success", "Health: every check passed (split, second arm, assignment, traffic, freshness).",
                      ":material/health_and_safety:")
    level: Level = "error" if any(c["status"] == "failed" for c in bad) else "warning"
    text = "Health: " + " · ".join(f"{c['name']}: {c['message']}" for c in bad)
    return Notice(level, text, ":material/health_and_safety:")


def health_frame(checks: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"check": c["name"], "status": f"{STATUS_ICON.get(c['status'], '')} {c['status']}",
                          "message": c["message"]} for c in checks], columns=["check", "status", "message"])


def quality_frame(quality: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{label: arm.get(k) for k, label in QUALITY_COLUMNS.items()} for arm in quality.get("arms", [])]
    return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS.values()))


def overlap_text(quality: Mapping[str, Any]) -> str:
    pairs = quality.get("overlap")
    if not pairs:
        return quality.get("overlap_message") or "No overlap computed."
    return " · ".join(
        f"{' vs '.join(p['variants'])}: mean Jaccard {p['jaccard']:.2f} over {p['users']} users"
        if p["jaccard"] is not None else f"{' vs '.join(p['variants'])}: no sampled user yet" for p in pairs)


def html_report(readout: ExperimentReadout, report: Mapping[str, Any]) -> bytes:
    return report_html(readout, report).encode("utf-8")


def html_name(key: str, phase: int, engine: str) -> str:
    return export_filename(key, phase, engine, "html")
