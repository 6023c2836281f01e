"""The readout entry point: engines, decisions in words, degenerate data, JSON safety, CSV rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.decision import Evidence, decide, experiment_decision, significantly_worse
from analysis.frequentist import excludes_zero, proportions_test
from analysis.readout import AnalysisSettings, Readout, VariantSummary, analyze, summaries_from_rows
from analysis.sequential import SequentialPlan
from analysis.stats import SampleStats


def _conv(name: str, users: int, conversions: int, **extra: float) -> VariantSummary:
    return VariantSummary(name, users, float(conversions), **extra)  # type: ignore[arg-type]


def _json(readout: Readout) -> dict:
    data = readout.to_dict()
    json.dumps(data, allow_nan=False)  # raises on NaN/inf anywhere
    return data


# ------------------------------------------------------------------------------------- engines


def _one_rule(readout: Readout) -> None:
    """The verdict, the p-value and the interval shown beside it are one test's, on every pair."""
    for r in readout.results:
        for p, ci in ((r.p_value_abs, r.ci_abs), (r.p_value_rel, r.ci_rel)):
            if p is not None:
                assert (p < readout.settings.alpha) == excludes_zero(ci), (r.variant, p, ci)
        if r.decisive_p_value is not None:
            assert r.significant == excludes_zero(r.ci) == (r.decisive_p_value < readout.settings.alpha)
            assert r.p_value == (r.p_value_rel if r.test == "relative" else r.p_value_abs)


def test_frequentist_binomial_readout_matches_the_test_and_holm() -> None:
    variants = [_conv("control", 10_000, 1_000), _conv("B", 10_000, 1_100), _conv("C", 10_000, 1_010)]
    r = analyze(variants, "binomial", "frequentist")
    raw = [
        proportions_test(SampleStats.binomial(10_000, 1_000), SampleStats.binomial(10_000, x)).p_value
        for x in (1_100, 1_010)
    ]
    assert [t.p_value for t in r.results] == pytest.approx(raw)
    assert [t.p_value_adjusted for t in r.results] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    b = r.results[0]
    assert b.variant == "B" and b.mean == pytest.approx(0.11) and b.lift_rel == pytest.approx(0.10)
    assert b.test == "relative" and b.method == "welch-t" and b.p_value == b.p_value_rel
    assert b.ci_rel == pytest.approx((0.010864708, 0.189135292), abs=1e-8)  # delta-method interval
    # Holm tested B at alpha/2: its adjusted p (0.056) misses 0.05 and the interval at that level has 0.
    assert b.ci == b.frequentist.ci_adjusted and b.ci[0] < 0 < b.ci_rel[0] and not b.significant
    assert b.chance_to_win is None and b.bayesian is None  # the Bayesian engine did not run
    assert r.decision.action == "keep_running"
    bigger = analyze([_conv("control", 10_000, 1_000), _conv("B", 10_000, 1_130), _conv("C", 10_000, 1_010)])
    assert bigger.decision_text == "ship B (+13.0%, adjusted relative p = 0.0101)"
    assert bigger.results[0].ci[0] > 0
    _one_rule(bigger)
    assert any("delta-method" in m for m in r.messages)
    assert any("one test: the relative one" in m for m in r.messages)
    assert r.required_users_per_arm > 10_000  # 5% MDE at a 2.5% (Holm, 2 treatments) alpha
    _one_rule(r)


def test_gbstats_reference_in_the_readout() -> None:
    r = analyze([_conv("control", 10_000, 500), _conv("B", 10_000, 560)], "binomial")
    b = r.results[0]
    assert b.p_value_rel == pytest.approx(0.07359, abs=5e-6) and b.p_value_abs == pytest.approx(0.05825, abs=5e-6)
    assert b.ci_rel == pytest.approx((-0.01146, 0.25146), abs=5e-6) and b.ci == b.ci_rel
    absolute = analyze([_conv("control", 10_000, 500), _conv("B", 10_000, 560)], "binomial",
                       settings=AnalysisSettings(test="absolute"))
    assert absolute.results[0].test == "absolute" and absolute.results[0].p_value == pytest.approx(0.05825, abs=5e-6)
    _one_rule(r)
    _one_rule(absolute)


