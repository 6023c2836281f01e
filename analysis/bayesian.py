"""Bayesian readouts: Beta-Binomial for conversions, a Gaussian model for means and ratios.

Probabilities of being best and expected losses are integrals, computed by deterministic
quadrature rather than Monte Carlo:

    P(arm i is best) = ∫ f_i(x) · Π_{j≠i} F_j(x) dx
    E[max_j X_j]     = Σ_i ∫ x · f_i(x) · Π_{j≠i} F_j(x) dx
    expected loss(i) = E[max_j X_j] - E[X_i]        (what choosing i gives up, in metric units)

The integration range is cut at quantiles of *every* arm's posterior (from 1e-12 to 1 - 1e-12), and
each piece is integrated by Gauss-Legendre, so the nodes are dense wherever any density or CDF
changes — sharp posteriors of big arms next to a vague one included.  Quantiles of the difference
``T - C`` and of the relative lift ``T/C - 1`` of two Beta posteriors come from the same machinery
(``P(T - C <= d) = ∫ f_C(c) F_T(c + d) dc``) and a root finder.

The Gaussian model puts a flat or normal prior on the relative lift, takes the estimate of the
lift as the likelihood — on the log scale ``log(m_t/m_c)`` when both means are positive, where it is
close to normal even for skewed metrics (the delta-method ratio is not: its upper tail is compressed
and a chance to win above 95% came up 2.7% of the time in A/A tests of a skewed revenue metric), see
:class:`analysis.frequentist.RelativeMoments` — and gets a normal posterior; chance to win and
expected loss then have closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

from analysis.frequentist import Difference, RelativeMoments, overflow_message, relative_moments
from analysis.stats import Estimate, SampleStats

Interval = tuple[float, float]

_TAIL = [1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 0.01, 0.03]
_BODY = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
_LEVELS = np.array([*_TAIL, *_BODY, *(1.0 - q for q in reversed(_TAIL))])
_NODES_PER_PANEL = 20


@lru_cache(maxsize=4)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = special.roots_legendre(n)
    return x, w


def _breakpoints(dists: Sequence[stats.rv_continuous], scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return np.concatenate([np.asarray(d.ppf(_LEVELS)) * scale + shift for d in dists])


def _quadrature(breaks: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights over [lo, hi] with panels at ``breaks``."""
    edges = np.unique(np.clip(np.concatenate([breaks[np.isfinite(breaks)], [lo, hi]]), lo, hi))
    a, b = edges[:-1], edges[1:]
    t, w = _legendre(_NODES_PER_PANEL)
    half = (b - a)[:, None] / 2.0
    x = (a[:, None] + b[:, None]) / 2.0 + half * t[None, :]
    return x.ravel(), (half * w[None, :]).ravel()


def _common_nodes(dists: Sequence[stats.rv_continuous]) -> tuple[np.ndarray, np.ndarray]:
    breaks = _breakpoints(dists)
    return _quadrature(breaks, float(breaks.min()), float(breaks.max()))


def _best_integrands(dists: Sequence[stats.rv_continuous], lower_is_better: bool) -> tuple[np.ndarray, ...]:
    """Nodes, weights, and per arm ``f_i(x) Π_{j≠i} F_j(x)`` on them."""
    x, w = _common_nodes(dists)
    # Posteriors of astronomic spread put nodes near 1e154, whose squares overflow to a density of 0:
    # the right value, without the warning.
    with np.errstate(over="ignore", under="ignore"):
        pdf = np.array([d.pdf(x) for d in dists])
        cdf = np.array([d.sf(x) if lower_is_better else d.cdf(x) for d in dists])
    k = len(dists)
    rest = (
        np.array([np.prod(np.delete(cdf, i, axis=0), axis=0) for i in range(k)])
        if k > 1
        else np.ones((1, x.size))
    )
    return x, w, pdf * rest


