"""One entry point from per-variant sums to a readout: :func:`analyze`.

The first variant is the control.  ``metric_type`` is ``"binomial"`` (``sum`` = conversions) or
``"mean"`` (``sum`` and ``sum_squares`` of a per-user value).  When every variant carries the
pre-exposure columns (``pre_sum``, ``pre_sum_squares``, ``sum_product``) the frequentist and
sequential engines, and the Gaussian Bayesian model, use CUPED-adjusted means with one θ shared by
all arms; the readout then reports each arm's adjusted mean beside its raw mean.

Engines: ``"frequentist"`` (Welch t, or Fisher's exact test for small binomial samples;
Holm/BH across treatments), ``"sequential"`` (the plan's method: an mSPRT tuned to the plan, or a
Lan-DeMets group-sequential design), ``"bayesian"`` (Beta-Binomial or Gaussian) or ``"all"``.

**One rule.**  The verdict, the p-value printed beside it and the interval printed beside it come
from the same test.  Each treatment carries ``p_value_abs`` with ``ci_abs`` and ``p_value_rel`` with
``ci_rel`` from the deciding engine; ``test`` (``"relative"`` by default, as GrowthBook does) says
which pair ``p_value``, ``significant`` and the decision use, and ``ci`` is that pair's interval
(the adjusted one when a correction applies).  ``p < alpha`` exactly when the interval excludes 0.
A Bayesian verdict (chance to win ≥ threshold) is shown with the credible interval at level
``2·threshold - 1``, whose lower end is above 0 exactly when the chance to win passes the threshold.

Nothing here raises on unlucky data (an empty arm, zero variance, 0% or 100% conversion, sums
beyond a float's range): those come back as ``None`` fields with a message.  Malformed input
(non-finite numbers, conversions above the user count, a single variant) raises ``ValueError``
naming the variant or row and column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from typing import Any, Literal

from analysis.bayesian import (
    BayesianResult,
    BetaPrior,
    GaussianPrior,
    beta_binomial_test,
    beta_posterior,
    gaussian_test,
    normal_posteriors,
    prob_best,
)
from analysis.corrections import Correction
from analysis.decision import Decision, Evidence, bayesian_call, decide
from analysis.frequentist import (
    Alternative,
    Difference,
    FrequentistResult,
    FrequentistSettings,
    apply_correction,
    compare_estimates,
    proportions_test,
    relative_lift,
)
from analysis.group_sequential import GroupSequentialResult
from analysis.msprt import SequentialResult
from analysis.power import sample_size_means, sample_size_proportions
from analysis.sequential import SequentialPlan, describe_plan, sequential_test
from analysis.srm import SrmResult, srm_test
from analysis.stats import CupedStats, Estimate, SampleStats, cuped_estimates
from analysis.summary import MetricType, VariantSummary, summaries_from_rows, validate_summaries

__all__ = [
    "AnalysisSettings",
    "ArmSummary",
    "MetricType",
    "Readout",
    "TreatmentResult",
    "VariantSummary",
    "analyze",
    "summaries_from_rows",
]

Engine = Literal["frequentist", "sequential", "bayesian", "all"]
DecisionEngine = Literal["frequentist", "sequential", "bayesian"]
ENGINES: tuple[DecisionEngine, ...] = ("frequentist", "sequential", "bayesian")

REL_CI_NOTE = (
    "ci_rel is the delta-method interval for (treatment - control) / |control| (it includes the control "
    "mean's noise, so it is wider than ci_abs divided by the control mean)"
)
SEQUENTIAL_REL_CI_NOTE = (
    "ci_rel is the sequential test's interval for treatment / control - 1, computed on the log scale "
    "log(treatment / control), where the statistic stays normal out to the boundaries, and mapped back"
)


@dataclass(frozen=True)
class AnalysisSettings:
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.05
    mde_relative: bool = True
    test: Difference = "relative"  # the pair p_value, significant and the decision use
    exact_tests: bool = True  # Fisher's exact test for binomial metrics with an expected count below 5
    weights: tuple[float, ...] | None = None
    correction: Correction | None = "holm"
    alternative: Alternative = "two-sided"
    use_cuped: bool = True
    beta_prior: BetaPrior = field(default_factory=BetaPrior)
    gaussian_prior: GaussianPrior = field(default_factory=GaussianPrior)
    sequential: SequentialPlan = field(default_factory=SequentialPlan)
    sequential_tau2: float | None = None  # fixes the mSPRT's mixing variance instead of tuning it
    gs_info_fractions: tuple[float, ...] | None = None  # every look so far, this one last: group-sequential
    ctw_threshold: float = 0.95
    loss_threshold: float = 0.0025  # expected loss relative to the control mean (gbstats' default)
    decision_engine: DecisionEngine | None = None
    users_per_day: float | None = None
    srm_threshold: float = 0.001

    def __post_init__(self) -> None:
        for name in ("alpha", "power", "ctw_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if not self.ctw_threshold > 0.5:
            raise ValueError(f"ctw_threshold must be above 0.5, got {self.ctw_threshold}")
        if not math.isfinite(self.mde) or self.mde == 0:
            raise ValueError(f"mde must be a non-zero finite number, got {self.mde}")
        if self.test not in ("relative", "absolute"):
            raise ValueError(f"test must be 'relative' or 'absolute', got {self.test!r}")
        if self.users_per_day is not None and not (math.isfinite(self.users_per_day) and self.users_per_day >= 0):
            raise ValueError(f"users_per_day must be a finite number >= 0, got {self.users_per_day}")
        if self.sequential_tau2 is not None and not (math.isfinite(self.sequential_tau2) and self.sequential_tau2 > 0):
            raise ValueError(f"sequential_tau2 must be a positive number, got {self.sequential_tau2}")
        FrequentistSettings(self.alpha, self.alternative, self.test)  # the same checks, one place

    @property
    def frequentist(self) -> FrequentistSettings:
        return FrequentistSettings(self.alpha, self.alternative, self.test, self.exact_tests)

    @property
    def credible_level(self) -> float:
        """Credible level whose interval excludes 0 exactly when chance to win passes the threshold."""
        return 2.0 * self.ctw_threshold - 1.0

    @property
    def group_sequential(self) -> bool:
        return self.sequential.method == "group" or self.gs_info_fractions is not None


@dataclass(frozen=True)
class ArmSummary:
    name: str
    users: int
    mean: float | None
    prob_best: float | None = None
    adjusted_mean: float | None = None  # CUPED-adjusted; the lifts are differences of these


@dataclass(frozen=True)
class TreatmentResult:
    variant: str
    users: int
    mean: float | None
    control_mean: float | None
    adjusted_mean: float | None = None
    control_adjusted_mean: float | None = None
    lift_abs: float | None = None
    lift_rel: float | None = None
    test: Difference = "relative"  # which pair p_value, ci and significant are
    method: str | None = None  # the deciding test: welch-t, fisher-exact, cuped-t, msprt, group-sequential, ...
    p_value_abs: float | None = None
    ci_abs: tuple[float, float] | None = None
    p_value_rel: float | None = None
    ci_rel: tuple[float, float] | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    ci: tuple[float, float] | None = None  # the interval printed beside the verdict
    significant: bool | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    prob_best: float | None = None
    frequentist: FrequentistResult | None = None
    sequential: SequentialResult | None = None
    group_sequential: GroupSequentialResult | None = None
    bayesian: BayesianResult | None = None
    messages: tuple[str, ...] = ()

    @property
    def lift(self) -> float | None:
        """The lift of the deciding pair."""
        return self.lift_rel if self.test == "relative" else self.lift_abs

    @property
    def decisive_p_value(self) -> float | None:
        return self.p_value_adjusted if self.p_value_adjusted is not None else self.p_value


@dataclass(frozen=True)
class Readout:
    metric_type: MetricType
    engine: Engine
    decision_engine: DecisionEngine
    test: Difference
    control: str
    arms: tuple[ArmSummary, ...]
    results: tuple[TreatmentResult, ...]
    srm: SrmResult
    srm_p_value: float
    srm_flag: bool
    decision: Decision
    decision_text: str
    required_users_per_arm: int | None
    cuped_theta: float | None
    messages: tuple[str, ...]
    settings: AnalysisSettings

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: tuples become lists, NaN and ±inf become ``None``."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _json_safe(asdict(value))
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


# ------------------------------------------------------------------------------------ arms


@dataclass(frozen=True)
class _Arms:
    """Every variant reduced to its sufficient statistics and the estimate the tests compare."""

    stats: list[SampleStats]
    estimates: list[Estimate]  # CUPED-adjusted when the covariate is used
    theta: float | None
    messages: list[str]

    @property
    def cuped(self) -> bool:
        return self.theta is not None


def _arms(variants: Sequence[VariantSummary], metric_type: MetricType, settings: AnalysisSettings) -> _Arms:
    binomial = metric_type == "binomial"
    stats_ = [
        SampleStats(v.users, float(v.sum), float(v.sum) if binomial else float(v.sum_squares or 0.0))
        for v in variants
    ]
    if not (settings.use_cuped and variants[0].has_cuped):
        return _Arms(stats_, [s.estimate(binomial=binomial) for s in stats_], None, [])
    cuped = [
        CupedStats(s, float(v.pre_sum or 0.0), float(v.pre_sum_squares or 0.0), float(v.sum_product or 0.0))
        for s, v in zip(stats_, variants, strict=True)
    ]
    estimates, theta = cuped_estimates(cuped)
    return _Arms(stats_, estimates, theta, [f"CUPED applied with theta = {theta:.4g} (pooled within arms)"])


def _weights(variants: Sequence[VariantSummary], settings: AnalysisSettings) -> tuple[float, ...] | None:
    if settings.weights is not None:
        if len(settings.weights) != len(variants):
            raise ValueError(f"{len(settings.weights)} weights for {len(variants)} variants")
        return settings.weights
    given = [v.weight for v in variants]
    if all(w is None for w in given):
        return None
    weights = tuple(float(w) for w in given if w is not None)
    if len(weights) != len(given):
        raise ValueError("weight given for some variants but not all")
    return weights


def _required_users(
    control: Estimate, metric_type: MetricType, k_treatments: int, settings: AnalysisSettings
) -> tuple[int | None, str | None]:
    """Per-arm sample size for the MDE at the control's observed baseline (None + reason if impossible)."""
    alpha = settings.alpha / k_treatments if settings.correction and k_treatments > 1 else settings.alpha
    two_sided = settings.alternative == "two-sided"
    if control.n < 2:
        return None, "sample size: the control needs users to estimate a baseline"
    mde_abs = settings.mde * control.mean if settings.mde_relative else settings.mde
    try:
        if metric_type == "binomial":
            return sample_size_proportions(
                control.mean, mde_abs, alpha, settings.power, relative=False, two_sided=two_sided
            ), None
        return sample_size_means(math.sqrt(control.variance), mde_abs, alpha, settings.power, two_sided), None
    except ValueError as exc:
        return None, f"sample size not computable at the observed baseline: {exc}"


