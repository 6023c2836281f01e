"""Team-draft interleaving: the draft's properties (hypothesis), crediting, the sign test and its exact
interval against scipy, the always-valid mixture test against numeric integration and by simulation,
A/A calibration, and detection against an absolute-CTR A/B test on a simulated click model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from analysis.interleaving import (
    InterleavingSettings,
    PreferenceCounts,
    always_valid_p_values,
    beta_mixture_log_lr,
    beta_prior_for_plan,
    clopper_pearson,
    confidence_sequence,
    credit,
    interleaving_readout,
    position_credit,
    preference_counts,
    preference_test,
    sign_test_p_value,
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


def test_users_are_the_unit_their_credit_summed_over_impressions() -> None:
    users = ["u1", "u1", "u2", "u3", "u3", "u4"]
    credit_a = np.array([1, 0, 0, 2, 0, 0])
    credit_b = np.array([0, 1, 1, 0, 1, 0])
    # u1: 1-1 tie; u2: B; u3: A 2-1; u4: no click
    assert preference_counts(users, credit_a, credit_b) == PreferenceCounts(wins=1, losses=1, ties=2)
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


# ------------------------------------------------------------------------------------ the fixed test


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
    assert result.counts == PreferenceCounts(70, 20, 10)
    assert result.preference_share == pytest.approx(70 / 90)
    assert result.p_value == pytest.approx(stats.binomtest(70, 90).pvalue)
    assert result.verdict == "B preferred" and result.significant
    assert result.positions[1].clicks_b == 70 and result.positions[0].clicks_a == 20
    flipped = preference_test(PreferenceCounts(20, 70, 10))
    assert flipped.verdict == "A preferred"
    assert preference_test(PreferenceCounts(48, 52, 0)).verdict == "no preference detected"


def test_degenerate_readouts_are_messages_not_exceptions() -> None:
    empty = preference_test(PreferenceCounts(0, 0, 0))
    assert empty.message == "no users yet" and empty.p_value is None and empty.verdict == "no data"
    ties = preference_test(PreferenceCounts(0, 0, 12))
    assert ties.p_value is None and "no preference to test" in (ties.message or "")
    unanimous = preference_test(PreferenceCounts(5, 0, 0), InterleavingSettings(sequential=True))
    assert unanimous.ci is not None and unanimous.ci[1] == 1.0 and unanimous.p_value is not None
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
    """One impression per user: the two rankers' lists team-drafted to 10 items, clicks credited."""
    list_a = world.ranking(rng, noise_a)
    list_b = list_a if same_ranker else world.ranking(rng, noise_b)
    users = np.arange(list_a.shape[0])
    merged = [team_draft(a, b, 10, rng) for a, b in zip(list_a.tolist(), list_b.tolist(), strict=True)]
    clicks = world.clicks(rng, users, np.array([m.items for m in merged]))
    outcomes = [credit(m.teams, np.flatnonzero(c).tolist()) for m, c in zip(merged, clicks, strict=True)]
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


def test_identical_rankers_a_a_calibration() -> None:
    """Same ranker on both sides: the preference share is 1/2 and the sign test's false-positive rate is
    near its level (the exact test is a little conservative) over 1,000 simulated experiments."""
    rng = np.random.default_rng(16)
    experiments, users = 1000, 300
    wins = np.zeros(experiments, dtype=int)
    decided = np.zeros(experiments, dtype=int)
    for e in range(experiments):
        world = ClickWorld.draw(rng, users)
        counts = _interleaving_counts(rng, world, 0.2, 0.2, same_ranker=True)
        wins[e], decided[e] = counts.wins, counts.decided
    share = wins.sum() / decided.sum()
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / decided.sum())
    false_positives = (sign_test_p_value(wins, decided) < 0.05).mean()
    assert 0.03 <= false_positives <= 0.07


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
