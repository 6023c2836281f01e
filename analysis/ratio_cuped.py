"""CUPED for ratio metrics: regression adjustment of ``sum num / sum den`` on the pre-period ratio.

A ratio metric (clicks per impression, revenue per session) is a ratio of two per-user means,
``R = m̄/d̄``.  Its pre-exposure counterpart ``R_pre = m̄_pre/d̄_pre`` is correlated with it, and the
adjusted estimate ``R - θ(R_pre - R̄_pre)`` keeps the treatment effect (the pre-period is
untouched by the treatment, so its expectation is equal in every arm) while removing the part of
the noise ``R_pre`` predicts.

Everything comes from per-arm sufficient statistics of the four per-user quantities
(post numerator, post denominator, pre numerator, pre denominator): their sums, sums of squares
and six cross products.  The variance is the delta method on the 4-vector of means
``β = (m̄, d̄, m̄_pre, d̄_pre)`` with covariance ``Λ/n``: the gradient of ``R - θR_pre`` is
``∇ = (1/d̄, -m̄/d̄², -θ/d̄_pre, θ·m̄_pre/d̄_pre²)`` and the per-unit variance is ``∇ᵀΛ∇``.

θ minimises the variance of the difference between two arms and is shared by them:
``θ = Σ_arms Cov(R, R_pre) / Σ_arms Var(R_pre)`` (per-unit delta-method moments), exactly
GrowthBook's ``compute_theta_regression_adjusted_ratio``.  With θ = 0 (no pre-period covariance,
or a constant pre-period) the estimate is the plain ratio and the test is
:func:`analysis.frequentist.ratio_ttest`.

References: Deng, Xu, Kohavi & Walker (2013), "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data" (CUPED); GrowthBook gbstats
``packages/stats/gbstats/models/statistics.py`` (``RegressionAdjustedRatioStatistic``,
``compute_theta_regression_adjusted_ratio``), commit 8f1db4456915a8e7b7faf23d5632ca7219d2f469.

The absolute difference and its standard error are gbstats'.  The relative lift follows this
project's CUPED convention (:func:`analysis.stats.cuped_estimate`): arms are centred on the pooled
pre-period ratio and the lift is the delta method on the adjusted means, where gbstats divides by
the unadjusted control ratio — the two agree to first order and coincide when θ = 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from analysis.frequentist import FrequentistResult, FrequentistSettings, compare_estimates, ratio_ttest
from analysis.stats import Estimate, RatioStats

TEST_NAME = "ratio-cuped-t"
# The order of the four per-user quantities in every vector and matrix below.
QUANTITIES = ("num", "den", "pre_num", "pre_den")
DEFAULT_SETTINGS = FrequentistSettings()


@dataclass(frozen=True)
class RatioCupedStats:
    """One arm's sums of the four per-user quantities ``(num, den, pre_num, pre_den)``.

    ``sums[i]`` is Σxᵢ and ``products[i][j]`` is Σxᵢxⱼ (symmetric; the diagonal holds the sums of
    squares), indices in :data:`QUANTITIES` order.  Kept as tuples so the stats stay hashable and
    can be added arm-by-day like every other sufficient statistic.
    """

    n: int
    sums: tuple[float, float, float, float]
    products: tuple[tuple[float, float, float, float], ...]

    def __post_init__(self) -> None:
        if len(self.sums) != 4 or len(self.products) != 4 or any(len(row) != 4 for row in self.products):
            raise ValueError("a ratio CUPED arm needs 4 sums and a 4x4 matrix of cross products")

    @classmethod
    def from_values(
        cls,
        num: Sequence[float] | np.ndarray,
        den: Sequence[float] | np.ndarray,
        pre_num: Sequence[float] | np.ndarray,
        pre_den: Sequence[float] | np.ndarray,
    ) -> RatioCupedStats:
        """The sufficient statistics of per-user arrays (one entry per user, all four the same length)."""
        x = np.vstack([np.asarray(v, dtype=float) for v in (num, den, pre_num, pre_den)])
        s = x.sum(axis=1)
        p = x @ x.T
        return cls(
            n=int(x.shape[1]),
            sums=(float(s[0]), float(s[1]), float(s[2]), float(s[3])),
            products=tuple((float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in p),
        )

    def __add__(self, other: RatioCupedStats) -> RatioCupedStats:
        """Two disjoint sets of users pooled (e.g. two days of one arm)."""
        return RatioCupedStats(
            n=self.n + other.n,
            sums=(
                self.sums[0] + other.sums[0],
                self.sums[1] + other.sums[1],
                self.sums[2] + other.sums[2],
                self.sums[3] + other.sums[3],
            ),
            products=tuple(
                (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])
                for a, b in zip(self.products, other.products, strict=True)
            ),
        )

    @property
    def post(self) -> RatioStats:
        """The unadjusted ratio (post numerator over post denominator)."""
        return RatioStats(self.n, self.sums[0], self.products[0][0], self.sums[1], self.products[1][1],
                          self.products[0][1])

    @property
    def pre(self) -> RatioStats:
        return RatioStats(self.n, self.sums[2], self.products[2][2], self.sums[3], self.products[3][3],
                          self.products[2][3])

    @property
    def means(self) -> np.ndarray:
        """β = (m̄, d̄, m̄_pre, d̄_pre)."""
        if self.n == 0:
            return np.zeros(4)
        return np.asarray(self.sums, dtype=float) / self.n

    @property
    def covariance(self) -> np.ndarray:
        """Λ: the 4x4 per-unit sample covariance matrix (``n - 1`` denominator)."""
        if self.n < 2:
            return np.zeros((4, 4))
        s = np.asarray(self.sums, dtype=float)
        return (np.asarray(self.products, dtype=float) - np.outer(s, s) / self.n) / (self.n - 1)

    def ratio_gradients(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Gradients of ``R`` and of ``R_pre`` w.r.t. β (zero-padded to 4), or ``None`` when a
        denominator mean is 0 and a ratio is undefined."""
        m, d, m_pre, d_pre = self.means
        if d == 0 or d_pre == 0:
            return None
        return (np.array([1.0 / d, -m / (d * d), 0.0, 0.0]),
                np.array([0.0, 0.0, 1.0 / d_pre, -m_pre / (d_pre * d_pre)]))