def prob_best(dists: Sequence[stats.rv_continuous], lower_is_better: bool = False) -> np.ndarray:
    """Probability that each arm's value is the highest (or lowest), by quadrature."""
    _, w, integrand = _best_integrands(dists, lower_is_better)
    return np.clip(integrand @ w, 0.0, 1.0)


def expected_losses(dists: Sequence[stats.rv_continuous], lower_is_better: bool = False) -> np.ndarray:
    """``E[best of all] - E[X_i]`` for each arm (≥ 0), by quadrature."""
    x, w, integrand = _best_integrands(dists, lower_is_better)
    with np.errstate(over="ignore", under="ignore"):
        expected_best = float(((integrand * x) @ w).sum())
        means = np.array([float((d.pdf(x) * x) @ w) for d in dists])
    loss = means - expected_best if lower_is_better else expected_best - means
    return np.maximum(loss, 0.0)


# ----------------------------------------------------------------------------- Beta-Binomial


@dataclass(frozen=True)
class BetaPrior:
    """Beta(alpha, beta) prior on a conversion rate; (1, 1) is uniform."""

    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.beta <= 0:
            raise ValueError(f"Beta prior parameters must be positive, got ({self.alpha}, {self.beta})")


def beta_posterior(conversions: float, users: int, prior: BetaPrior = BetaPrior()) -> stats.rv_continuous:
    return stats.beta(prior.alpha + conversions, prior.beta + users - conversions)


@dataclass(frozen=True)
class BayesianResult:
    model: str
    ci_level: float
    chance_to_win: float | None = None
    expected_loss: float | None = None
    expected_loss_control: float | None = None
    lift_abs: float | None = None
    ci_abs: Interval | None = None
    lift_rel: float | None = None
    ci_rel: Interval | None = None
    message: str | None = None


_MAX_RATIO = 1e15  # the relative lift's quantile search stops here


def _distribution_quantile(
    cdf: Callable[[float], float], q: float, lo: float, hi: float, grow: bool = False
) -> float | None:
    """The ``q`` quantile of a distribution on ``[lo, hi]`` (``hi`` grown ×4 up to 1e15 when ``grow``).

    The root is only searched once the bracket has been checked to change sign, so quadrature that
    cannot resolve a quantile at the edge of the range gives that edge (the parameter's bound) or, for
    an unbounded range, ``None`` — never scipy's "f(a) and f(b) must have different signs".
    """
    f_lo = cdf(lo) - q
    if not math.isfinite(f_lo):
        return None
    if f_lo >= 0:
        return lo
    f_hi = cdf(hi) - q
    while grow and math.isfinite(f_hi) and f_hi < 0 and hi < _MAX_RATIO:
        hi *= 4.0
        f_hi = cdf(hi) - q
    if not math.isfinite(f_hi) or (f_hi < 0 and grow):
        return None
    if f_hi < 0:
        return hi
    return float(optimize.brentq(lambda d: cdf(d) - q, lo, hi, xtol=1e-12, rtol=1e-10))


def _difference_cdf(control: stats.rv_continuous, treatment: stats.rv_continuous, d: float) -> float:
    """P(T - C <= d) = ∫ f_C(c) F_T(c + d) dc."""
    breaks = np.concatenate([_breakpoints([control]), _breakpoints([treatment], shift=-d)])
    lo, hi = control.ppf(_LEVELS[0]), control.ppf(_LEVELS[-1])
    x, w = _quadrature(breaks, float(lo), float(hi))
    return float((control.pdf(x) * treatment.cdf(x + d)) @ w)


def _ratio_cdf(control: stats.rv_continuous, treatment: stats.rv_continuous, r: float) -> float:
    """P(T/C - 1 <= r) = ∫ f_C(c) F_T((1 + r) c) dc, for a positive C."""
    breaks = np.concatenate([_breakpoints([control]), _breakpoints([treatment], scale=1.0 / (1.0 + r))])
    lo, hi = control.ppf(_LEVELS[0]), control.ppf(_LEVELS[-1])
    x, w = _quadrature(breaks, float(lo), float(hi))
    return float((control.pdf(x) * treatment.cdf(x * (1.0 + r))) @ w)


