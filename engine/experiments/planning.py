"""Sample-size planning for the console's experiment form (a thin layer over ``analysis.power``).

``alpha`` is per family: with several treatments it is split Bonferroni-style per comparison,
which is what the readout's Holm correction needs to keep the planned power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from analysis.power import (
    expected_duration_days,
    sample_size_means,
    sample_size_proportions,
    sample_size_relative,
    sample_size_relative_proportions,
)


@dataclass(frozen=True)
class SampleSizePlan:
    users_per_variant: int
    total_users: int
    variants: int
    alpha_per_comparison: float
    power: float
    baseline: float
    mde_abs: float
    mde_rel: float | None
    days: float | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["days"] is not None and not math.isfinite(out["days"]):
            out["days"] = None
        return out


def plan_sample_size(
    baseline: float,
    mde: float,
    *,
    metric_type: Literal["binomial", "mean"] = "binomial",
    std: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
    relative: bool = True,
    users_per_day: float | None = None,
    weights: tuple[float, ...] | None = None,
) -> SampleSizePlan:
    """Users per variant to detect ``mde`` on a metric whose control value is ``baseline``.

    Binomial metrics (a conversion or click rate) need only the baseline rate; mean metrics need
    the per-user standard deviation ``std``.  A relative ``mde`` is sized for the readout's relative
    test (delta method), an absolute one for the absolute difference: each for the test that decides.
    ``users_per_day`` (all variants together) turns the total into days, with the smallest arm of
    ``weights`` as the bottleneck.
    """
    if variants < 2:
        raise ValueError(f"an experiment has at least 2 variants, got {variants}")
    per_comparison = alpha / (variants - 1)
    mde_abs = mde * baseline if relative else mde
    if metric_type not in ("binomial", "mean"):
        raise ValueError(f"metric_type must be 'binomial' or 'mean', got {metric_type!r}")
    if metric_type == "mean" and std is None:
        raise ValueError("a mean metric needs the per-user standard deviation (std)")
    if metric_type == "binomial":
        n = (sample_size_relative_proportions(baseline, mde, per_comparison, power) if relative
             else sample_size_proportions(baseline, mde_abs, per_comparison, power, relative=False))
    else:
        assert std is not None
        n = (sample_size_relative(baseline, std, mde, per_comparison, power) if relative
             else sample_size_means(std, mde_abs, per_comparison, power))
    if weights is not None and len(weights) != variants:
        raise ValueError(f"{len(weights)} weights for {variants} variants")
    # the smallest arm needs n users, so the whole experiment needs n / its share
    total = n * variants if weights is None else math.ceil(n * sum(weights) / min(weights) - 1e-9)
    days = None
    if users_per_day is not None:
        days = expected_duration_days(n, users_per_day, weights=weights, arms=variants)
    return SampleSizePlan(
        users_per_variant=n,
        total_users=total,
        variants=variants,
        alpha_per_comparison=per_comparison,
        power=power,
        baseline=baseline,
        mde_abs=mde_abs,
        mde_rel=mde_abs / baseline if baseline else None,
        days=days,
    )
