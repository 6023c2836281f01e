"""Sufficient statistics of one experiment arm, and the estimate every test is built on.

An arm is never passed around as raw observations: a readout only ever has counts and sums
(``n``, ``sum``, ``sum_squares``, and for ratio or CUPED metrics a few cross sums), exactly like
GrowthBook's gbstats.  Everything downstream reduces an arm to an :class:`Estimate` — a mean and
the per-unit variance behind it — so that plain means, ratios and CUPED-adjusted means share one
difference/lift machinery.

Variances use the ``n - 1`` denominator, except for binomial metrics (``sum_squares == sum``)
where the proportion test convention ``p(1 - p)`` is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _sample_variance(n: int, total: float, total_sq: float) -> float:
    if n < 2:
        return 0.0
    square = total * total  # not total**2: a float ** raises OverflowError where * gives inf
    if not (math.isfinite(square) and math.isfinite(total_sq)):
        return math.inf  # sums beyond a float's range: the tests report it instead of reading a zero variance
    # Cancellation can push a true zero slightly negative; a variance is never below zero.
    return max((total_sq - square / n) / (n - 1), 0.0)


def _sample_covariance(n: int, sum_x: float, sum_y: float, sum_xy: float) -> float:
    if n < 2:
        return 0.0
    return (sum_xy - sum_x * sum_y / n) / (n - 1)


@dataclass(frozen=True)
class Estimate:
    """An arm reduced to what a two-sample test needs: n, a mean, and its per-unit variance."""

    n: int
    mean: float
    variance: float

    @property
    def var_of_mean(self) -> float:
        return self.variance / self.n if self.n > 0 else math.inf

    @property
    def finite(self) -> bool:
        """Mean and variance are ordinary floats (sums near a float's limit overflow to inf or NaN)."""
        return math.isfinite(self.mean) and math.isfinite(self.variance)


@dataclass(frozen=True)
class SampleStats:
    """Count, sum and sum of squares of a per-user metric.  For conversions ``sum_squares == sum``."""

    n: int
    sum: float
    sum_squares: float

    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray) -> SampleStats:
        arr = np.asarray(values, dtype=float)
        return cls(n=int(arr.size), sum=float(arr.sum()), sum_squares=float(np.square(arr).sum()))

    @classmethod
    def binomial(cls, n: int, conversions: float) -> SampleStats:
        return cls(n=n, sum=conversions, sum_squares=conversions)

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        return _sample_variance(self.n, self.sum, self.sum_squares)

    @property
    def proportion_variance(self) -> float:
        """``p(1 - p)``: the variance the proportion z test uses for a binomial metric."""
        p = self.mean
        return max(p * (1.0 - p), 0.0)

    def estimate(self, binomial: bool = False) -> Estimate:
        return Estimate(self.n, self.mean, self.proportion_variance if binomial else self.variance)


@dataclass(frozen=True)
class RatioStats:
    """Per-unit sums of a numerator and a denominator metric (e.g. revenue per session).

    The metric is ``num_sum / den_sum``; its variance is the delta-method variance of a ratio of
    two correlated means, expressed per unit so that ``variance / n`` is the variance of the ratio.
    """

    n: int
    num_sum: float
    num_sum_sq: float
    den_sum: float
    den_sum_sq: float
    num_den_sum_product: float

    @property
    def numerator(self) -> SampleStats:
        return SampleStats(self.n, self.num_sum, self.num_sum_sq)

    @property
    def denominator(self) -> SampleStats:
        return SampleStats(self.n, self.den_sum, self.den_sum_sq)

    @property
    def mean(self) -> float:
        return self.num_sum / self.den_sum if self.den_sum != 0 else 0.0

    @property
    def covariance(self) -> float:
        return _sample_covariance(self.n, self.num_sum, self.den_sum, self.num_den_sum_product)

    @property
    def variance(self) -> float:
        if self.n == 0 or self.den_sum == 0:
            return 0.0
        mu_n = self.num_sum / self.n
        mu_d = self.den_sum / self.n
        scale = mu_d * mu_d  # products rather than **: a float ** raises OverflowError where * gives inf
        if scale == 0:
            return math.inf  # a denominator mean so near 0 that its square underflows: the ratio is unstable
        r = mu_n / mu_d
        var = (self.numerator.variance - 2.0 * self.covariance * r + self.denominator.variance * r * r) / scale
        return max(var, 0.0) if not math.isnan(var) else math.inf

    def estimate(self) -> Estimate:
        return Estimate(self.n, self.mean, self.variance)


@dataclass(frozen=True)
class CupedStats:
    """A metric plus its pre-exposure covariate: ``pre_*`` sums and the cross sum ``sum_product``."""

    post: SampleStats
    pre_sum: float
    pre_sum_squares: float
    sum_product: float

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def pre(self) -> SampleStats:
        return SampleStats(self.post.n, self.pre_sum, self.pre_sum_squares)

    @property
    def covariance(self) -> float:
        return _sample_covariance(self.n, self.post.sum, self.pre_sum, self.sum_product)

    def centred_sums(self) -> tuple[float, float, float]:
        """Within-arm centred (co)moments: (Syy, Sxx, Sxy)."""
        n = self.n
        if n == 0:
            return 0.0, 0.0, 0.0
        syy = self.post.sum_squares - self.post.sum * self.post.sum / n
        sxx = self.pre_sum_squares - self.pre_sum * self.pre_sum / n
        sxy = self.sum_product - self.post.sum * self.pre_sum / n
        return syy, sxx, sxy


def cuped_theta(arms: Sequence[CupedStats]) -> float:
    """Regression coefficient of the metric on its covariate, pooled within arms.

    Pooling the *within-arm* (co)variances keeps the treatment effect — which shifts the metric's
    mean in one arm only — out of the slope.  Returns 0 (no adjustment) when the covariate is
    constant.
    """
    sxx = sum(a.centred_sums()[1] for a in arms)
    sxy = sum(a.centred_sums()[2] for a in arms)
    if not sxx > 0:  # also NaN: sums beyond a float's range leave nothing to regress on
        return 0.0
    theta = sxy / sxx
    return theta if math.isfinite(theta) else 0.0


def cuped_estimate(arm: CupedStats, theta: float, pre_grand_mean: float) -> Estimate:
    """The arm's CUPED-adjusted mean ``ȳ - θ(x̄ - x̄_all)`` and its per-unit variance.

    ``θ`` and the grand covariate mean are treated as fixed, which is the usual (and, at experiment
    sizes, negligible) approximation; the variance is ``Var(y) + θ²Var(x) - 2θCov(x, y)``.
    """
    if arm.n == 0:
        return Estimate(0, 0.0, 0.0)
    mean = arm.post.mean - theta * (arm.pre.mean - pre_grand_mean)
    var = arm.post.variance + theta * theta * arm.pre.variance - 2.0 * theta * arm.covariance
    return Estimate(arm.n, mean, max(var, 0.0) if not math.isnan(var) else math.inf)


def cuped_estimates(arms: Sequence[CupedStats]) -> tuple[list[Estimate], float]:
    """CUPED estimates for all arms with one shared θ (returned too, for the readout's messages)."""
    theta = cuped_theta(arms)
    total_n = sum(a.n for a in arms)
    grand = sum(a.pre_sum for a in arms) / total_n if total_n > 0 else 0.0
    return [cuped_estimate(a, theta, grand) for a in arms], theta
