"""What a readout reads: one summary row per variant, validated, from code or from CSV rows.

A variant is never raw observations: a readout only has counts and sums (``users``, ``sum``,
``sum_squares``, and for CUPED the pre-exposure ``pre_sum``, ``pre_sum_squares`` and the cross sum
``sum_product``), exactly like GrowthBook's gbstats.  The first variant is the control.

Validation turns every summary no data could produce — NaN or infinite numbers, negative or
fractional user counts, conversions outside ``[0, users]``, a sum of squares below ``sum²/users`` —
into a ``ValueError`` naming the variant (or the CSV row) and the column.  Sums that are valid but
near a float's limit pass: the tests report the overflow as a message.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

MetricType = Literal["binomial", "mean"]
_TOLERANCE = 1e-9  # relative slack for sums accumulated in floating point


@dataclass(frozen=True)
class VariantSummary:
    name: str
    users: int
    sum: float
    sum_squares: float | None = None
    pre_sum: float | None = None
    pre_sum_squares: float | None = None
    sum_product: float | None = None
    weight: float | None = None

    @property
    def has_cuped(self) -> bool:
        return None not in (self.pre_sum, self.pre_sum_squares, self.sum_product)



def sum_squares_problem(users: float, total: float, sum_squares: float | None) -> str | None:
    """Why a sum of squares is impossible for ``users`` values summing to ``total`` (Cauchy-Schwarz), or None."""
    if sum_squares is None or users <= 0:
        return None
    bound = total * (total / users)  # sum²/users, as products: a float ** raises OverflowError
    if math.isfinite(bound) and sum_squares < bound * (1 - _TOLERANCE) - _TOLERANCE:
        return f"{sum_squares:g} is below sum²/users = {bound:g}, which no data can produce"
    return None


def _numbers_problem(v: VariantSummary) -> str | None:
    values = {
        "users": v.users, "sum": v.sum, "sum_squares": v.sum_squares, "pre_sum": v.pre_sum,
        "pre_sum_squares": v.pre_sum_squares, "sum_product": v.sum_product, "weight": v.weight,
    }
    for column, value in values.items():
        if value is not None and not (isinstance(value, numbers.Real) and math.isfinite(value)):
            return f"{column} must be a finite number, got {value!r}"
    if v.users < 0 or v.users != int(v.users):
        return f"users must be a whole number >= 0, got {v.users}"
    for column in ("sum_squares", "pre_sum_squares", "weight"):
        value = values[column]
        if value is not None and value < 0:
            return f"{column} must be >= 0, got {value:g}"
    return None


def validate_summaries(variants: Sequence[VariantSummary], metric_type: MetricType) -> None:
    """``ValueError`` naming the variant and column of the first summary no data could produce."""
    if metric_type not in ("binomial", "mean"):
        raise ValueError(f"metric_type must be 'binomial' or 'mean', got {metric_type!r}")
    if len(variants) < 2:
        raise ValueError(f"need a control and at least one treatment, got {len(variants)} variant(s)")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    cuped = [v.has_cuped for v in variants]
    if any(cuped) and not all(cuped):
        missing = [v.name for v in variants if not v.has_cuped]
        raise ValueError(f"CUPED columns given for some variants but missing for {missing}")
    for v in variants:
        problem = _numbers_problem(v)
        if problem:
            raise ValueError(f"variant {v.name!r}: {problem}")
        if metric_type == "binomial" and not 0 <= v.sum <= v.users:
            raise ValueError(f"variant {v.name!r}: {v.sum} conversions for {v.users} users (binomial)")
        if metric_type == "binomial" and v.sum != round(v.sum):
            raise ValueError(f"variant {v.name!r}: {v.sum} conversions is not a whole number (binomial)")
        if metric_type == "mean" and v.sum_squares is None:
            raise ValueError(f"variant {v.name!r}: sum_squares is required for mean metrics")
        problem = sum_squares_problem(v.users, v.sum, v.sum_squares) if metric_type == "mean" else None
        if problem:
            raise ValueError(f"variant {v.name!r}, sum_squares: {problem}")


# --------------------------------------------------------------------------------- CSV rows

_REQUIRED = ("variant", "users", "sum")
_CUPED = ("pre_sum", "pre_sum_squares", "sum_product")


def _number(
    raw: str | None, row: int, column: str, *, integer: bool = False, minimum: float | None = None
) -> float:
    text = (raw or "").strip()
    where = f"row {row}, column {column!r}"
    if not text:
        raise ValueError(f"{where}: value is missing")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {text!r}")
    if integer and value != int(value):
        raise ValueError(f"{where}: expected a whole number, got {text!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: must be >= {minimum:g}, got {text!r}")
    return value


def summaries_from_rows(rows: Sequence[Mapping[str, str]]) -> list[VariantSummary]:
    """Parse CSV rows (``variant,users,sum[,sum_squares][,pre_sum,pre_sum_squares,sum_product][,weight]``).

    Row numbers in errors count data rows from 1 (the header is not a row).  The first row is the
    control.  Column names are matched case-insensitively, ignoring surrounding spaces; unknown
    columns are ignored.
    """
    if not rows:
        raise ValueError("no rows: need a control row and at least one treatment row")
    out: list[VariantSummary] = []
    seen: dict[str, int] = {}
    for index, raw_row in enumerate(rows, start=1):
        row = {str(k).strip().lower(): v for k, v in raw_row.items() if k is not None}
        for column in _REQUIRED:
            if column not in row:
                raise ValueError(f"row {index}: column {column!r} is missing (have {sorted(row)})")
        name = (row["variant"] or "").strip()
        if not name:
            raise ValueError(f"row {index}, column 'variant': name is empty")
        if name in seen:
            raise ValueError(f"row {index}, column 'variant': {name!r} repeats row {seen[name]}")
        seen[name] = index
        users = int(_number(row["users"], index, "users", integer=True, minimum=0))
        total = _number(row["sum"], index, "sum")

        def optional(
            column: str, minimum: float | None = None, index: int = index, row: dict[str, str] = row
        ) -> float | None:
            text = row.get(column)
            return None if text is None or not text.strip() else _number(text, index, column, minimum=minimum)

        sum_squares = optional("sum_squares", minimum=0)
        problem = sum_squares_problem(users, total, sum_squares)
        if problem:
            raise ValueError(f"row {index}, column 'sum_squares': {problem}")
        cuped = [optional("pre_sum"), optional("pre_sum_squares", minimum=0), optional("sum_product")]
        present = [c for c, v in zip(_CUPED, cuped, strict=True) if v is not None]
        if present and len(present) < len(_CUPED):
            missing = [c for c in _CUPED if c not in present]
            raise ValueError(f"row {index}: CUPED needs all of {list(_CUPED)}; missing {missing}")
        weight = optional("weight", minimum=0)
        out.append(VariantSummary(name, users, total, sum_squares, cuped[0], cuped[1], cuped[2], weight))
    if len(out) < 2:
        raise ValueError("need a control row and at least one treatment row")
    return out
