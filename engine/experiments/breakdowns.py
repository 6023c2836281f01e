"""Dimension breakdowns of a readout: per dimension value (cell) and arm, a metric's test against the
control, corrected across the cells (:func:`analysis.breakdown.correct_cells`), cells too small for a
test marked, and a Simpson's-paradox hint when the total points the other way
(:func:`analysis.breakdown.simpson_hint`).

Pure: the per-unit values and the dimensions recorded at exposure come in a
:class:`engine.experiments.custom_results.UnitTable`.  Each cell is tested from its users' own
values (the per-unit counters), without CUPED — a cell's covariate adjustment would need a θ per
cell and the cells' tests are a second look, not the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.breakdown import CellEstimate, CellTest, correct_cells, simpson_hint
from analysis.capping import CapSettings, cap_value
from analysis.corrections import Correction
from analysis.frequentist import FrequentistResult, FrequentistSettings, ratio_ttest, welch_ttest
from analysis.stats import RatioStats, SampleStats
from engine.experiments.custom_results import UnitTable
from engine.experiments.dimensions import decode
from engine.experiments.metric_definitions import MetricDefinition, ratio_parts
from engine.experiments.metrics import INDICATORS, METRICS

MAX_CELLS = 50  # more values than this is an id-like dimension, not a breakdown


@dataclass(frozen=True)
class UnitValues:
    """Per exposed unit: its arm index, dimensions, and the metric's numerator and denominator."""

    arm: np.ndarray
    dims: list[dict[str, str]]
    num: np.ndarray
    den: np.ndarray
    ratio: bool


def _reader(metric: str, defs: Sequence[MetricDefinition]) -> tuple[str, str | None, bool, CapSettings | None]:
    """(numerator counter, denominator counter or None, indicator?, cap) of a built-in or declared metric."""
    declared = {d.name: d for d in defs}
    if metric in declared:
        d = declared[metric]
        if d.kind == "ratio":
            num, den = ratio_parts(d, defs)
            return num, den, False, None
        cap = None
        if d.cap is not None:
            cap = (CapSettings("percentile", d.cap.percentile) if d.cap.percentile is not None
                   else CapSettings("absolute", float(d.cap.value or 0.0)))
        return str(d.counter), None, d.kind == "indicator", cap
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted([*METRICS, *declared])}")
    spec = METRICS[metric]
    if spec.kind == "binomial":
        return INDICATORS[spec.numerator], None, True, None
    return spec.numerator, spec.denominator, False, None


def unit_values(table: UnitTable, names: Sequence[str], metric: str, defs: Sequence[MetricDefinition]) -> UnitValues:
    num_c, den_c, indicator, cap = _reader(metric, defs)
    index = {n: i for i, n in enumerate(names)}
    arm, dims, num, den = [], [], [], []
    for unit, variant, _ in table.rows():
        if variant not in index:
            continue
        user = unit.split("~", 1)[0]
        arm.append(index[variant])
        dims.append(decode(table.dimensions.get(user, "")))
        x = float(table.units.get(f"{unit}:{num_c}", 0.0))
        num.append(float(x > 0) if indicator else x)
        den.append(float(table.units.get(f"{unit}:{den_c}", 0.0)) if den_c else 1.0)
    y = np.asarray(num, dtype=np.float64)
    if cap is not None:
        value = cap_value([y], cap)
        y = np.minimum(y, value) if value is not None else y
    return UnitValues(np.asarray(arm, dtype=np.int64), dims, y, np.asarray(den, dtype=np.float64), den_c is not None)


