"""Tests that stay valid when the readout is looked at repeatedly.

Two families:

**mSPRT** (always valid; Johari, Pekelis, Koomen & Walsh 2017, "Peeking at A/B tests").  With
``d`` the observed difference, ``v`` its variance and a normal mixture ``N(θ0, τ²)`` over the
alternative, the likelihood ratio is

    Λ = sqrt(v / (v + τ²)) · exp(τ² (d - θ0)² / (2 v (v + τ²)))

The always-valid p-value is the running minimum of ``min(1, 1/Λ)`` over looks, and the confidence
sequence is ``{θ0 : Λ(θ0) < 1/α}``, i.e. ``d ± sqrt(v (v + τ²)/τ² · (2 log(1/α) + log((v + τ²)/v)))``.
``τ²`` is on the scale of the difference; :func:`msprt_tau2` picks the ``τ²`` that makes the
interval narrowest at a planned horizon (Howard et al. 2021, eq. for the normal mixture).

**Group-sequential** (Lan & DeMets 1983 alpha spending).  Boundaries at the information
fractions of the looks are solved exactly by the Armitage–McPherson–Rowe recursion: the density of
the score ``S_k = Z_k·sqrt(t_k)`` on the continuation region is propagated look to look by
numerical integration (Simpson's rule on a uniform grid), and each boundary is the root that
spends precisely the increment of the spending function.  The O'Brien–Fleming-shaped spending per
side is ``α_s(t) = 2 - 2Φ(z_{1-α_s/2} / sqrt(t))`` with ``α_s = α/2`` for a two-sided test; for
K = 5 equally spaced looks at two-sided α = 0.05 this gives 4.877, 3.357, 2.680, 2.290, 2.031.
Information beyond the plan (``t > 1``) is allowed: the covariance uses the real information and
no alpha is left to spend after the first look at ``t ≥ 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import optimize, special

from analysis.frequentist import empty_arm_message, relative_lift
from analysis.stats import Estimate

Interval = tuple[float, float]
Spending = Literal["obf", "pocock"]

# --------------------------------------------------------------------------------------------- mSPRT


def msprt_log_lr(
    diff: np.ndarray | float, var: np.ndarray | float, tau2: float, null: float = 0.0
) -> np.ndarray:
    """log Λ of the normal-mixture SPRT; arrays broadcast, so whole simulations run at once."""
    d = np.asarray(diff, dtype=float)
    v = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * np.log(v / (v + tau2)) + tau2 * (d - null) ** 2 / (2.0 * v * (v + tau2))
    return out


def msprt_p_values(diffs: np.ndarray, variances: np.ndarray, tau2: float, null: float = 0.0) -> np.ndarray:
    """Always-valid p-values along the last axis (looks): the running minimum of ``min(1, 1/Λ)``."""
    p = np.minimum(1.0, np.exp(-msprt_log_lr(diffs, variances, tau2, null)))
    p = np.where(np.isfinite(p), p, 1.0)
    return np.minimum.accumulate(p, axis=-1)


def msprt_halfwidth(var: np.ndarray | float, tau2: float, alpha: float) -> np.ndarray:
    """Half-width of the (two-sided, level 1-α) confidence sequence around the observed difference."""
    v = np.asarray(var, dtype=float)
    return np.sqrt(v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + np.log((v + tau2) / v)))


def msprt_tau2(var_at_horizon: float, alpha: float = 0.05) -> float:
    """``τ²`` making the confidence sequence narrowest when the difference's variance is ``var_at_horizon``.

    Howard et al. (2021): the optimum ratio ``τ²/v`` is close to ``2 log(1/α) + log(2 log(1/α) + 1)``.
    """
    two_log = 2.0 * math.log(1.0 / alpha)
    return (two_log + math.log(two_log + 1.0)) * var_at_horizon


@dataclass(frozen=True)
class SequentialResult:
    """An mSPRT readout: always-valid p-value and confidence sequences (absolute, delta-method relative)."""

    alpha: float
    tau2: float | None = None
    lift_abs: float | None = None
    ci_abs: Interval | None = None
    lift_rel: float | None = None
    ci_rel: Interval | None = None
    p_value: float | None = None
    message: str | None = None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha


def msprt_test(
    control: Estimate,
    treatment: Estimate,
    alpha: float = 0.05,
    tau2: float | None = None,
    horizon_per_arm: float | None = None,
    previous_p_value: float | None = None,
) -> SequentialResult:
    """mSPRT on the difference in means at the current look.

    Give ``tau2`` (difference scale) or ``horizon_per_arm`` (users per arm at which the interval should
    be tightest; ``τ²`` is then scaled from the current variance).  ``previous_p_value`` carries the
    running minimum from earlier looks; without it the p-value is that of this look alone, which is
    still valid but ignores history.
    """
    problem = empty_arm_message(control.n, treatment.n, 2)
    if problem:
        return SequentialResult(alpha=alpha, message=problem)
    diff = treatment.mean - control.mean
    var = control.var_of_mean + treatment.var_of_mean
    rel = relative_lift(control, treatment)
    base = SequentialResult(alpha=alpha, lift_abs=diff, lift_rel=rel[0] if rel else None)
    messages = [] if rel else ["control mean is 0: relative lift is undefined"]
    if var <= 0:
        messages.append("zero variance in both arms: the difference cannot be tested")
        return replace(base, message="; ".join(messages))
    if tau2 is None:
        if horizon_per_arm is None or horizon_per_arm <= 0:
            raise ValueError("msprt_test needs tau2 or a positive horizon_per_arm")
        n_now = (control.n + treatment.n) / 2.0
        tau2 = msprt_tau2(var * n_now / horizon_per_arm, alpha)
    p = float(msprt_p_values(np.array([diff]), np.array([var]), tau2)[0])
    if previous_p_value is not None:
        p = min(p, previous_p_value)
    half = float(msprt_halfwidth(var, tau2, alpha))
    ci_rel = None
    if rel is not None and rel[1] > 0:
        # Same mixture on the relative scale: τ² rescaled by the control mean, like the difference.
        half_rel = float(msprt_halfwidth(rel[1], tau2 / control.mean**2, alpha))
        ci_rel = (rel[0] - half_rel, rel[0] + half_rel)
    return replace(
        base,
        tau2=tau2,
        p_value=p,
        ci_abs=(diff - half, diff + half),
        ci_rel=ci_rel,
        message="; ".join(messages) or None,
    )


# ---------------------------------------------------------------------------- group-sequential


def spent_alpha(t: np.ndarray | float, alpha_side: float, spending: Spending = "obf") -> np.ndarray:
    """Cumulative alpha spent on one side by information fraction ``t`` (clamped to [0, 1])."""
    tt = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    if spending == "obf":
        with np.errstate(divide="ignore"):
            z = special.ndtri(1.0 - alpha_side / 2.0) / np.sqrt(tt)
        return 2.0 * special.ndtr(-z)  # not 2 - 2Φ(z): keeps the tiny early spends from rounding to 0
    if spending == "pocock":
        return alpha_side * np.log1p((math.e - 1.0) * tt)
    raise ValueError(f"unknown spending function {spending!r}: use 'obf' or 'pocock'")


@dataclass(frozen=True)
class GroupSequentialDesign:
    """Z-scale boundaries at each look: reject when ``|Z_k| >= b_k`` (two-sided) or ``Z_k >= b_k``."""

    info_fractions: tuple[float, ...]
    boundaries: tuple[float, ...]
    cumulative_alpha: tuple[float, ...]
    alpha: float
    two_sided: bool
    spending: Spending


_SD_PER_STEP = 24  # grid points per standard deviation of the smallest look-to-look increment
_MAX_GRID = 2001
_TAIL_SD = 10.0


def _simpson_grid(lo: float, hi: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    m = math.ceil((hi - lo) / step)
    m = min(max(m + (m % 2), 100), _MAX_GRID - 1)
    x = np.linspace(lo, hi, m + 1)
    w = np.ones(m + 1)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return x, w * (hi - lo) / (3.0 * m)


class _Recursion:
    """Density of the score S_k on the continuation region, propagated look by look."""

    def __init__(self, info: Sequence[float], drift: float, two_sided: bool) -> None:
        self.info = np.asarray(info, dtype=float)
        self.drift = drift
        self.two_sided = two_sided
        incs = np.diff(np.concatenate([[0.0], self.info]))
        self.step = float(np.sqrt(incs.min())) / _SD_PER_STEP
        self.x: np.ndarray | None = None  # grid of S_{k-1}
        self.fw: np.ndarray | None = None  # density times Simpson weights on that grid
        self.k = 0

    def _moments(self) -> tuple[float, float]:
        prev = self.info[self.k - 1] if self.k > 0 else 0.0
        inc = self.info[self.k] - prev
        return self.drift * inc, math.sqrt(inc)

    def crossing(self, c: float) -> tuple[float, float]:
        """(upper, lower) crossing probabilities at the current look for score boundary ``c``."""
        shift, sd = self._moments()
        lower_c = -c if self.two_sided else -math.inf
        if self.x is None:
            up = float(special.ndtr((shift - c) / sd))
            low = float(special.ndtr((lower_c - shift) / sd))
            return up, low
        assert self.fw is not None
        up = float(self.fw @ special.ndtr((self.x + shift - c) / sd))
        low = float(self.fw @ special.ndtr((lower_c - self.x - shift) / sd))
        return up, low

    def advance(self, c: float) -> None:
        """Move to the next look, keeping only paths that stayed inside ``(-c, c)`` (or below ``c``)."""
        shift, sd = self._moments()
        t = self.info[self.k]
        centre, spread = self.drift * t, math.sqrt(t)
        hi = min(c, centre + _TAIL_SD * spread)
        lo = max(-c, centre - _TAIL_SD * spread) if self.two_sided else centre - _TAIL_SD * spread
        y, w = _simpson_grid(lo, hi, self.step)
        if self.x is None:
            dens = np.exp(-0.5 * ((y - shift) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        else:
            assert self.fw is not None
            z = (y[:, None] - self.x[None, :] - shift) / sd
            dens = (np.exp(-0.5 * z**2) / (sd * math.sqrt(2 * math.pi))) @ self.fw
        self.x, self.fw = y, dens * w
        self.k += 1


def _validate_fractions(info_fractions: Sequence[float]) -> np.ndarray:
    t = np.asarray(info_fractions, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("info_fractions must be a non-empty sequence")
    if not np.all(np.isfinite(t)) or t[0] <= 0 or np.any(np.diff(t) <= 0):
        raise ValueError(f"info_fractions must be positive and strictly increasing, got {list(t)}")
    return t


def lan_demets_boundaries(
    info_fractions: Sequence[float],
    alpha: float = 0.05,
    spending: Spending = "obf",
    two_sided: bool = True,
) -> GroupSequentialDesign:
    """Lan-DeMets boundaries for looks at ``info_fractions`` (information / planned information)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    t = _validate_fractions(info_fractions)
    alpha_side = alpha / 2.0 if two_sided else alpha
    cumulative = spent_alpha(t, alpha_side, spending)
    sides = 2.0 if two_sided else 1.0
    rec = _Recursion(t, drift=0.0, two_sided=two_sided)
    bounds: list[float] = []
    spent_before = 0.0
    for k in range(t.size):
        target = float(cumulative[k]) - spent_before
        if target <= 0.0:
            c = math.inf
        elif k == 0:
            c = -float(special.ndtri(target)) * math.sqrt(t[0])
        else:

            def excess(c: float, target: float = target) -> float:
                up, low = rec.crossing(c)
                return (up + low) / sides - target

            hi = math.sqrt(t[k]) * 40.0
            c = optimize.brentq(excess, 1e-9, hi, xtol=1e-12) if excess(1e-9) > 0 else 1e-9
        spent_before += target
        bounds.append(c / math.sqrt(t[k]))
        rec.advance(c)
    return GroupSequentialDesign(
        info_fractions=tuple(float(x) for x in t),
        boundaries=tuple(bounds),
        cumulative_alpha=tuple(float(a) * sides for a in cumulative),
        alpha=alpha,
        two_sided=two_sided,
        spending=spending,
    )


