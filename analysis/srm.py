"""Sample ratio mismatch: do the arms' user counts match the configured traffic split?

A chi-square goodness-of-fit test of the observed counts against ``weights`` (equal split when not
given); the field's convention, used here, flags p < 0.001 — a mismatch means assignment or logging
is broken and no lift estimate from the experiment can be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

SRM_THRESHOLD = 0.001
_LARGEST = 1e150  # counts and weights above this overflow the chi-square's squares


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values.tolist())


def _numbers(values: np.ndarray) -> str:
    """``[20400, 19600]``: plain numbers, never numpy's ``np.float64(...)`` repr."""
    return "[" + ", ".join(f"{v:.0f}" if np.isfinite(v) and v == round(v) else f"{v:g}" for v in values.tolist()) + "]"


@dataclass(frozen=True)
class SrmResult:
    p_value: float
    chi2: float
    expected: tuple[float, ...]
    flagged: bool
    threshold: float
    message: str | None = None


def srm_test(
    users: Sequence[int], weights: Sequence[float] | None = None, threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """Chi-square test of ``users`` per arm against ``weights`` (normalised; equal when ``None``)."""
    counts = np.asarray(users, dtype=float)
    k = counts.size
    if k < 2:
        raise ValueError("an SRM check needs at least two arms")
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=float)
    if w.size != k:
        raise ValueError(f"{w.size} weights for {k} arms")
    # Bounds rather than a check of the sum: summing 1e308s overflows (with a numpy warning) first.
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and 0 < w.max() <= _LARGEST):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {_numbers(w)}")
    if not (np.all(np.isfinite(counts)) and np.all(counts >= 0) and np.all(counts == np.round(counts))):
        raise ValueError(f"user counts must be whole numbers >= 0, got {_numbers(counts)}")
    if counts.max() > _LARGEST:
        raise ValueError(f"user counts beyond {_LARGEST:g} cannot be checked in floating point, got {_numbers(counts)}")
    total = counts.sum()
    expected = w / w.sum() * total
    if total == 0:
        return SrmResult(1.0, 0.0, _floats(expected), False, threshold, "no users yet: nothing to check")
    starved = (expected == 0) & (counts > 0)
    if np.any(starved):
        arms = ", ".join(str(i) for i in np.flatnonzero(starved))
        return SrmResult(
            0.0,
            float("inf"),
            _floats(expected),
            True,
            threshold,
            f"arm(s) {arms} have users but a configured weight of 0",
        )
    live = expected > 0
    if live.sum() < 2:
        return SrmResult(
            1.0, 0.0, _floats(expected), False, threshold, "only one arm has traffic: nothing to check"
        )
    # Pearson's statistic and its chi-square tail, as scipy.stats.chisquare computes them (its input
    # checks and axis wrappers cost ~2 ms a call, and a readout runs this once per metric and period)
    observed, wanted = counts[live], expected[live]
    chi2 = float(np.sum((observed - wanted) ** 2 / wanted))
    p = float(special.chdtrc(observed.size - 1, chi2))
    flagged = bool(p < threshold)
    message = (
        f"sample ratio mismatch: p = {p:.2g} < {threshold:g}; observed {_numbers(counts)}, "
        f"expected {_numbers(np.round(expected))}"
        if flagged
        else None
    )
    return SrmResult(float(p), float(chi2), _floats(expected), flagged, threshold, message)