def beta_binomial_test(
    control: SampleStats,
    treatment: SampleStats,
    prior: BetaPrior = BetaPrior(),
    ci_level: float = 0.95,
    intervals: bool = True,
) -> BayesianResult:
    """Chance to win, expected losses and credible intervals of the difference and relative lift.

    ``intervals=False`` skips the intervals' root searches (most of the cost) when only the verdict's
    inputs are needed, as in a calibration simulation.
    """
    base = BayesianResult(model="beta-binomial", ci_level=ci_level)
    for arm, name in ((control, "control"), (treatment, "treatment")):
        if arm.n <= 0:
            return BayesianResult(model=base.model, ci_level=ci_level, message=f"{name} has no users")
        if not 0 <= arm.sum <= arm.n:
            return BayesianResult(
                model=base.model,
                ci_level=ci_level,
                message=f"{name} has {arm.sum} conversions for {arm.n} users: not a proportion",
            )
    post_c = beta_posterior(control.sum, control.n, prior)
    post_t = beta_posterior(treatment.sum, treatment.n, prior)
    ctw = float(prob_best([post_c, post_t])[1])
    loss_c, loss_t = (float(v) for v in expected_losses([post_c, post_t]))
    decision_only = BayesianResult(
        model=base.model,
        ci_level=ci_level,
        chance_to_win=ctw,
        expected_loss=loss_t,
        expected_loss_control=loss_c,
        lift_abs=float(post_t.mean() - post_c.mean()),
        lift_rel=float(post_t.mean() / post_c.mean() - 1.0),
    )
    if not intervals:
        return decision_only
    tail = (1.0 - ci_level) / 2.0

    def diff_cdf(d: float) -> float:
        return _difference_cdf(post_c, post_t, d)

    def rel_cdf(r: float) -> float:
        return _ratio_cdf(post_c, post_t, r)

    ci_abs = _credible(diff_cdf, tail, -1.0, 1.0, grow=False)
    ci_rel = _credible(rel_cdf, tail, -1.0 + 1e-12, 1.0, grow=True)
    message = None
    if ci_rel is None:
        message = f"relative credible interval not computable: the lift is beyond {_MAX_RATIO:.0e}"
    return replace(decision_only, ci_abs=ci_abs, ci_rel=ci_rel, message=message)


def _credible(cdf: Callable[[float], float], tail: float, lo: float, hi: float, grow: bool) -> Interval | None:
    low = _distribution_quantile(cdf, tail, lo, hi, grow)
    high = _distribution_quantile(cdf, 1.0 - tail, lo, hi, grow)
    return None if low is None or high is None else (low, high)


# ---------------------------------------------------------------------------------- Gaussian


@dataclass(frozen=True)
class GaussianPrior:
    """Normal prior on the *relative* lift; ``proper=False`` is the flat prior."""

    mean: float = 0.0
    variance: float = 0.3**2
    proper: bool = False

    def __post_init__(self) -> None:
        if self.proper and self.variance <= 0:
            raise ValueError(f"a proper Gaussian prior needs a positive variance, got {self.variance}")
        if self.proper and self.mean <= -1:
            raise ValueError(f"a prior mean lift must be above -100%, got {self.mean}")

    def on_scale(self, rel: RelativeMoments) -> tuple[float, float | None]:
        """(mean, variance) of the prior on the scale the relative likelihood is on (delta method
        for the log scale); variance ``None`` for the flat prior."""
        if not self.proper:
            return 0.0, None
        if rel.scale == "log":
            return math.log1p(self.mean), self.variance / ((1.0 + self.mean) * (1.0 + self.mean))
        return self.mean, self.variance


def _normal_posterior(
    estimate: float, var: float, prior_mean: float, prior_var: float | None
) -> tuple[float, float]:
    if prior_var is None:
        return estimate, var
    precision = 1.0 / var + 1.0 / prior_var
    return (estimate / var + prior_mean / prior_var) / precision, 1.0 / precision