def _test(values: UnitValues, mask: np.ndarray, control: int, treatment: int,
          settings: FrequentistSettings) -> tuple[FrequentistResult, float, float]:
    """The cell's test, and the control's and treatment's metric values."""
    masks = [mask & (values.arm == a) for a in (control, treatment)]
    if values.ratio:
        ratios = [RatioStats(int(m.sum()), float(values.num[m].sum()), float(values.num[m] @ values.num[m]),
                             float(values.den[m].sum()), float(values.den[m] @ values.den[m]),
                             float(values.num[m] @ values.den[m])) for m in masks]
        means = [r.num_sum / r.den_sum if r.den_sum else float("nan") for r in ratios]
        return ratio_ttest(ratios[0], ratios[1], settings), means[0], means[1]
    samples = [SampleStats.from_values(values.num[m]) for m in masks]
    means = [s.mean if s.n else float("nan") for s in samples]
    return welch_ttest(samples[0], samples[1], settings), means[0], means[1]


def breakdown(
    table: UnitTable,
    names: Sequence[str],
    dimension: str,
    metric: str,
    defs: Sequence[MetricDefinition] = (),
    alpha: float = 0.05,
    correction: Correction | None = "holm",
    max_cells: int = MAX_CELLS,
) -> dict[str, Any]:
    """One dimension's breakdown of ``metric`` (see the module docstring); problems are reported in the
    entry's ``error`` (a dimension nobody has, or with more than ``max_cells`` values), never raised."""
    out: dict[str, Any] = {"dimension": dimension, "metric": metric, "cells": [], "simpson": {}, "error": None}
    values = unit_values(table, names, metric, defs)
    cell_of = np.asarray([d.get(dimension, "") for d in values.dims], dtype=object)
    cells = sorted({c for c in cell_of if c})
    if not cells:
        known = sorted({k for d in values.dims for k in d})
        out["error"] = (f"no exposed user has the dimension {dimension!r}; recorded dimensions: {known or 'none'}")
        return out
    if len(cells) > max_cells:
        out["error"] = (f"the dimension {dimension!r} has {len(cells):,} values; a breakdown shows at most "
                        f"{max_cells} cells — choose a coarser dimension")
        return out
    if np.any(cell_of == ""):
        cells.append("")  # users exposed without the dimension: a cell of their own, named "(none)"
    settings = FrequentistSettings(alpha=alpha)
    per_cell: dict[str, dict[str, Any]] = {}
    for cell in cells:
        mask = cell_of == cell
        per_cell[cell] = {"value": cell or "(none)",
                          "users": {n: int((mask & (values.arm == i)).sum()) for i, n in enumerate(names)},
                          "results": []}
    for t in range(1, len(names)):
        tests, estimates = [], []
        for cell in cells:
            result, mean_c, mean_t = _test(values, cell_of == cell, 0, t, settings)
            users = per_cell[cell]["users"]
            tests.append(CellTest(cell or "(none)", users[names[0]], users[names[t]], result))
            estimates.append((mean_c, mean_t))
        corrected = correct_cells(tests, correction)
        for cell, outcome, (mean_c, mean_t) in zip(cells, corrected, estimates, strict=True):
            r = outcome.result
            per_cell[cell]["results"].append({
                "variant": names[t], "control_mean": mean_c, "mean": mean_t,
                "lift_rel": r.lift_rel if r else None, "ci_rel": r.ci_rel if r else None,
                "p_value": r.p_value if r else None, "p_value_adjusted": r.p_value_adjusted if r else None,
                "significant": outcome.significant, "too_small": outcome.too_small,
                "message": outcome.message or (r.message if r else None)})
        everyone = np.ones(values.arm.size, dtype=bool)
        _, total_c, total_t = _test(values, everyone, 0, t, settings)
        total = CellEstimate("total", int((values.arm == 0).sum()), int((values.arm == t).sum()), total_c, total_t)
        cell_estimates = [CellEstimate(o.name, o.control_users, o.treatment_users, m_c, m_t, o.significant)
                          for o, (m_c, m_t) in zip(corrected, estimates, strict=True)
                          if np.isfinite(m_c) and np.isfinite(m_t)]
        hint = simpson_hint(total, cell_estimates)
        out["simpson"][names[t]] = {"flagged": hint.flagged, "text": hint.text, "mix_shift": hint.mix_shift,
                                    "disagreeing": list(hint.disagreeing)}
    out["cells"] = list(per_cell.values())
    return out
