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

The Gaussian model puts a flat or normal prior on the relative lift, takes the delta-method
estimate of the lift as the likelihood, and gets a normal posterior; chance to win and expected
loss then have closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

from analysis.frequentist import relative_lift
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


def _distribution_quantile(cdf: Callable[[float], float], q: float, lo: float, hi: float) -> float:
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
) -> BayesianResult:
    """Chance to win, expected losses and credible intervals of the difference and relative lift."""
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
    tail = (1.0 - ci_level) / 2.0

    def diff_cdf(d: float) -> float:
        return _difference_cdf(post_c, post_t, d)

    def rel_cdf(r: float) -> float:
        return _ratio_cdf(post_c, post_t, r)

    ci_abs = (
        _distribution_quantile(diff_cdf, tail, -1.0, 1.0),
        _distribution_quantile(diff_cdf, 1 - tail, -1.0, 1.0),
    )
    hi = 1.0
    while rel_cdf(hi) < 1.0 - tail and hi < 1e12:
        hi *= 4.0
    ci_rel = (
        _distribution_quantile(rel_cdf, tail, -1.0 + 1e-12, hi),
        _distribution_quantile(rel_cdf, 1 - tail, -1.0 + 1e-12, hi),
    )
    return BayesianResult(
        model=base.model,
        ci_level=ci_level,
        chance_to_win=ctw,
        expected_loss=loss_t,
        expected_loss_control=loss_c,
        lift_abs=float(post_t.mean() - post_c.mean()),
        ci_abs=ci_abs,
        lift_rel=float(post_t.mean() / post_c.mean() - 1.0),
        ci_rel=ci_rel,
    )


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
) -> BayesianResult:
    """Normal posterior for the lift from arm estimates (means, ratios or CUPED-adjusted means).

    The prior is on the relative lift; the absolute lift uses the same prior scaled by the control
    mean, so both scales tell the same story.  Chance to win and losses are on the absolute scale.
    """
    base = BayesianResult(model="gaussian", ci_level=ci_level)
    if control.n < 2 or treatment.n < 2:
        which = "control" if control.n < 2 else "treatment"
        return BayesianResult(model=base.model, ci_level=ci_level, message=f"{which} has fewer than 2 users")
    var_abs = control.var_of_mean + treatment.var_of_mean
    if var_abs <= 0:
        return BayesianResult(
            model=base.model, ci_level=ci_level, message="zero variance in both arms: no posterior spread"
        )
    z = float(special.ndtri(0.5 + ci_level / 2.0))
    messages: list[str] = []
    rel = relative_lift(control, treatment)
    m_c = control.mean
    prior_var_abs = prior.variance * m_c**2 if prior.proper and m_c != 0 else None
    if prior.proper and m_c == 0:
        messages.append("control mean is 0: prior on the relative lift ignored")
    mu_abs, v_abs = _normal_posterior(treatment.mean - m_c, var_abs, prior.mean * m_c, prior_var_abs)
    sd_abs = math.sqrt(v_abs)
    loss_t, loss_c = normal_losses(mu_abs, sd_abs)
    lift_rel = ci_rel = None
    if rel is None:
        messages.append("control mean is 0: relative lift is undefined")
    else:
        mu_rel, v_rel = _normal_posterior(
            rel[0], rel[1], prior.mean, prior.variance if prior.proper else None
        )
        lift_rel = mu_rel
        ci_rel = (mu_rel - z * math.sqrt(v_rel), mu_rel + z * math.sqrt(v_rel))
    return BayesianResult(
        model=base.model,
        ci_level=ci_level,
        chance_to_win=float(special.ndtr(mu_abs / sd_abs)),
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
