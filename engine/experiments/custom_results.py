"""User-defined metrics from stored statistics: analysis inputs for counts, sums, indicators and
ratios (CUPED-adjusted, ratios by :mod:`analysis.ratio_cuped`), and capping from per-unit values.

Pure functions: the statistics come from ``OBSERVE_CUSTOM``/``EXPOSE`` (``engine.experiments.scripts``);
per-unit values for capping come from :class:`UnitTable` (read by ``engine.experiments.readouts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.capping import AppliedCap, CapSettings, cap_arms
from analysis.ratio_cuped import RatioCupedStats, ratio_cuped_estimates
from analysis.readout import VariantSummary
from engine.experiments.arm_stats import ArmStats, summaries_from_arrays
from engine.experiments.metric_definitions import MetricDefinition, custom_counters, ratio_parts
from engine.experiments.metrics import COVARIATES


@dataclass(frozen=True)
class UnitTable:
    """Per-unit records of one phase: ``assignments`` (user -> ``epoch|variant|covs...|custom pre...``),
    ``units`` (``<unit>:<counter>`` -> value) and ``dimensions`` (user -> ``name=value`` tab-joined)."""

    assignments: Mapping[str, str]
    units: Mapping[str, str]
    dimensions: Mapping[str, str]

    def rows(self) -> list[tuple[str, str, list[str]]]:
        """(unit id, variant, record parts) per exposed unit."""
        out = []
        for user, record in self.assignments.items():
            parts = record.split("|")
            out.append((unit_id(user, parts[0]), parts[1], parts))
        return out

    def arms(self) -> list[tuple[str, str, str]]:
        """(unit id, user, variant) per exposed unit: :meth:`rows` without splitting the rest of each
        record (a breakdown reads 20,000 of them)."""
        out = []
        for user, record in self.assignments.items():
            epoch, variant, _ = (record + "|").split("|", 2)
            out.append((unit_id(user, epoch), user, variant))
        return out


def unit_id(user: str, epoch: str) -> str:
    """A unit is the user, or for a bandit past its first epoch ``<user>~<epoch>``."""
    return user if epoch == "0" else f"{user}~{epoch}"


def _key(arm: ArmStats, prefix: str, a: str, b: str, sep: str) -> float:
    """A symmetric product statistic stored under one order of its two counters."""
    return arm.get(f"{prefix}{a}{sep}{b}") or arm.get(f"{prefix}{b}{sep}{a}")


def ratio_cuped_stats(num: str, den: str, arm: ArmStats) -> RatioCupedStats:
    """The four per-user quantities' sums and cross products of one arm (post and pre num, den)."""
    s_n, s_d = arm.get(f"s:{num}"), arm.get(f"s:{den}")
    p_n, p_d = arm.get(f"px:{num}"), arm.get(f"px:{den}")
    nd = _key(arm, "x:", num, den, "*")
    ppnd = _key(arm, "pp:", num, den, "*")
    rows = (
        (arm.get(f"ss:{num}"), nd, arm.get(f"sx:{num}@{num}"), arm.get(f"sx:{num}@{den}")),
        (nd, arm.get(f"ss:{den}"), arm.get(f"sx:{den}@{num}"), arm.get(f"sx:{den}@{den}")),
        (arm.get(f"sx:{num}@{num}"), arm.get(f"sx:{den}@{num}"), arm.get(f"pxx:{num}"), ppnd),
        (arm.get(f"sx:{num}@{den}"), arm.get(f"sx:{den}@{den}"), ppnd, arm.get(f"pxx:{den}")),
    )
    return RatioCupedStats(arm.n, (s_n, s_d, p_n, p_d), rows)


def _ratio_summaries(defn: MetricDefinition, defs: Sequence[MetricDefinition], names: Sequence[str],
                     arms: Mapping[str, ArmStats]) -> tuple[list[VariantSummary], float]:
    num, den = ratio_parts(defn, defs)
    stats = [ratio_cuped_stats(num, den, arms.get(n, ArmStats())) for n in names]
    for name, s in zip(names, stats, strict=True):
        if s.n > 0 and s.sums[1] == 0:
            raise ValueError(f"{defn.name}: the denominator {defn.denominator!r} sums to 0 in arm {name!r}: "
                             "the ratio is undefined")
    estimates, theta = ratio_cuped_estimates(stats)
    out = []
    for name, est in zip(names, estimates, strict=True):
        # the delta-method estimate as a mean summary (same mean and per-unit variance), so every engine applies
        total = est.mean * est.n
        sum_sq = est.variance * max(est.n - 1, 0) + (total * total / est.n if est.n else 0.0)
        out.append(VariantSummary(name, est.n, total, sum_sq))
    return out, theta


def custom_summaries(defn: MetricDefinition, defs: Sequence[MetricDefinition], names: Sequence[str],
                     arms: Mapping[str, ArmStats]) -> tuple[list[VariantSummary], str, str | None]:
    """Analysis input of a declared metric (control first), its metric type and a note on CUPED."""
    if defn.kind == "ratio":
        summaries, theta = _ratio_summaries(defn, defs, names, arms)
        note = (f"{defn.name}: ratio CUPED on the pre-period numerator and denominator (theta {theta:.3g})"
                if theta else None)
        return summaries, "mean", note
    c = str(defn.counter)
    total_key, cross_key = (f"si:{c}", f"sxi:{c}") if defn.kind == "indicator" else (f"s:{c}", f"sx:{c}@{c}")
    cuped = any(a.get(f"pxx:{c}") > 0 for a in arms.values())
    out = []
    for name in names:
        arm = arms.get(name, ArmStats())
        total = arm.get(total_key)
        sum_sq = total if defn.kind == "indicator" else arm.get(f"ss:{c}")
        extra = (arm.get(f"px:{c}"), arm.get(f"pxx:{c}"), arm.get(cross_key)) if cuped else ()
        out.append(VariantSummary(name, arm.n, total, sum_sq, *extra))
    return out, "binomial" if defn.kind == "indicator" else "mean", None


def capped_summaries(defn: MetricDefinition, defs: Sequence[MetricDefinition], names: Sequence[str],
                     table: UnitTable) -> tuple[list[VariantSummary], AppliedCap]:
    """A count/sum metric with every unit's value winsorized at the declared cap (pooled over arms),
    CUPED on the unit's pre-exposure value of the same counter."""
    if defn.cap is None or defn.counter is None:
        raise ValueError(f"metric {defn.name!r} has no cap")
    counter = defn.counter
    position = 2 + len(COVARIATES) + custom_counters(defs).index(counter)
    index = {n: i for i, n in enumerate(names)}
    values, groups, pre = [], [], []
    for unit, variant, parts in table.rows():
        if variant not in index:
            continue
        values.append(float(table.units.get(f"{unit}:{counter}", 0.0)))
        groups.append(index[variant])
        pre.append(float(parts[position]) if position < len(parts) else 0.0)
    g = np.asarray(groups, dtype=np.int64)
    y = np.asarray(values, dtype=np.float64)
    settings = (CapSettings("percentile", defn.cap.percentile) if defn.cap.percentile is not None
                else CapSettings("absolute", float(defn.cap.value or 0.0)))
    per_arm = [y[g == i] for i in range(len(names))]
    capped, applied = cap_arms(per_arm, settings)
    y_capped = np.empty_like(y)
    for i, arm_values in enumerate(capped):
        y_capped[g == i] = arm_values
    x = np.asarray(pre, dtype=np.float64)
    summaries = summaries_from_arrays(y_capped, g, names, x if np.any(x != 0) else None)
    return summaries, applied
