"""One entry point from per-variant sums to a readout: :func:`analyze`.

The first variant is the control.  ``metric_type`` is ``"binomial"`` (``sum`` = conversions) or
``"mean"`` (``sum`` and ``sum_squares`` of a per-user value).  When every variant carries the
pre-exposure columns (``pre_sum``, ``pre_sum_squares``, ``sum_product``) the frequentist and
sequential engines, and the Gaussian Bayesian model, use CUPED-adjusted means with one θ shared by
all arms.

Engines: ``"frequentist"`` (z for binomial, Welch t for means, Holm/BH across treatments),
``"sequential"`` (mSPRT: always-valid p-values and confidence sequences; plus a Lan-DeMets
decision when ``gs_info_fractions`` are given), ``"bayesian"`` (Beta-Binomial or Gaussian) or
``"all"``.  The headline ``p_value``/``ci_abs``/``ci_rel`` of each treatment come from the deciding
engine (the requested one; frequentist for ``"all"`` unless ``decision_engine`` says otherwise);
``chance_to_win`` and ``expected_loss`` come from the Bayesian engine whenever it ran.

Nothing here raises on unlucky data (an empty arm, zero variance, 0% or 100% conversion): those
come back as ``None`` fields with a message.  Malformed input (wrong columns, conversions above the
user count, a single variant) raises ``ValueError`` naming the variant or row and column.
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
from analysis.decision import Decision, Evidence, decide
from analysis.frequentist import (
    Alternative,
    FrequentistResult,
    FrequentistSettings,
    apply_correction,
    compare_estimates,
    ztest_proportions,
)
from analysis.power import sample_size_means, sample_size_proportions
from analysis.sequential import GroupSequentialDecision, SequentialResult, group_sequential_test, msprt_test
from analysis.srm import SrmResult, srm_test
from analysis.stats import CupedStats, Estimate, SampleStats, cuped_estimates

MetricType = Literal["binomial", "mean"]
Engine = Literal["frequentist", "sequential", "bayesian", "all"]
DecisionEngine = Literal["frequentist", "sequential", "bayesian"]

REL_CI_NOTE = (
    "ci_rel is the delta-method interval for treatment/control - 1 (it includes the control mean's "
    "noise, so it is wider than ci_abs divided by the control mean)"
)


@dataclass(frozen=True)
class VariantSummary:
    name: str
    users: int
    sum: float
    sum_squares: float | None = None
    pre_sum: float | None = None
    pre_sum_squares: float | None = None
    sum_product: float | None = None
    weight: float | None = None

    @property
    def has_cuped(self) -> bool:
        return None not in (self.pre_sum, self.pre_sum_squares, self.sum_product)


@dataclass(frozen=True)
class AnalysisSettings:
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.05
    mde_relative: bool = True
    weights: tuple[float, ...] | None = None
    correction: Correction | None = "holm"
    alternative: Alternative = "two-sided"
    use_cuped: bool = True
    beta_prior: BetaPrior = field(default_factory=BetaPrior)
    gaussian_prior: GaussianPrior = field(default_factory=GaussianPrior)
    sequential_tau2: float | None = None
    sequential_horizon_per_arm: int | None = None  # None: the sample size planned for the MDE
    gs_info_fractions: tuple[float, ...] | None = None  # every look so far, this one last
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
        if self.mde == 0:
            raise ValueError("mde must be non-zero")


@dataclass(frozen=True)
class ArmSummary:
    name: str
    users: int
    mean: float | None
    prob_best: float | None = None


@dataclass(frozen=True)
class TreatmentResult:
    variant: str
    users: int
    mean: float | None
    control_mean: float | None
    lift_abs: float | None = None
    lift_rel: float | None = None
    ci_abs: tuple[float, float] | None = None
    ci_rel: tuple[float, float] | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    significant: bool | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    prob_best: float | None = None
    frequentist: FrequentistResult | None = None
    sequential: SequentialResult | None = None
    group_sequential: GroupSequentialDecision | None = None
    bayesian: BayesianResult | None = None
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Readout:
    metric_type: MetricType
    engine: Engine
    decision_engine: DecisionEngine
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


# ------------------------------------------------------------------------------------ input


def _validate(variants: Sequence[VariantSummary], metric_type: MetricType) -> None:
    if metric_type not in ("binomial", "mean"):
        raise ValueError(f"metric_type must be 'binomial' or 'mean', got {metric_type!r}")
    if len(variants) < 2:
        raise ValueError(f"need a control and at least one treatment, got {len(variants)} variant(s)")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    cuped = [v.has_cuped for v in variants]
    if any(cuped) and not all(cuped):
        missing = [v.name for v in variants if not v.has_cuped]
        raise ValueError(f"CUPED columns given for some variants but missing for {missing}")
    for v in variants:
        if v.users < 0:
            raise ValueError(f"variant {v.name!r}: users must be >= 0, got {v.users}")
        if metric_type == "binomial" and not 0 <= v.sum <= v.users:
            raise ValueError(f"variant {v.name!r}: {v.sum} conversions for {v.users} users (binomial)")
        if metric_type == "mean" and v.sum_squares is None:
            raise ValueError(f"variant {v.name!r}: sum_squares is required for mean metrics")


def _sample_stats(v: VariantSummary, metric_type: MetricType) -> SampleStats:
    sum_sq = v.sum if metric_type == "binomial" else float(v.sum_squares or 0.0)
    return SampleStats(v.users, float(v.sum), sum_sq)


def _weights(variants: Sequence[VariantSummary], settings: AnalysisSettings) -> tuple[float, ...] | None:
    if settings.weights is not None:
        if len(settings.weights) != len(variants):
            raise ValueError(f"{len(settings.weights)} weights for {len(variants)} variants")
        return settings.weights
    given = [v.weight for v in variants]
    if all(w is None for w in given):
        return None
    if any(w is None for w in given):
        raise ValueError("weight given for some variants but not all")
    return tuple(float(w) for w in given)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- engines


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


def _prob_best(
    stats_: Sequence[SampleStats], estimates: Sequence[Estimate], metric_type: MetricType, prior: BetaPrior
) -> tuple[list[float] | None, str | None]:
    if any(s.n == 0 for s in stats_):
        return None, "probability of being best skipped: an arm has no users"
    if metric_type == "binomial":
        dists = [beta_posterior(s.sum, s.n, prior) for s in stats_]
    else:
        if any(e.n < 2 or e.var_of_mean <= 0 for e in estimates):
            return None, "probability of being best skipped: an arm has zero variance or < 2 users"
        dists = normal_posteriors(estimates)
    return [float(p) for p in prob_best(dists)], None


def _frequentist(
    control: SampleStats,
    treatment: SampleStats,
    est_c: Estimate,
    est_t: Estimate,
    metric_type: MetricType,
    cuped: bool,
    settings: FrequentistSettings,
) -> FrequentistResult:
    if metric_type == "binomial" and not cuped:
        return ztest_proportions(control, treatment, settings)
    return compare_estimates(est_c, est_t, settings, test="cuped-t" if cuped else "welch-t")


def _bayesian(
    control: SampleStats,
    treatment: SampleStats,
    est_c: Estimate,
    est_t: Estimate,
    metric_type: MetricType,
    settings: AnalysisSettings,
) -> BayesianResult:
    level = 1.0 - settings.alpha
    if metric_type == "binomial":
        return beta_binomial_test(control, treatment, settings.beta_prior, level)
    return gaussian_test(est_c, est_t, settings.gaussian_prior, level)


def _evidence(r: TreatmentResult, engine: DecisionEngine, settings: AnalysisSettings) -> Evidence:
    if engine == "bayesian":
        b = r.bayesian
        significant = False
        detail = ""
        if b is not None and b.chance_to_win is not None and r.control_mean:
            scale = abs(r.control_mean)
            cheap = settings.loss_threshold * scale
            ship = b.chance_to_win >= settings.ctw_threshold and (b.expected_loss or 0) <= cheap
            keep = b.chance_to_win <= 1 - settings.ctw_threshold and (b.expected_loss_control or 0) <= cheap
            significant = ship or keep
            detail = f"chance to win {b.chance_to_win:.1%}"
        return Evidence(r.variant, r.users, r.lift_abs, r.lift_rel, significant, detail)
    gs = r.group_sequential if engine == "sequential" else None
    if gs is not None:
        return Evidence(r.variant, r.users, r.lift_abs, r.lift_rel, gs.reject, gs.message, final=gs.final)
    p = r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value
    label = (
        "always-valid p"
        if engine == "sequential"
        else ("adjusted p" if r.p_value_adjusted is not None else "p")
    )
    detail = f"{label} = {p:.3g}" if p is not None else ""
    return Evidence(r.variant, r.users, r.lift_abs, r.lift_rel, bool(r.significant), detail)


def _headline(r: TreatmentResult, engine: DecisionEngine, alpha: float) -> TreatmentResult:
    source: FrequentistResult | SequentialResult | BayesianResult | None = {
        "frequentist": r.frequentist,
        "sequential": r.sequential,
        "bayesian": r.bayesian,
    }[engine]
    if source is None:
        return r
    p_value = getattr(source, "p_value", None)
    p_adj = getattr(source, "p_value_adjusted", None)
    if engine == "bayesian":
        significant = None
    elif engine == "sequential" and r.group_sequential is not None:
        significant = r.group_sequential.reject
    else:
        decisive = p_adj if p_adj is not None else p_value
        significant = decisive is not None and decisive < alpha
    return replace(
        r,
        ci_abs=source.ci_abs,
        ci_rel=source.ci_rel,
        p_value=p_value,
        p_value_adjusted=p_adj,
        significant=significant,
    )


def _treatment_result(
    name: str,
    arms: tuple[SampleStats, SampleStats],
    estimates: tuple[Estimate, Estimate],
    freq: FrequentistResult | None,
    prob_best_: float | None,
    metric_type: MetricType,
    run: set[str],
    decision_engine: DecisionEngine,
    horizon: float | None,
    settings: AnalysisSettings,
) -> TreatmentResult:
    (c, t), (e_c, e_t) = arms, estimates
    own: list[str] = []
    result = TreatmentResult(
        variant=name,
        users=t.n,
        mean=t.mean if t.n > 0 else None,
        control_mean=c.mean if c.n > 0 else None,
        prob_best=prob_best_,
    )
    if result.mean is not None and result.control_mean is not None:
        # The point estimate every engine shares (CUPED-adjusted when the covariate is used); a
        # Bayesian posterior mean, shrunk by the prior, stays in ``bayesian``.
        d = e_t.mean - e_c.mean
        result = replace(result, lift_abs=d, lift_rel=d / e_c.mean if e_c.mean != 0 else None)
    if freq is not None and "frequentist" in run:
        result = replace(result, frequentist=freq)
    if freq is not None and freq.message:
        own.append(f"frequentist: {freq.message}")
    if "sequential" in run:
        seq = msprt_test(
            e_c,
            e_t,
            settings.alpha,
            settings.sequential_tau2,
            horizon_per_arm=horizon or max((c.n + t.n) / 2, 1),
        )
        result = replace(result, sequential=seq)
        if seq.message:
            own.append(f"sequential: {seq.message}")
        if settings.gs_info_fractions and freq is not None:
            gs = group_sequential_test(
                freq.statistic,
                settings.gs_info_fractions,
                settings.alpha,
                two_sided=settings.alternative == "two-sided",
            )
            result = replace(result, group_sequential=gs)
    if "bayesian" in run:
        b = _bayesian(c, t, e_c, e_t, metric_type, settings)
        result = replace(result, bayesian=b, chance_to_win=b.chance_to_win, expected_loss=b.expected_loss)
        if b.message:
            own.append(f"bayesian: {b.message}")
    result = _headline(result, decision_engine, settings.alpha)
    return replace(result, messages=tuple(dict.fromkeys(own)))


def analyze(
    variants: Sequence[VariantSummary],
    metric_type: MetricType = "binomial",
    engine: Engine = "frequentist",
    settings: AnalysisSettings | None = None,
) -> Readout:
    """Readout of every treatment against the first variant (the control)."""
    settings = settings or AnalysisSettings()
    if engine not in ("frequentist", "sequential", "bayesian", "all"):
        raise ValueError(f"engine must be frequentist, sequential, bayesian or all, got {engine!r}")
    _validate(variants, metric_type)
    decision_engine: DecisionEngine = settings.decision_engine or (
        "frequentist" if engine == "all" else engine
    )
    run = {"frequentist", "sequential", "bayesian"} if engine == "all" else {engine}
    run.add(decision_engine)
    messages: list[str] = []

    stats_ = [_sample_stats(v, metric_type) for v in variants]
    binomial_est = metric_type == "binomial"
    estimates = [s.estimate(binomial=binomial_est) for s in stats_]
    cuped = settings.use_cuped and variants[0].has_cuped
    theta = None
    if cuped:
        arms = [
            CupedStats(s, float(v.pre_sum), float(v.pre_sum_squares), float(v.sum_product))  # type: ignore[arg-type]
            for s, v in zip(stats_, variants, strict=True)
        ]
        estimates, theta = cuped_estimates(arms)
        messages.append(f"CUPED applied with theta = {theta:.4g} (pooled within arms)")
        if metric_type == "binomial" and "bayesian" in run:
            messages.append("the Beta-Binomial model does not use the CUPED covariate")

    srm = srm_test([v.users for v in variants], _weights(variants, settings), settings.srm_threshold)
    if srm.message:
        messages.append(srm.message)

    k = len(variants) - 1
    required, why = _required_users(estimates[0], metric_type, k, settings)
    if why:
        messages.append(why)

    fset = FrequentistSettings(settings.alpha, settings.alternative)
    freq: list[FrequentistResult | None] = [None] * k
    if "frequentist" in run or settings.gs_info_fractions:
        freq = [
            _frequentist(stats_[0], stats_[i], estimates[0], estimates[i], metric_type, cuped, fset)
            for i in range(1, k + 1)
        ]
        freq = apply_correction(freq, settings.correction) if k > 1 else freq  # type: ignore[arg-type]

    best, why = (
        _prob_best(stats_, estimates, metric_type, settings.beta_prior) if "bayesian" in run else (None, None)
    )
    if why:
        messages.append(why)

    horizon = settings.sequential_horizon_per_arm or required
    if "sequential" in run and settings.sequential_tau2 is None and horizon is None:
        messages.append("sequential: no planned horizon, so tau^2 is tuned at the current sample size")
    c = stats_[0]
    results = [
        _treatment_result(
            variants[i].name,
            (c, stats_[i]),
            (estimates[0], estimates[i]),
            freq[i - 1],
            best[i] if best else None,
            metric_type,
            run,
            decision_engine,
            horizon,
            settings,
        )
        for i in range(1, k + 1)
    ]

    if any(r.ci_rel is not None for r in results) and decision_engine != "bayesian":
        messages.append(REL_CI_NOTE)

    share = None
    weights = _weights(variants, settings)
    if weights:
        share = min(weights) / sum(weights)
    decision = decide(
        control=variants[0].name,
        control_users=c.n,
        evidence=[_evidence(r, decision_engine, settings) for r in results],
        srm_flagged=srm.flagged,
        srm_detail=srm.message or "",
        required_users_per_arm=required,
        users_per_day=settings.users_per_day,
        arms_share_of_traffic=share,
    )
    arms_out = tuple(
        ArmSummary(v.name, s.n, s.mean if s.n > 0 else None, best[j] if best else None)
        for j, (v, s) in enumerate(zip(variants, stats_, strict=True))
    )
    return Readout(
        metric_type=metric_type,
        engine=engine,
        decision_engine=decision_engine,
        control=variants[0].name,
        arms=arms_out,
        results=tuple(results),
        srm=srm,
        srm_p_value=srm.p_value,
        srm_flag=srm.flagged,
        decision=decision,
        decision_text=decision.text,
        required_users_per_arm=required,
        cuped_theta=theta,
        messages=tuple(messages),
        settings=settings,
    )


# --------------------------------------------------------------------------------- CSV rows

_REQUIRED = ("variant", "users", "sum")
_CUPED = ("pre_sum", "pre_sum_squares", "sum_product")


def _number(
    raw: str | None, row: int, column: str, *, integer: bool = False, minimum: float | None = None
) -> float:
    text = (raw or "").strip()
    where = f"row {row}, column {column!r}"
    if not text:
        raise ValueError(f"{where}: value is missing")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {text!r}")
    if integer and value != int(value):
        raise ValueError(f"{where}: expected a whole number, got {text!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: must be >= {minimum:g}, got {text!r}")
    return value


def summaries_from_rows(rows: Sequence[Mapping[str, str]]) -> list[VariantSummary]:
    """Parse CSV rows (``variant,users,sum[,sum_squares][,pre_sum,pre_sum_squares,sum_product][,weight]``).

    Row numbers in errors count data rows from 1 (the header is not a row).  The first row is the
    control.  Column names are matched case-insensitively, ignoring surrounding spaces; unknown
    columns are ignored.
    """
    if not rows:
        raise ValueError("no rows: need a control row and at least one treatment row")
    out: list[VariantSummary] = []
    seen: dict[str, int] = {}
    for index, raw_row in enumerate(rows, start=1):
        row = {str(k).strip().lower(): v for k, v in raw_row.items() if k is not None}
        for column in _REQUIRED:
            if column not in row:
                raise ValueError(f"row {index}: column {column!r} is missing (have {sorted(row)})")
        name = (row["variant"] or "").strip()
        if not name:
            raise ValueError(f"row {index}, column 'variant': name is empty")
        if name in seen:
            raise ValueError(f"row {index}, column 'variant': {name!r} repeats row {seen[name]}")
        seen[name] = index
        users = int(_number(row["users"], index, "users", integer=True, minimum=0))
        total = _number(row["sum"], index, "sum")

        def optional(
            column: str, minimum: float | None = None, index: int = index, row: dict[str, str] = row
        ) -> float | None:
            text = row.get(column)
            return None if text is None or not text.strip() else _number(text, index, column, minimum=minimum)

        sum_squares = optional("sum_squares", minimum=0)
        if sum_squares is not None and users > 0 and sum_squares * users < total * total * (1 - 1e-9):
            raise ValueError(
                f"row {index}, column 'sum_squares': {sum_squares:g} is below sum²/users = "
                f"{total * total / users:g}, which no data can produce"
            )
        cuped = [optional("pre_sum"), optional("pre_sum_squares", minimum=0), optional("sum_product")]
        present = [c for c, v in zip(_CUPED, cuped, strict=True) if v is not None]
        if present and len(present) < len(_CUPED):
            missing = [c for c in _CUPED if c not in present]
            raise ValueError(f"row {index}: CUPED needs all of {list(_CUPED)}; missing {missing}")
        weight = optional("weight", minimum=0)
        out.append(VariantSummary(name, users, total, sum_squares, *cuped, weight=weight))
    if len(out) < 2:
        raise ValueError("need a control row and at least one treatment row")
    return out