def test_issue_13_significant_verdict_beside_an_interval_with_zero_is_gone() -> None:
    r = analyze([_conv("control", 10_000, 500), _conv("B", 10_000, 564)], "binomial")
    b = r.results[0]
    assert b.ci_rel[0] < 0 < b.ci_rel[1] and not b.significant and b.p_value > 0.05
    assert r.decision.action != "ship"
    _one_rule(r)


def test_small_binomial_samples_name_the_exact_test() -> None:
    r = analyze([_conv("control", 20, 2), _conv("B", 20, 7)], "binomial", "all")
    b = r.results[0]
    assert b.method == "fisher-exact" and b.p_value == pytest.approx(0.127386, rel=1e-5)
    assert any("Fisher's exact test" in m for m in b.messages)
    _one_rule(r)


def test_zero_control_conversions_say_why_there_is_no_relative_interval() -> None:
    r = analyze([_conv("control", 5_000, 0), _conv("B", 5_000, 25)], "binomial", "frequentist")
    b = r.results[0]
    assert b.ci_rel is None and b.test == "absolute" and b.p_value == b.p_value_abs
    assert any("control mean is 0" in m and "undefined" in m for m in b.messages)
    _one_rule(r)


def test_all_engines_fill_every_section() -> None:
    variants = [_conv("control", 20_000, 2_000), _conv("B", 20_000, 2_200)]
    r = analyze(variants, "binomial", "all")
    b = r.results[0]
    assert b.frequentist and b.sequential and b.bayesian
    assert b.p_value == b.frequentist.p_value  # headline: frequentist for "all"
    _one_rule(r)
    assert b.chance_to_win == pytest.approx(b.bayesian.chance_to_win) and b.chance_to_win > 0.99
    assert b.expected_loss is not None and b.expected_loss < 1e-4
    assert b.sequential.p_value > b.frequentist.p_value  # always-valid p pays for peeking
    assert r.arms[0].prob_best + r.arms[1].prob_best == pytest.approx(1.0, abs=1e-6)
    data = _json(r)
    assert data["results"][0]["ci_abs"] == list(b.ci_abs) and data["srm_flag"] is False


def test_sequential_and_bayesian_headlines() -> None:
    variants = [_conv("control", 20_000, 2_000), _conv("B", 20_000, 2_200)]
    seq = analyze(variants, "binomial", "sequential")
    s = seq.results[0]
    assert s.p_value == s.sequential.p_value_rel and s.ci_abs == s.sequential.ci_abs and s.method == "msprt"
    assert any("mSPRT" in m and "tuned to the plan" in m for m in seq.messages)
    _one_rule(seq)
    bay = analyze(variants, "binomial", "bayesian", AnalysisSettings(loss_threshold=0.01))
    b = bay.results[0]
    assert b.p_value is None and b.ci_abs == b.bayesian.ci_abs and b.lift_abs == pytest.approx(0.01)
    assert b.bayesian.ci_level == pytest.approx(0.90)  # 2 x 95% - 1: excludes 0 exactly when ctw passes 95%
    assert b.significant and b.ci == b.ci_rel and b.ci_rel[0] > 0
    assert bay.decision.action == "ship" and "chance to win" in bay.decision_text


def test_group_sequential_look_in_the_readout() -> None:
    variants = [_conv("control", 6_000, 600), _conv("B", 6_000, 690)]  # z ≈ 2.6 at 40% information
    early = analyze(variants, "binomial", "sequential", AnalysisSettings(gs_info_fractions=(0.2, 0.4)))
    gs = early.results[0].group_sequential
    assert gs is not None and gs.boundary == pytest.approx(3.3569, abs=6e-4) and not gs.reject
    assert early.results[0].method == "group-sequential" and early.results[0].p_value == gs.p_value_rel
    assert early.decision.action == "keep_running"
    final = analyze(variants, "binomial", "sequential", AnalysisSettings(gs_info_fractions=(0.5, 1.0)))
    assert final.results[0].group_sequential.reject and final.decision.action == "ship"
    assert "repeated relative p" in final.decision_text
    # The same looks from a plan: 12,000 planned users per arm over 5 looks, read at 6,000.
    planned = analyze(variants, "binomial", "sequential", AnalysisSettings(
        sequential=SequentialPlan(method="group", planned_users_per_arm=15_000, looks=5)))
    assert planned.results[0].group_sequential.info_fractions == pytest.approx((0.2, 0.4))
    for r in (early, final, planned):
        _one_rule(r)


