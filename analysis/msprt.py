"""The mixture sequential probability ratio test (always valid; Johari, Pekelis, Koomen & Walsh
2017, "Peeking at A/B tests"), tuned to the experiment's plan.

With ``d`` the observed difference, ``v`` its variance and a normal mixture ``N(θ0, τ²)`` over the
alternative, the likelihood ratio is

    Λ = sqrt(v / (v + τ²)) · exp(τ² (d - θ0)² / (2 v (v + τ²)))

The always-valid p-value is ``min(1, 1/Λ(0))`` (its running minimum over looks when the caller keeps
the history), and the confidence sequence is ``{θ0 : Λ(θ0) < 1/α}``, i.e.
``d ± sqrt(v (v + τ²)/τ² · (2 log(1/α) + log((v + τ²)/v)))``: it excludes 0 exactly when
``p < α``.  Both the difference and the delta-method relative lift get their own pair, each with
its own ``τ²`` on its own scale; the relative lift is read on the log scale, where its z is normal
out to the boundaries (:class:`analysis.frequentist.RelativeMoments`).

**Tuning.**  Everything depends on the mixing ratio ``r = τ²/v_N``, with ``v_N`` the variance of the
estimate at the planned sample size N.  At look k (information fraction ``t_k``) the test rejects
when ``Z_k² ≥ (1 + 1/(r t_k)) (2 log(1/α) + log(1 + r t_k))``, a group-sequential test with
boundaries of its own, so its power at a planned effect is computed exactly by the same recursion as
a spending design (:func:`analysis.group_sequential.boundary_crossings`).  :func:`power_optimal_ratio`
picks the ``r`` that makes the test most powerful at the minimum detectable effect with the planned
looks — the choice Johari et al. recommend and Optimizely and Eppo make from the planned sample size
and MDE, instead of one fixed ``τ²`` for every experiment.  :func:`msprt_tau2` is Howard et al.
(2021)'s alternative: the ``τ²`` that makes the confidence sequence narrowest at the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import optimize

from analysis.frequentist import (
    Difference,
    RelativeMoments,
    empty_arm_message,
    overflow_message,
    relative_moments,
    zero_control_message,
)
from analysis.group_sequential import boundary_crossings
from analysis.stats import Estimate

Interval = tuple[float, float]
Number = float | np.ndarray

TUNING_LOOKS_IF_UNKNOWN = 20  # the number of looks assumed when tuning for a plan that does not say
_RATIO_RANGE = (0.05, 2000.0)
_DRIFT_RANGE = (0.25, 12.0)  # beyond these the optimum ratio no longer moves


def msprt_log_lr(diff: Number, var: Number, tau2: Number, null: float = 0.0) -> np.ndarray:
    """log Λ of the normal-mixture SPRT; arrays broadcast, so whole simulations run at once.

    Written with ``ρ = τ²/v`` as ``-log(1 + ρ)/2 + w²/2``, ``w = |d - θ0|/sqrt(v) · sqrt(ρ/(1 + ρ))``,
    and ``w`` built from logarithms: no intermediate overflows where the result does not, and the
    confidence sequence (:func:`msprt_halfwidth`) compares exactly the same quantities.
    """
    d = np.asarray(diff, dtype=float)
    v = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_rho, log1p_rho = _log_rho(v, tau2)
        log_w = np.log(np.abs(d - null)) - 0.5 * np.log(v) + 0.5 * (log_rho - log1p_rho)
        return -0.5 * log1p_rho + 0.5 * np.exp(2.0 * log_w)


def _log_rho(v: np.ndarray, tau2: Number) -> tuple[np.ndarray, np.ndarray]:
    """``log ρ`` and ``log(1 + ρ)`` for ``ρ = τ²/v``, without forming ρ (which may overflow)."""
    log_rho = np.log(tau2) - np.log(v)
    return log_rho, np.logaddexp(0.0, log_rho)


def msprt_p_values(diffs: np.ndarray, variances: np.ndarray, tau2: Number, null: float = 0.0) -> np.ndarray:
    """Always-valid p-values along the last axis (looks): the running minimum of ``min(1, 1/Λ)``."""
    with np.errstate(over="ignore"):
        p = np.minimum(1.0, np.exp(-msprt_log_lr(diffs, variances, tau2, null)))
    p = np.where(np.isfinite(p), p, 1.0)
    return np.minimum.accumulate(p, axis=-1)


def msprt_halfwidth(var: Number, tau2: Number, alpha: float) -> np.ndarray:
    """Half-width of the (two-sided, level 1-α) confidence sequence around the observed difference."""
    v = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_rho, log1p_rho = _log_rho(v, tau2)
        log_c = np.log(2.0 * math.log(1.0 / alpha) + log1p_rho)
        return np.exp(0.5 * (np.log(v) + log1p_rho - log_rho + log_c))


def msprt_tau2(var_at_horizon: float, alpha: float = 0.05) -> float:
    """``τ²`` making the confidence sequence narrowest when the difference's variance is ``var_at_horizon``.

    Howard et al. (2021): the optimum ratio ``τ²/v`` is close to ``2 log(1/α) + log(2 log(1/α) + 1)``.
    """
    two_log = 2.0 * math.log(1.0 / alpha)
    return (two_log + math.log(two_log + 1.0)) * var_at_horizon


# ------------------------------------------------------------------------------------ tuning


def msprt_z_boundaries(ratio: float, info_fractions: np.ndarray, alpha: float) -> np.ndarray:
    """|Z| the mSPRT needs at each look, for mixing ratio ``τ²/v_N = ratio``."""
    r = ratio * np.asarray(info_fractions, dtype=float)
    return np.sqrt((1.0 + 1.0 / r) * (2.0 * math.log(1.0 / alpha) + np.log1p(r)))


def equal_looks(looks: int) -> np.ndarray:
    return np.arange(1, looks + 1) / looks


def msprt_power(ratio: float, drift: float, looks: int, alpha: float = 0.05) -> float:
    """Probability that the mSPRT rejects within ``looks`` equally spaced looks when the expected z at
    the planned sample size is ``drift`` (exact, by the group-sequential recursion)."""
    t = equal_looks(looks)
    up, low = boundary_crossings(t, msprt_z_boundaries(ratio, t, alpha), True, drift)
    return float(up.sum() + low.sum())


def power_optimal_ratio(drift: float, looks: int, alpha: float = 0.05) -> float:
    """The mixing ratio ``τ²/v_N`` that maximises :func:`msprt_power` at ``drift`` over ``looks`` looks.

    ``drift = MDE / se_N`` is the z a fixed test would expect at the plan's sample size; for a plan
    sized for 80 % power at α = 0.05 it is 2.80, and with 14 looks the optimum is near 11.
    """
    clamped = min(max(drift, _DRIFT_RANGE[0]), _DRIFT_RANGE[1])
    return _power_optimal_ratio(round(clamped, 2), int(looks), float(alpha))


@lru_cache(maxsize=256)
def _power_optimal_ratio(drift: float, looks: int, alpha: float) -> float:
    found = optimize.minimize_scalar(
        lambda log_r: -msprt_power(math.exp(log_r), drift, looks, alpha),
        bounds=(math.log(_RATIO_RANGE[0]), math.log(_RATIO_RANGE[1])),
        method="bounded",
        options={"xatol": 0.01},
    )
    return float(math.exp(found.x))


# ------------------------------------------------------------------------------------ the test


@dataclass(frozen=True)
class SequentialResult:
    """An mSPRT readout: always-valid p-values and confidence sequences on both scales."""

    alpha: float
    difference: Difference = "relative"  # which pair p_value and significant belong to
    mixing_ratio: float | None = None  # τ²/v at the planned sample size
    tau2: float | None = None  # on the difference's scale
    tau2_rel: float | None = None  # on the relative lift's scale
    lift_abs: float | None = None
    var_abs: float | None = None
    ci_abs: Interval | None = None
    p_value_abs: float | None = None
    lift_rel: float | None = None
    relative: RelativeMoments | None = None  # the relative lift on the scale the test reads it (log)
    ci_rel: Interval | None = None
    p_value_rel: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    ci_adjusted: Interval | None = None
    message: str | None = None

    @property
    def significant(self) -> bool:
        p = self.p_value_adjusted if self.p_value_adjusted is not None else self.p_value
        return p is not None and p < self.alpha

    def interval_at(self, alpha: float) -> Interval | None:
        """The deciding scale's confidence sequence at level ``1 - alpha``."""
        if self.difference == "relative":
            rel = self.relative
            if rel is None or self.tau2_rel is None:
                return None
            return rel.interval(_sequence(rel.estimate, rel.var, self.tau2_rel, alpha))
        if self.lift_abs is None or self.var_abs is None or self.tau2 is None:
            return None
        return _sequence(self.lift_abs, self.var_abs, self.tau2, alpha)

    def adjusted(self, p_value: float, alpha: float) -> SequentialResult:
        return replace(self, p_value_adjusted=p_value, ci_adjusted=self.interval_at(alpha))