# ------------------------------------------------------------------------------------ engines


def _frequentist_family(arms: _Arms, metric_type: MetricType, settings: AnalysisSettings) -> list[FrequentistResult]:
    fset = settings.frequentist
    c, e_c = arms.stats[0], arms.estimates[0]
    out = [
        proportions_test(c, t, fset)
        if metric_type == "binomial" and not arms.cuped
        else compare_estimates(e_c, e_t, fset, test="cuped-t" if arms.cuped else "welch-t")
        for t, e_t in zip(arms.stats[1:], arms.estimates[1:], strict=True)
    ]
    return apply_correction(out, settings.correction) if len(out) > 1 else out


def _sequential_family(
    arms: _Arms, required: int | None, settings: AnalysisSettings
) -> list[SequentialResult | GroupSequentialResult]:
    plan = settings.sequential
    if settings.gs_info_fractions is not None and plan.method != "group":
        plan = replace(plan, method="group")
    planned = plan.planned_users_per_arm or required
    e_c = arms.estimates[0]
    out = [
        sequential_test(
            e_c,
            e_t,
            plan,
            planned_users_per_arm=planned,
            alpha=settings.alpha,
            power=settings.power,
            alternative=settings.alternative,
            difference=settings.test,
            tau2=settings.sequential_tau2,
            info_fractions=settings.gs_info_fractions,
        )
        for e_t in arms.estimates[1:]
    ]
    return apply_correction(out, settings.correction) if len(out) > 1 else out