def test_mean_metric_with_cuped() -> None:
    rng = np.random.default_rng(9)
    variants = []
    for name, effect in (("control", 0.0), ("B", 0.25)):
        pre = rng.normal(10, 2, 2_000)
        post = 0.8 * pre + rng.normal(2 + effect, 1, 2_000)
        variants.append(
            VariantSummary(
                name, 2_000, post.sum(), (post**2).sum(), pre.sum(), (pre**2).sum(), (pre * post).sum()
            )
        )
    r = analyze(variants, "mean", "all")
    plain = analyze([VariantSummary(v.name, v.users, v.sum, v.sum_squares) for v in variants], "mean", "all")
    b, p = r.results[0], plain.results[0]
    assert r.cuped_theta == pytest.approx(0.8, abs=0.03) and any("CUPED" in m for m in r.messages)
    assert b.frequentist.test == "cuped-t" and p.frequentist.test == "welch-t"
    assert b.lift_abs == pytest.approx(b.frequentist.lift_abs)  # the headline lift is the adjusted one
    assert b.mean == pytest.approx(variants[1].sum / 2_000)  # the arm's mean is not ...
    # ... so the adjusted means are reported too, and the lifts are exactly theirs.
    assert b.lift_abs == pytest.approx(b.adjusted_mean - b.control_adjusted_mean)
    assert b.lift_rel == pytest.approx(b.adjusted_mean / b.control_adjusted_mean - 1)
    assert r.arms[0].adjusted_mean == b.control_adjusted_mean and plain.arms[0].adjusted_mean is None
    assert b.frequentist.se_abs < 0.6 * p.frequentist.se_abs
    assert b.bayesian.model == "gaussian" and b.chance_to_win > 0.99
    assert r.required_users_per_arm < plain.required_users_per_arm  # CUPED's variance plans fewer users
    _json(r)


# ------------------------------------------------------------------------------------ decisions


def test_decision_texts() -> None:
    keep = analyze([_conv("control", 2_000, 200), _conv("B", 2_000, 210)], "binomial", "frequentist")
    assert keep.decision.action == "keep_running"
    more = keep.required_users_per_arm - 2_000
    assert keep.decision_text == f"keep running (about {more:,} more users per arm)"
    with_days = analyze(
        [_conv("control", 2_000, 200), _conv("B", 2_000, 210)],
        "binomial",
        "frequentist",
        AnalysisSettings(users_per_day=10_000),
    )
    assert with_days.decision.days_remaining == pytest.approx(more / 5_000)
    done = analyze([_conv("control", 80_000, 8_000), _conv("B", 80_000, 8_010)], "binomial", "frequentist")
    assert done.decision.action == "no_difference" and done.decision_text.startswith(
        "no detectable difference"
    )
    worse = analyze([_conv("control", 20_000, 2_000), _conv("B", 20_000, 1_800)], "binomial", "frequentist")
    assert worse.decision.action == "ship" and worse.decision.variant == "control"
    srm = analyze([_conv("control", 20_400, 2_040), _conv("B", 19_600, 2_400)], "binomial", "all")
    assert srm.srm_flag and srm.decision.action == "untrustworthy"
    assert srm.decision_text.startswith("data untrustworthy (SRM)")


def test_decide_prefers_the_largest_significant_lift() -> None:
    evidence = [
        Evidence("B", 1000, 0.02, 0.2, True, "p = 0.01"),
        Evidence("C", 1000, 0.03, 0.3, True, "p = 0.03"),
        Evidence("D", 1000, -0.05, -0.5, True, "p = 0.001"),
    ]
    d = decide("control", 1000, evidence, required_users_per_arm=500)
    assert d.variant == "C" and d.text == "ship C (+30.0%, p = 0.03)"


