"""Group-sequential tests (Lan & DeMets 1983 alpha spending), and their readout.

Boundaries at the information fractions of the looks are solved exactly by the
Armitage–McPherson–Rowe recursion: the density of the score ``S_k = Z_k·sqrt(t_k)`` on the
continuation region is propagated look to look by numerical integration (Simpson's rule on a uniform
grid), and each boundary is the root that spends precisely the increment of the spending function.
The O'Brien–Fleming-shaped spending per side is ``α_s(t) = 2 - 2Φ(z_{1-α_s/2} / sqrt(t))`` with
``α_s = α/2`` for a two-sided test; for K = 5 equally spaced looks at two-sided α = 0.05 this gives
4.877, 3.357, 2.680, 2.290, 2.031.  Information beyond the plan (``t > 1``) is allowed: the
covariance uses the real information and no alpha is left to spend after the first look at ``t ≥ 1``.

The readout (:func:`group_sequential_readout`) follows the one rule of :mod:`analysis.frequentist`:
the verdict, the p-value and the interval come from the same test.  The interval is the *repeated
confidence interval* ``estimate ± b_k·se`` (Jennison & Turnbull 2000, ch. 9), which excludes 0
exactly when the boundary is crossed, and the p-value is the *repeated p-value*: the smallest alpha
whose design's boundary at this look the statistic crosses — below alpha exactly when the design at
alpha rejects.  The relative lift is read on the log scale, where its z is normal out to the
boundaries (:class:`analysis.frequentist.RelativeMoments`), and its intervals mapped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import optimize, special

from analysis.frequentist import (
    Alternative,
    Difference,
    RelativeMoments,
    empty_arm_message,
    excludes_zero,
    interval,
    overflow_message,
    relative_moments,
    zero_control_message,
)
from analysis.stats import Estimate

Interval = tuple[float, float]
Spending = Literal["obf", "pocock"]

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


_MAX_FRACTION = 1e6  # information a million times the plan's
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

    def __init__(self, info: Sequence[float] | np.ndarray, drift: float, two_sided: bool) -> None:
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
    shown = [float(x) for x in t]
    # compared pairwise, not by np.diff: the difference of two huge fractions overflows
    if not np.all(np.isfinite(t)) or t[0] <= 0 or np.any(t[1:] <= t[:-1]):
        raise ValueError(f"info_fractions must be positive and strictly increasing, got {shown}")
    # The recursion's grid spans every look at a step set by the smallest one: spans of more than
    # nine orders of magnitude are not a real design and would overflow it.
    if t[-1] > _MAX_FRACTION or t[0] < t[-1] * 1e-9:
        raise ValueError(f"info_fractions must lie within nine orders of magnitude and below {_MAX_FRACTION:g}, "
                         f"got {shown}")
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
    # Readouts ask for the same design again and again (every metric, every refresh): solve it once.
    return _design(tuple(float(x) for x in t), float(alpha), spending, two_sided)


@lru_cache(maxsize=256)
def _design(t_: tuple[float, ...], alpha: float, spending: Spending, two_sided: bool) -> GroupSequentialDesign:
    t = np.asarray(t_)
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


def boundary_crossings(
    info_fractions: Sequence[float] | np.ndarray,
    boundaries: Sequence[float] | np.ndarray,
    two_sided: bool,
    drift: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-look probabilities of first crossing z-scale ``boundaries`` upwards and downwards.

    ``drift`` is the expected Z at information fraction 1 (``effect / se_at_plan``).  Any test that
    rejects when ``|Z_k| >= b_k`` — a spending design, or the mSPRT at discrete looks — can be scored.
    """
    t = np.asarray(info_fractions, dtype=float)
    rec = _Recursion(t, drift=drift, two_sided=two_sided)
    ups, lows = [], []
    for k, b in enumerate(boundaries):
        c = b * math.sqrt(t[k])
        up, low = rec.crossing(c) if math.isfinite(c) else (0.0, 0.0)
        ups.append(up)
        lows.append(low)
        rec.advance(c)
    return np.array(ups), np.array(lows)