def _bayesian(
    control: SampleStats, treatment: SampleStats, est_c: Estimate, est_t: Estimate, metric_type: MetricType,
    settings: AnalysisSettings,
) -> BayesianResult:
    level = settings.credible_level
    if metric_type == "binomial":
        return beta_binomial_test(control, treatment, settings.beta_prior, level)
    return gaussian_test(est_c, est_t, settings.gaussian_prior, level, settings.test)


def _prob_best(arms: _Arms, metric_type: MetricType, prior: BetaPrior) -> tuple[list[float] | None, str | None]:
    if any(s.n == 0 for s in arms.stats):
        return None, "probability of being best skipped: an arm has no users"
    if metric_type == "binomial":
        dists = [beta_posterior(s.sum, s.n, prior) for s in arms.stats]
    else:
        if any(e.n < 2 or not 0 < e.var_of_mean < math.inf or not e.finite for e in arms.estimates):
            return None, "probability of being best skipped: an arm has zero variance or < 2 users"
        dists = normal_posteriors(arms.estimates)
    return [float(p) for p in prob_best(dists)], None


def _bayesian_verdict(b: BayesianResult, control_mean: float | None, settings: AnalysisSettings) -> bool:
    return bayesian_call(b.chance_to_win, b.expected_loss, b.expected_loss_control, control_mean,
                         settings.ctw_threshold, settings.loss_threshold)


