"""A metric as a page shows it (``st.metric``): a label, the value already formatted, and its help."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricCard:
    label: str
    value: str | int
    help: str | None = None