def test_weights_drive_the_srm_check() -> None:
    variants = [_conv("control", 8_000, 800, weight=0.8), _conv("B", 2_000, 200, weight=0.2)]
    assert not analyze(variants, "binomial").srm_flag
    assert analyze(variants, "binomial", settings=AnalysisSettings(weights=(0.5, 0.5))).srm_flag


# ----------------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize(
    "variants",
    [
        [_conv("control", 1_000, 100), _conv("B", 0, 0)],
        [_conv("control", 0, 0), _conv("B", 1_000, 100)],
        [_conv("control", 0, 0), _conv("B", 0, 0)],
        [_conv("control", 1_000, 0), _conv("B", 1_000, 0)],
        [_conv("control", 1_000, 1_000), _conv("B", 1_000, 1_000)],
        [_conv("control", 1_000, 0), _conv("B", 1_000, 30)],
        [_conv("control", 1, 1), _conv("B", 1, 0)],
    ],
    ids=["empty-treatment", "empty-control", "all-empty", "zero-pct", "hundred-pct", "from-zero", "one-user"],
)
def test_degenerate_binomial_data_gives_messages_not_errors(variants: list[VariantSummary]) -> None:
    r = analyze(variants, "binomial", "all")
    data = _json(r)
    result = r.results[0]
    messages = " ".join(result.messages) + " ".join(r.messages)
    assert messages, "a degenerate case must say what went wrong"
    assert r.decision_text
    assert data["results"][0]["variant"] == "B"


def test_zero_variance_means_and_empty_arm_means() -> None:
    flat = [VariantSummary("control", 100, 500.0, 2_500.0), VariantSummary("B", 100, 500.0, 2_500.0)]
    r = analyze(flat, "mean", "all")
    assert r.results[0].p_value is None and "zero variance" in " ".join(r.results[0].messages)
    assert any("sample size not computable" in m for m in r.messages)
    _json(r)
    empty = [VariantSummary("control", 100, 500.0, 2_700.0), VariantSummary("B", 0, 0.0, 0.0)]
    r2 = analyze(empty, "mean", "all")
    assert r2.results[0].mean is None and r2.results[0].lift_abs is None
    assert r2.srm_flag and r2.decision.action == "untrustworthy"
    _json(r2)


def test_malformed_input_raises_value_errors() -> None:
    with pytest.raises(ValueError, match="at least one treatment"):
        analyze([_conv("control", 10, 1)], "binomial")
    with pytest.raises(ValueError, match=r"'B': 11\.0 conversions for 10 users"):
        analyze([_conv("control", 10, 1), _conv("B", 10, 11)], "binomial")
    with pytest.raises(ValueError, match="'B': sum_squares is required"):
        analyze([VariantSummary("control", 10, 1.0, 1.0), VariantSummary("B", 10, 1.0)], "mean")
    with pytest.raises(ValueError, match="unique"):
        analyze([_conv("A", 10, 1), _conv("A", 10, 1)], "binomial")
    with pytest.raises(ValueError, match="engine"):
        analyze([_conv("A", 10, 1), _conv("B", 10, 1)], "binomial", "magic")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- CSV rows


