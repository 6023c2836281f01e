"""How the console writes numbers, sizes, durations and times: one definition of each, for every page."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Literal

Unit = Literal["percent", "seconds", "ratio", "per_second"]
MISSING = "–"


def format_value(value: float | None, unit: Unit) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    if unit == "percent":
        return f"{value:.2%}" if abs(value) < 0.1 else f"{value:.1%}"
    if unit == "seconds":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "per_second":
        return f"{value:.2f}/s"
    return f"{value:.3f}"


def milliseconds(seconds: float, decimals: int = 2) -> str:
    return f"{seconds * 1000:.{decimals}f} ms"


def human_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or NaN
        return MISSING
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def human_bytes(n: float | None) -> str:
    if n is None:
        return MISSING
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def compact(value: float) -> str:
    """257431 -> 257.4k: a count where its order of magnitude is what matters."""
    for suffix, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:,.0f}"


def when(ts: float) -> str:
    """A Unix time as the console shows every time: UTC, to the second."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
