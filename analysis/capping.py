"""Outlier capping (winsorization) of a per-user metric, at a percentile of the data or a fixed value.

A few heavy users (a bot, a reseller) can dominate a sum-of-values metric: the mean's variance
grows with the tail and a real effect drowns.  Capping each user's value at ``cap`` —
``min(value, cap)`` — trades a small bias for a large drop in variance (Kohavi, Tang & Xu 2020,
*Trustworthy Online Controlled Experiments*, ch. 22; GrowthBook's "capping" metric setting, which
caps per user before summing, exactly as here).

The percentile cap is computed from the **pooled** users of all arms, so it does not depend on which
arm a user is in: the treatment cannot move its own cap, and under the null every arm is capped by
the same rule (the A/A false-positive rate stays at alpha).  ``ignore_zeros`` computes the
percentile over non-zero values only (gbstats' ``ignoreZeros``), for metrics where most users have
none of the event and the plain 99th percentile would be 0.

Capping needs the per-user values: the sum of squares of capped values cannot be recovered from
the sums of the uncapped ones.  The readout therefore caps the per-user counts the engine keeps,
then reduces them to :class:`analysis.stats.SampleStats` (:func:`capped_stats`); the returned
:class:`AppliedCap` is what the result records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.stats import SampleStats

CapKind = Literal["percentile", "absolute"]
Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class CapSettings:
    """How to cap: at the ``value`` quantile (in (0, 1], e.g. 0.99) of the pooled data, or at the fixed
    ``value``."""

    kind: CapKind
    value: float
    ignore_zeros: bool = False

    def __post_init__(self) -> None:
        if self.kind == "percentile":
            if not 0.0 < self.value <= 1.0:
                raise ValueError(f"a percentile cap must be in (0, 1], got {self.value}")
        elif self.kind == "absolute":
            if not math.isfinite(self.value):
                raise ValueError(f"a fixed cap must be a finite number, got {self.value}")
        else:
            raise ValueError(f"cap kind must be 'percentile' or 'absolute', got {self.kind!r}")


@dataclass(frozen=True)
class AppliedCap:
    """What was done, for the result to record: the cap used and how many users it changed."""

    settings: CapSettings
    cap: float | None  # None: no data to compute a percentile from, nothing was capped
    capped_users: int
    total_users: int

    @property
    def capped_share(self) -> float:
        return self.capped_users / self.total_users if self.total_users else 0.0

    def describe(self) -> str:
        if self.cap is None:
            return "no cap: no values to take a percentile of"
        rule = (f"{self.settings.value:.4g} quantile of all arms' users"
                + (" (non-zero values)" if self.settings.ignore_zeros else "")
                if self.settings.kind == "percentile" else "fixed value")
        return f"capped at {self.cap:.6g} ({rule}): {self.capped_users:,} of {self.total_users:,} users"


def percentile_cap(arms: Sequence[Values], quantile: float, ignore_zeros: bool = False) -> float | None:
    """The ``quantile`` of every arm's values pooled (linear interpolation, like SQL's
    ``PERCENTILE_CONT``); ``None`` when there is nothing to take it from."""
    pooled = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arms]) if arms else np.empty(0)
    pooled = pooled[np.isfinite(pooled)]
    if ignore_zeros:
        pooled = pooled[pooled != 0]
    if pooled.size == 0:
        return None
    return float(np.quantile(pooled, quantile))


def winsorize(values: Values, cap: float) -> np.ndarray:
    """Each value above ``cap`` replaced by ``cap`` (an upper cap: a metric's outliers are large)."""
    return np.minimum(np.asarray(values, dtype=float), cap)


def cap_value(arms: Sequence[Values], settings: CapSettings) -> float | None:
    """The cap ``settings`` give on these arms' data."""
    if settings.kind == "absolute":
        return settings.value
    return percentile_cap(arms, settings.value, settings.ignore_zeros)


def cap_arms(arms: Sequence[Values], settings: CapSettings) -> tuple[list[np.ndarray], AppliedCap]:
    """Every arm winsorized at one cap computed from all of them, and the record of it."""
    raw = [np.asarray(a, dtype=float) for a in arms]
    cap = cap_value(raw, settings)
    total = sum(int(a.size) for a in raw)
    if cap is None:
        return raw, AppliedCap(settings, None, 0, total)
    capped = sum(int(np.count_nonzero(a > cap)) for a in raw)
    return [winsorize(a, cap) for a in raw], AppliedCap(settings, cap, capped, total)


def capped_stats(arms: Sequence[Values], settings: CapSettings) -> tuple[list[SampleStats], AppliedCap]:
    """:func:`cap_arms` reduced to the sufficient statistics the tests take."""
    capped, applied = cap_arms(arms, settings)
    return [SampleStats.from_values(a) for a in capped], applied
