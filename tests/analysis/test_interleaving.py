"""Team-draft interleaving: the draft's properties (hypothesis), crediting (the common prefix to neither
team, unbiased), the Wilcoxon signed-rank test of the credit differences, the t-test of their mean and
the sign test with its exact interval against scipy, the ranks' power where a few users' differences are
large, the always-valid mixture test against numeric integration and by simulation, calibration
under a null by simulation, the power the magnitude and the common-prefix rule add over the sign test,
and detection against an absolute-CTR A/B test on a simulated click model; the Hodges–Lehmann estimate
and the interval inverting the verdict's signed-rank test against a brute-force inversion with scipy, and
its exclusion of 0 exactly when the verdict calls a preference (hypothesis over count tables)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from analysis.interleaving import (
    InterleavingSettings,
    PreferenceCounts,
    ShiftInterval,
    always_valid_p_values,
    beta_mixture_log_lr,
    beta_prior_for_plan,
    clopper_pearson,
    common_prefix,
    confidence_sequence,
    credit,
    interleaving_readout,
    mean_difference_test,
    position_credit,
    preference_counts,
    preference_test,
    pseudomedian_test,
    sign_test_p_value,
    signed_counts,
    signed_rank_test,
    team_draft,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, database=None)

rankings = st.lists(st.integers(0, 14), max_size=12, unique=True)


# ------------------------------------------------------------------------------------ the draft


@PROPERTY_SETTINGS
@given(rankings, rankings, st.integers(0, 30), st.integers(0, 2**32 - 1))
def test_team_draft_properties(list_a: list[int], list_b: list[int], n: int, seed: int) -> None:
    merged = team_draft(list_a, list_b, n, np.random.default_rng(seed))
    items, teams = merged.items, merged.teams
    union = set(list_a) | set(list_b)
    assert len(items) == len(teams) == min(n, len(union))
    assert len(set(items)) == len(items)  # no duplicates
    assert set(items) <= union
    for team, ranking in (("A", list_a), ("B", list_b)):
        picked = [item for item, t in zip(items, teams, strict=True) if t == team]
        assert all(item in ranking for item in picked)
        ranks = [ranking.index(item) for item in picked]
        assert ranks == sorted(ranks)  # each ranker's items keep their relative order
    for k, (item, team) in enumerate(zip(items, teams, strict=True)):
        ranking = list_a if team == "A" else list_b
        # the team's pick is its highest-ranked item not already in the list
        assert item == next(x for x in ranking if x not in items[:k])
        above = set(items[:k])
        both_open = not set(list_a) <= above and not set(list_b) <= above
        if both_open:  # while both rankers have something to add, team sizes stay within one
            prefix = teams[: k + 1]
            assert abs(prefix.count("A") - prefix.count("B")) <= 1
    # the rankers' common prefix tops the merged list, whatever the coins
    shared = merged.shared_prefix
    assert shared == min(common_prefix(list_a, list_b), len(items))
    assert list(items[:shared]) == list_a[:shared] == list_b[:shared]


def test_team_draft_handles_overlap_unequal_lengths_and_empty_lists() -> None:
    rng = np.random.default_rng(3)
    merged = team_draft([1, 2, 3, 4, 5], [2, 1], 10, rng)
    assert sorted(merged.items) == [1, 2, 3, 4, 5]
    assert merged.teams[2:] == ("A", "A", "A")  # B is exhausted after the first round(s)
    assert team_draft([], [], 5, rng).items == ()
    only_b = team_draft([], [7, 8, 9], 2, rng)
    assert only_b.items == (7, 8) and only_b.teams == ("B", "B")
    with pytest.raises(ValueError, match="non-negative"):
        team_draft([1], [1], -1, rng)


def test_team_draft_is_deterministic_given_the_generator() -> None:
    a, b = list(range(10)), list(range(9, -1, -1))
    first = [team_draft(a, b, 6, np.random.default_rng(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_coin_flip_is_fair_for_identical_rankers() -> None:
    """Identical rankers: every round of two picks is one A and one B, and who goes first is a fair coin."""
    rng = np.random.default_rng(11)
    ranking = list(range(10))
    firsts = []
    for _ in range(4000):
        merged = team_draft(ranking, ranking, 10, rng)
        assert merged.items == tuple(ranking)
        assert all({merged.teams[i], merged.teams[i + 1]} == {"A", "B"} for i in range(0, 10, 2))
        firsts.append(merged.teams[0] == "A")
    assert stats.binomtest(sum(firsts), len(firsts)).pvalue > 0.001


# ------------------------------------------------------------------------------------ credit


def test_credit_counts_clicks_per_team_and_picks_the_winner() -> None:
    teams = ("A", "B", "B", "A", "B")
    outcome = credit(teams, [1, 2, 3, 2])  # a repeated click on a position counts once
    assert (outcome.credit_a, outcome.credit_b, outcome.winner) == (1, 2, "B")
    assert outcome.clicked_a == (3,) and outcome.clicked_b == (1, 2)
    assert credit(teams, [0, 1]).winner is None  # a tie is neither a win nor a loss
    assert credit(teams, []).winner is None  # no click either
    assert credit(teams, [0]).winner == "A"
    with pytest.raises(ValueError, match="outside the list"):
        credit(teams, [5])
    in_prefix = credit(teams, [0, 1, 3], shared_prefix=2)  # positions 0 and 1: the rankers' common prefix
    assert (in_prefix.clicked_a, in_prefix.clicked_b, in_prefix.clicked_shared) == ((3,), (), (0, 1))
    assert in_prefix.winner == "A"


def test_users_are_the_unit_their_credit_summed_over_impressions() -> None:
    users = ["u1", "u1", "u2", "u3", "u3", "u4"]
    credit_a = np.array([1, 0, 0, 2, 0, 0])
    credit_b = np.array([0, 1, 1, 0, 1, 0])
    # u1: 1-1 tie; u2: B; u3: A 2-1; u4: no click.  d = 0, +1, -1, 0
    assert preference_counts(users, credit_a, credit_b) == PreferenceCounts(
        wins=1, losses=1, ties=2, difference_sum=0, difference_squares=2, differences=((-1, 1), (1, 1)))
    assert preference_counts([], np.array([]), np.array([])) == PreferenceCounts(0, 0, 0)
    with pytest.raises(ValueError, match="differ in length"):
        preference_counts(["u"], credit_a, credit_b)


def test_position_credit_table() -> None:
    teams = [("A", "B", "A"), ("B", "A")]
    outcomes = [credit(teams[0], [0, 1]), credit(teams[1], [0])]
    table = position_credit(teams, outcomes)
    assert [(r.position, r.shown_a, r.shown_b, r.clicks_a, r.clicks_b) for r in table] == [
        (0, 1, 1, 1, 1),
        (1, 1, 1, 0, 1),
        (2, 1, 0, 0, 0),
    ]


def test_the_common_prefix_rule_keeps_the_expected_credit_difference() -> None:
    """Lists sharing their top 3: over the draft's coins, each prefix position goes to A half the time and
    the prefix's expected credit difference is 0, so crediting it to neither side leaves E[B − A]
    unchanged (here B is better: its own items are more attractive), with less variance.  The exact
    expectation per draft (click probabilities, no click noise) is averaged over 20,000 drafts."""
    rng = np.random.default_rng(8)
    list_a, list_b = ["s0", "s1", "s2", "a3", "a4", "a5", "a6"], ["s0", "s1", "s2", "b3", "b4", "b5", "b6"]
    attraction = {"s0": 0.5, "s1": 0.4, "s2": 0.4, **{f"a{k}": 0.10 for k in range(3, 7)},
                  **{f"b{k}": 0.15 for k in range(3, 7)}}
    examine = 1.0 / np.arange(1, 9)
    whole, kept, prefix_a = [], [], []
    for _ in range(20_000):
        merged = team_draft(list_a, list_b, 8, rng)
        assert merged.shared_prefix == 3 and merged.items[:3] == ("s0", "s1", "s2")
        sign = np.array([1.0 if t == "B" else -1.0 for t in merged.teams])
        p = np.array([attraction[str(i)] for i in merged.items]) * examine[: len(merged.items)]
        whole.append(float(sign @ p))
        kept.append(float(sign[3:] @ p[3:]))
        prefix_a.append([t == "A" for t in merged.teams[:3]])
    se = np.std(np.subtract(whole, kept)) / math.sqrt(len(whole))
    assert abs(np.mean(whole) - np.mean(kept)) < 4 * se  # the prefix's share of E[B − A] is 0
    assert np.mean(kept) > 20 * np.std(kept) / math.sqrt(len(kept))  # and B's advantage is all there
    assert np.var(kept) < np.var(whole)
    share_a = np.mean(prefix_a, axis=0)
    assert np.all(np.abs(share_a - 0.5) < 4 * math.sqrt(0.25 / len(prefix_a)))


# ------------------------------------------------------------------------------------ the fixed test


def test_mean_difference_t_test_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    samples = [rng.integers(-3, 4, size=n) for n in (2, 3, 10, 57, 400)] + [np.array([0, 0, 1, 0, -1, 2])]
    for d in samples:
        test = mean_difference_test(int(d.sum()), int((d * d).sum()), d.size)
        ref = stats.ttest_1samp(d, 0.0)
        assert float(test.p_value) == pytest.approx(ref.pvalue, rel=1e-9)
        low, high = test.ci(0.05)
        ref_ci = ref.confidence_interval(0.95)
        assert (float(low), float(high)) == pytest.approx((ref_ci.low, ref_ci.high), rel=1e-9)
        assert (not low <= 0 <= high) == (ref.pvalue < 0.05)  # the interval excludes 0 iff p < α
    rows = np.stack([rng.integers(-2, 3, size=30) for _ in range(20)])
    vectorised = mean_difference_test(rows.sum(1), (rows * rows).sum(1), 30).p_value
    assert vectorised == pytest.approx(stats.ttest_1samp(rows, 0.0, axis=1).pvalue, rel=1e-9)
    # no t statistic without two users or without variance
    assert np.isnan(mean_difference_test(1, 1, 1).p_value) and np.isnan(mean_difference_test(5, 5, 5).p_value)


def wilcoxon_reference(d: np.ndarray) -> float:
    return float(stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx").pvalue)


def test_signed_rank_test_matches_scipy() -> None:
    """Ties in |d| (integers), zeros, heavy tails, one user with a preference, everyone alike: the
    statistic and p-value are scipy's Wilcoxon (zeros dropped, normal approximation, tie correction)."""
    rng = np.random.default_rng(7)
    samples = [rng.integers(-3, 4, size=n) for n in (2, 5, 22, 63, 400)]
    samples += [np.array([-3]), np.rint(rng.standard_t(1.5, size=40) * 3).astype(int), np.array([0, 0, 2, 0]),
                np.array([1, 1, 1, 1, 1]), np.array([-4, 4, -4, 4, 0, 1])]
    for d in samples:
        plus, minus = signed_counts(d)
        assert plus.tolist() == [int((d == k).sum()) for k in range(1, len(plus) + 1)]
        assert minus.tolist() == [int((d == -k).sum()) for k in range(1, len(minus) + 1)]
        result = signed_rank_test(plus, minus)
        assert float(result.p_value) == pytest.approx(wilcoxon_reference(d), rel=1e-9)
        ranks = stats.rankdata(np.abs(d[d != 0]))
        assert float(result.statistic) == pytest.approx(ranks[d[d != 0] > 0].sum())
        counts = PreferenceCounts.of(d)
        assert float(signed_rank_test(*counts.signed_counts()).p_value) == pytest.approx(float(result.p_value))
    rows = np.stack([rng.integers(-5, 3, size=30) for _ in range(20)])  # vectorised over experiments
    assert signed_rank_test(*signed_counts(rows)).p_value == pytest.approx([wilcoxon_reference(r) for r in rows])
    assert np.isnan(signed_rank_test(*signed_counts(np.zeros(7, dtype=int))).p_value)  # nobody has a preference
    with pytest.raises(ValueError, match="count 2 wins"):
        PreferenceCounts(3, 0, 0, differences=((1, 2),))
    with pytest.raises(ValueError, match="distinct non-zero values"):
        PreferenceCounts(1, 0, 0, differences=((0, 4), (1, 1)))


