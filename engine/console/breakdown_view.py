"""The Readout page's "break down by" section: a breakdown (``engine.experiments.breakdowns``) as a
table, and its messages (a dimension with too many values, Simpson's hint) as notices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from engine.console.notices import Notice

CAPTION = ("The goal per value of the dimension, each treatment against the control within the cell. "
           "P-values are corrected across the cells (many cells are many tests); cells with too few users "
           "for a test are marked. A cell that differs from the total is a lead to check, not a verdict.")


def breakdown_frame(b: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for cell in b.get("cells", []):
        for r in cell["results"]:
            rows.append({
                "cell": cell["value"], "variant": r["variant"], "users": cell["users"].get(r["variant"], 0),
                "control users": next(iter(cell["users"].values()), 0), "control mean": r["control_mean"],
                "mean": r["mean"], "lift": r["lift_rel"],
                "adjusted p": r["p_value_adjusted"] if r["p_value_adjusted"] is not None else r["p_value"],
                "significant": "too small" if r["too_small"] else ("yes" if r["significant"] else "no"),
            })
    return pd.DataFrame(rows, columns=["cell", "variant", "users", "control users", "control mean", "mean", "lift",
                                       "adjusted p", "significant"])


def breakdown_notices(b: Mapping[str, Any]) -> list[Notice]:
    """The breakdown's problem (shown instead of a table), or a cell's sample ratio mismatch (first: it
    voids that cell's lift) and its Simpson's-paradox hints."""
    if b.get("error"):
        return [Notice("warning", str(b["error"]), ":material/warning:")]
    srm = b.get("srm") or {}
    mismatch = ([Notice("error", f"Health — {srm['message']}", ":material/health_and_safety:")]
                if srm.get("status") == "failed" else [])
    return mismatch + [Notice("warning", h["text"], ":material/call_split:")
                       for h in b.get("simpson", {}).values() if h.get("flagged")]
