"""The Experiments editor's table of user-defined metrics: declarations to rows and back.

One row per metric (``engine.experiments.metric_definitions.MetricDefinition``); a cap is two
columns (a percentile in (0, 1] or a fixed value; at most one is filled).  A row without a name is
an empty row of the table editor and is dropped.  Valid rows come back exactly as the experiment
stores them, so an unchanged table is no change (a change of the metrics opens a new phase).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from engine.data.schema import EVENT_TYPES
from engine.experiments.metric_definitions import MetricDefinition

COLUMNS = ("name", "kind", "event_type", "numerator", "denominator", "direction", "role", "margin",
           "cap_percentile", "cap_value")
KINDS = ("count", "sum", "indicator", "ratio")
DIRECTIONS = ("higher", "lower")
ROLES = ("goal", "guardrail", "secondary")
EVENT_TYPE_CHOICES = EVENT_TYPES
HELP = ("count / sum / indicator of an event type per user, or a ratio of two count/sum metrics (or the "
        "built-in impressions, clicks, add_to_carts, purchases, revenue). A guardrail's margin is the tolerated "
        "relative deterioration (0.02 = 2%). Cap: a percentile in (0, 1], e.g. 0.99, or a fixed value.")


def rows_of(defs: Sequence[MetricDefinition] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows for these declarations."""
    out = []
    for d in defs:
        data = d.model_dump() if isinstance(d, MetricDefinition) else dict(d)
        cap = data.get("cap") or {}
        out.append({**{c: data.get(c) for c in COLUMNS[:8]},
                    "cap_percentile": cap.get("percentile"), "cap_value": cap.get("value")})
    return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str)
                                                                                   and not value.strip())


def declarations(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``metrics`` of an experiment spec from the table's rows (valid ones normalised as stored)."""
    out = []
    for row in rows:
        if _blank(row.get("name")):
            continue
        spec: dict[str, Any] = {c: (str(row[c]).strip() if isinstance(row.get(c), str) else row.get(c))
                                for c in COLUMNS[:8] if not _blank(row.get(c))}
        if "margin" in spec:
            spec["margin"] = float(spec["margin"])
        cap = {k: float(row[c]) for k, c in (("percentile", "cap_percentile"), ("value", "cap_value"))
               if not _blank(row.get(c))}
        if cap:
            spec["cap"] = cap
        try:
            out.append(MetricDefinition.model_validate(spec).model_dump())
        except ValidationError:
            out.append(spec)  # the experiment's validation names the problem under "metrics"
    return out
