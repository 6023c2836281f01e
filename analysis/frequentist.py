"""Fixed-horizon tests of treatment vs control: proportion z test, Welch t, ratio and CUPED.

Every test returns a :class:`FrequentistResult`; impossible cases (an empty arm, zero variance,
a zero control mean for the relative lift) come back as a result whose ``message`` says why and
whose undefined fields are ``None`` — never an exception, never NaN.

Intervals:

- ``ci_abs`` is the interval for ``mean_t - mean_c``.
- ``ci_rel`` is the **delta-method** interval for ``mean_t / mean_c - 1``: its variance is
  ``Var(m_t)/m_c² + m_t²·Var(m_c)/m_c⁴``, which accounts for the noise in the control mean.  It is
  therefore wider than ``ci_abs / mean_c`` (which pretends the control mean is known) and not
  symmetric in the same way; the readout labels it as the delta-method interval.

The proportion z test uses the pooled proportion for its statistic (as
``statsmodels.stats.proportion.proportions_ztest`` does) and unpooled variances for its interval.
The Welch test matches ``scipy.stats.ttest_ind_from_stats(equal_var=False)``.

One-sided alternatives: ``"greater"`` tests ``mean_t > mean_c`` and gives intervals
``(lower, inf)``; ``"less"`` the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from scipy import special

from analysis.corrections import Correction, adjust
from analysis.stats import CupedStats, Estimate, RatioStats, SampleStats, cuped_estimates

Alternative = Literal["two-sided", "greater", "less"]
Interval = tuple[float, float]


@dataclass(frozen=True)
class FrequentistSettings:
    alpha: float = 0.05
    alternative: Alternative = "two-sided"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.alternative not in ("two-sided", "greater", "less"):
            raise ValueError(
                f"alternative must be 'two-sided', 'greater' or 'less', got {self.alternative!r}"
            )


@dataclass(frozen=True)
class FrequentistResult:
    test: str
    alpha: float
    alternative: Alternative
    control_mean: float | None = None
    treatment_mean: float | None = None
    lift_abs: float | None = None
    ci_abs: Interval | None = None
    se_abs: float | None = None
    lift_rel: float | None = None
    ci_rel: Interval | None = None
    se_rel: float | None = None
    statistic: float | None = None
    df: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    message: str | None = None

    @property
    def decisive_p_value(self) -> float | None:
        return self.p_value_adjusted if self.p_value_adjusted is not None else self.p_value

    @property
    def significant(self) -> bool:
        p = self.decisive_p_value
        return p is not None and p < self.alpha


def _join(messages: Sequence[str]) -> str | None:
    return "; ".join(messages) if messages else None


def p_value_from_statistic(stat: float, alternative: Alternative, df: float | None = None) -> float:
    """Tail probability of a z (``df=None``) or Student-t statistic."""

    def cdf(x: float) -> float:
        return float(special.ndtr(x) if df is None else special.stdtr(df, x))

    if alternative == "greater":
        return cdf(-stat)
    if alternative == "less":
        return cdf(stat)
    return min(1.0, 2.0 * cdf(-abs(stat)))


def critical_value(alpha: float, alternative: Alternative, df: float | None = None) -> float:
    q = 1.0 - (alpha / 2.0 if alternative == "two-sided" else alpha)
    return float(special.ndtri(q) if df is None else special.stdtrit(df, q))


def interval(estimate: float, se: float, crit: float, alternative: Alternative) -> Interval:
    if alternative == "greater":
        return (estimate - crit * se, math.inf)
    if alternative == "less":
        return (-math.inf, estimate + crit * se)
    return (estimate - crit * se, estimate + crit * se)


def relative_lift(control: Estimate, treatment: Estimate) -> tuple[float, float] | None:
    """``(m_t/m_c - 1, its delta-method variance)``, or ``None`` when the control mean is 0 (or so
    near 0 that the ratio or its variance is not a finite float)."""
    m_c, m_t = control.mean, treatment.mean
    scale = m_c * m_c  # no m_c**4: it underflows to 0 already for |m_c| < 1e-77
    if scale == 0:
        return None
    ratio = m_t / m_c
    if not math.isfinite(ratio):
        return None
    var = (treatment.var_of_mean + ratio * ratio * control.var_of_mean) / scale
    if not math.isfinite(var):
        return None
    return ratio - 1.0, var


def welch_df(control: Estimate, treatment: Estimate) -> float:
    """Welch–Satterthwaite degrees of freedom (inf when both arms have zero variance)."""
    v_c, v_t = control.var_of_mean, treatment.var_of_mean
    denom = (v_c**2 / (control.n - 1) if control.n > 1 else 0.0) + (
        v_t**2 / (treatment.n - 1) if treatment.n > 1 else 0.0
    )
    return (v_c + v_t) ** 2 / denom if denom > 0 else math.inf


def empty_arm_message(control_n: int, treatment_n: int, minimum: int = 1) -> str | None:
    if control_n < minimum or treatment_n < minimum:
        which, n = ("control", control_n) if control_n < minimum else ("treatment", treatment_n)
        return f"{which} has {n} users; the test needs at least {minimum} per arm"
    return None


def compare_estimates(
    control: Estimate,
    treatment: Estimate,
    settings: FrequentistSettings = FrequentistSettings(),
    *,
    test: str = "welch-t",
    use_t: bool = True,
    null_se: float | None = None,
) -> FrequentistResult:
    """The shared engine: difference, intervals and p-value from two arm estimates.

    ``use_t`` selects Student-t with Welch degrees of freedom (else normal); ``null_se`` replaces the
    standard error of the statistic (the pooled proportion test) while intervals keep the unpooled one.
    """
    base = FrequentistResult(test=test, alpha=settings.alpha, alternative=settings.alternative)
    problem = empty_arm_message(control.n, treatment.n, 2 if use_t else 1)
    if problem:
        return replace(base, message=problem)

    messages: list[str] = []
    diff = treatment.mean - control.mean
    se = math.sqrt(control.var_of_mean + treatment.var_of_mean)
    df = welch_df(control, treatment) if use_t else None
    if df is not None and math.isinf(df):
        df = None
    crit = critical_value(settings.alpha, settings.alternative, df)
    rel = relative_lift(control, treatment)
    if rel is None:
        messages.append("control mean is 0: relative lift is undefined")

    result = replace(
        base,
        control_mean=control.mean,
        treatment_mean=treatment.mean,
        lift_abs=diff,
        lift_rel=rel[0] if rel else None,
        df=df,
    )
    stat_se = se if null_se is None else null_se
    if stat_se <= 0:
        messages.append("zero variance in both arms: the difference cannot be tested")
        return replace(result, message=_join(messages))

    stat = diff / stat_se
    result = replace(result, statistic=stat, p_value=p_value_from_statistic(stat, settings.alternative, df))
    if se > 0:
        result = replace(result, se_abs=se, ci_abs=interval(diff, se, crit, settings.alternative))
    else:
        messages.append("zero variance within both arms: no interval for the difference")
    if rel is not None and rel[1] > 0:
        se_rel = math.sqrt(rel[1])
        result = replace(result, se_rel=se_rel, ci_rel=interval(rel[0], se_rel, crit, settings.alternative))
    return replace(result, message=_join(messages))


def ztest_proportions(
    control: SampleStats, treatment: SampleStats, settings: FrequentistSettings = FrequentistSettings()
) -> FrequentistResult:
    """Two-proportion z test (pooled statistic, unpooled Wald intervals)."""
    for arm, name in ((control, "control"), (treatment, "treatment")):
        if arm.n > 0 and not 0 <= arm.sum <= arm.n:
            return FrequentistResult(
                test="z",
                alpha=settings.alpha,
                alternative=settings.alternative,
                message=f"{name} has {arm.sum} conversions for {arm.n} users: not a proportion",
            )
    null_se = None
    n = control.n + treatment.n
    if control.n > 0 and treatment.n > 0:
        pooled = (control.sum + treatment.sum) / n
        null_se = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / control.n + 1 / treatment.n))
    return compare_estimates(
        control.estimate(binomial=True),
        treatment.estimate(binomial=True),
        settings,
        test="z",
        use_t=False,
        null_se=null_se,
    )


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


Arm = TypeVar("Arm")


def apply_correction(
    results: Sequence[FrequentistResult], correction: Correction | None
) -> list[FrequentistResult]:
    """Fill ``p_value_adjusted`` across the family of results that have a p-value."""
    if correction is None:
        return list(results)
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    adjusted = adjust([results[i].p_value for i in tested], correction)  # type: ignore[misc]
    out = list(results)
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = replace(out[i], p_value_adjusted=float(p))
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
