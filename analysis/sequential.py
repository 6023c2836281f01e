"""The sequential plan: which always-valid test reads an experiment that is looked at repeatedly,
and what it is tuned to.

Two methods, both valid however often the readout is looked at:

- ``"msprt"`` (:mod:`analysis.msprt`): any number of looks at any time.  Its mixing variance is
  chosen from the plan — planned users per arm N, planned looks K, minimum detectable effect — to make
  the test most powerful at the MDE with N users over K looks.  Without an MDE it is tuned for the
  effect the plan can detect with the readout's power (a z of ``z_{1-α/2} + z_power`` at N).
- ``"group"`` (:mod:`analysis.group_sequential`): Lan-DeMets O'Brien-Fleming spending over the plan's
  K equally spaced looks; a readout between planned looks counts as a look at its own information
  fraction ``users per arm / N``, after the planned looks already passed.

Without a planned sample size the readout falls back on the size the MDE requires at the observed
baseline; with neither, the mSPRT is tuned at the current sample size and the group-sequential test
cannot run (its information fractions need a plan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import special

from analysis.frequentist import Alternative, Difference, relative_moments
from analysis.group_sequential import GroupSequentialResult, Spending, group_sequential_readout
from analysis.msprt import TUNING_LOOKS_IF_UNKNOWN, SequentialResult, msprt_test, power_optimal_ratio
from analysis.stats import Estimate

SequentialMethod = Literal["msprt", "group"]


@dataclass(frozen=True)
class SequentialPlan:
    method: SequentialMethod = "msprt"
    planned_users_per_arm: int | None = None  # None: the sample size the readout's MDE requires
    looks: int | None = None  # planned, equally spaced
    mde: float | None = None  # relative effect the mSPRT is tuned for; None: what the plan can detect
    spending: Spending = "obf"

    def __post_init__(self) -> None:
        if self.method not in ("msprt", "group"):
            raise ValueError(f"sequential method must be 'msprt' or 'group', got {self.method!r}")
        if self.planned_users_per_arm is not None and not self.planned_users_per_arm >= 1:
            raise ValueError(f"planned users per arm must be at least 1, got {self.planned_users_per_arm}")
        if self.looks is not None and not 1 <= self.looks <= 1000:
            raise ValueError(f"looks must be between 1 and 1000, got {self.looks}")
        if self.mde is not None and not (math.isfinite(self.mde) and self.mde > 0):
            raise ValueError(f"the plan's mde must be a positive number, got {self.mde}")
        if self.spending not in ("obf", "pocock"):
            raise ValueError(f"spending must be 'obf' or 'pocock', got {self.spending!r}")


def look_fractions(users_per_arm: float, planned_users_per_arm: float, looks: int | None) -> tuple[float, ...]:
    """Information fractions of every look so far: the planned looks already passed, then this one.

    The last planned look (``t = 1``) is never assumed passed: a readout at or beyond the plan is it.
    """
    t = users_per_arm / planned_users_per_arm
    earlier = [j / looks for j in range(1, looks) if j / looks < t * (1 - 1e-9)] if looks else []
    return (*earlier, t)


def planned_drift(
    effect: float | None, var_now: float | None, users_now: float, planned: float, alpha: float, power: float
) -> float:
    """Expected z at the planned sample size: ``effect / se(N)`` (the MDE on the scale whose variance
    ``var_now`` is), or ``z_{1-α/2} + z_power`` — the z of the effect a fixed test of that size
    detects with ``power`` — when there is no MDE or no variance to scale it by."""
    if effect is not None and var_now is not None and var_now > 0:
        var_at_plan = var_now * users_now / planned
        drift = effect / math.sqrt(var_at_plan)
        if math.isfinite(drift):
            return drift
    return float(special.ndtri(1.0 - alpha / 2.0) + special.ndtri(power))


def sequential_test(
    control: Estimate,
    treatment: Estimate,
    plan: SequentialPlan,
    *,
    planned_users_per_arm: int | None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    difference: Difference = "relative",
    tau2: float | None = None,
    info_fractions: tuple[float, ...] | None = None,
) -> SequentialResult | GroupSequentialResult:
    """The plan's test at the current look.

    ``planned_users_per_arm`` is the plan's N (already resolved: the plan's own, or the size the MDE
    requires).  ``tau2`` fixes the mSPRT's mixing variance and ``info_fractions`` the group-sequential
    looks, overriding what the plan derives.
    """
    users_now = (control.n + treatment.n) / 2.0
    if plan.method == "group":
        if info_fractions is None:
            if planned_users_per_arm is None or users_now <= 0:
                return GroupSequentialResult(
                    alpha=alpha,
                    difference=difference,
                    message="group-sequential test needs a planned sample size (and users) to place its looks",
                )
            info_fractions = look_fractions(users_now, planned_users_per_arm, plan.looks)
        return group_sequential_readout(
            control, treatment, info_fractions, alpha, plan.spending, alternative, difference
        )
    if tau2 is not None:
        return msprt_test(control, treatment, alpha, tau2, difference=difference)
    horizon = float(planned_users_per_arm) if planned_users_per_arm else max(users_now, 1.0)
    rel = relative_moments(control, treatment)
    effect = rel.effect(plan.mde) if rel and plan.mde is not None else None
    drift = planned_drift(effect, rel.var if rel else None, users_now, horizon, alpha, power)
    ratio = power_optimal_ratio(drift, plan.looks or TUNING_LOOKS_IF_UNKNOWN, alpha)
    return msprt_test(control, treatment, alpha, horizon_per_arm=horizon, mixing_ratio=ratio, difference=difference)


def describe_plan(plan: SequentialPlan, planned_users_per_arm: int | None, alpha: float, power: float) -> str:
    """One line for the readout: what the sequential test is and what it was tuned to."""
    size = f"{planned_users_per_arm:,} users per arm" if planned_users_per_arm else "the current sample size"
    if plan.method == "group":
        looks = f"{plan.looks} planned looks" if plan.looks else "unplanned looks (each readout counted as the first)"
        return f"group-sequential (Lan-DeMets {plan.spending.upper()} spending) over {looks} up to {size}"
    looks = f"{plan.looks} planned looks" if plan.looks else f"{TUNING_LOOKS_IF_UNKNOWN} looks (none planned)"
    if plan.mde is not None:
        target = f"most powerful at a {plan.mde:+.1%} lift"
    else:
        target = f"most powerful at the effect {size} detects with {power:.0%} power"
    return f"mSPRT (always valid) with its mixing variance tuned to the plan: {size}, {looks}, {target}"
