"""Fixed-horizon tests of treatment vs control: Welch t (proportions, means, ratios, CUPED) and
Fisher's exact test for small binomial samples.

**One rule.**  Every result carries two pairs, each a p-value with the interval of the *same* test:

- ``p_value_abs`` / ``ci_abs`` for the difference ``mean_t - mean_c``;
- ``p_value_rel`` / ``ci_rel`` for the relative lift ``(mean_t - mean_c) / |mean_c|``, with the
  **delta-method** variance ``Var(m_t)/m_c² + m_t²·Var(m_c)/m_c⁴`` (it includes the control mean's
  noise, so it is wider than ``ci_abs / mean_c``).

For each pair ``p < alpha`` exactly when the interval excludes 0: both come from one estimate, one
standard error and one reference distribution.  ``difference`` says which pair ``p_value`` and
``significant`` are — ``"relative"`` by default, as GrowthBook's gbstats does — and falls back to
``"absolute"`` (with a message) when the control mean is 0 and no relative lift exists.

Proportions use the unpooled variances ``p(1 - p)`` with Welch–Satterthwaite degrees of freedom,
exactly gbstats 0.8.0's ``TwoSidedTTest``: 10000/500 vs 10000/560 gives relative p 0.07359 with
interval [-0.01146, 0.25146] and absolute p 0.05825.  When an expected cell count of the 2×2 table
is below 5 the normal approximation is poor (at 20 users per arm it halves the p-value), so the
p-value is Fisher's exact test instead and both intervals are its *test-based* intervals
(Miettinen 1976): ``estimate ± z_crit · |estimate| / z_p`` with ``z_p`` the normal quantile of the
exact p-value, clipped to the parameter's range — the interval that excludes 0 exactly when the
exact test rejects.

Impossible cases (an empty arm, zero variance, a zero control mean for the relative lift, sums
beyond a float's range) come back as a result whose ``message`` says why and whose undefined fields
are ``None`` — never an exception, never NaN.

One-sided alternatives: ``"greater"`` tests ``mean_t > mean_c`` and gives intervals ``(lower, inf)``;
``"less"`` the reverse.  With several treatments :func:`apply_correction` adjusts the p-values
(Holm or Benjamini–Hochberg) and gives each its ``ci_adjusted`` at the level that agrees with the
adjusted p-value (see :func:`analysis.corrections.adjusted_levels`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
from scipy import special, stats

from analysis.corrections import Correction, adjust, adjusted_levels
from analysis.stats import CupedStats, Estimate, RatioStats, SampleStats, cuped_estimates

if TYPE_CHECKING:  # typing.Self needs Python 3.11; the annotation is never evaluated at run time
    from typing_extensions import Self

Alternative = Literal["two-sided", "greater", "less"]
Difference = Literal["relative", "absolute"]
Interval = tuple[float, float]
Numbers = float | np.ndarray

EXACT_BELOW = 5.0  # Cochran's rule: the normal approximation needs every expected 2×2 count >= 5
# Ranges the test-based intervals of a proportion are clipped to: a difference of two rates lies in
# [-1, 1] and a relative lift in [-1, inf).
_ABS_RANGE: Interval = (-1.0, 1.0)
_REL_RANGE: Interval = (-1.0, math.inf)


@dataclass(frozen=True)
class FrequentistSettings:
    alpha: float = 0.05
    alternative: Alternative = "two-sided"
    difference: Difference = "relative"
    exact: bool = True  # Fisher's exact test for proportions when an expected count is below EXACT_BELOW

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.alternative not in ("two-sided", "greater", "less"):
            raise ValueError(
                f"alternative must be 'two-sided', 'greater' or 'less', got {self.alternative!r}"
            )
        if self.difference not in ("relative", "absolute"):
            raise ValueError(f"difference must be 'relative' or 'absolute', got {self.difference!r}")


@dataclass(frozen=True)
class FrequentistResult:
    test: str  # the test's name: "welch-t", "fisher-exact", "cuped-t", "ratio-delta-t"
    alpha: float
    alternative: Alternative
    difference: Difference = "relative"  # which pair p_value, statistic and significant belong to
    control_mean: float | None = None
    treatment_mean: float | None = None
    lift_abs: float | None = None
    se_abs: float | None = None
    ci_abs: Interval | None = None
    p_value_abs: float | None = None
    lift_rel: float | None = None
    se_rel: float | None = None
    ci_rel: Interval | None = None
    p_value_rel: float | None = None
    statistic: float | None = None
    df: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    ci_adjusted: Interval | None = None
    message: str | None = None

    @property
    def decisive_p_value(self) -> float | None:
        return self.p_value_adjusted if self.p_value_adjusted is not None else self.p_value

    @property
    def ci(self) -> Interval | None:
        """The interval of the deciding pair (adjusted when a correction was applied)."""
        if self.p_value_adjusted is not None:
            return self.ci_adjusted
        return self.ci_rel if self.difference == "relative" else self.ci_abs

    @property
    def significant(self) -> bool:
        p = self.decisive_p_value
        return p is not None and p < self.alpha

    def interval_at(self, alpha: float) -> Interval | None:
        """The deciding pair's interval at another level (the same test, the same standard error)."""
        relative = self.difference == "relative"
        estimate, se = (self.lift_rel, self.se_rel) if relative else (self.lift_abs, self.se_abs)
        if estimate is None or se is None:
            return None
        exact = self.test == FISHER
        bounds = (_REL_RANGE if relative else _ABS_RANGE) if exact else None
        return wald_interval(estimate, se, critical_value(alpha, self.alternative, self.df), self.alternative, bounds)

    def adjusted(self, p_value: float, alpha: float) -> FrequentistResult:
        """This result within a corrected family: its adjusted p-value and the interval that agrees with it."""
        return replace(self, p_value_adjusted=p_value, ci_adjusted=self.interval_at(alpha))