def _moments(arm: RatioCupedStats) -> tuple[float, float, float] | None:
    """Per-unit ``(Var R, Var R_pre, Cov(R, R_pre))`` by the delta method."""
    grads = arm.ratio_gradients()
    if grads is None or arm.n < 2:
        return None
    g_post, g_pre = grads
    lam = arm.covariance
    return float(g_post @ lam @ g_post), float(g_pre @ lam @ g_pre), float(g_post @ lam @ g_pre)


def ratio_cuped_theta(arms: Sequence[RatioCupedStats]) -> float:
    """The shared θ: ``Σ Cov(R, R_pre) / Σ Var(R_pre)`` over arms (gbstats'
    ``compute_theta_regression_adjusted_ratio``); 0 when the pre-period ratio does not vary or an
    arm's ratio is undefined (then no adjustment is made)."""
    moments = [_moments(a) for a in arms]
    if any(m is None for m in moments):
        return 0.0
    var_pre = sum(m[1] for m in moments if m is not None)
    cov = sum(m[2] for m in moments if m is not None)
    if not var_pre > 0:  # also NaN
        return 0.0
    theta = cov / var_pre
    return theta if math.isfinite(theta) else 0.0


def ratio_cuped_estimate(arm: RatioCupedStats, theta: float, pre_grand_ratio: float) -> Estimate:
    """The adjusted ratio ``R - θ(R_pre - R̄_pre)`` and its per-unit delta-method variance ``∇ᵀΛ∇``."""
    grads = arm.ratio_gradients()
    if arm.n == 0 or grads is None:
        return Estimate(arm.n, 0.0, 0.0)
    gradient = grads[0] - theta * grads[1]
    var = float(gradient @ arm.covariance @ gradient)
    mean = arm.post.mean - theta * (arm.pre.mean - pre_grand_ratio)
    return Estimate(arm.n, mean, max(var, 0.0) if not math.isnan(var) else math.inf)


def pooled_pre_ratio(arms: Sequence[RatioCupedStats]) -> float:
    """``Σ pre_num / Σ pre_den`` over all arms: the centre the adjustment shifts every arm towards."""
    den = sum(a.sums[3] for a in arms)
    return sum(a.sums[2] for a in arms) / den if den != 0 else 0.0


def ratio_cuped_estimates(arms: Sequence[RatioCupedStats]) -> tuple[list[Estimate], float]:
    """Adjusted estimates of all arms with one shared θ (returned too, for the readout's messages)."""
    theta = ratio_cuped_theta(arms)
    grand = pooled_pre_ratio(arms)
    return [ratio_cuped_estimate(a, theta, grand) for a in arms], theta


def _undefined_ratio(control: RatioCupedStats, treatment: RatioCupedStats) -> str | None:
    for arm, name in ((control, "control"), (treatment, "treatment")):
        if arm.n > 0 and arm.sums[1] == 0:
            return f"{name} denominator sums to 0: the ratio is undefined"
    return None


def ratio_cuped_ttest(
    control: RatioCupedStats,
    treatment: RatioCupedStats,
    settings: FrequentistSettings = DEFAULT_SETTINGS,
) -> FrequentistResult:
    """Welch t test of the CUPED-adjusted ratio, the same result type as every fixed-horizon test.

    When θ is 0 — no pre-period covariance, a constant pre-period ratio, or a pre-period
    denominator summing to 0 in an arm (e.g. every user new) — this is exactly
    :func:`analysis.frequentist.ratio_ttest` of the post-period ratios, and the message says so.
    """
    problem = _undefined_ratio(control, treatment)
    if problem:
        return FrequentistResult(test=TEST_NAME, alpha=settings.alpha, alternative=settings.alternative,
                                 message=problem)
    (est_c, est_t), theta = ratio_cuped_estimates([control, treatment])
    if theta == 0.0:
        plain = ratio_ttest(control.post, treatment.post, settings)
        note = "no pre-period covariance to adjust on (theta = 0): the unadjusted ratio test"
        return replace(plain, message="; ".join(filter(None, [plain.message, note])))
    return compare_estimates(est_c, est_t, settings, test=TEST_NAME)