def crossing_probabilities(
    design: GroupSequentialDesign, drift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-look crossing probabilities of ``design``: with ``drift=0`` the totals reproduce the
    design's alpha, with the planned effect they give the power."""
    return boundary_crossings(design.info_fractions, design.boundaries, design.two_sided, drift)


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


# ------------------------------------------------------------------------------------ readout

_P_FLOOR = 1e-12  # repeated p-values below this are reported as this bound
_P_XTOL = 1e-4  # on log alpha: the repeated p-value to 0.01 % of itself


def _last_boundary(info_fractions: tuple[float, ...], alpha: float, spending: Spending, two_sided: bool) -> float:
    return lan_demets_boundaries(info_fractions, alpha, spending, two_sided).boundaries[-1]


def repeated_p_value(
    z: float, info_fractions: Sequence[float], spending: Spending = "obf", two_sided: bool = True
) -> float:
    """Smallest alpha at which the design over ``info_fractions`` rejects at its last look with ``z``.

    Boundaries fall as alpha grows, so this is the root of ``b_k(alpha) = |z|`` (``z`` for one-sided),
    found on log alpha.  1 when even alpha close to 1 would not reject; at most ``_P_FLOOR`` otherwise.
    """
    t = tuple(float(x) for x in _validate_fractions(info_fractions))
    stat = abs(z) if two_sided else z
    top = 1.0 - 1e-9

    def gap(log_alpha: float) -> float:
        return _last_boundary(t, math.exp(log_alpha), spending, two_sided) - stat

    if not math.isfinite(stat):
        return _P_FLOOR if stat > 0 else 1.0
    if gap(math.log(top)) > 0:  # even alpha close to 1 would not reject
        return 1.0
    if gap(math.log(_P_FLOOR)) <= 0:
        return _P_FLOOR
    return math.exp(optimize.brentq(gap, math.log(_P_FLOOR), math.log(top), xtol=_P_XTOL))


def _agree(p: float, reject: bool, alpha: float) -> float:
    """The root finder's tolerance may leave a p-value a hair on the wrong side of alpha when the
    statistic sits on the boundary; the boundary comparison is exact, so it decides."""
    if reject and p >= alpha:
        return math.nextafter(alpha, 0.0)
    if not reject and p < alpha:
        return alpha
    return p


@dataclass(frozen=True)
class GroupSequentialResult:
    """The group-sequential verdict at the latest look, on both scales (absolute, delta-method relative)."""

    alpha: float
    info_fractions: tuple[float, ...] = ()
    spending: Spending = "obf"
    alternative: Alternative = "two-sided"
    look: int = 0
    info_fraction: float | None = None
    boundary: float | None = None
    final: bool = False
    difference: Difference = "relative"
    lift_abs: float | None = None
    se_abs: float | None = None
    z_abs: float | None = None
    ci_abs: Interval | None = None
    p_value_abs: float | None = None
    lift_rel: float | None = None
    relative: RelativeMoments | None = None  # the relative lift on the scale the test reads it (log)
    z_rel: float | None = None
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

    @property
    def reject(self) -> bool:
        return self.significant

    def interval_at(self, alpha: float) -> Interval | None:
        """Repeated confidence interval of the deciding scale for the design at ``alpha``."""
        if not self.info_fractions:
            return None
        boundary = _last_boundary(self.info_fractions, alpha, self.spending, self.alternative == "two-sided")
        if self.difference == "relative":
            rel = self.relative
            if rel is None or not rel.var > 0:
                return None
            return rel.interval(_repeated_interval(rel.estimate, math.sqrt(rel.var), boundary, self.alternative))
        if self.lift_abs is None or self.se_abs is None:
            return None
        return _repeated_interval(self.lift_abs, self.se_abs, boundary, self.alternative)

    def adjusted(self, p_value: float, alpha: float) -> GroupSequentialResult:
        ci = self.interval_at(alpha)
        return replace(self, p_value_adjusted=_agree(p_value, excludes_zero(ci), self.alpha), ci_adjusted=ci)


def _repeated_interval(estimate: float, se: float, boundary: float, alternative: Alternative) -> Interval:
    if math.isinf(boundary):
        return (-math.inf, math.inf)
    return interval(estimate, se, boundary, alternative)


def _scale(
    estimate: float, se: float, t: tuple[float, ...], alpha: float, spending: Spending, alternative: Alternative
) -> tuple[float, Interval, float]:
    """(z, repeated interval, repeated p-value) of one scale, agreeing by construction."""
    z = estimate / se
    two_sided = alternative == "two-sided"
    boundary = _last_boundary(t, alpha, spending, two_sided)
    ci = _repeated_interval(estimate, se, boundary, alternative)
    toward = -z if alternative == "less" else z  # a one-sided design tests its own direction
    p = repeated_p_value(abs(z) if two_sided else toward, t, spending, two_sided)
    return z, ci, _agree(p, excludes_zero(ci), alpha)


def group_sequential_readout(
    control: Estimate,
    treatment: Estimate,
    info_fractions: Sequence[float],
    alpha: float = 0.05,
    spending: Spending = "obf",
    alternative: Alternative = "two-sided",
    difference: Difference = "relative",
) -> GroupSequentialResult:
    """Verdict, repeated p-values and repeated confidence intervals at the latest of ``info_fractions``.

    Boundaries depend only on the looks already made, so the verdict is exact even when the number
    and timing of future looks are unknown.
    """
    two_sided = alternative == "two-sided"
    base = GroupSequentialResult(alpha=alpha, spending=spending, alternative=alternative)
    try:
        t = tuple(float(x) for x in _validate_fractions(info_fractions))
    except ValueError as exc:
        return replace(base, message=str(exc))
    final = t[-1] >= 1.0
    base = replace(base, info_fractions=t, look=len(t), info_fraction=t[-1], final=final,
                   boundary=_last_boundary(t, alpha, spending, two_sided))
    problem = empty_arm_message(control.n, treatment.n, 2) or overflow_message(control, treatment)
    if problem:
        return replace(base, message=problem)
    diff = treatment.mean - control.mean
    se = math.sqrt(control.var_of_mean + treatment.var_of_mean)
    rel = relative_moments(control, treatment)
    messages = [] if rel else [zero_control_message(difference)]
    result = replace(base, difference=difference if rel else "absolute", lift_abs=diff,
                     lift_rel=rel.lift if rel else None, relative=rel)
    if not (se > 0 and math.isfinite(se) and math.isfinite(diff)):
        messages.append("zero variance in both arms: the difference cannot be tested")
        return replace(result, message="; ".join(messages))
    z_abs, ci_abs, p_abs = _scale(diff, se, t, alpha, spending, alternative)
    result = replace(result, se_abs=se, z_abs=z_abs, ci_abs=ci_abs, p_value_abs=p_abs)
    if rel is not None and rel.var > 0:
        z_rel, ci_rel, p_rel = _scale(rel.estimate, math.sqrt(rel.var), t, alpha, spending, alternative)
        result = replace(result, z_rel=z_rel, ci_rel=rel.interval(ci_rel), p_value_rel=p_rel)
    elif result.difference == "relative":
        result = replace(result, difference="absolute")
    result = replace(result, p_value=result.p_value_rel if result.difference == "relative" else result.p_value_abs)
    messages.append(_look_message(result))
    return replace(result, message="; ".join(messages))


def _look_message(r: GroupSequentialResult) -> str:
    b = r.boundary if r.boundary is not None else math.inf
    z = r.z_rel if r.difference == "relative" else r.z_abs
    where = f"look {r.look} at {r.info_fraction:.0%} of the planned information"
    if r.significant:
        return f"{where}: boundary crossed (|z| = {abs(z or 0.0):.3f} >= {b:.3f}): stop and reject"
    if r.final:
        return f"{where}: final look without crossing ({b:.3f}): no detectable difference"
    if math.isinf(b):
        return f"{where}: no alpha to spend at this look: continue"
    return f"{where}: continue (boundary {b:.3f})"