def test_ranks_hold_the_level_and_keep_power_where_a_few_users_have_large_differences() -> None:
    """Users' activity is lognormal (a few very active users, as in the demo world's visit law), so
    d = credit B − credit A is heavy-tailed.  Over 4,000 experiments of 20 users with B twice as good,
    the signed-rank test detects B more often than the t-test of the mean difference, whose few
    large |d| inflate its variance; under the null both hold their level, the t-test conservatively."""
    rng = np.random.default_rng(3)
    activity = rng.lognormal(0.0, 1.3, size=(4_000, 20))

    def reject(lift: float) -> tuple[float, float]:
        d = rng.poisson(0.5 * (1 + lift) * activity) - rng.poisson(0.5 * activity)
        t_p = mean_difference_test(d.sum(1), (d * d).sum(1), d.shape[1]).p_value
        ranks_p = signed_rank_test(*signed_counts(d)).p_value
        rejected = [float((np.nan_to_num(p, nan=1.0) < 0.05).mean()) for p in (ranks_p, t_p)]
        return rejected[0], rejected[1]

    ranks_power, t_power = reject(1.0)
    assert ranks_power > t_power + 0.05
    ranks_null, t_null = reject(0.0)
    band = 3 * math.sqrt(0.05 * 0.95 / 4_000)
    assert abs(ranks_null - 0.05) < band and t_null < ranks_null


