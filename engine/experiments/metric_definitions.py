"""Metrics an experiment declares: user-defined per-user counts, sums, indicators and ratios over any
event type, each with its role (goal, guardrail, secondary), direction and, optionally, a cap.

    {"name": "views", "kind": "count", "event_type": "view", "role": "goal"}
    {"name": "spend", "kind": "sum", "event_type": "purchase", "role": "guardrail", "margin": 0.02,
     "cap": {"percentile": 0.99}}
    {"name": "view_rate", "kind": "ratio", "numerator": "views", "denominator": "impressions_seen"}

A ratio names two *other declared* count/sum metrics (or built-in counters) as numerator and
denominator.  The built-in ``goal_metric`` and ``guardrail_metrics`` keep working: they become
declarations (:func:`declarations`) with "higher is better", the guardrails with the experiment's
``guardrail_margin`` (2% by default).  Unlike before the declared rules, a guardrail now has to be
shown within its margin (non-inferiority) before a treatment ships, not only "not significantly
worse": with few users that means "keep running".

Each custom metric reads one *counter* per user: ``count:<event_type>`` (number of such events) or
``sum:<event_type>`` (sum of their values).  The counters an experiment needs are
:func:`custom_counters`; the Lua script keeps their sufficient statistics incrementally
(``engine.experiments.scripts.OBSERVE_CUSTOM``), only for experiments that declare some.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis.decision_rules import MetricDeclaration
from engine.data.schema import EVENT_TYPES
from engine.experiments.metrics import METRICS

CustomKind = Literal["count", "sum", "indicator", "ratio"]
# a built-in counter named as a ratio's part reads the same events as a custom counter
BUILTIN_COUNTER = {"impressions": "count:impression", "clicks": "count:click", "add_to_carts": "count:add_to_cart",
                   "purchases": "count:purchase", "revenue": "sum:purchase"}
MAX_CUSTOM_METRICS = 20  # each adds Lua work per event of the experiment's users


class CapSpec(BaseModel):
    """Winsorize each user's value at a pooled ``percentile`` (in (0, 1]) or at a fixed ``value``."""

    model_config = ConfigDict(extra="forbid")

    percentile: float | None = Field(default=None, gt=0, le=1)
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_of(self) -> CapSpec:
        if (self.percentile is None) == (self.value is None):
            raise ValueError("a cap is either {'percentile': q} (0 < q <= 1) or {'value': v}, not both or neither")
        return self


class MetricDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
    kind: CustomKind
    event_type: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    direction: Literal["higher", "lower"] = "higher"
    role: Literal["goal", "guardrail", "secondary"] = "secondary"
    margin: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="Tolerated relative deterioration")
    cap: CapSpec | None = None
    description: str = ""

    @property
    def counter(self) -> str | None:
        """The per-user counter a count/sum/indicator reads (``None`` for a ratio)."""
        if self.kind == "ratio" or self.event_type is None:
            return None
        return f"{'sum' if self.kind == 'sum' else 'count'}:{self.event_type}"

    def declaration(self) -> MetricDeclaration:
        return MetricDeclaration(self.name, self.role, self.direction, self.margin)


def _problems(defs: Sequence[MetricDefinition]) -> list[str]:
    out: list[str] = []
    names = [d.name for d in defs]
    if len(defs) > MAX_CUSTOM_METRICS:
        out.append(f"at most {MAX_CUSTOM_METRICS} metrics, got {len(defs)}")
    out += [f"metric {n!r} is declared twice" for n in sorted({n for n in names if names.count(n) > 1})]
    out += [f"metric {n!r}: the name of a built-in metric" for n in names if n in METRICS]
    by_name = {d.name: d for d in defs}
    for d in defs:
        if d.kind == "ratio":
            if d.numerator is not None and d.numerator == d.denominator:
                out.append(f"metric {d.name!r}: numerator and denominator are the same")
                continue
            if d.event_type is not None or d.numerator is None or d.denominator is None:
                out.append(f"metric {d.name!r}: a ratio names a numerator and a denominator, not an event_type")
                continue
            for part in (d.numerator, d.denominator):
                other = by_name.get(part)
                if other is None and part not in BUILTIN_COUNTER:
                    out.append(f"metric {d.name!r}: {part!r} is neither a declared count/sum metric nor a "
                               f"built-in counter {list(BUILTIN_COUNTER)}")
                elif other is not None and other.kind not in ("count", "sum"):
                    out.append(f"metric {d.name!r}: {part!r} is a {other.kind}; a ratio divides counts or sums")
            if d.cap is not None:
                out.append(f"metric {d.name!r}: a ratio cannot be capped (cap its numerator's metric)")
        else:
            if d.event_type is None or d.numerator is not None or d.denominator is not None:
                out.append(f"metric {d.name!r}: a {d.kind} names an event_type (no numerator/denominator)")
            elif d.event_type not in EVENT_TYPES:
                out.append(f"metric {d.name!r}: unknown event_type {d.event_type!r}; known: {list(EVENT_TYPES)}")
            if d.cap is not None and d.kind == "indicator":
                out.append(f"metric {d.name!r}: an indicator (0 or 1 per user) cannot be capped")
        if d.margin and d.role != "guardrail":
            out.append(f"metric {d.name!r}: only a guardrail has a margin (tolerated deterioration)")
    return out


def metric_problems(defs: Sequence[MetricDefinition], goal_metric: str, guardrails: Sequence[str]) -> list[str]:
    """Every problem with the declared metrics, in words (the experiment files them under ``metrics``)."""
    out = _problems(defs)
    out += [f"metric {n!r} is also a built-in guardrail" for n in guardrails if n in {d.name for d in defs}]
    return out


def ratio_parts(defn: MetricDefinition, defs: Sequence[MetricDefinition]) -> tuple[str, str]:
    """The counters a ratio divides: a declared metric's counter, or a built-in counter by name."""
    by_name = {d.name: d for d in defs}

    def counter(part: str | None) -> str:
        other = by_name.get(part or "")
        return other.counter if other is not None and other.counter else BUILTIN_COUNTER[str(part)]

    return counter(defn.numerator), counter(defn.denominator)


def custom_counters(defs: Sequence[MetricDefinition]) -> tuple[str, ...]:
    """The custom per-user counters the declared metrics read, in a stable order (the Lua script's)."""
    out: dict[str, None] = {}
    for d in defs:
        parts = ratio_parts(d, defs) if d.kind == "ratio" else (d.counter or "",)
        for c in parts:
            if c:
                out[c] = None
    return tuple(out)


def declarations(goal_metric: str, guardrails: Sequence[str], defs: Sequence[MetricDefinition],
                 guardrail_margin: float = 0.0) -> list[MetricDeclaration]:
    """Every metric the decision reads: the built-in goal (unless a custom goal replaces it) and
    guardrails, then the declared ones."""
    # a declared goal replaces the built-in one, which is then still read, as a secondary
    replaced = any(d.role == "goal" for d in defs)
    out = [MetricDeclaration(goal_metric, "secondary" if replaced else "goal")]
    out += [MetricDeclaration(g, "guardrail", margin=guardrail_margin) for g in guardrails]
    out += [d.declaration() for d in defs]
    return out