def _sequence(estimate: float, var: float, tau2: float, alpha: float) -> Interval:
    half = float(msprt_halfwidth(var, tau2, alpha))
    return (estimate - half, estimate + half)


def _pair(estimate: float, var: float, tau2: float, alpha: float) -> tuple[Interval, float]:
    p = float(msprt_p_values(np.array([estimate]), np.array([var]), tau2)[0])
    return _sequence(estimate, var, tau2, alpha), p


def msprt_test(
    control: Estimate,
    treatment: Estimate,
    alpha: float = 0.05,
    tau2: float | None = None,
    horizon_per_arm: float | None = None,
    *,
    mixing_ratio: float | None = None,
    difference: Difference = "relative",
) -> SequentialResult:
    """mSPRT on the difference and on the relative lift (log scale, see
    :class:`analysis.frequentist.RelativeMoments`) at the current look.

    Give ``tau2`` (difference scale; the relative scale then uses ``tau2 / mean_c²``), or
    ``horizon_per_arm`` (the planned users per arm) with ``mixing_ratio`` (``τ²/v`` at the horizon,
    e.g. from :func:`power_optimal_ratio`; Howard's width-optimal ratio when omitted).  The variances
    at the horizon are scaled from the current ones by ``users now / horizon``.
    """
    base = SequentialResult(alpha=alpha)
    problem = empty_arm_message(control.n, treatment.n, 2) or overflow_message(control, treatment)
    if problem:
        return replace(base, message=problem)
    diff = treatment.mean - control.mean
    var = control.var_of_mean + treatment.var_of_mean
    rel = relative_moments(control, treatment)
    deciding: Difference = difference if rel else "absolute"
    base = replace(base, difference=deciding, lift_abs=diff, lift_rel=rel.lift if rel else None, relative=rel)
    messages = [] if rel else [zero_control_message(difference)]
    if not (var > 0 and math.isfinite(var) and math.isfinite(diff)):
        messages.append("zero variance in both arms: the difference cannot be tested")
        return replace(base, message="; ".join(messages))
    if tau2 is None:
        if horizon_per_arm is None or not horizon_per_arm > 0:
            raise ValueError("msprt_test needs tau2 or a positive horizon_per_arm")
        ratio = mixing_ratio if mixing_ratio is not None else msprt_tau2(1.0, alpha)
        shrink = (control.n + treatment.n) / 2.0 / horizon_per_arm  # v_N = v_now · n_now / N
        tau2 = ratio * var * shrink
        tau2_rel = ratio * rel.var * shrink if rel else None
    else:
        ratio = None
        tau2_rel = tau2 / (control.mean * control.mean) if rel else None
    if not (tau2 > 0 and math.isfinite(tau2) and 0 < tau2 / var < math.inf):
        problem = f"tau^2 = {tau2:g} against a variance of {var:g}: the mixture needs a positive, finite ratio"
        return replace(base, message="; ".join([*messages, problem]))
    ci_abs, p_abs = _pair(diff, var, tau2, alpha)
    result = replace(base, mixing_ratio=ratio, tau2=tau2, var_abs=var, ci_abs=ci_abs, p_value_abs=p_abs)
    if rel is not None and tau2_rel is not None and rel.var > 0 and 0 < tau2_rel / rel.var < math.inf:
        ci_rel, p_rel = _pair(rel.estimate, rel.var, tau2_rel, alpha)
        result = replace(result, tau2_rel=tau2_rel, ci_rel=rel.interval(ci_rel), p_value_rel=p_rel)
    elif deciding == "relative":
        result = replace(result, difference="absolute")
    result = replace(result, p_value=result.p_value_rel if result.difference == "relative" else result.p_value_abs)
    return replace(result, message="; ".join(messages) or None)
