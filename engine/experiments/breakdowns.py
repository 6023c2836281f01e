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
    """Per exposed unit: its arm index, dimensions (as stored: ``name=value`` tab-joined, decoded per
    distinct string — a few hundred combinations among thousands of users), and the metric's
    numerator and denominator."""

    arm: np.ndarray
    dims: list[str]
    num: np.ndarray
    den: np.ndarray
    ratio: bool

    def cells(self, dimension: str) -> tuple[np.ndarray, list[str], list[str]]:
        """Each unit's value of ``dimension`` ('' when it has none), the distinct values, and every
        dimension name recorded."""
        decoded = {raw: decode(raw) for raw in set(self.dims)}
        value = {raw: d.get(dimension, "") for raw, d in decoded.items()}
        cell_of = np.asarray([value[raw] for raw in self.dims], dtype=object)
        known = sorted({k for d in decoded.values() for k in d})
        return cell_of, sorted({v for v in value.values() if v}), known


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
    units = [(unit, user, index[variant]) for unit, user, variant in table.arms() if variant in index]
    counters, dimensions = table.units, table.dimensions
    y = np.fromiter((float(counters.get(f"{unit}:{num_c}", 0.0)) for unit, _, _ in units), np.float64, len(units))
    if indicator:
        y = (y > 0).astype(np.float64)
    den = (np.fromiter((float(counters.get(f"{unit}:{den_c}", 0.0)) for unit, _, _ in units), np.float64, len(units))
           if den_c else np.ones(len(units)))
    if cap is not None:
        value = cap_value([y], cap)
        y = np.minimum(y, value) if value is not None else y
    arm = np.fromiter((a for _, _, a in units), np.int64, len(units))
    return UnitValues(arm, [dimensions.get(user, "") for _, user, _ in units], y, den, den_c is not None)


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
    table: UnitTable | UnitValues,
    names: Sequence[str],
    dimension: str,
    metric: str,
    defs: Sequence[MetricDefinition] = (),
    alpha: float = 0.05,
    correction: Correction | None = "holm",
    max_cells: int = MAX_CELLS,
) -> dict[str, Any]:
    """One dimension's breakdown of ``metric`` (see the module docstring); problems are reported in the
    entry's ``error`` (a dimension nobody has, or with more than ``max_cells`` values), never raised.
    ``table`` may be the metric's :func:`unit_values` already read (one pass for several dimensions)."""
    out: dict[str, Any] = {"dimension": dimension, "metric": metric, "cells": [], "simpson": {}, "error": None}
    values = unit_values(table, names, metric, defs) if isinstance(table, UnitTable) else table
    cell_of, cells, known = values.cells(dimension)
    if not cells:
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
    masks = {cell: cell_of == cell for cell in cells}
    for cell in cells:
        mask = masks[cell]
        per_cell[cell] = {"value": cell or "(none)",
                          "users": {n: int((mask & (values.arm == i)).sum()) for i, n in enumerate(names)},
                          "results": []}
    for t in range(1, len(names)):
        tests, estimates = [], []
        for cell in cells:
            result, mean_c, mean_t = _test(values, masks[cell], 0, t, settings)
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


def breakdowns(
    table: UnitTable,
    names: Sequence[str],
    dimensions: Sequence[str],
    metric: str,
    defs: Sequence[MetricDefinition] = (),
    alpha: float = 0.05,
    correction: Correction | None = "holm",
) -> tuple[dict[str, Any], ...]:
    """:func:`breakdown` by each of ``dimensions`` (duplicates once), the units read once for all."""
    dims = list(dict.fromkeys(dimensions))
    if not dims:
        return ()
    values = unit_values(table, names, metric, defs)
    return tuple(breakdown(values, names, d, metric, defs, alpha, correction) for d in dims)
