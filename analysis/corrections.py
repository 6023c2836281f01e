"""Multiple-comparison adjustments for k treatments against one control.

Both return adjusted p-values in the input order (compare them with the unadjusted alpha), and
agree with ``statsmodels.stats.multitest.multipletests`` ("holm", "fdr_bh").  Confidence
intervals are not adjusted: neither procedure has a simultaneous interval that matches its test.
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
