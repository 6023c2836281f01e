"""The decision over declared metrics: each rule with crafted evidence, directions, the non-inferiority
test against scipy and by simulation, and the correction's scope changing the verdict."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.decision_rules import (
    DecisionSettings,
    MetricDeclaration,
    MetricEvidence,
    decide,
    evaluate,
    harm_p_value,
    lower_bound,
    non_inferiority_p_value,
    superiority_p_value,
)
from analysis.frequentist import welch_ttest
from analysis.stats import SampleStats

GOAL = MetricDeclaration("ctr", "goal")
LATENCY = MetricDeclaration("latency", "guardrail", direction="lower", margin=0.02)
REVENUE = MetricDeclaration("revenue", "guardrail", margin=0.01)
DIVERSITY = MetricDeclaration("diversity", "secondary")
METRICS = (GOAL, LATENCY, REVENUE, DIVERSITY)


def _ev(metric: str, lift: float, se: float = 0.01, variant: str = "b") -> MetricEvidence:
    return MetricEvidence(metric, variant, lift, se)



def test_ship_when_a_goal_wins_and_every_guardrail_is_within_its_margin() -> None:
    v = decide(METRICS, [_ev("ctr", 0.05), _ev("latency", -0.01), _ev("revenue", 0.0, 0.003),
                         _ev("diversity", -0.3)])
    assert v.rule == "ship" and v.variant == "b" and v.metric == "ctr"
    assert "latency" in v.reason and "revenue" in v.reason
    by_metric = {o.metric: o for o in v.outcomes}
    assert by_metric["latency"].outcome == "non_inferior" and by_metric["revenue"].outcome == "non_inferior"
    assert by_metric["diversity"].outcome == "worse"  # a secondary is reported, never decides


def test_stop_for_a_guardrail_names_it() -> None:
    # latency +8% (lower is better, 2% tolerated): worse beyond the margin with high confidence
    v = decide(METRICS, [_ev("ctr", 0.05), _ev("latency", 0.08), _ev("revenue", 0.0, 0.003)])
    assert v.rule == "stop_guardrail" and v.metric == "latency" and v.variant == "b"
    assert "latency" in v.reason and "b" in v.reason


def test_a_guardrail_that_is_not_yet_shown_within_its_margin_keeps_it_running() -> None:
    # revenue -0.5% with se 1%: neither shown within 1% nor shown beyond it
    v = decide(METRICS, [_ev("ctr", 0.05), _ev("latency", -0.01), _ev("revenue", -0.005)])
    assert v.rule == "keep_running" and v.metric == "revenue" and "revenue" in v.reason
    reached = decide(METRICS, [_ev("ctr", 0.05), _ev("latency", -0.01), _ev("revenue", -0.005)],
                     DecisionSettings(planned_reached=True))
    assert reached.rule == "no_effect" and "revenue" in reached.reason


def test_keep_running_then_no_effect_when_nothing_is_significant() -> None:
    evidence = [_ev("ctr", 0.01), _ev("latency", 0.0, 0.001), _ev("revenue", 0.0, 0.001)]
    assert decide(METRICS, evidence).rule == "keep_running"
    assert decide(METRICS, evidence, DecisionSettings(planned_reached=True)).rule == "no_effect"


def test_a_goal_significantly_worse_stops_and_keeps_the_control() -> None:
    v = decide(METRICS, [_ev("ctr", -0.05), _ev("latency", 0.0, 0.001), _ev("revenue", 0.0, 0.001)])
    assert v.rule == "stop_goal" and v.metric == "ctr"


def test_direction_a_lower_is_better_goal_that_falls_ships() -> None:
    bounce = MetricDeclaration("bounce_rate", "goal", direction="lower")
    down = decide([bounce], [_ev("bounce_rate", -0.05)])
    up = decide([bounce], [_ev("bounce_rate", 0.05)])
    assert down.rule == "ship" and up.rule == "stop_goal"
    higher = MetricDeclaration("bounce_rate", "goal")
    assert decide([higher], [_ev("bounce_rate", -0.05)]).rule == "stop_goal"


def test_direction_of_a_guardrail_decides_which_way_is_a_deterioration() -> None:
    higher = MetricDeclaration("latency", "guardrail", margin=0.02)
    lower = MetricDeclaration("latency", "guardrail", direction="lower", margin=0.02)
    ev = [_ev("latency", 0.08)]
    (o_higher,) = evaluate([higher], ev)
    (o_lower,) = evaluate([lower], ev)
    assert o_higher.outcome == "non_inferior" and o_lower.outcome == "harmful"
    # the bound is on the metric's own scale and compared with the margin on that side
    assert o_higher.threshold == -0.02 and o_higher.bound is not None and o_higher.bound > -0.02
    assert o_lower.threshold == 0.02 and o_lower.bound is not None and o_lower.bound > 0.02


def test_the_best_of_several_shippable_treatments_ships() -> None:
    v = decide([GOAL], [_ev("ctr", 0.05, variant="b"), _ev("ctr", 0.09, variant="c")])
    assert v.rule == "ship" and v.variant == "c"


def test_a_shippable_treatment_wins_over_another_that_broke_a_guardrail() -> None:
    v = decide([GOAL, LATENCY], [_ev("ctr", 0.05, variant="b"), _ev("latency", 0.0, 0.001, variant="b"),
                                 _ev("ctr", 0.09, variant="c"), _ev("latency", 0.10, variant="c")])
    assert v.rule == "ship" and v.variant == "b" and "c on latency" in v.reason


# ------------------------------------------------------------------------ the tests themselves


@pytest.mark.parametrize("df", [None, 37.5])
def test_non_inferiority_is_the_shifted_one_sided_test(df: float | None) -> None:
    dist = stats.norm() if df is None else stats.t(df)
    for effect, se, margin in [(-0.01, 0.01, 0.02), (0.0, 0.004, 0.01), (-0.03, 0.01, 0.02), (0.02, 0.05, 0.0)]:
        assert non_inferiority_p_value(effect, se, margin, df) == pytest.approx(dist.sf((effect + margin) / se))
        assert harm_p_value(effect, se, margin, df) == pytest.approx(dist.cdf((effect + margin) / se))
        # the one-sided bound lies above -margin exactly when the test rejects
        rejects = non_inferiority_p_value(effect, se, margin, df) < 0.05
        assert rejects == (lower_bound(effect, se, 0.05, df) > -margin)
    assert superiority_p_value(0.02, 0.01, df) == pytest.approx(2 * dist.sf(2.0))


def test_non_inferiority_matches_scipys_welch_test_on_shifted_data() -> None:
    """On an absolute margin, shifting the treatment by the margin and running scipy's one-sided Welch
    test is the textbook non-inferiority test."""
    rng = np.random.default_rng(5)
    control, treatment = rng.normal(10, 3, 400), rng.normal(9.9, 3.5, 300)
    margin = 0.5
    r = welch_ttest(SampleStats.from_values(control), SampleStats.from_values(treatment))
    assert r.lift_abs is not None and r.se_abs is not None
    ours = non_inferiority_p_value(r.lift_abs, r.se_abs, margin, r.df)
    scipy_p = stats.ttest_ind(treatment + margin, control, equal_var=False, alternative="greater").pvalue
    assert ours == pytest.approx(scipy_p, rel=1e-9)


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_type_one_error_at_the_margin_is_alpha(direction: str) -> None:
    """A treatment exactly ``margin`` worse (in the metric's direction) is declared non-inferior about
    alpha of the time; one that is not worse, far more often (power ~0.8 at this size)."""
    rng = np.random.default_rng(6)
    margin, reps, n = 0.05, 2000, 1000
    decl = MetricDeclaration("m", "guardrail", direction=direction, margin=margin)  # type: ignore[arg-type]
    sign = 1.0 if direction == "higher" else -1.0
    rates = {}
    for true_shift in (margin, 0.0):
        control = rng.normal(10.0, 4.0, (reps, n))
        treatment = rng.normal(10.0 * (1 - sign * true_shift), 4.0, (reps, n))
        hits = 0
        for c, t in zip(control, treatment, strict=True):
            r = welch_ttest(SampleStats.from_values(c), SampleStats.from_values(t))
            (o,) = evaluate([decl], [MetricEvidence.from_result("m", "b", r)])
            hits += o.outcome == "non_inferior"
        rates[true_shift] = hits / reps
    assert 0.035 <= rates[margin] <= 0.065, rates
    assert rates[0.0] > 0.75, rates


# --------------------------------------------------------------------------------- correction


def test_the_scope_and_the_procedure_change_the_verdict() -> None:
    """Goal p = 0.04 and the guardrail's non-inferiority p = 0.03: alone the goal ships; with the
    guardrail in a Holm family both adjust to 0.06 and it keeps running; BH keeps both at 0.04."""
    goal = MetricDeclaration("ctr", "goal")
    guard = MetricDeclaration("revenue", "guardrail", margin=0.02)
    z_goal = stats.norm.isf(0.02)  # two-sided p 0.04
    z_guard = stats.norm.isf(0.03)  # one-sided p 0.03 of (effect + margin) / se
    evidence = [_ev("ctr", z_goal * 0.01), _ev("revenue", z_guard * 0.01 - 0.02)]
    goals_only = decide([goal, guard], evidence, DecisionSettings(scope="goals", correction="holm"))
    holm = decide([goal, guard], evidence, DecisionSettings(scope="goals_and_guardrails", correction="holm"))
    bh = decide([goal, guard], evidence, DecisionSettings(scope="goals_and_guardrails", correction="bh"))
    assert goals_only.rule == "ship" and holm.rule == "keep_running" and bh.rule == "ship"
    assert [o.p_value_adjusted for o in holm.outcomes] == pytest.approx([0.06, 0.06])
    assert [o.p_value_adjusted for o in bh.outcomes] == pytest.approx([0.04, 0.04])
    assert [o.in_scope for o in goals_only.outcomes] == [True, False]
    assert goals_only.outcomes[1].p_value_adjusted == pytest.approx(0.03)


def test_adjusted_bounds_agree_with_adjusted_p_values() -> None:
    rng = np.random.default_rng(8)
    decls = [MetricDeclaration(f"g{i}", "goal") for i in range(4)] + [
        MetricDeclaration(f"r{i}", "guardrail", direction=rng.choice(["higher", "lower"]), margin=0.02)
        for i in range(4)]
    for _ in range(50):
        evidence = [_ev(d.name, float(rng.normal(0, 0.03)), 0.01) for d in decls]
        for correction in ("holm", "bh", None):
            for o in evaluate(decls, evidence, DecisionSettings(scope="all", correction=correction)):  # type: ignore[arg-type]
                assert o.bound is not None and o.p_value_adjusted is not None
                if o.role == "goal":
                    assert (o.outcome != "inconclusive") == (o.bound * np.sign(o.lift or 0) > 0)
                else:
                    side = 1.0 if o.direction == "higher" else -1.0
                    assert (o.outcome == "non_inferior") == (side * (o.bound - o.threshold) > 0)


# ------------------------------------------------------------------------------- bad input


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="only a guardrail"):
        MetricDeclaration("ctr", "goal", margin=0.1)
    with pytest.raises(ValueError, match="direction"):
        MetricDeclaration("ctr", "goal", direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="undeclared"):
        decide([GOAL], [_ev("ctr", 0.1), _ev("clicks", 0.1)])
    with pytest.raises(ValueError, match="goal"):
        decide([LATENCY], [_ev("latency", 0.1)])
    with pytest.raises(ValueError, match="scope"):
        DecisionSettings(scope="everything")  # type: ignore[arg-type]


def test_untestable_evidence_and_missing_metrics_are_not_tested() -> None:
    v = decide([GOAL, LATENCY], [MetricEvidence("ctr", "b", None, None, message="control mean is 0")])
    assert v.rule == "keep_running"
    outcomes = {o.metric: o for o in v.outcomes}
    assert outcomes["ctr"].outcome == "not_tested" and outcomes["ctr"].message == "control mean is 0"
    assert outcomes["latency"].outcome == "not_tested"


# ------------------------------------------------------------------- the readout's special case

_SAME_RULE = {"ship": "ship", "stop_goal": "ship", "keep_running": "keep_running", "no_effect": "no_difference"}


def test_one_goal_without_guardrails_is_the_readouts_decide() -> None:
    """:func:`analysis.decision.decide` is this rule's special case (one goal, higher is better, no
    guardrails, no correction): on the same fixed-horizon results both reach the same verdict."""
    from analysis.decision import Evidence
    from analysis.decision import decide as readout_decide

    rng = np.random.default_rng(10)
    seen = set()
    for lift in (-0.15, -0.05, 0.0, 0.05, 0.15):
        for _ in range(20):
            c, t = rng.normal(10, 4, 500), rng.normal(10 * (1 + lift), 4, 500)
            r = welch_ttest(SampleStats.from_values(c), SampleStats.from_values(t))
            for required in (400, 5000):
                old = readout_decide("a", 500, [Evidence("b", 500, r.lift_abs, r.lift_rel, r.significant)],
                                     required_users_per_arm=required)
                new = decide([GOAL], [MetricEvidence.from_result("ctr", "b", r)],
                             DecisionSettings(correction=None, planned_reached=required <= 500))
                assert _SAME_RULE[new.rule] == old.action, (lift, required, old, new)
                assert old.variant == ("a" if new.rule == "stop_goal" else new.variant)
                seen.add(new.rule)
    assert seen == set(_SAME_RULE)
