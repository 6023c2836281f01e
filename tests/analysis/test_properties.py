"""Property-based tests (hypothesis): the analysis functions on any valid summary, and experiment validation.

``analyze`` must never raise, return NaN or produce output that JSON cannot carry on a valid summary,
however degenerate (empty arms, no conversions, every user converting, zero variance); those come
back as ``None`` fields with a message.  Malformed summaries raise ``ValueError``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analysis.frequentist import excludes_zero
from analysis.readout import AnalysisSettings, Readout, VariantSummary, analyze
from analysis.sequential import SequentialPlan
from engine.experiments.metrics import METRICS
from engine.experiments.model import Experiment, ExperimentError, parse_experiment
from engine.models.registry import MODEL_CLASSES

ENGINES = ("frequentist", "sequential", "bayesian", "all")
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

users_st = st.one_of(st.integers(0, 3), st.integers(0, 1_000_000))


@st.composite
def binomial_arm(draw: st.DrawFn, name: str) -> VariantSummary:
    users = draw(users_st)
    conversions = draw(st.one_of(st.just(0), st.just(users), st.integers(0, users)))
    return VariantSummary(name, users, float(conversions))


@st.composite
def mean_arm(draw: st.DrawFn, name: str, cuped: bool) -> VariantSummary:
    """Sums that real per-user values could produce: a mean, a variance >= 0, and for CUPED a
    pre-period mean and variance with a correlation in [-1, 1]."""
    users = draw(users_st)
    mean = draw(st.floats(-1e3, 1e3, allow_nan=False))
    var = draw(st.one_of(st.just(0.0), st.floats(0.0, 1e4, allow_nan=False)))
    total, squares = users * mean, users * (var + mean * mean)
    if not cuped:
        return VariantSummary(name, users, total, squares)
    pre_mean = draw(st.floats(-1e3, 1e3, allow_nan=False))
    pre_var = draw(st.one_of(st.just(0.0), st.floats(0.0, 1e4, allow_nan=False)))
    rho = draw(st.floats(-1.0, 1.0))
    cov = rho * math.sqrt(var * pre_var)
    return VariantSummary(name, users, total, squares, users * pre_mean, users * (pre_var + pre_mean**2),
                          users * (cov + mean * pre_mean))


@st.composite
def summaries(draw: st.DrawFn) -> tuple[list[VariantSummary], str]:
    metric = draw(st.sampled_from(["binomial", "mean"]))
    names = [f"v{i}" for i in range(draw(st.integers(2, 4)))]
    if metric == "binomial":
        return [draw(binomial_arm(n)) for n in names], metric
    cuped = draw(st.booleans())
    return [draw(mean_arm(n, cuped)) for n in names], metric


@st.composite
def analysis_settings(draw: st.DrawFn, arms: int) -> AnalysisSettings:
    weights = draw(st.none() | st.lists(st.floats(0.05, 1.0), min_size=arms, max_size=arms).map(tuple))
    return AnalysisSettings(
        alpha=draw(st.sampled_from([0.01, 0.05, 0.1])),
        mde=draw(st.sampled_from([0.01, 0.05, 0.2])),
        weights=weights,
        correction=draw(st.sampled_from([None, "holm", "bh"])),
        alternative=draw(st.sampled_from(["two-sided", "greater", "less"])),
        use_cuped=draw(st.booleans()),
        gs_info_fractions=draw(st.sampled_from([None, (0.5,), (0.25, 0.5, 1.0)])),
        test=draw(st.sampled_from(["relative", "absolute"])),
        sequential=draw(st.sampled_from([SequentialPlan(), SequentialPlan(looks=14, mde=0.1),
                                         SequentialPlan("group", 50_000, 5)])),
    )


def _floats(value: Any, path: str = "readout") -> list[tuple[str, float]]:
    if isinstance(value, float):
        return [(path, value)]
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _floats(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [f for i, v in enumerate(value) for f in _floats(v, f"{path}[{i}]")]
    return []


def _check_readout(readout: Readout) -> None:
    raw = asdict(readout)
    nan = [path for path, value in _floats(raw) if math.isnan(value)]
    assert not nan, nan
    json.dumps(readout.to_dict(), allow_nan=False)  # raises on NaN or inf
    for r in readout.results:
        for p in (r.p_value, r.p_value_adjusted, r.chance_to_win, r.prob_best):
            assert p is None or 0.0 <= p <= 1.0, (r.variant, p)
        for ci in (r.ci_abs, r.ci_rel, r.ci):
            assert ci is None or ci[0] <= ci[1], (r.variant, ci)
        # The one rule: each p-value agrees with the interval of the same test, and the verdict with both.
        for p, ci in ((r.p_value_abs, r.ci_abs), (r.p_value_rel, r.ci_rel)):
            if p is not None:
                assert (p < readout.settings.alpha) == excludes_zero(ci), (r.variant, p, ci)
        if r.decisive_p_value is not None:
            assert r.significant == excludes_zero(r.ci) == (r.decisive_p_value < readout.settings.alpha)
    assert 0.0 <= readout.srm_p_value <= 1.0
    assert readout.decision_text


@PROPERTY_SETTINGS
@given(data=st.data(), engine=st.sampled_from(ENGINES))
def test_analyze_never_fails_on_a_valid_summary(data: st.DataObject, engine: str) -> None:
    variants, metric = data.draw(summaries())
    readout = analyze(variants, metric, engine, data.draw(analysis_settings(len(variants))))  # type: ignore[arg-type]
    _check_readout(readout)


@PROPERTY_SETTINGS
@given(
    engine=st.sampled_from(ENGINES),
    metric=st.sampled_from(["binomial", "mean"]),
    empty=st.integers(0, 2),
    users=st.integers(0, 5_000),
)
def test_degenerate_summaries_come_back_with_messages(engine: str, metric: str, empty: int, users: int) -> None:
    """One arm empty, or every arm constant (no conversions, or zero variance): no verdict can be
    computed for it, and the readout says why instead of failing."""
    arms = [VariantSummary(f"v{i}", users, 0.0, 0.0) for i in range(3)]
    arms[empty] = VariantSummary(arms[empty].name, 0, 0.0, 0.0)
    readout = analyze(arms, metric, engine)  # type: ignore[arg-type]
    _check_readout(readout)
    messages = list(readout.messages) + [m for r in readout.results for m in r.messages]
    assert messages
    if empty > 0:
        assert readout.results[empty - 1].mean is None


@st.composite
def malformed(draw: st.DrawFn) -> tuple[list[VariantSummary], str]:
    kind = draw(st.sampled_from(["single", "duplicate", "over", "negative", "no_squares", "partial_cuped"]))
    ok = VariantSummary("control", 100, 10.0, 20.0)
    if kind == "single":
        return [ok], "binomial"
    if kind == "duplicate":
        return [ok, ok], "binomial"
    if kind == "over":
        users = draw(st.integers(0, 1000))
        return [ok, VariantSummary("t", users, float(users + draw(st.integers(1, 10))))], "binomial"
    if kind == "negative":
        return [ok, VariantSummary("t", -draw(st.integers(1, 10)), 0.0)], "binomial"
    if kind == "no_squares":
        return [ok, VariantSummary("t", 10, 5.0)], "mean"
    return [ok, VariantSummary("t", 10, 5.0, 9.0, 1.0, 2.0, 3.0)], "mean"


@PROPERTY_SETTINGS
@given(case=malformed(), engine=st.sampled_from(ENGINES))
def test_malformed_summaries_raise_value_error(case: tuple[list[VariantSummary], str], engine: str) -> None:
    variants, metric = case
    with pytest.raises(ValueError, match=r"\S"):
        analyze(variants, metric, engine)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ experiment validation

KEY = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,10}\Z")
RATE_METRICS = sorted(k for k, m in METRICS.items() if m.kind != "mean")


@st.composite
def experiment_input(draw: st.DrawFn) -> dict[str, Any]:
    """A valid experiment as a client would send it (JSON-like dict)."""
    names = draw(st.lists(NAME, min_size=2, max_size=4, unique=True))
    raw = draw(st.lists(st.integers(1, 100), min_size=len(names), max_size=len(names)))
    weights = [w / sum(raw) for w in raw]
    weights[-1] = 1.0 - math.fsum(weights[:-1])
    assume(all(w > 0 for w in weights))
    kind = draw(st.sampled_from(["ab", "bandit"]))
    goal = draw(st.sampled_from(RATE_METRICS if kind == "bandit" else sorted(METRICS)))
    guardrails = draw(st.lists(st.sampled_from(sorted(set(METRICS) - {goal})), max_size=2, unique=True))
    data: dict[str, Any] = {
        "key": draw(KEY),
        "name": draw(st.text(min_size=1, max_size=40)),
        "kind": kind,
        "variants": [
            {"name": n, "model": draw(st.sampled_from(sorted(MODEL_CLASSES))), "weight": w}
            for n, w in zip(names, weights, strict=True)
        ],
        "coverage_pct": draw(st.floats(0.5, 100.0)),
        "goal_metric": goal,
        "guardrail_metrics": guardrails,
        "alpha": draw(st.floats(0.001, 0.2)),
        "forced": {f"qa{i}": draw(st.sampled_from(names)) for i in range(draw(st.integers(0, 2)))},
    }
    if kind == "bandit":
        data["bandit"] = {"min_weight": draw(st.floats(0.01, min(0.49, 0.99 / len(names))))}
    return data


@PROPERTY_SETTINGS
@given(data=experiment_input())
def test_valid_experiments_round_trip(data: dict[str, Any]) -> None:
    experiment = parse_experiment(data)
    assert parse_experiment(experiment.model_dump()) == experiment
    assert parse_experiment(json.loads(experiment.model_dump_json())) == experiment
    assert math.isclose(sum(experiment.weights), 1.0, abs_tol=1e-6)


def _weights_off(data: dict[str, Any]) -> dict[str, Any]:
    data["variants"][0]["weight"] *= 0.5  # the sum drops by at least 1/800, far past the tolerance
    return data


def _one_variant(data: dict[str, Any]) -> dict[str, Any]:
    data["variants"] = [{**data["variants"][0], "weight": 1.0}]
    data["forced"] = {}
    return data


def _repeat_name(data: dict[str, Any]) -> dict[str, Any]:
    data["variants"][1]["name"] = data["variants"][0]["name"]
    return data


BREAKERS = {
    "weights do not sum to 1": _weights_off,
    "one variant": _one_variant,
    "repeated variant name": _repeat_name,
    "unknown model": lambda d: {**d, "variants": [{**d["variants"][0], "model": "gpt"}, *d["variants"][1:]]},
    "unknown metric": lambda d: {**d, "goal_metric": "happiness"},
    "bad key": lambda d: {**d, "key": "has space/" + d["key"]},
    "alpha out of range": lambda d: {**d, "alpha": 0.7},
    "coverage out of range": lambda d: {**d, "coverage_pct": 0.0},
    "forced to a missing variant": lambda d: {**d, "forced": {"qa": "no-such-variant"}},
    "unknown field": lambda d: {**d, "colour": "blue"},
    "goal is a guardrail too": lambda d: {**d, "guardrail_metrics": [d["goal_metric"]]},
}


@PROPERTY_SETTINGS
@given(data=experiment_input(), breaker=st.sampled_from(sorted(BREAKERS)))
def test_invalid_experiments_raise_the_documented_error(data: dict[str, Any], breaker: str) -> None:
    broken = BREAKERS[breaker](json.loads(json.dumps(data)))
    with pytest.raises(ExperimentError, match=r"^invalid experiment: \S"):
        parse_experiment(broken)


def test_parse_experiment_accepts_an_experiment_object() -> None:
    data = {"key": "k1", "name": "n", "variants": [{"name": "a", "model": "als"}, {"name": "b", "model": "als"}]}
    experiment = parse_experiment(data)
    assert isinstance(experiment, Experiment) and experiment.weights == [0.5, 0.5]
    assert parse_experiment(experiment) == experiment
