"""The readout as one document, and the export as one file: what ``recops experiments readout --json``,
``GET /experiments/{key}/readout`` and the console read, and what ``recops experiments export`` and
``GET /experiments/{key}/export`` write — assembled here once, so the CLI, the API and the console
cannot drift apart.

    >>> readout_document(service, "pop-vs-als", by=["device"])
    {"key": ..., "goal": ..., "breakdowns": [...], "health": [..., {"name": "srm_by_dimension", ...}],
     "quality": {...}, "timeseries": [...], "timeseries_unit": "day"}
    >>> export_document(service, "pop-vs-als", "html").filename
    'pop-vs-als-phase1-frequentist-readout.html'

The document is the readout (``ExperimentReadout.to_dict``) with the diagnostics beside it
(``engine.experiments.diagnostics``), and — with ``by`` — one ``srm_by_dimension`` health check per
breakdown dimension (:func:`engine.experiments.health.dimension_srm` over the breakdown's cells).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.experiments.export import EXPORT_WHAT, export_csv, report_html
from engine.experiments.health import Check, dimension_srm
from engine.experiments.model import ExperimentError
from engine.experiments.quality import Counterfactual
from engine.experiments.results import ExperimentReadout, json_safe

if TYPE_CHECKING:  # the service wires these modules together; this one only calls it
    from engine.experiments.service import ExperimentService

EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


def dimension_checks(readout: ExperimentReadout) -> list[Check]:
    """Per breakdown dimension, the SRM of each of its cells against the configured split; a breakdown
    that could not be made (its ``error``) says so there and is not checked."""
    names = [a.name for a in readout.arms]
    return [
        dimension_srm(b["dimension"], {c["value"]: [c["users"][n] for n in names] for c in b["cells"]}, names,
                      readout.expected_shares, bandit=readout.kind == "bandit")
        for b in readout.breakdowns if not b["error"]
    ]


def assemble(readout: ExperimentReadout, report: Mapping[str, Any]) -> dict[str, Any]:
    """The readout with its diagnostics; the per-dimension SRM checks join the health checks.  JSON-safe
    (NaN and infinities as null), as an HTTP response must be."""
    health = [*report["health"], *(c.to_dict() for c in dimension_checks(readout))]
    return {**readout.to_dict(), **report, "health": json_safe(health), "quality": json_safe(report["quality"])}


def readout_document(
    service: ExperimentService,
    key: str,
    phase: int | None = None,
    metrics: Sequence[str] | None = None,
    engine: str | None = None,
    by: Sequence[str] = (),
    counterfactual: Counterfactual | None = None,
) -> dict[str, Any]:
    """The whole readout of one phase: ``health``, ``quality``, ``timeseries`` and, with ``by``, ``breakdowns``."""
    readout = service.readout(key, phase, metrics, engine, by)
    return assemble(readout, service.report(key, phase, engine, counterfactual))


def breakdown_problems(document: Mapping[str, Any]) -> list[str]:
    """The requested breakdowns that could not be made (a dimension nobody has, one with too many values)."""
    return [b["error"] for b in document.get("breakdowns", ()) if b["error"]]


@dataclass(frozen=True)
class Export:
    text: str
    media_type: str
    filename: str


def export_filename(key: str, phase: int, engine: str, fmt: str, what: str = "results") -> str:
    """``<key>-phase<p>-<engine>-readout.html``; a CSV names its table (``...-results.csv``)."""
    return f"{key}-phase{phase}-{engine}-" + ("readout.html" if fmt == "html" else f"{what}.csv")


def export_document(
    service: ExperimentService,
    key: str,
    fmt: str,
    what: str = "results",
    phase: int | None = None,
    engine: str | None = None,
    counterfactual: Counterfactual | None = None,
) -> Export:
    """The readout to share (``engine.experiments.export``): a CSV table or the self-contained HTML report."""
    if fmt not in EXPORT_FORMATS:
        raise ExperimentError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}", "format")
    if what not in EXPORT_WHAT:
        raise ExperimentError(f"unknown table {what!r}; choose one of {', '.join(EXPORT_WHAT)}", "what")
    readout = service.readout(key, phase, None, engine)
    report = service.report(key, phase, engine, counterfactual)
    text = report_html(readout, report) if fmt == "html" else export_csv(readout, report, what)
    return Export(text, EXPORT_FORMATS[fmt], export_filename(readout.key, readout.phase, readout.engine, fmt, what))