# ------------------------------------------------------------------------------------ one treatment


Verdict = FrequentistResult | SequentialResult | GroupSequentialResult


def _pairs(r: TreatmentResult, source: Verdict) -> TreatmentResult:
    """Headline of a test with p-values: both pairs, and which one decides."""
    method = (
        source.test if isinstance(source, FrequentistResult)
        else "group-sequential" if isinstance(source, GroupSequentialResult) else "msprt"
    )
    corrected = source.p_value_adjusted is not None
    ci = source.ci_adjusted if corrected else (source.ci_rel if source.difference == "relative" else source.ci_abs)
    return replace(
        r,
        test=source.difference,
        method=method,
        p_value_abs=source.p_value_abs,
        ci_abs=source.ci_abs,
        p_value_rel=source.p_value_rel,
        ci_rel=source.ci_rel,
        p_value=source.p_value,
        p_value_adjusted=source.p_value_adjusted,
        ci=ci,
        significant=source.significant if source.p_value is not None else None,
    )


def _credible(r: TreatmentResult, b: BayesianResult, settings: AnalysisSettings) -> TreatmentResult:
    """Headline of the Bayesian engine: credible intervals, no p-value."""
    test: Difference = settings.test if b.ci_rel is not None else "absolute"
    return replace(
        r,
        test=test,
        method=b.model,
        ci_abs=b.ci_abs,
        ci_rel=b.ci_rel,
        ci=b.ci_rel if test == "relative" else b.ci_abs,
        significant=_bayesian_verdict(b, r.control_mean, settings) if b.chance_to_win is not None else None,
    )