def test_summaries_from_rows() -> None:
    rows = [
        {"variant": "control", "users": "1000", "sum": "100", "sum_squares": "", "weight": "0.5"},
        {"Variant ": "B", "USERS": "1000.0", "sum": "120", "sum_squares": "", "weight": "0.5", "note": "x"},
    ]
    out = summaries_from_rows(rows)
    assert out[1] == VariantSummary("B", 1000, 120.0, None, None, None, None, 0.5)
    with_pre_period = {"users": "3", "sum": "6", "sum_squares": "14", "pre_sum": "3", "pre_sum_squares": "5",
                       "sum_product": "8"}
    cuped = summaries_from_rows([{"variant": "a", **with_pre_period}, {"variant": "b", **with_pre_period}])
    assert all(v.has_cuped for v in cuped)
    assert analyze(out, "binomial").results[0].lift_rel == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"users": "abc"}, r"row 2, column 'users': expected a number, got 'abc'"),
        ({"users": "10.5"}, r"row 2, column 'users': expected a whole number"),
        ({"users": "-1"}, r"row 2, column 'users': must be >= 0"),
        ({"sum": ""}, r"row 2, column 'sum': value is missing"),
        ({"sum": "nan"}, r"row 2, column 'sum': expected a finite number"),
        ({"sum_squares": "0.5"}, r"row 2, column 'sum_squares': 0.5 is below sum²/users"),
        ({"variant": "control"}, r"row 2, column 'variant': 'control' repeats row 1"),
        ({"variant": " "}, r"row 2, column 'variant': name is empty"),
        ({"pre_sum": "4"}, r"row 2: CUPED needs all of"),
        ({"weight": "-0.5"}, r"row 2, column 'weight': must be >= 0"),
    ],
)
def test_summaries_from_rows_names_the_row_and_column(bad: dict[str, str], message: str) -> None:
    good = {"variant": "control", "users": "100", "sum": "10", "sum_squares": "12"}
    with pytest.raises(ValueError, match=message):
        summaries_from_rows([good, {**good, "variant": "B", **bad}])


def test_summaries_from_rows_structure_errors() -> None:
    with pytest.raises(ValueError, match="no rows"):
        summaries_from_rows([])
    with pytest.raises(ValueError, match=r"row 1: column 'sum' is missing"):
        summaries_from_rows([{"variant": "a", "users": "1"}])
    with pytest.raises(ValueError, match="at least one treatment"):
        summaries_from_rows([{"variant": "a", "users": "1", "sum": "1"}])


def test_to_dict_replaces_non_finite_numbers() -> None:
    r = analyze([_conv("control", 100, 5, weight=1.0), _conv("B", 50, 5, weight=0.0)], "binomial", "all")
    assert r.srm.chi2 == math.inf
    data = _json(r)
    assert data["srm"]["chi2"] is None and data["srm_p_value"] == 0.0


# ------------------------------------------------------------------------------ the experiment rule


def test_experiment_decision_peeking_and_guardrails() -> None:
    ship = decide("control", 5_000, [Evidence("B", 5_000, 0.01, 0.1, True, "relative p = 0.01")],
                  required_users_per_arm=20_000)
    peek = experiment_decision(ship, "ctr", "control", "frequentist", {}, planned_fraction=0.25, planned_users=20_000)
    assert peek.action == "keep_running" and "valid only at the planned 20,000 users per arm (25% reached)" in peek.text
    anytime = experiment_decision(ship, "ctr", "control", "sequential", {}, planned_fraction=0.25)
    assert anytime.action == "ship" and anytime.variant == "B"
    hold = experiment_decision(ship, "ctr", "control", "sequential", {"revenue": ["B"]}, planned_fraction=1.0)
    assert hold.action == "hold" and "significantly worse on ['revenue']" in hold.text
    missing = experiment_decision(None, "ctr", "control", "frequentist", {}, goal_error="no users")
    assert missing.action == "not_enough_data" and missing.text == "no readout: no users"


@pytest.mark.parametrize("engine", ["frequentist", "sequential", "bayesian"])
def test_a_guardrail_is_worse_in_its_own_direction(engine: str) -> None:
    """A treatment whose value is clearly higher breaks a lower-is-better guardrail (e.g. bounces)
    on every engine, and a higher-is-better one is untouched; the clearly lower one, the reverse."""
    for control, treatment in ((2_000, 2_400), (2_400, 2_000)):
        r = analyze([_conv("control", 20_000, control), _conv("B", 20_000, treatment)], "binomial", engine)
        b = r.results[0]
        higher = treatment > control
        worse_if_lower_is_better = significantly_worse(r.decision_engine, b.significant, b.lift_abs,
                                                       b.chance_to_win, lower_is_better=True)
        worse_if_higher_is_better = significantly_worse(r.decision_engine, b.significant, b.lift_abs,
                                                        b.chance_to_win, lower_is_better=False)
        assert (worse_if_lower_is_better, worse_if_higher_is_better) == (higher, not higher), (engine, control)