def test_magnitude_adds_power_over_the_sign_test() -> None:
    """Users who click on several visits: d = credit B − credit A is Poisson-like, its size grows with
    the user's activity (Gamma, mean 3).  B earns 25% more clicks.  Over 2,000 experiments of 150
    users the t-test of the mean difference (which keeps |d|) detects B more often than the sign test
    of the same users, and both hold their level when B earns no more than A."""
    rng = np.random.default_rng(12)
    activity = rng.gamma(1.0, 3.0, size=(2_000, 150))

    def reject(lift: float) -> tuple[float, float]:
        a, b = rng.poisson(0.4 * activity), rng.poisson(0.4 * (1 + lift) * activity)
        d = b - a
        t_p = mean_difference_test(d.sum(1), (d * d).sum(1), d.shape[1]).p_value
        wins, losses = (d > 0).sum(1), (d < 0).sum(1)
        return float((t_p < 0.05).mean()), float((sign_test_p_value(wins, wins + losses) < 0.05).mean())

    t_power, sign_power = reject(0.25)
    assert t_power > sign_power + 0.05
    t_null, sign_null = reject(0.0)
    assert abs(t_null - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 2_000) and sign_null <= 0.05 + 0.015


def test_sign_test_and_clopper_pearson_match_scipy_and_never_disagree() -> None:
    for n in [*range(1, 26), 40, 61, 100]:
        ks = np.arange(n + 1)
        ours = sign_test_p_value(ks, n)
        for k in ks:
            ref = stats.binomtest(int(k), n, 0.5)
            assert ours[k] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
            lo, hi = clopper_pearson(int(k), n, 0.05)
            ref_ci = ref.proportion_ci(0.95, method="exact")
            assert (lo, hi) == pytest.approx((ref_ci.low, ref_ci.high), abs=1e-9)
            assert (not lo <= 0.5 <= hi) == (ours[k] < 0.05)  # the interval excludes 1/2 iff p < α