def crossing_probabilities(
    design: GroupSequentialDesign, drift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-look probabilities of first crossing the upper and lower boundaries.

    ``drift`` is the expected Z at information fraction 1 (``effect / se_at_plan``); with ``drift=0``
    the totals reproduce the design's alpha, with the planned effect they give the power.
    """
    t = np.asarray(design.info_fractions)
    rec = _Recursion(t, drift=drift, two_sided=design.two_sided)
    ups, lows = [], []
    for k, b in enumerate(design.boundaries):
        c = b * math.sqrt(t[k])
        up, low = rec.crossing(c) if math.isfinite(c) else (0.0, 0.0)
        ups.append(up)
        lows.append(low)
        rec.advance(c)
    return np.array(ups), np.array(lows)


@dataclass(frozen=True)
class GroupSequentialDecision:
    look: int
    info_fraction: float
    z: float | None
    boundary: float
    reject: bool
    final: bool
    message: str


def group_sequential_test(
    z: float | None,
    info_fractions: Sequence[float],
    alpha: float = 0.05,
    spending: Spending = "obf",
    two_sided: bool = True,
) -> GroupSequentialDecision:
    """Decision at the latest look: ``info_fractions`` lists every look so far, this one last.

    Boundaries of a spending-function design depend only on the looks already made, so the decision
    is exact even when the number and timing of future looks are unknown.
    """
    design = lan_demets_boundaries(info_fractions, alpha, spending, two_sided)
    look = len(design.boundaries)
    b = design.boundaries[-1]
    t = design.info_fractions[-1]
    final = t >= 1.0
    if z is None or not math.isfinite(z):
        return GroupSequentialDecision(look, t, None, b, False, final, "no test statistic at this look")
    stat = abs(z) if two_sided else z
    reject = stat >= b
    if reject:
        message = f"boundary crossed at look {look} (|z| = {abs(z):.3f} >= {b:.3f}): stop and reject"
    elif final:
        message = f"final look reached without crossing ({b:.3f}): no detectable difference"
    elif math.isinf(b):
        message = f"no alpha to spend at look {look}: continue"
    else:
        message = f"look {look} at {t:.0%} of planned information: continue (boundary {b:.3f})"
    return GroupSequentialDecision(look, t, float(z), b, bool(reject), final, message)