FISHER = "fisher-exact"


def _join(messages: Sequence[str]) -> str | None:
    return "; ".join(dict.fromkeys(messages)) if messages else None


def tail_probability(stat: Numbers, alternative: Alternative, df: Numbers | None = None) -> np.ndarray:
    """Tail probability of z (``df=None``) or Student-t statistics; arrays broadcast (simulations)."""
    stat = np.asarray(stat, dtype=float)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.asarray(special.ndtr(x) if df is None else special.stdtr(df, x))

    if alternative == "greater":
        return cdf(-stat)
    if alternative == "less":
        return cdf(stat)
    return np.minimum(1.0, 2.0 * cdf(-np.abs(stat)))


def p_value_from_statistic(stat: float, alternative: Alternative, df: float | None = None) -> float:
    """Tail probability of a z (``df=None``) or Student-t statistic."""
    return float(tail_probability(stat, alternative, df))


def critical_value(alpha: float, alternative: Alternative, df: float | None = None) -> float:
    q = 1.0 - (alpha / 2.0 if alternative == "two-sided" else alpha)
    return float(special.ndtri(q) if df is None else special.stdtrit(df, q))


def interval(estimate: float, se: float, crit: float, alternative: Alternative) -> Interval:
    if alternative == "greater":
        return (estimate - crit * se, math.inf)
    if alternative == "less":
        return (-math.inf, estimate + crit * se)
    return (estimate - crit * se, estimate + crit * se)


def wald_interval(
    estimate: float, se: float, crit: float, alternative: Alternative, bounds: Interval | None = None
) -> Interval:
    """:func:`interval`, clipped to ``bounds`` (a parameter's range; 0 lies inside, so clipping never
    changes whether the interval excludes 0).  An infinite ``se`` gives the whole range."""
    lo, hi = (-math.inf, math.inf) if math.isinf(se) else interval(estimate, se, crit, alternative)
    if bounds is None:
        return lo, hi
    return max(lo, bounds[0]), min(hi, bounds[1])


