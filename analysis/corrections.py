"""Multiple-comparison adjustments for k treatments against one control.

Both return adjusted p-values in the input order (compare them with the unadjusted alpha), and
agree with ``statsmodels.stats.multitest.multipletests`` ("holm", "fdr_bh").

Neither procedure has one simultaneous interval that matches its test, so :func:`adjusted_levels`
gives each hypothesis the per-comparison level the procedure actually tested it at; the interval at
that level excludes 0 exactly when the adjusted p-value is below alpha:

- Holm steps down through the sorted p-values at ``alpha / (m - j + 1)``; a hypothesis rejected at
  step j gets that level, and every hypothesis from the first one not rejected on gets the level of
  the step where the procedure stopped.
- Benjamini-Hochberg rejects the R smallest p-values; every hypothesis gets ``max(R, 1)·alpha/m``
  (Benjamini & Yekutieli 2005's false-coverage-rate adjusted intervals).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Correction = Literal["holm", "bh"]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down: controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    stepped = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(stepped), 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up: controls the false discovery rate."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)[::-1]
    scaled = p[order] * m / (m - np.arange(m))
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


def adjust(p_values: Sequence[float], method: Correction | None) -> np.ndarray:
    """Adjusted p-values by ``method``; ``None`` returns them unchanged."""
    if method is None:
        return np.asarray(p_values, dtype=float)
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown correction {method!r}: use 'holm', 'bh' or None")


def adjusted_levels(p_values: Sequence[float], method: Correction | None, alpha: float) -> np.ndarray:
    """Per-comparison alpha at which each hypothesis' interval agrees with its adjusted p-value."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if method is None or m == 0:
        return np.full(m, alpha)
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    if method == "holm":
        steps = alpha / (m - np.arange(m))  # alpha/m, alpha/(m-1), ..., alpha
        failed = np.flatnonzero(sorted_p >= steps)
        levels_sorted = steps.copy()
        if failed.size:
            levels_sorted[failed[0]:] = steps[failed[0]]
    elif method == "bh":
        passed = np.flatnonzero(sorted_p <= alpha * np.arange(1, m + 1) / m)
        rejected = int(passed[-1]) + 1 if passed.size else 0
        levels_sorted = np.full(m, max(rejected, 1) * alpha / m)
    else:
        raise ValueError(f"unknown correction {method!r}: use 'holm', 'bh' or None")
    out = np.empty(m)
    out[order] = levels_sorted
    return out