def normal_losses(mean: float, sd: float) -> tuple[float, float]:
    """(E[max(-D, 0)], E[max(D, 0)]) for D ~ N(mean, sd²): the losses of shipping and of not shipping."""
    z = mean / sd
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    loss_ship = sd * pdf - mean * float(special.ndtr(-z))
    loss_keep = sd * pdf + mean * float(special.ndtr(z))
    return max(loss_ship, 0.0), max(loss_keep, 0.0)


def gaussian_test(
    control: Estimate,
    treatment: Estimate,
    prior: GaussianPrior = GaussianPrior(),
    ci_level: float = 0.95,
    difference: Difference = "relative",
) -> BayesianResult:
    """Normal posterior for the lift from arm estimates (means, ratios or CUPED-adjusted means).

    The prior is on the relative lift; the absolute lift uses the same prior scaled by the control
    mean.  The two posteriors come from different (delta-method) approximations, so the chance to win
    is read on the ``difference`` scale — the one whose interval is shown beside the verdict — and
    the expected losses on the absolute scale.
    """
    base = BayesianResult(model="gaussian", ci_level=ci_level)
    if control.n < 2 or treatment.n < 2:
        which = "control" if control.n < 2 else "treatment"
        return BayesianResult(model=base.model, ci_level=ci_level, message=f"{which} has fewer than 2 users")
    problem = overflow_message(control, treatment)
    if problem:
        return BayesianResult(model=base.model, ci_level=ci_level, message=problem)
    var_abs = control.var_of_mean + treatment.var_of_mean
    if not var_abs > 0 or not math.isfinite(var_abs):
        return BayesianResult(
            model=base.model, ci_level=ci_level, message="zero variance in both arms: no posterior spread"
        )
    z = float(special.ndtri(0.5 + ci_level / 2.0))
    messages: list[str] = []
    rel = relative_moments(control, treatment)
    m_c = control.mean
    prior_var_abs = prior.variance * m_c * m_c if prior.proper and m_c != 0 else None
    if prior.proper and m_c == 0:
        messages.append("control mean is 0: prior on the relative lift ignored")
    mu_abs, v_abs = _normal_posterior(treatment.mean - m_c, var_abs, prior.mean * m_c, prior_var_abs)
    if not (math.isfinite(mu_abs) and v_abs > 0 and math.isfinite(v_abs)):
        return BayesianResult(model=base.model, ci_level=ci_level,
                              message="the difference overflows a float: no posterior is possible")
    sd_abs = math.sqrt(v_abs)
    loss_t, loss_c = normal_losses(mu_abs, sd_abs)
    ctw = float(special.ndtr(mu_abs / sd_abs))
    lift_rel = ci_rel = None
    if rel is None:
        messages.append(
            "control mean is 0: the relative lift and its interval are undefined; chance to win is on the difference"
        )
    elif rel.var > 0:
        mu_rel, v_rel = _normal_posterior(rel.estimate, rel.var, *prior.on_scale(rel))
        lift_rel = rel.to_lift(mu_rel)
        ci_rel = rel.interval((mu_rel - z * math.sqrt(v_rel), mu_rel + z * math.sqrt(v_rel)))
        if difference == "relative":
            ctw = float(special.ndtr(mu_rel / math.sqrt(v_rel)))
    return BayesianResult(
        model=base.model,
        ci_level=ci_level,
        chance_to_win=ctw,
        expected_loss=loss_t,
        expected_loss_control=loss_c,
        lift_abs=mu_abs,
        ci_abs=(mu_abs - z * sd_abs, mu_abs + z * sd_abs),
        lift_rel=lift_rel,
        ci_rel=ci_rel,
        message="; ".join(messages) or None,
    )


def normal_posteriors(estimates: Sequence[Estimate]) -> list[stats.rv_continuous]:
    """Flat-prior posteriors of each arm's mean, for probability of being best across k arms."""
    return [stats.norm(e.mean, math.sqrt(e.var_of_mean)) for e in estimates]