def _treatment_result(
    variant: VariantSummary,
    arms: _Arms,
    index: int,
    engines: tuple[FrequentistResult | None, SequentialResult | GroupSequentialResult | None, BayesianResult | None],
    prob_best_: float | None,
    decision_engine: DecisionEngine,
    settings: AnalysisSettings,
) -> TreatmentResult:
    c, t = arms.stats[0], arms.stats[index]
    e_c, e_t = arms.estimates[0], arms.estimates[index]
    freq, seq, bayes = engines
    result = TreatmentResult(
        variant=variant.name,
        users=t.n,
        mean=t.mean if t.n > 0 else None,
        control_mean=c.mean if c.n > 0 else None,
        adjusted_mean=e_t.mean if arms.cuped and t.n > 0 else None,
        control_adjusted_mean=e_c.mean if arms.cuped and c.n > 0 else None,
        prob_best=prob_best_,
        frequentist=freq,
        sequential=seq if isinstance(seq, SequentialResult) else None,
        group_sequential=seq if isinstance(seq, GroupSequentialResult) else None,
        bayesian=bayes,
    )
    if t.n > 0 and c.n > 0 and e_t.finite and e_c.finite:
        # The point estimate every engine shares (CUPED-adjusted when the covariate is used); a
        # Bayesian posterior mean, shrunk by the prior, stays in ``bayesian``.
        rel = relative_lift(e_c, e_t)
        result = replace(result, lift_abs=e_t.mean - e_c.mean, lift_rel=rel[0] if rel else None)
    if bayes is not None:
        result = replace(result, chance_to_win=bayes.chance_to_win, expected_loss=bayes.expected_loss)
    source = {"frequentist": freq, "sequential": seq, "bayesian": bayes}[decision_engine]
    if isinstance(source, BayesianResult):
        result = _credible(result, source, settings)
    elif source is not None:
        result = _pairs(result, source)
    own = [f"{name}: {r.message}" for name, r in (("frequentist", freq), ("sequential", seq), ("bayesian", bayes))
           if r is not None and r.message]
    return replace(result, messages=tuple(dict.fromkeys(own)))


def _evidence(r: TreatmentResult, engine: DecisionEngine) -> Evidence:
    final = r.group_sequential.final if engine == "sequential" and r.group_sequential is not None else False
    if engine == "bayesian":
        detail = f"chance to win {r.chance_to_win:.1%}" if r.chance_to_win is not None else ""
        return Evidence(r.variant, r.users, r.lift_abs, r.lift_rel, bool(r.significant), detail, final)
    p = r.decisive_p_value
    kind = {"frequentist": "", "sequential": "always-valid "}[engine]
    if r.group_sequential is not None and engine == "sequential":
        kind = "repeated "
    label = f"{'adjusted ' if r.p_value_adjusted is not None else ''}{kind}{r.test} p"
    detail = f"{label} = {p:.3g}" if p is not None else ""
    return Evidence(r.variant, r.users, r.lift_abs, r.lift_rel, bool(r.significant), detail, final)


# ------------------------------------------------------------------------------------ readout


def _engines(engine: Engine, settings: AnalysisSettings) -> tuple[set[DecisionEngine], DecisionEngine]:
    """Which engines run, and which one decides."""
    if engine not in ("frequentist", "sequential", "bayesian", "all"):
        raise ValueError(f"engine must be frequentist, sequential, bayesian or all, got {engine!r}")
    decision_engine: DecisionEngine = settings.decision_engine or ("frequentist" if engine == "all" else engine)
    run: set[DecisionEngine] = set(ENGINES) if engine == "all" else {engine}
    return run | {decision_engine}, decision_engine