def test_readout_reports_share_interval_p_value_and_verdict() -> None:
    users, teams, outcomes = [], [], []
    for u in range(100):  # 70 users credit B, 20 credit A, 10 never click
        t = ("A", "B")
        clicks = [1] if u < 70 else [0] if u < 90 else []
        users.append(f"u{u}")
        teams.append(t)
        outcomes.append(credit(t, clicks))
    result = interleaving_readout(users, teams, outcomes)
    assert result.counts == PreferenceCounts(70, 20, 10, 50, 90, ((-1, 20), (1, 70)))
    assert result.preference_share == pytest.approx(70 / 90)
    differences = np.array([1] * 70 + [-1] * 20 + [0] * 10)
    assert result.method == "Wilcoxon signed-rank test of the credit differences"
    assert result.p_value == pytest.approx(wilcoxon_reference(differences))
    assert result.t_test_p_value == pytest.approx(stats.ttest_1samp(differences, 0.0).pvalue)
    assert result.mean_difference == pytest.approx(0.5)
    assert result.mean_difference_ci is not None and result.mean_difference_ci[0] > 0
    assert result.sign_test_p_value == pytest.approx(stats.binomtest(70, 90).pvalue)
    assert result.verdict == "B preferred" and result.significant
    assert result.positions[1].clicks_b == 70 and result.positions[0].clicks_a == 20
    flipped = preference_test(PreferenceCounts.of(-differences))
    assert flipped.verdict == "A preferred" and flipped.p_value == pytest.approx(result.p_value)
    even = PreferenceCounts.of(np.array([1] * 48 + [-1] * 52))
    assert preference_test(even).verdict == "no preference detected"
    # the sizes count by rank: one user +9 outweighs no one, one −1 less than one +2
    ranked = preference_test(PreferenceCounts.of(np.array([9, 2, 2, 1, -1, 0])))
    assert ranked.p_value == pytest.approx(wilcoxon_reference(np.array([9, 2, 2, 1, -1, 0])))
    # counts kept without the values (before they were kept): the t-test of the mean difference decides
    sums_only = preference_test(PreferenceCounts(70, 20, 10, 50, 90))
    assert sums_only.method == "t-test of the mean credit difference"
    assert sums_only.p_value == pytest.approx(stats.ttest_1samp(differences, 0.0).pvalue)
    assert preference_test(PreferenceCounts(48, 52, 0, -4, 100)).verdict == "no preference detected"
    # counts kept without the sums: the exact sign test decides
    signs_only = preference_test(PreferenceCounts(70, 20, 10))
    assert signs_only.method == "exact sign test" and signs_only.mean_difference is None
    assert signs_only.p_value == pytest.approx(stats.binomtest(70, 90).pvalue)
    with pytest.raises(ValueError, match="cannot come from"):
        PreferenceCounts(3, 1, 0, 2, 2)