def excludes_zero(ci: Interval | None) -> bool:
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def relative_lift(control: Estimate, treatment: Estimate) -> tuple[float, float] | None:
    """``((m_t - m_c)/|m_c|, its delta-method variance)`` as gbstats defines them, or ``None`` when the
    control mean is 0 (or so near 0 that the ratio or its variance is not a finite float).

    Dividing by ``|m_c|`` keeps the sign of the lift that of the difference when the metric is negative.
    """
    if control.mean * control.mean == 0 or not math.isfinite(control.mean * control.mean):
        return None
    lift, var = (float(x) for x in delta_relative(control.mean, control.var_of_mean, treatment.mean,
                                                  treatment.var_of_mean))
    return (lift, var) if math.isfinite(lift) and math.isfinite(var) else None


RelativeScale = Literal["log", "delta"]


@dataclass(frozen=True)
class RelativeMoments:
    """The relative lift as the sequential tests read it.

    Their boundaries sit 3 standard errors out, where the delta-method z of ``(m_t - m_c)/|m_c|``
    is visibly not normal: its standard error grows with the estimate, which compresses the upper
    tail (at 5% conversion, +10% and 31k users per arm its sd is 0.91, and an mSPRT on it loses a
    sixth of its power).  ``log(m_t/m_c)``, with delta-method variance ``v_t/m_t² + v_c/m_c²``, is
    normal to the third decimal there, so the sequential tests use it whenever both means are
    positive and map their intervals back with ``exp(x) - 1``; otherwise the plain delta method.
    """

    lift: float  # (m_t - m_c)/|m_c|: the point estimate every engine reports
    estimate: float  # on the test's scale
    var: float  # of ``estimate``
    scale: RelativeScale

    def to_lift(self, x: float) -> float:
        if self.scale == "delta":
            return x
        with np.errstate(over="ignore"):
            return float(np.expm1(x))

    def effect(self, relative_effect: float) -> float:
        """A relative effect (an MDE) on the test's scale."""
        return math.log1p(relative_effect) if self.scale == "log" else relative_effect

    def interval(self, ci: Interval) -> Interval:
        return self.to_lift(ci[0]), self.to_lift(ci[1])


def relative_moments(control: Estimate, treatment: Estimate) -> RelativeMoments | None:
    """:class:`RelativeMoments` of two arms, or ``None`` when the control mean is 0."""
    rel = relative_lift(control, treatment)
    if rel is None:
        return None
    if control.mean > 0 and treatment.mean > 0:
        estimate, var = (float(x) for x in log_relative(control.mean, control.var_of_mean, treatment.mean,
                                                        treatment.var_of_mean))
        if math.isfinite(var) and math.isfinite(estimate):
            return RelativeMoments(rel[0], estimate, var, "log")
    return RelativeMoments(rel[0], rel[0], rel[1], "delta")