def _notes(
    results: Sequence[TreatmentResult], run: set[DecisionEngine], decision_engine: DecisionEngine,
    arms: _Arms, metric_type: MetricType, required: int | None, settings: AnalysisSettings,
) -> list[str]:
    """Readout-level notes: the one rule as it applies here, the sequential plan, model caveats."""
    notes: list[str] = []
    if decision_engine != "bayesian":
        pair = "p_value_rel with ci_rel" if settings.test == "relative" else "p_value_abs with ci_abs"
        notes.append(
            f"the verdict, p-value and interval shown come from one test: the {settings.test} one ({pair}); "
            "p < alpha exactly when the interval excludes 0"
        )
    else:
        notes.append(
            f"the verdict and interval shown come from one posterior: the {settings.credible_level:.0%} credible "
            f"interval excludes 0 exactly when the chance to win passes {settings.ctw_threshold:.0%}"
        )
    if any(r.ci_rel is not None for r in results) and decision_engine != "bayesian":
        notes.append(SEQUENTIAL_REL_CI_NOTE if decision_engine == "sequential" else REL_CI_NOTE)
    if arms.cuped and metric_type == "binomial" and "bayesian" in run:
        notes.append("the Beta-Binomial model does not use the CUPED covariate")
    if "sequential" in run:
        if settings.sequential_tau2 is not None and not settings.group_sequential:
            notes.append(f"sequential: mSPRT with a fixed tau^2 = {settings.sequential_tau2:g}")
        else:
            planned = settings.sequential.planned_users_per_arm or required
            notes.append("sequential: " + describe_plan(settings.sequential, planned, settings.alpha, settings.power))
        if not settings.group_sequential and settings.alternative != "two-sided":
            notes.append("sequential: the mSPRT is two-sided; the one-sided alternative applies to the other engines")
    return notes


def analyze(
    variants: Sequence[VariantSummary],
    metric_type: MetricType = "binomial",
    engine: Engine = "frequentist",
    settings: AnalysisSettings | None = None,
) -> Readout:
    """Readout of every treatment against the first variant (the control)."""
    settings = settings or AnalysisSettings()
    run, decision_engine = _engines(engine, settings)
    validate_summaries(variants, metric_type)
    weights = _weights(variants, settings)
    arms = _arms(variants, metric_type, settings)
    messages = list(arms.messages)

    srm = srm_test([v.users for v in variants], weights, settings.srm_threshold)
    k = len(variants) - 1
    required, why = _required_users(arms.estimates[0], metric_type, k, settings)
    messages += [m for m in (srm.message, why) if m]

    none: list[None] = [None] * k
    freq = _frequentist_family(arms, metric_type, settings) if "frequentist" in run else none
    seq = _sequential_family(arms, required, settings) if "sequential" in run else none
    bayes = (
        [_bayesian(arms.stats[0], arms.stats[i], arms.estimates[0], arms.estimates[i], metric_type, settings)
         for i in range(1, k + 1)]
        if "bayesian" in run else none
    )
    best, why = _prob_best(arms, metric_type, settings.beta_prior) if "bayesian" in run else (None, None)
    messages += [why] if why else []

    results = [
        _treatment_result(variants[i], arms, i, (freq[i - 1], seq[i - 1], bayes[i - 1]),
                          best[i] if best else None, decision_engine, settings)
        for i in range(1, k + 1)
    ]
    messages += _notes(results, run, decision_engine, arms, metric_type, required, settings)
    # A sequential plan's own size is the sample the experiment runs to; otherwise what the MDE needs.
    planned = settings.sequential.planned_users_per_arm if decision_engine == "sequential" else None
    decision = decide(
        control=variants[0].name,
        control_users=arms.stats[0].n,
        evidence=[_evidence(r, decision_engine) for r in results],
        srm_flagged=srm.flagged,
        srm_detail=srm.message or "",
        required_users_per_arm=planned or required,
        users_per_day=settings.users_per_day,
        arms_share_of_traffic=min(weights) / sum(weights) if weights and sum(weights) > 0 else None,
    )
    arm_summaries = tuple(
        ArmSummary(v.name, s.n, s.mean if s.n > 0 else None, best[j] if best else None,
                   e.mean if arms.cuped and s.n > 0 else None)
        for j, (v, s, e) in enumerate(zip(variants, arms.stats, arms.estimates, strict=True))
    )
    return Readout(
        metric_type=metric_type,
        engine=engine,
        decision_engine=decision_engine,
        test=settings.test,
        control=variants[0].name,
        arms=arm_summaries,
        results=tuple(results),
        srm=srm,
        srm_p_value=srm.p_value,
        srm_flag=srm.flagged,
        decision=decision,
        decision_text=decision.text,
        required_users_per_arm=required,
        cuped_theta=arms.theta,
        messages=tuple(dict.fromkeys(messages)),
        settings=settings,
    )