def test_degenerate_readouts_are_messages_not_exceptions() -> None:
    empty = preference_test(PreferenceCounts(0, 0, 0))
    assert empty.message == "no users yet" and empty.p_value is None and empty.verdict == "no data"
    ties = preference_test(PreferenceCounts(0, 0, 12))
    assert ties.p_value is None and "no preference to test" in (ties.message or "")
    unanimous = preference_test(PreferenceCounts(5, 0, 0), InterleavingSettings(sequential=True))
    assert unanimous.ci is not None and unanimous.ci[1] == 1.0 and unanimous.p_value is not None
    # every user +1: no variance, no t statistic; the sign test decides counts kept without the values,
    # the signed-rank test (all ranks tied) those with them
    no_variance = preference_test(PreferenceCounts(5, 0, 0, 5, 5))
    assert no_variance.method == "exact sign test" and no_variance.p_value == pytest.approx(2 * 0.5**5)
    alike = preference_test(PreferenceCounts.of(np.ones(5, dtype=int)))
    assert alike.p_value == pytest.approx(wilcoxon_reference(np.ones(5))) and alike.t_test_p_value is None
    with pytest.raises(ValueError, match="alpha"):
        InterleavingSettings(alpha=1.5)


# ------------------------------------------------------------------------------------ the sequential test


