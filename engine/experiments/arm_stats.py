"""Stored statistics of one phase, parsed per arm and turned into analysis inputs.

Nothing here does I/O: the store hands over the raw hashes (``<variant>|<statistic>`` -> number).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.readout import VariantSummary
from analysis.stats import RatioStats
from engine.experiments.metrics import MetricSpec


@dataclass(frozen=True)
class ArmStats:
    """One arm's sufficient statistics; a statistic never written reads as 0."""

    values: Mapping[str, float] = field(default_factory=dict)

    def get(self, stat: str) -> float:
        return self.values.get(stat, 0.0)

    @property
    def n(self) -> int:
        return round(self.get("n"))

    def epochs(self) -> dict[int, int]:
        """Exposed units per bandit epoch."""
        return {int(k[2:]): round(v) for k, v in self.values.items() if k.startswith("n@")}

    def plus(self, other: ArmStats) -> ArmStats:
        merged = dict(self.values)
        for stat, value in other.values.items():
            merged[stat] = merged.get(stat, 0.0) + value
        return ArmStats(merged)


def parse_stats(raw: Mapping[str, str | bytes], variants: Iterable[str]) -> dict[str, ArmStats]:
    """Raw hash fields -> one ``ArmStats`` per variant (variants with no data get empty stats)."""
    per_arm: dict[str, dict[str, float]] = {name: {} for name in variants}
    for raw_field, raw_value in raw.items():
        name = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
        variant, sep, stat = name.partition("|")
        if sep and variant in per_arm:
            per_arm[variant][stat] = float(raw_value)
    return {name: ArmStats(values) for name, values in per_arm.items()}


def cumulate(days: Sequence[Mapping[str, ArmStats]]) -> list[dict[str, ArmStats]]:
    """Prefix sums of daily increments: the statistics as they stood at the end of each day."""
    out: list[dict[str, ArmStats]] = []
    running: dict[str, ArmStats] = {}
    for day in days:
        names = dict.fromkeys([*running, *day])
        running = {name: running.get(name, ArmStats()).plus(day.get(name, ArmStats())) for name in names}
        out.append(running)
    return out


def ratio_stats(spec: MetricSpec, arm: ArmStats) -> RatioStats:
    if spec.denominator != "impressions":
        raise ValueError(f"ratio metric {spec.name!r}: only impressions are stored as a denominator")
    num, den = spec.numerator, spec.denominator
    return RatioStats(
        n=arm.n,
        num_sum=arm.get(f"s:{num}"),
        num_sum_sq=arm.get(f"ss:{num}"),
        den_sum=arm.get(f"s:{den}"),
        den_sum_sq=arm.get(f"ss:{den}"),
        num_den_sum_product=arm.get(f"si:{num}"),
    )


def _has_covariate(spec: MetricSpec, arms: Mapping[str, ArmStats]) -> bool:
    cov = spec.covariate
    return cov is not None and any(a.get(f"pxx:{cov}") > 0 for a in arms.values())


def summaries(spec: MetricSpec, names: Sequence[str], arms: Mapping[str, ArmStats]) -> list[VariantSummary]:
    """Analysis input for ``spec``, the control (``names[0]``) first.

    A ratio metric enters as the mean summary of its delta-method estimate — same mean, same
    per-unit variance — so every engine, the multiple-comparison correction, SRM and the decision
    of :func:`analysis.readout.analyze` apply to it unchanged (its p-value equals
    :func:`analysis.frequentist.ratio_ttest`'s).  Mean and binomial metrics carry the pre-exposure
    covariate columns for CUPED whenever the covariate varies.
    """
    cuped = _has_covariate(spec, arms)
    out: list[VariantSummary] = []
    for name in names:
        arm = arms.get(name, ArmStats())
        n = arm.n
        if spec.kind == "ratio":
            est = ratio_stats(spec, arm).estimate()
            total = est.mean * n
            sum_sq = est.variance * max(n - 1, 0) + (total * total / n if n else 0.0)
            out.append(VariantSummary(name, n, total, sum_sq))
            continue
        stat = spec.numerator
        total = arm.get(f"s:{stat}")
        sum_sq = total if spec.kind == "binomial" else arm.get(f"ss:{stat}")
        if cuped:
            cov = spec.covariate
            out.append(
                VariantSummary(
                    name, n, total, sum_sq, arm.get(f"px:{cov}"), arm.get(f"pxx:{cov}"), arm.get(f"sx:{stat}")
                )
            )
        else:
            out.append(VariantSummary(name, n, total, sum_sq))
    return out


def bandit_trials(spec: MetricSpec, arm: ArmStats) -> tuple[float, int]:
    """(successes, trials) of a bandit arm: clicks over impressions, or converted users over users."""
    if spec.kind == "ratio":
        trials = round(arm.get(f"s:{spec.denominator}"))
        return min(arm.get(f"s:{spec.numerator}"), float(trials)), trials
    if spec.kind == "binomial":
        return arm.get(f"s:{spec.numerator}"), arm.n
    raise ValueError(f"a bandit cannot learn from the mean metric {spec.name!r}")


def summaries_from_arrays(
    values: np.ndarray | Sequence[float],
    groups: np.ndarray | Sequence[int],
    names: Sequence[str],
    pre: np.ndarray | Sequence[float] | None = None,
) -> list[VariantSummary]:
    """Per-arm sums from raw per-user arrays in one O(n) pass each (``np.bincount``).

    ``groups[i]`` is user i's arm as an index into ``names`` (index 0 the control); ``pre`` is the
    pre-exposure covariate that adds the CUPED columns.  For data kept outside Redis (an export, a
    warehouse query): the result goes straight into :func:`analysis.readout.analyze`.
    """
    y = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    k = len(names)
    if y.shape != g.shape:
        raise ValueError(f"{y.size} values for {g.size} group labels")
    if g.size and (g.min() < 0 or g.max() >= k):
        raise ValueError(f"group labels must be in 0..{k - 1}")
    n = np.bincount(g, minlength=k)
    s = np.bincount(g, weights=y, minlength=k)
    ss = np.bincount(g, weights=y * y, minlength=k)
    if pre is None:
        return [VariantSummary(names[i], int(n[i]), float(s[i]), float(ss[i])) for i in range(k)]
    x = np.asarray(pre, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} covariate values for {y.size} values")
    px = np.bincount(g, weights=x, minlength=k)
    pxx = np.bincount(g, weights=x * x, minlength=k)
    sxy = np.bincount(g, weights=x * y, minlength=k)
    return [
        VariantSummary(names[i], int(n[i]), float(s[i]), float(ss[i]), float(px[i]), float(pxx[i]), float(sxy[i]))
        for i in range(k)
    ]