def log_relative(m_c: Numbers, vm_c: Numbers, m_t: Numbers, vm_t: Numbers) -> tuple[np.ndarray, np.ndarray]:
    """``log(m_t/m_c)`` and its delta-method variance ``vm_t/m_t² + vm_c/m_c²`` (positive means);
    arrays broadcast (simulations)."""
    m_c, m_t = np.asarray(m_c, dtype=float), np.asarray(m_t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        return np.log(m_t) - np.log(m_c), vm_t / (m_t * m_t) + vm_c / (m_c * m_c)


def delta_relative(m_c: Numbers, vm_c: Numbers, m_t: Numbers, vm_t: Numbers) -> tuple[np.ndarray, np.ndarray]:
    """The relative lift ``(m_t - m_c)/|m_c|`` and its delta-method variance from the means and the
    variances of the means; arrays broadcast (simulations).  No m_c**4: it underflows for |m_c| < 1e-77."""
    m_c, m_t = np.asarray(m_c, dtype=float), np.asarray(m_t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = m_t / m_c
        return (m_t - m_c) / np.abs(m_c), (vm_t + ratio * ratio * vm_c) / (m_c * m_c)


def satterthwaite(vm_c: Numbers, n_c: Numbers, vm_t: Numbers, n_t: Numbers) -> np.ndarray:
    """Welch–Satterthwaite degrees of freedom from the variances of the means; arrays broadcast.

    inf when both arms have zero variance, a single user each, or the squares overflow.
    """
    vm_c, vm_t = np.asarray(vm_c, dtype=float), np.asarray(vm_t, dtype=float)
    n_c, n_t = np.asarray(n_c, dtype=float), np.asarray(n_t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Products, not **: a float ** raises OverflowError for huge variances where * gives inf.
        denom = np.where(n_c > 1, vm_c * vm_c / (n_c - 1), 0.0) + np.where(n_t > 1, vm_t * vm_t / (n_t - 1), 0.0)
        total = vm_c + vm_t
        df = np.where(denom > 0, total * total / denom, np.inf)
    return np.where(np.isnan(df), np.inf, df)


def welch_df(control: Estimate, treatment: Estimate) -> float:
    """Welch–Satterthwaite degrees of freedom (inf when both arms have zero variance or it overflows)."""
    return float(satterthwaite(control.var_of_mean, control.n, treatment.var_of_mean, treatment.n))


def empty_arm_message(control_n: int, treatment_n: int, minimum: int = 1) -> str | None:
    if control_n < minimum or treatment_n < minimum:
        which, n = ("control", control_n) if control_n < minimum else ("treatment", treatment_n)
        return f"{which} has {n} users; the test needs at least {minimum} per arm"
    return None


def overflow_message(*estimates: Estimate) -> str | None:
    if all(e.finite for e in estimates):
        return None
    return "the sums are beyond a float's range (the mean or variance overflows): no test is possible"


def zero_control_message(deciding: Difference) -> str:
    text = "control mean is 0: the relative lift (treatment / control - 1) and its interval are undefined"
    if deciding == "relative":
        text += ", so p_value and the verdict use the absolute difference"
    return text


def _decide_on(settings_difference: Difference, has_relative: bool) -> Difference:
    return settings_difference if has_relative else "absolute"


def _pick(result: FrequentistResult, statistic: dict[Difference, float | None]) -> FrequentistResult:
    """Fill ``p_value`` and ``statistic`` from the pair ``result.difference`` names."""
    relative = result.difference == "relative"
    return replace(
        result,
        p_value=result.p_value_rel if relative else result.p_value_abs,
        statistic=statistic[result.difference],
    )


def compare_estimates(
    control: Estimate,
    treatment: Estimate,
    settings: FrequentistSettings = FrequentistSettings(),
    *,
    test: str = "welch-t",
    use_t: bool = True,
) -> FrequentistResult:
    """The shared engine: both pairs (absolute, delta-method relative) from two arm estimates.

    ``use_t`` selects Student-t with Welch degrees of freedom (else normal).  The fields are gathered
    first and the result built once: readouts run this per metric and treatment.
    """
    fields: dict[str, Any] = {"test": test, "alpha": settings.alpha, "alternative": settings.alternative}
    problem = empty_arm_message(control.n, treatment.n, 2 if use_t else 1) or overflow_message(control, treatment)
    if problem:
        return FrequentistResult(**fields, message=problem)

    messages: list[str] = []
    diff = treatment.mean - control.mean
    se = math.sqrt(control.var_of_mean + treatment.var_of_mean)
    df = welch_df(control, treatment) if use_t else None
    if df is not None and math.isinf(df):
        df = None
    rel = relative_lift(control, treatment)
    difference = _decide_on(settings.difference, rel is not None)
    if rel is None:
        messages.append(zero_control_message(settings.difference))
    fields.update(difference=difference, control_mean=control.mean, treatment_mean=treatment.mean, lift_abs=diff,
                  lift_rel=rel[0] if rel else None, df=df)
    if not math.isfinite(diff) or not math.isfinite(se):
        messages.append("the difference overflows a float: no test is possible")
        return FrequentistResult(**fields, message=_join(messages))
    if se <= 0:
        messages.append("zero variance in both arms: the difference cannot be tested")
        return FrequentistResult(**fields, message=_join(messages))

    crit = critical_value(settings.alpha, settings.alternative, df)
    stat: dict[Difference, float | None] = {"absolute": diff / se, "relative": None}
    fields.update(se_abs=se, ci_abs=interval(diff, se, crit, settings.alternative),
                  p_value_abs=p_value_from_statistic(diff / se, settings.alternative, df))
    if rel is not None and rel[1] > 0:
        se_rel = math.sqrt(rel[1])
        stat["relative"] = rel[0] / se_rel
        fields.update(se_rel=se_rel, ci_rel=interval(rel[0], se_rel, crit, settings.alternative),
                      p_value_rel=p_value_from_statistic(rel[0] / se_rel, settings.alternative, df))
    relative = difference == "relative"
    return FrequentistResult(
        **fields,
        statistic=stat[difference],
        p_value=fields.get("p_value_rel") if relative else fields["p_value_abs"],
        message=_join(messages),
    )


# ------------------------------------------------------------------------------------ proportions


def expected_counts(control: SampleStats, treatment: SampleStats) -> tuple[float, ...]:
    """The four cells of the 2×2 table expected under no difference (pooled rate)."""
    n = control.n + treatment.n
    pooled = (control.sum + treatment.sum) / n if n > 0 else 0.0
    return tuple(arm.n * share for arm in (control, treatment) for share in (pooled, 1.0 - pooled))


def needs_exact_test(control: SampleStats, treatment: SampleStats) -> bool:
    """An expected count below 5 (Cochran): the z/t approximation of a proportion test is unreliable."""
    return min(expected_counts(control, treatment)) < EXACT_BELOW


def _not_a_proportion(control: SampleStats, treatment: SampleStats) -> str | None:
    for arm, name in ((control, "control"), (treatment, "treatment")):
        if arm.n > 0 and not 0 <= arm.sum <= arm.n:
            return f"{name} has {arm.sum:g} conversions for {arm.n} users: not a proportion"
    return None


def proportions_test(
    control: SampleStats, treatment: SampleStats, settings: FrequentistSettings = FrequentistSettings()
) -> FrequentistResult:
    """Two proportions: Welch t on ``p(1 - p)`` variances (gbstats), or Fisher's exact test when an
    expected count is below 5 and ``settings.exact`` is on."""
    problem = _not_a_proportion(control, treatment)
    if problem:
        return FrequentistResult("welch-t", settings.alpha, settings.alternative, message=problem)
    est_c, est_t = control.estimate(binomial=True), treatment.estimate(binomial=True)
    varies = est_c.variance > 0 or est_t.variance > 0  # all-0% or all-100% arms: nothing to test
    if settings.exact and varies and _exact_feasible(control, treatment) and needs_exact_test(control, treatment):
        return fisher_test(control, treatment, settings)
    return compare_estimates(est_c, est_t, settings, test="welch-t")


def _exact_feasible(control: SampleStats, treatment: SampleStats) -> bool:
    m = control.sum + treatment.sum
    support = min(m, control.n + treatment.n - m, control.n, treatment.n) + 1
    return control.n > 0 and treatment.n > 0 and support <= MAX_EXACT_SUPPORT


def _z_of_p(p: float, alternative: Alternative) -> float:
    """The z score whose tail probability is ``p`` (signed towards the alternative when one-sided)."""
    if alternative == "two-sided":
        return float(special.ndtri(1.0 - p / 2.0))
    return float(special.ndtri(1.0 - p))


def _test_based_se(estimate: float, z: float, alternative: Alternative) -> float:
    """``|estimate| / z``: the standard error a normal test would need to give the exact p-value.

    When the estimate and the test disagree in direction (or there is no evidence, ``z <= 0``) the
    interval is the whole range, which contains 0 as the test's verdict then requires.
    """
    toward = estimate if alternative != "less" else -estimate
    if z <= 0 or (alternative != "two-sided" and toward <= 0) or estimate == 0:
        return math.inf
    return abs(estimate) / z


_TIE = 1 + 1e-7  # tables as likely as the observed one, up to rounding, count as extreme (R's fisher.test)
MAX_EXACT_SUPPORT = 2_000_000  # tables to enumerate; beyond this the t test's approximation is used


def fisher_p_value(x_c: int, n_c: int, x_t: int, n_t: int, alternative: Alternative = "two-sided") -> float:
    """Fisher's exact p-value for ``x_t/n_t`` vs ``x_c/n_c`` (treatment greater for ``"greater"``).

    Equal to ``scipy.stats.fisher_exact`` (two-sided: every table no more likely than the observed
    one), but summed over the hypergeometric support only, from log-probabilities: scipy's version
    takes ~30 s at a billion users per arm, where a rare conversion makes the exact test necessary.
    """
    m, total = x_c + x_t, n_c + n_t
    if n_c == 0 or n_t == 0 or m == 0 or m == total:
        return 1.0  # an empty row or column: the table carries no evidence
    lo, hi = max(0, m - n_c), min(m, n_t)
    k = lo + np.arange(hi - lo + 1, dtype=float)  # float: user counts may exceed int64
    log_pmf = stats.hypergeom.logpmf(k, float(total), float(n_t), float(m))
    pmf = np.exp(log_pmf - log_pmf.max())
    pmf /= pmf.sum()
    observed = x_t - lo
    if alternative == "greater":
        p = pmf[observed:].sum()
    elif alternative == "less":
        p = pmf[: observed + 1].sum()
    else:
        p = pmf[pmf <= pmf[observed] * _TIE].sum()
    return float(min(max(p, 0.0), 1.0))


def fisher_test(
    control: SampleStats, treatment: SampleStats, settings: FrequentistSettings = FrequentistSettings()
) -> FrequentistResult:
    """Fisher's exact test (scipy) with test-based intervals (Miettinen 1976) on both scales.

    The null ``p_t = p_c`` is the same for the difference and the relative lift, so both pairs share
    the exact p-value; each interval is ``estimate ± z_crit · |estimate| / z_p``, clipped to the
    parameter's range, and excludes 0 exactly when ``p < alpha``.
    """
    base = FrequentistResult(test=FISHER, alpha=settings.alpha, alternative=settings.alternative)
    problem = _not_a_proportion(control, treatment) or empty_arm_message(control.n, treatment.n)
    if problem:
        return replace(base, message=problem)
    p = fisher_p_value(round(control.sum), control.n, round(treatment.sum), treatment.n, settings.alternative)
    est_c, est_t = control.estimate(binomial=True), treatment.estimate(binomial=True)
    diff = est_t.mean - est_c.mean
    rel = relative_lift(est_c, est_t)
    difference = _decide_on(settings.difference, rel is not None)
    messages = [
        f"Fisher's exact test: an expected count of the 2x2 table is below {EXACT_BELOW:g}, where the "
        "normal approximation is unreliable; intervals are test-based (Miettinen), matching the exact p-value"
    ]
    if rel is None:
        messages.append(zero_control_message(settings.difference))
    z = _z_of_p(p, settings.alternative)
    crit = critical_value(settings.alpha, settings.alternative)
    se_abs = _test_based_se(diff, z, settings.alternative)
    result = replace(
        base,
        difference=difference,
        control_mean=est_c.mean,
        treatment_mean=est_t.mean,
        lift_abs=diff,
        se_abs=se_abs,
        ci_abs=wald_interval(diff, se_abs, crit, settings.alternative, _ABS_RANGE),
        p_value_abs=p,
    )
    if rel is not None:
        se_rel = _test_based_se(rel[0], z, settings.alternative)
        result = replace(
            result,
            lift_rel=rel[0],
            se_rel=se_rel,
            ci_rel=wald_interval(rel[0], se_rel, crit, settings.alternative, _REL_RANGE),
            p_value_rel=p,
        )
    z_signed = math.copysign(z, diff) if settings.alternative == "two-sided" else z
    return replace(_pick(result, {"absolute": z_signed, "relative": z_signed}), message=_join(messages))


# ------------------------------------------------------------------------------------ other metrics


def welch_ttest(
    control: SampleStats, treatment: SampleStats, settings: FrequentistSettings = FrequentistSettings()
) -> FrequentistResult:
    """Welch's unequal-variance t test on means."""
    return compare_estimates(control.estimate(), treatment.estimate(), settings, test="welch-t")


def ratio_ttest(
    control: RatioStats, treatment: RatioStats, settings: FrequentistSettings = FrequentistSettings()
) -> FrequentistResult:
    """Ratio metric (``sum num / sum den``) with delta-method variances and Welch degrees of freedom."""
    for arm, name in ((control, "control"), (treatment, "treatment")):
        if arm.n > 0 and arm.den_sum == 0:
            return FrequentistResult(
                test="ratio-delta-t",
                alpha=settings.alpha,
                alternative=settings.alternative,
                message=f"{name} denominator sums to 0: the ratio is undefined",
            )
    return compare_estimates(control.estimate(), treatment.estimate(), settings, test="ratio-delta-t")


def cuped_ttest(
    control: CupedStats,
    treatment: CupedStats,
    settings: FrequentistSettings = FrequentistSettings(),
) -> FrequentistResult:
    """CUPED-adjusted Welch t test; θ is pooled within the two arms (see :func:`analysis.stats.cuped_theta`).

    For k arms sharing one θ, call :func:`analysis.stats.cuped_estimates` and :func:`compare_estimates`.
    """
    (est_c, est_t), _theta = cuped_estimates([control, treatment])
    return compare_estimates(est_c, est_t, settings, test="cuped-t")


# ------------------------------------------------------------------------------------ families


class Adjustable(Protocol):
    """A result that can join a corrected family: a p-value, and a copy with the adjustment applied."""

    @property
    def alpha(self) -> float: ...

    @property
    def p_value(self) -> float | None: ...

    def adjusted(self, p_value: float, alpha: float) -> Self: ...


Result = TypeVar("Result", bound=Adjustable)
Arm = TypeVar("Arm")


def apply_correction(results: Sequence[Result], correction: Correction | None) -> list[Result]:
    """Fill ``p_value_adjusted`` and ``ci_adjusted`` across the family of results that have a p-value.

    Each adjusted interval is at the per-comparison level the procedure used for that hypothesis, so
    it excludes 0 exactly when the adjusted p-value is below alpha.
    """
    tested = [(i, p) for i, r in enumerate(results) if (p := r.p_value) is not None]
    if correction is None or not tested:
        return list(results)
    p_values = [p for _, p in tested]
    levels = adjusted_levels(p_values, correction, results[tested[0][0]].alpha)
    out = list(results)
    for (i, _), p_adj, level in zip(tested, adjust(p_values, correction), levels, strict=True):
        out[i] = out[i].adjusted(float(p_adj), float(level))
    return out


def compare_to_control(
    control: Arm,
    treatments: Sequence[Arm],
    test: Callable[[Arm, Arm, FrequentistSettings], FrequentistResult],
    settings: FrequentistSettings = FrequentistSettings(),
    correction: Correction | None = "holm",
) -> list[FrequentistResult]:
    """k treatments vs one control with ``test``, p-values adjusted by Holm or Benjamini-Hochberg."""
    return apply_correction([test(control, t, settings) for t in treatments], correction)