def test_beta_mixture_likelihood_ratio_matches_numeric_integration() -> None:
    for k, n, a, p0 in [(0, 0, 5.0, 0.5), (7, 10, 2.0, 0.5), (60, 100, 40.0, 0.5), (3, 30, 1.0, 0.3)]:
        marginal, _ = integrate.quad(lambda p, k=k, n=n, a=a: p**k * (1 - p) ** (n - k) * stats.beta.pdf(p, a, a), 0, 1)
        expected = math.log(marginal) - (k * math.log(p0) + (n - k) * math.log(1 - p0))
        assert float(beta_mixture_log_lr(k, n, a, p0)) == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_confidence_sequence_excludes_half_exactly_when_the_always_valid_p_is_below_alpha() -> None:
    a = beta_prior_for_plan(400, None, 0.05, 0.8)
    for n in (10, 50, 200, 400):
        for k in range(0, n + 1, max(1, n // 40)):
            lo, hi = confidence_sequence(k, n, a, 0.05)
            p = float(always_valid_p_values(np.array([k]), np.array([n]), a)[0])
            assert lo <= k / n <= hi
            if abs(p - 0.05) > 1e-6:
                assert (not lo <= 0.5 <= hi) == (p < 0.05)


def _walks(rng: np.random.Generator, experiments: int, steps: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    wins = np.cumsum(rng.random((experiments, steps)) < share, axis=1)
    return wins, np.broadcast_to(np.arange(1, steps + 1), wins.shape)


def test_always_valid_test_holds_its_level_when_looked_at_after_every_user() -> None:
    """Ville's inequality: P(the mixture ever reaches 1/α) ≤ α, here with a look after each of 1500 users,
    where a fixed sign test read at every look would reject far more often."""
    rng = np.random.default_rng(2026)
    a = beta_prior_for_plan(1500, None, 0.05, 0.8)
    wins, decided = _walks(rng, 3000, 1500, 0.5)
    ever_rejected = (always_valid_p_values(wins, decided, a)[:, -1] < 0.05).mean()
    assert ever_rejected <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 3000)
    peeking = (sign_test_p_value(wins[:300, 9::10], decided[:300, 9::10]) < 0.05).any(axis=1).mean()
    assert peeking > 0.15  # why the sequential option exists


def test_always_valid_test_has_power_when_users_prefer_one_ranker() -> None:
    """Planned for the effect a fixed test of N users detects with 80 % power, the mixture test rejects in
    most experiments by 2N — the usual price of validity at every look."""
    planned = 800
    effect = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 0.5 / math.sqrt(planned)
    rng = np.random.default_rng(7)
    a = beta_prior_for_plan(planned, None, 0.05, 0.8)
    wins, decided = _walks(rng, 1000, 2 * planned, 0.5 + effect)
    assert (always_valid_p_values(wins, decided, a)[:, -1] < 0.05).mean() >= 0.8
    result = preference_test(
        PreferenceCounts(int(wins[0, -1]), int(decided[0, -1] - wins[0, -1]), 0),
        InterleavingSettings(sequential=True, planned_users=planned),
    )
    assert result.method == "beta-mixture SPRT" and result.beta_prior == pytest.approx(a)


# ------------------------------------------------------------------------------------ simulated users


EXAMINATION = 1.0 / np.arange(1, 11)  # position-based click model: P(click) = activity × relevance × examination


@dataclass(frozen=True)
class ClickWorld:
    """Users with 20 candidates each (sparse relevance, Beta(0.5, 2)) and an activity level (Gamma, mean 1:
    most users click little, a few a lot — the between-user variance an A/B test pays for and interleaving,
    comparing both rankers within each user, does not)."""

    relevance: np.ndarray  # users × candidates
    activity: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, users: int) -> ClickWorld:
        return cls(rng.beta(0.5, 2.0, size=(users, 20)), rng.gamma(1.0, 1.0, size=users))

    def ranking(self, rng: np.random.Generator, noise: float) -> np.ndarray:
        """A ranker sorts by true relevance plus its own noise: less noise, a better ranker."""
        return np.argsort(-(self.relevance + noise * rng.standard_normal(self.relevance.shape)), axis=1)

    def clicks(self, rng: np.random.Generator, users: np.ndarray, shown: np.ndarray) -> np.ndarray:
        rel = np.take_along_axis(self.relevance[users], shown, axis=1)
        p = np.minimum(1.0, self.activity[users, None] * rel * EXAMINATION[: shown.shape[1]])
        return rng.random(p.shape) < p


def _interleaving_counts(
    rng: np.random.Generator, world: ClickWorld, noise_a: float, noise_b: float, same_ranker: bool = False
) -> PreferenceCounts:
    """One impression per user: the two rankers' lists team-drafted to 10 items, clicks credited (the
    common prefix to neither side)."""
    list_a = world.ranking(rng, noise_a)
    list_b = list_a if same_ranker else world.ranking(rng, noise_b)
    users = np.arange(list_a.shape[0])
    merged = [team_draft(a, b, 10, rng) for a, b in zip(list_a.tolist(), list_b.tolist(), strict=True)]
    clicks = world.clicks(rng, users, np.array([m.items for m in merged]))
    outcomes = [credit(m.teams, np.flatnonzero(c).tolist(), m.shared_prefix)
                for m, c in zip(merged, clicks, strict=True)]
    return preference_counts(users, np.array([o.credit_a for o in outcomes]), np.array([o.credit_b for o in outcomes]))


def _ab_detects(rng: np.random.Generator, world: ClickWorld, noise_a: float, noise_b: float) -> bool:
    """Half the users see A's top 10, half B's; Welch's t-test on clicks per user."""
    users = np.arange(world.activity.size)
    clicks = []
    for arm, noise in ((users[0::2], noise_a), (users[1::2], noise_b)):
        shown = world.ranking(rng, noise)[arm, :10]
        clicks.append(world.clicks(rng, arm, shown).sum(axis=1))
    ab = stats.ttest_ind(clicks[1], clicks[0], equal_var=False)
    return bool(ab.pvalue < 0.05 and ab.statistic > 0)


def test_equally_good_rankers_calibration_and_identical_rankers_credit_nothing() -> None:
    """Two different rankers of equal quality (the same noise, drawn independently, so their lists differ
    and sometimes share a top): over 1,000 simulated experiments of 100 users the preference share is
    1/2, the mean credit difference 0, and the signed-rank test's false-positive rate near its level.  The same
    ranker on both sides shares its whole list: no click is credited, nothing can be significant."""
    rng = np.random.default_rng(16)
    experiments, users = 1000, 100
    results = [preference_test(_interleaving_counts(rng, ClickWorld.draw(rng, users), 0.2, 0.2))
               for _ in range(experiments)]
    wins = sum(r.counts.wins for r in results)
    decided = sum(r.counts.decided for r in results)
    assert abs(wins / decided - 0.5) < 3 * math.sqrt(0.25 / decided)
    assert all(r.method == "Wilcoxon signed-rank test of the credit differences" for r in results)
    means = np.array([r.mean_difference for r in results], dtype=float)
    assert abs(means.mean()) < 3 * means.std() / math.sqrt(experiments)
    false_positives = np.mean([r.significant for r in results])
    assert 0.03 <= false_positives <= 0.07
    same = _interleaving_counts(rng, ClickWorld.draw(rng, users), 0.2, 0.2, same_ranker=True)
    assert same == PreferenceCounts(0, 0, users, 0, 0, ()) and not preference_test(same).significant


def test_interleaving_detects_a_better_ranker_with_far_fewer_users_than_an_ab_test() -> None:
    """B ranks with less noise than A.  With 250 users interleaving picks B in most runs; an A/B test of
    clicks per user with the same 250 users rarely does, and even with 4× the users less often."""
    rng = np.random.default_rng(5)
    noise_a, noise_b = 0.3, 0.1
    interleaving = np.mean(
        [
            preference_test(_interleaving_counts(rng, ClickWorld.draw(rng, 250), noise_a, noise_b)).verdict
            == "B preferred"
            for _ in range(40)
        ]
    )
    ab_same = np.mean([_ab_detects(rng, ClickWorld.draw(rng, 250), noise_a, noise_b) for _ in range(200)])
    ab_four_times = np.mean([_ab_detects(rng, ClickWorld.draw(rng, 1000), noise_a, noise_b) for _ in range(200)])
    assert interleaving >= 0.8
    assert ab_same <= 0.4
    assert ab_four_times < interleaving


# ----------------------------------------------------------------------------- the verdict's interval


def brute_force_interval(d: np.ndarray, alpha: float) -> tuple[ShiftInterval | None, float]:
    """The signed-rank test inverted by brute force: scipy's Wilcoxon of ``d − θ`` at every Walsh
    average, in every gap between them and beyond them; the hull of the accepted shifts on the side of
    the verdict when 0 is rejected (the rule :func:`pseudomedian_test` documents).  And the median of
    all Walsh averages, straight from numpy."""
    d = d[d != 0].astype(float)
    walsh = ((d[:, None] + d[None, :]) / 2)[np.triu_indices(d.size)]
    points = np.unique(walsh)
    gaps = np.concatenate([[points[0] - 0.5], (points[:-1] + points[1:]) / 2, [points[-1] + 0.5]])

    def p(theta: float) -> float:
        x = d - theta
        if not np.any(x != 0):
            return math.nan  # every user dropped: no test, nothing rejected
        return float(stats.wilcoxon(x, zero_method="wilcox", correction=False, method="approx").pvalue)

    bounds = np.concatenate([[-np.inf], points, [np.inf]])
    elements = [(bounds[0], bounds[1], False, not p(gaps[0]) < alpha)]
    for k, point in enumerate(points):
        elements += [(point, point, True, not p(point) < alpha),
                     (bounds[k + 1], bounds[k + 2], False, not p(gaps[k + 1]) < alpha)]
    if p(0.0) < alpha:
        x = d[d != 0]
        ranks = stats.rankdata(np.abs(x))
        side = np.sign(ranks[x > 0].sum() - x.size * (x.size + 1) / 4)
        elements = [e for e in elements if side * e[0] >= 0 and side * e[1] >= 0 and (e[0], e[1]) != (0, 0)]
    kept = [e for e in elements if e[3]]
    interval = ShiftInterval(kept[0][0], kept[-1][1], kept[0][2], kept[-1][2]) if kept else None
    return interval, float(np.median(walsh))


def random_differences(rng: np.random.Generator) -> np.ndarray:
    """Users' integer credit differences as interleaving makes them: many ties, mostly ±1, a few
    large; from one user to a hundred, sometimes all on one side."""
    n = int(rng.integers(2, 100))
    magnitude = rng.geometric(rng.uniform(0.3, 0.95), n)
    share = rng.choice([rng.uniform(0.2, 0.9), 1.0, 0.0])
    d = np.where(rng.random(n) < share, magnitude, -magnitude)
    return np.where(rng.random(n) < rng.uniform(0, 0.8), 0, d)


def test_pseudomedian_and_its_interval_match_a_brute_force_inversion_with_scipy() -> None:
    rng = np.random.default_rng(16)
    checked = 0
    for _ in range(300):
        d = random_differences(rng)
        if np.count_nonzero(d) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's note that the normal approximation is rough for few users
            expected, median = brute_force_interval(d, 0.05)
        result = pseudomedian_test(PreferenceCounts.of(d), 0.05)
        assert result.estimate == pytest.approx(median, abs=1e-12)
        assert result.interval == expected, d.tolist()
        checked += 1
    assert checked > 200



@st.composite
def count_tables(draw: st.DrawFn) -> PreferenceCounts:
    """Users by credit difference: ties, few users, values up to ±6, sometimes every user on one side."""
    values = draw(st.lists(st.integers(-6, 6).filter(bool), min_size=0, max_size=6, unique=True))
    users = draw(st.lists(st.integers(1, 60), min_size=len(values), max_size=len(values)))
    d = np.repeat(np.array(values, dtype=np.int64), np.array(users, dtype=np.int64))
    return PreferenceCounts.of(np.concatenate([d, np.zeros(draw(st.integers(0, 50)), dtype=np.int64)]))


@PROPERTY_SETTINGS
@given(count_tables(), st.sampled_from([0.01, 0.05, 0.2]))
def test_the_verdicts_interval_excludes_zero_exactly_when_the_verdict_is_a_preference(
    counts: PreferenceCounts, alpha: float
) -> None:
    result = preference_test(counts, InterleavingSettings(alpha=alpha))
    ci = result.pseudomedian_ci
    preferred = result.verdict in ("B preferred", "A preferred")
    assert preferred == result.significant
    if counts.decided < 2:  # nothing to invert: no user with a preference, or one
        assert ci is None and (result.pseudomedian_message or result.message) is not None
        return
    assert result.pseudomedian is not None
    if not preferred:  # 0 is accepted, so the interval exists and holds it
        assert ci is not None and 0.0 in ci
    elif ci is None:  # every shift on the verdict's side rejected: no interval, said so
        assert result.pseudomedian_message is not None and "rejects every shift" in result.pseudomedian_message
    else:  # the interval lies on the verdict's side of 0
        assert 0.0 not in ci
        side = 1.0 if result.verdict == "B preferred" else -1.0
        assert side * ci.low >= 0 and side * ci.high >= 0


def test_the_verdicts_interval_in_plain_cases_and_its_corners() -> None:
    # 30 users at +1, 10 at −1, 5 at +3: B preferred; shifts strictly between 0 and 1 accepted
    counts = PreferenceCounts.of(np.repeat([1, -1, 3, 0], [30, 10, 5, 20]))
    result = preference_test(counts)
    assert result.verdict == "B preferred" and result.pseudomedian_ci is not None
    assert 0.0 not in result.pseudomedian_ci and 0.5 in result.pseudomedian_ci
    # every user at −1 or −2: the test rejects every negative shift (65 users dropped at θ = −1 leave
    # the four at −2 all on one side): the verdict stands, without an interval
    one_sided = preference_test(PreferenceCounts.of(np.repeat([-2, -1], [4, 65])))
    assert one_sided.verdict == "A preferred" and one_sided.pseudomedian_ci is None
    assert one_sided.pseudomedian == -1.0
    # the estimate at a jump: 17 users at +1 and 5 at +2 give pseudo-median 1, and the test rejects
    # θ = 1 itself (17 users dropped) while accepting the gap above it: the interval (1, 1.5)
    jump = preference_test(PreferenceCounts.of(np.repeat([1, 2], [17, 5])))
    assert jump.pseudomedian == 1.0
    assert jump.pseudomedian_ci == ShiftInterval(1.0, 1.5, low_closed=False, high_closed=False)
    # few users: nothing rejects far shifts, the interval is unbounded
    few = preference_test(PreferenceCounts.of(np.array([1, 2, -1])))
    assert few.pseudomedian_ci is not None and math.isinf(few.pseudomedian_ci.low) and 0.0 in few.pseudomedian_ci
    # no interval without the values, with one user, or under the sequential test
    assert preference_test(PreferenceCounts(5, 1, 0, 4, 6)).pseudomedian_ci is None
    single = preference_test(PreferenceCounts.of(np.array([0, 0, 2])))
    assert single.pseudomedian_ci is None and single.pseudomedian_message == "one user with a preference: no interval"
    nobody = preference_test(PreferenceCounts.of(np.array([0, 0])))
    assert nobody.pseudomedian is None and nobody.pseudomedian_ci is None
    assert preference_test(counts, InterleavingSettings(sequential=True)).pseudomedian_ci is None


def test_shift_interval_membership_respects_open_ends() -> None:
    interval = ShiftInterval(0.0, 1.5, low_closed=False, high_closed=True)
    assert 0.0 not in interval and 1e-9 in interval and 1.5 in interval and 1.6 not in interval
    assert 0.0 in ShiftInterval(-math.inf, 0.0) and -1e300 in ShiftInterval(-math.inf, 0.0)
