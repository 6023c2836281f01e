"""Team-draft interleaving: merging two rankers' lists, crediting clicks, and the per-user readout.

Team draft (Radlinski, Kurup & Joachims, "How does clickthrough data reflect retrieval quality?",
CIKM 2008): the two rankers pick items for one list like captains picking teams.  In each round the
team with fewer picks so far (a coin flip on ties) adds its highest-ranked item not yet in the list,
and the position is recorded as that team's.  When one ranker has nothing left to add, the other
keeps picking until the list has ``n`` items or both are exhausted (Chapelle, Joachims, Radlinski &
Yue, ACM TOIS 2012, §3, run the same variant on lists of unequal length).

A click credits the team of the clicked position — unless it lands in the two rankers' *common
prefix*: the top positions where both rankings hold the same items in the same order.  The draft
puts exactly that prefix at the top of the merged list whatever its coins, and hands each of those
positions to A or B with probability 1/2 (a coin on the first of each round of two picks, the other
team on the second), independently of the click on it (the click on a position depends on the items
at and above it: independent per position in the demo world, top-down in a cascade).  So a click
there has expectation zero for ``credit B − credit A`` and carries no information about which ranker
is better: it is counted (``clicked_shared``) but credited to neither, which leaves the expected
credit difference unchanged and removes its noise.  (Chapelle, Joachims, Radlinski & Yue, ACM TOIS
2012, §5, and Radlinski & Craswell, WSDM 2013, note the same noise: clicks on results both rankers
agree on.)  Identical rankers share their whole list, so no click discriminates between them.

Users are the unit of analysis.  A user's *credit difference* ``d = credit B − credit A`` sums their
credited clicks over all their impressions; the sign of ``d`` makes them a win (B), a loss (A) or a
tie (including users who never clicked).  Under the null of no preference the draft's coins make
each user's ``d`` symmetric about 0 (swapping the teams of a user's positions flips its sign and is
as likely), and the fixed-horizon readout decides by the test made for exactly that null:

- the **Wilcoxon signed-rank test** of the users' ``d`` (Wilcoxon 1945; zeros dropped, midranks for
  tied ``|d|``, the normal approximation with the ties' variance correction — as
  ``scipy.stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")``).  It keeps
  how much a user prefers a side, which the sign drops, but by rank, so the few very active users
  whose large ``|d|`` dominate ``Σ d²`` (two thirds of it under the demo world's visit law) do not
  swamp it.  Measured on the demo world's rehearsals (``python -m bench interleaving-rules``): as
  many users as the t-test with one visit per user (within 1.3%), 5–12% fewer under the visit law,
  within 5% of a test told the true alternative, and a false-positive rate nearer 5% with ~20 users,
  where the t-test on such heavy tails is conservative.  It needs the users' ``d`` by value
  (``PreferenceCounts.differences``: a handful of integers, kept as counters);
- the **mean credit difference** ``mean(d)`` over all users (ties count as 0), with its one-sample
  Student t-test (Chapelle et al. 2012, §4) and t interval: it describes the size of the
  preference, and decides only for counts kept before the values were (``differences`` absent).
  With fewer than 2 users, or every user's ``d`` equal (no variance), the t statistic does not
  exist, and counts kept before the sums were are decided by the exact sign test below;
- the **preference share** ``wins / (wins + losses)`` over the users with a preference, with the exact
  two-sided sign (binomial) test (reported as ``sign_test_p_value``) and its Clopper-Pearson interval
  (``ci``, the share's; it excludes 1/2 exactly when the sign test's ``p < α``).

The interval that goes with the fixed-horizon verdict is the signed-rank test's own, inverted: the
shifts ``θ`` for which the test of ``d − θ`` over the users with a preference does not reject
(``pseudomedian_ci``, :func:`pseudomedian_test`), around the Hodges–Lehmann estimate (Hodges &
Lehmann 1963: the median of the Walsh averages).  It excludes 0 exactly when the verdict calls a
preference; the share's and the mean's intervals describe, they belong to other tests and can
disagree with the verdict near the line.

Team "A" is the control ranker and "B" the treatment: a share above 1/2, or a positive mean
difference, means users prefer B.

The sequential option is an always-valid test of the preference share (the t-test on the mean has no
always-valid form here, so the sequential readout stays on the signs): the Bernoulli likelihood ratio
against ``p = 1/2`` mixed over a ``Beta(a, a)`` prior (Robbins 1970; Lai 1976; Howard, Ramdas,
McAuliffe & Sekhon 2021, §3).  Under the null it is a nonnegative martingale with mean one, so by
Ville's inequality ``P(sup_n Λ_n ≥ 1/α) ≤ α`` exactly, for any number of looks, with no normal
approximation.  Its prior variance is tuned to the plan exactly like the normal-mixture SPRT of
:mod:`analysis.msprt` (same mixing ratio ``τ²/v_N``, from :func:`analysis.msprt.power_optimal_ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import optimize, special, stats

from analysis.msprt import TUNING_LOOKS_IF_UNKNOWN, power_optimal_ratio

Team = Literal["A", "B"]
TEAMS: tuple[Team, Team] = ("A", "B")
Interval = tuple[float, float]
Verdict = Literal["B preferred", "A preferred", "no preference detected", "no data"]


# ------------------------------------------------------------------------------------ the draft


@dataclass(frozen=True)
class InterleavedList:
    """The merged list shown to one user, and which ranker contributed each position."""

    items: tuple[Hashable, ...]
    teams: tuple[Team, ...]
    shared_prefix: int = 0  # positions [0, shared_prefix) hold the rankers' common prefix: no credit there


def common_prefix(list_a: Sequence[Hashable], list_b: Sequence[Hashable]) -> int:
    """How many top positions the two rankings agree on, item for item."""
    k = 0
    for a, b in zip(list_a, list_b, strict=False):
        if a != b:
            break
        k += 1
    return k


def team_draft(
    list_a: Sequence[Hashable], list_b: Sequence[Hashable], n: int, rng: np.random.Generator
) -> InterleavedList:
    """Team-draft interleaving of two rankings into a list of ``min(n, |A ∪ B|)`` distinct items.

    ``rng`` flips the coin on ties of team sizes; the result is a pure function of the inputs and the
    generator's state.
    """
    if n < 0:
        raise ValueError(f"the interleaved list's length must be non-negative, got {n}")
    rankings = (list_a, list_b)
    lengths = (len(list_a), len(list_b))
    n = min(n, lengths[0] + lengths[1])
    coins = rng.random(n) < 0.5  # drawn at once (one call, not one per tie): coin k is used on the k-th pick
    items: list[Hashable] = []
    teams: list[Team] = []
    taken: set[Hashable] = set()
    cursor = [0, 0]  # per team: where its highest-ranked item not yet in the list may be
    picks = [0, 0]
    while len(items) < n:
        for t in (0, 1):  # skip what the other team already added
            ranking, k, end = rankings[t], cursor[t], lengths[t]
            while k < end and ranking[k] in taken:
                k += 1
            cursor[t] = k
        open_a, open_b = cursor[0] < lengths[0], cursor[1] < lengths[1]
        if open_a and open_b:  # fewer picks first; a coin on ties
            t = int(picks[1] < picks[0]) if picks[0] != picks[1] else int(coins[len(items)])
        elif open_a or open_b:  # one ranker has nothing new left: the other fills the list
            t = 0 if open_a else 1
        else:
            break
        item = rankings[t][cursor[t]]
        items.append(item)
        teams.append(TEAMS[t])
        taken.add(item)
        picks[t] += 1
    # the draft fills the top with the common prefix whatever its coins (each team's next item is the next shared one)
    shared = min(common_prefix(list_a, list_b), len(items))
    return InterleavedList(items=tuple(items), teams=tuple(teams), shared_prefix=shared)


# ------------------------------------------------------------------------------------ one impression


@dataclass(frozen=True)
class ImpressionOutcome:
    """Clicks of one impression credited to the team of each clicked position."""

    clicked_a: tuple[int, ...]  # positions (0-based) whose click credited A
    clicked_b: tuple[int, ...]
    clicked_shared: tuple[int, ...] = ()  # clicks in the common prefix: credited to neither team

    @property
    def credit_a(self) -> int:
        return len(self.clicked_a)

    @property
    def credit_b(self) -> int:
        return len(self.clicked_b)

    @property
    def winner(self) -> Team | None:
        """The ranker with more credited clicks; ``None`` for a tie, including no click at all."""
        if self.credit_a == self.credit_b:
            return None
        return "A" if self.credit_a > self.credit_b else "B"


def credit(teams: Sequence[Team], clicked_positions: Sequence[int], shared_prefix: int = 0) -> ImpressionOutcome:
    """Credit each clicked position (0-based; repeated positions count once) to its team, except the
    positions of the rankers' common prefix (``InterleavedList.shared_prefix``), credited to neither."""
    clicked = sorted(set(clicked_positions))
    for position in clicked:
        if not 0 <= position < len(teams):
            raise ValueError(f"clicked position {position} is outside the list of {len(teams)} items")
    discriminating = [p for p in clicked if p >= shared_prefix]
    clicked_a = tuple(p for p in discriminating if teams[p] == "A")
    clicked_b = tuple(p for p in discriminating if teams[p] == "B")
    return ImpressionOutcome(clicked_a, clicked_b, tuple(p for p in clicked if p < shared_prefix))


# ------------------------------------------------------------------------------------ users


@dataclass(frozen=True)
class PreferenceCounts:
    """Users by the sign of their credit difference ``d = B − A``, the sum and sum of squares of ``d``
    over users, and how many users have each non-zero value of ``d``: the readout's sufficient statistics."""

    wins: int  # users whose clicks credited B more than A
    losses: int  # users whose clicks credited A more
    ties: int  # equal credit, including users who never clicked
    # Σ d and Σ d² over users; None when not kept (counts stored before the sums were): the sign test decides
    difference_sum: int | None = None
    difference_squares: int | None = None
    # (d, users with that d) for every non-zero d, by d; None when not kept (counts stored before the
    # values were): the t-test decides
    differences: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if (self.difference_sum is None) != (self.difference_squares is None):
            raise ValueError("the sum of the credit differences and the sum of their squares go together")
        if self.difference_squares is not None and self.difference_squares < self.decided:  # |d| ≥ 1 when decided
            raise ValueError(f"a sum of squared differences of {self.difference_squares} cannot come from "
                             f"{self.decided} users with a preference")
        if self.differences is not None:
            values = [v for v, _ in self.differences]
            if 0 in values or values != sorted(set(values)) or any(c < 0 for _, c in self.differences):
                raise ValueError(f"the users by credit difference must be distinct non-zero values in order with "
                                 f"counts >= 0, got {self.differences}")
            by_sign = (sum(c for v, c in self.differences if v > 0), sum(c for v, c in self.differences if v < 0))
            if by_sign != (self.wins, self.losses):
                raise ValueError(f"the users by credit difference count {by_sign[0]} wins and {by_sign[1]} losses, "
                                 f"the counts {self.wins} and {self.losses}")

    @classmethod
    def of(cls, differences: np.ndarray) -> PreferenceCounts:
        """From the users' credit differences ``d = B − A`` (integers, one per user)."""
        d = np.asarray(differences, dtype=np.int64)
        values, users = np.unique(d[d != 0], return_counts=True)
        return cls(int((d > 0).sum()), int((d < 0).sum()), int((d == 0).sum()), int(d.sum()), int((d * d).sum()),
                   tuple(zip(values.tolist(), users.tolist(), strict=True)))

    def signed_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Users with ``d = +k`` and with ``d = −k`` for ``k = 1 … max |d|`` (``differences`` must be kept)."""
        if self.differences is None:
            raise ValueError("the users by credit difference were not kept")
        top = max((abs(v) for v, _ in self.differences), default=0)
        plus, minus = np.zeros(max(top, 1), dtype=np.int64), np.zeros(max(top, 1), dtype=np.int64)
        for value, users in self.differences:
            (plus if value > 0 else minus)[abs(value) - 1] += users
        return plus, minus

    @property
    def users(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def decided(self) -> int:
        return self.wins + self.losses


def preference_counts(
    users: Sequence[Hashable] | np.ndarray, credit_a: np.ndarray, credit_b: np.ndarray
) -> PreferenceCounts:
    """Sum each user's credits over their impressions: the signs of ``B − A`` and its sums."""
    a = np.asarray(credit_a, dtype=float)
    b = np.asarray(credit_b, dtype=float)
    if not (len(users) == a.size == b.size):
        raise ValueError(f"users, credit_a and credit_b differ in length: {len(users)}, {a.size}, {b.size}")
    if a.size == 0:
        return PreferenceCounts(0, 0, 0)
    _, user_index = np.unique(np.asarray(users), return_inverse=True)
    diff = np.bincount(user_index.ravel(), weights=b - a)
    return PreferenceCounts.of(np.rint(diff))


@dataclass(frozen=True)
class PositionCredit:
    """One row of the per-position credit table."""

    position: int
    shown_a: int  # impressions where A contributed this position
    shown_b: int
    clicks_a: int  # clicks on this position credited to A
    clicks_b: int


def position_credit(
    teams: Sequence[Sequence[Team]], outcomes: Sequence[ImpressionOutcome]
) -> tuple[PositionCredit, ...]:
    """Per position: how often each team filled it and how many clicks it earned there."""
    if len(teams) != len(outcomes):
        raise ValueError(f"{len(teams)} team lists for {len(outcomes)} outcomes")
    depth = max((len(t) for t in teams), default=0)
    shown = {"A": np.zeros(depth, dtype=int), "B": np.zeros(depth, dtype=int)}
    clicks = {"A": np.zeros(depth, dtype=int), "B": np.zeros(depth, dtype=int)}
    for team_list, outcome in zip(teams, outcomes, strict=True):
        for position, team in enumerate(team_list):
            shown[team][position] += 1
        np.add.at(clicks["A"], list(outcome.clicked_a), 1)
        np.add.at(clicks["B"], list(outcome.clicked_b), 1)
    return tuple(
        PositionCredit(k, int(shown["A"][k]), int(shown["B"][k]), int(clicks["A"][k]), int(clicks["B"][k]))
        for k in range(depth)
    )


# ------------------------------------------------------------------------------------ the tests


def sign_test_p_value(wins: int | np.ndarray, decided: int | np.ndarray) -> np.ndarray:
    """Two-sided exact binomial (sign) test of a share of 1/2: twice the smaller tail, capped at 1.

    Vectorised over arrays of experiments; equals ``scipy.stats.binomtest(wins, decided).pvalue``.
    """
    k = np.asarray(wins, dtype=float)
    n = np.asarray(decided, dtype=float)
    tail = np.minimum(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5))
    return np.where(n > 0, np.minimum(1.0, 2.0 * tail), 1.0)


@dataclass(frozen=True)
class MeanDifference:
    """The one-sample t-test of the mean credit difference, vectorised over experiments."""

    mean: np.ndarray  # mean d over users
    se: np.ndarray  # its standard error (0 where undefined)
    df: np.ndarray  # users − 1
    p_value: np.ndarray  # two-sided; NaN where the t statistic does not exist (< 2 users or no variance)

    def ci(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        half = stats.t.ppf(1.0 - alpha / 2.0, np.maximum(self.df, 1)) * self.se
        return self.mean - half, self.mean + half


def mean_difference_test(
    difference_sum: int | np.ndarray, difference_squares: int | np.ndarray, users: int | np.ndarray
) -> MeanDifference:
    """Student's one-sample t-test of ``mean(d) = 0`` from the sums of ``d`` and ``d²`` over ``users``;
    equals ``scipy.stats.ttest_1samp(d, 0)`` where that exists."""
    total = np.asarray(difference_sum, dtype=float)
    squares = np.asarray(difference_squares, dtype=float)
    n = np.asarray(users, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / n, 0.0)
        variance = np.where(n > 1, np.maximum(squares - n * mean**2, 0.0) / (n - 1), 0.0)
        se = np.sqrt(variance / np.maximum(n, 1))
        defined = (n > 1) & (variance > 1e-12 * np.maximum(mean**2, 1.0))
        t = np.where(defined, mean / np.where(defined, se, 1.0), 0.0)
    p = np.where(defined, 2.0 * stats.t.sf(np.abs(t), np.maximum(n - 1, 1)), np.nan)
    return MeanDifference(mean, np.where(defined, se, 0.0), n - 1, p)


@dataclass(frozen=True)
class SignedRank:
    """The Wilcoxon signed-rank test of the users' credit differences, vectorised over experiments."""

    statistic: np.ndarray  # W+: the sum of the ranks of |d| over users with d > 0 (midranks for ties)
    z: np.ndarray  # (W+ − E W+) / sd W+ under the null
    p_value: np.ndarray  # two-sided; NaN where no user has a preference


def signed_rank_test(plus: np.ndarray, minus: np.ndarray) -> SignedRank:
    """Wilcoxon's signed-rank test from the users with ``d = +k`` (``plus[..., k−1]``) and with
    ``d = −k`` (``minus[..., k−1]``): users with ``d = 0`` dropped, midranks for tied ``|d|``, the
    normal approximation with the ties' correction of the variance and no continuity correction.
    Equals ``scipy.stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")``."""
    pos = np.asarray(plus, dtype=float)
    neg = np.asarray(minus, dtype=float)
    tied = pos + neg  # users per |d| = k
    n = tied.sum(axis=-1)
    midrank = np.cumsum(tied, axis=-1) - (tied - 1.0) / 2.0
    w_plus = (midrank * pos).sum(axis=-1)
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - (tied**3 - tied).sum(axis=-1) / 48.0
    defined = variance > 0  # as soon as one user has a preference
    z = np.where(defined, (w_plus - n * (n + 1) / 4.0) / np.sqrt(np.where(defined, variance, 1.0)), 0.0)
    return SignedRank(w_plus, z, np.where(defined, 2.0 * special.ndtr(-np.abs(z)), np.nan))


def signed_counts(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Users with ``d = +k`` and with ``d = −k``, ``k = 1 … max |d|``, along a new last axis: the rows
    (last axis: users) of integer credit differences as :func:`signed_rank_test` reads them."""
    d = np.asarray(differences, dtype=np.int64)
    top = max(int(np.abs(d).max(initial=0)), 1)
    rows = d.reshape(-1, d.shape[-1]) if d.ndim else d.reshape(1, 1)
    width = 2 * top + 1  # d = −top … top
    index = (np.arange(rows.shape[0])[:, None] * width + rows + top).ravel()
    counts = np.bincount(index, minlength=rows.shape[0] * width).reshape(*d.shape[:-1], width)
    return counts[..., top + 1:], counts[..., top - 1::-1]


def preference_p_values(
    wins: int | np.ndarray, losses: int | np.ndarray, test: MeanDifference, signed_rank: SignedRank | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-horizon decision's p-value and direction (+1 B, −1 A, 0 none), vectorised over
    experiments: the signed-rank test of the credit differences; for counts kept before their values
    were (``signed_rank`` None), ``test``'s t-test of the mean credit difference, or the exact sign
    test of the wins and losses where the t statistic does not exist.  The one rule
    :func:`preference_test` and the rehearsals decide by."""
    w, lo = np.asarray(wins), np.asarray(losses)
    if signed_rank is not None:
        defined = ~np.isnan(signed_rank.p_value)
        return (np.where(defined, signed_rank.p_value, 1.0),
                np.where(defined, np.sign(signed_rank.z), 0).astype(int))
    use_t = ~np.isnan(test.p_value)
    p = np.where(use_t, test.p_value, sign_test_p_value(w, w + lo))
    direction = np.where(use_t, np.sign(test.mean), np.sign(w - lo)).astype(int)
    return p, direction


def clopper_pearson(wins: int, decided: int, alpha: float) -> Interval:
    """Exact (Clopper-Pearson 1934) two-sided ``1 - alpha`` interval of a binomial proportion."""
    lower = 0.0 if wins == 0 else float(special.betaincinv(wins, decided - wins + 1, alpha / 2))
    upper = 1.0 if wins == decided else float(special.betaincinv(wins + 1, decided - wins, 1 - alpha / 2))
    return (lower, upper)


def beta_mixture_log_lr(
    wins: int | np.ndarray, decided: int | np.ndarray, a: float, null: float | np.ndarray = 0.5
) -> np.ndarray:
    """log of the ``Beta(a, a)``-mixture likelihood ratio of ``wins`` out of ``decided`` against share ``null``."""
    k = np.asarray(wins, dtype=float)
    n = np.asarray(decided, dtype=float)
    p0 = np.asarray(null, dtype=float)
    with np.errstate(divide="ignore"):
        null_log_lik = special.xlogy(k, p0) + special.xlog1py(n - k, -p0)
    return special.betaln(a + k, a + n - k) - special.betaln(a, a) - null_log_lik


def always_valid_p_values(wins: np.ndarray, decided: np.ndarray, a: float) -> np.ndarray:
    """Always-valid p-values along the last axis (looks): the running minimum of ``min(1, 1/Λ)``."""
    p = np.minimum(1.0, np.exp(-beta_mixture_log_lr(wins, decided, a)))
    return np.minimum.accumulate(p, axis=-1)


def beta_prior_for_plan(planned_users: int, looks: int | None, alpha: float, power: float) -> float:
    """``a`` of the ``Beta(a, a)`` mixture, with the variance the mSPRT's tuning gives.

    The plan's N counts users with a preference.  The effect assumed is the one a fixed sign test of
    N users detects with ``power`` (drift ``z_{1-α/2} + z_power``); :func:`power_optimal_ratio` turns it
    into ``τ²/v_N``, with ``v_N = 1/(4N)`` the variance of the share under the null, and a
    ``Beta(a, a)`` has variance ``1/(4(2a + 1))``.
    """
    drift = float(special.ndtri(1.0 - alpha / 2.0) + special.ndtri(power))
    ratio = power_optimal_ratio(drift, looks or TUNING_LOOKS_IF_UNKNOWN, alpha)
    tau2 = ratio / (4.0 * planned_users)
    return max((1.0 / (4.0 * tau2) - 1.0) / 2.0, 1e-3)


def confidence_sequence(wins: int, decided: int, a: float, alpha: float) -> Interval:
    """``{p : Λ(p) < 1/α}``: the shares the mixture test does not reject at this look.

    ``Λ(p)`` is smallest at the observed share (where it is at most 1), and grows to infinity towards a
    bound the data exclude, so each end is one root.
    """
    if not 0 <= wins <= decided or decided < 1:
        raise ValueError(f"a confidence sequence needs 0 <= wins <= decided and decided >= 1, got {wins}, {decided}")
    threshold = math.log(1.0 / alpha)
    share = wins / decided

    def excess(p: float) -> float:
        return float(beta_mixture_log_lr(wins, decided, a, p)) - threshold

    eps = 1e-12
    lower = 0.0 if wins == 0 or excess(eps) < 0 else optimize.brentq(excess, eps, share, xtol=1e-10)
    upper = 1.0 if wins == decided or excess(1 - eps) < 0 else optimize.brentq(excess, share, 1 - eps, xtol=1e-10)
    return (float(lower), float(upper))


# ------------------------------------------------------------------------------------ the size of the preference


@dataclass(frozen=True)
class ShiftInterval:
    """Shifts ``θ`` of the credit differences from ``low`` to ``high`` (``±inf``: unbounded), each end
    included or not: the signed-rank test accepts the shifts of an open gap between two Walsh averages
    but may reject the Walsh average that ends it, so an end can be open."""

    low: float
    high: float
    low_closed: bool = True
    high_closed: bool = True

    def __contains__(self, theta: float) -> bool:
        above = theta > self.low or (self.low_closed and theta == self.low)
        below = theta < self.high or (self.high_closed and theta == self.high)
        return above and below


@dataclass(frozen=True)
class PseudoMedian:
    """The Hodges–Lehmann estimate of the credit differences and the interval that inverts the
    verdict's signed-rank test (``interval`` None with ``message`` when there is none)."""

    estimate: float | None
    interval: ShiftInterval | None
    message: str | None = None


def _nonzero_values(differences: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    kept = [(v, c) for v, c in differences if c > 0]
    return (np.array([v for v, _ in kept], dtype=np.int64), np.array([c for _, c in kept], dtype=np.int64))


def walsh_averages(values: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct Walsh averages ``(d_i + d_j) / 2``, ``i ≤ j``, of the users with ``users[k]`` at
    ``values[k]``, in order, and how many pairs give each: the multiset has ``N(N + 1)/2`` members."""
    a, b = np.triu_indices(values.size)
    pairs = np.where(a == b, users[a] * (users[a] + 1) // 2, users[a] * users[b])
    sums, index = np.unique(values[a] + values[b], return_inverse=True)
    return sums / 2.0, np.bincount(index.ravel(), weights=pairs).astype(np.int64)


def hodges_lehmann(values: np.ndarray, users: np.ndarray) -> float:
    """The pseudo-median (Hodges & Lehmann 1963): the median of the Walsh averages, the mean of the
    two middle ones when their number is even (as ``numpy.median`` of them all)."""
    averages, pairs = walsh_averages(values, users)
    total = int(pairs.sum())
    cumulative = np.cumsum(pairs)
    low = averages[np.searchsorted(cumulative, (total + 1) // 2)]  # the ((M+1)//2)-th, 1-based
    high = averages[np.searchsorted(cumulative, total // 2 + 1)]
    return float((low + high) / 2.0)


def shifted_signed_rank(values: np.ndarray, users: np.ndarray, quarter_shifts: np.ndarray) -> SignedRank:
    """:func:`signed_rank_test` of ``d − θ`` for each ``θ = quarter_shifts / 4`` (integers: Walsh
    averages are halves, the midpoints between them quarters), users with ``d = θ`` dropped as at
    ``θ = 0``.  Per shift, the users at each value are counted at the dense rank of ``|d − θ|`` among
    that shift's values (equal ``|d − θ|`` share one, so ties stay ties): only the order of ``|d − θ|``
    enters the ranks, and the width stays the number of values however large the differences are."""
    shifted = 4 * values[None, :] - np.asarray(quarter_shifts, dtype=np.int64)[:, None]
    size = np.abs(shifted)
    order = np.argsort(size, axis=1, kind="stable")
    ordered = np.take_along_axis(size, order, axis=1)
    dense = np.zeros_like(ordered)
    dense[:, 1:] = np.cumsum(np.diff(ordered, axis=1) > 0, axis=1)  # the dense rank of each sorted |d − θ|
    rank = np.empty_like(dense)
    np.put_along_axis(rank, order, dense, axis=1)
    row = np.broadcast_to(np.arange(shifted.shape[0])[:, None], shifted.shape)
    weight = np.broadcast_to(users[None, :], shifted.shape).astype(float)
    plus = np.zeros(shifted.shape)
    minus = np.zeros(shifted.shape)
    np.add.at(plus, (row[shifted > 0], rank[shifted > 0]), weight[shifted > 0])  # users at d = θ: in neither
    np.add.at(minus, (row[shifted < 0], rank[shifted < 0]), weight[shifted < 0])
    return signed_rank_test(plus, minus)


def pseudomedian_test(counts: PreferenceCounts, alpha: float) -> PseudoMedian:
    """The Hodges–Lehmann estimate of the users' credit differences and the ``1 − α`` interval that
    inverts the verdict's own signed-rank test, over the users with a preference (``d ≠ 0``).

    The interval is the set of shifts ``θ`` for which :func:`signed_rank_test` of ``d − θ`` (users
    with ``d = θ`` dropped, as users with ``d = 0`` are at ``θ = 0``) has ``p ≥ α``.  The statistic
    only changes at the Walsh averages, so it is evaluated at each of them and once in each gap
    between (and beyond) them: the acceptance set exactly, as points and open gaps.  It is not
    always an interval — at a Walsh average the tied and dropped users make the statistic jump, so
    on lattice data like click counts a point can be rejected between accepted gaps — and the
    reported interval is its hull, with two rules that keep it from contradicting the verdict:

    - when ``θ = 0`` is rejected (the verdict calls a preference), only the accepted shifts on the
      verdict's side of 0 count, so 0 is outside however the set looks around it (an end at 0 is
      then open: the gap next to it is accepted, 0 is not);
    - when no shift on that side is accepted (few distinct values, the test rejecting every shift)
      there is no interval: ``None`` with a message, the verdict stands.

    So ``0 ∈ interval`` exactly when the verdict finds no preference.  The population is the users
    with a preference: with the ties in (most users never click), the pseudo-median would be 0 and
    the shifted tests would reject every ``θ ≠ 0`` on the ties alone.
    """
    if counts.differences is None:
        return PseudoMedian(None, None, "the users' credit differences by value were not kept")
    values, users = _nonzero_values(counts.differences)
    if users.sum() == 0:
        return PseudoMedian(None, None, "no user with a preference")
    if users.sum() == 1:
        return PseudoMedian(None, None, "one user with a preference: no interval")
    estimate = hodges_lehmann(values, users)
    averages, _ = walsh_averages(values, users)
    points = (4 * averages).astype(np.int64)  # Walsh averages in quarters: even integers
    gaps = np.concatenate([[points[0] - 2], (points[:-1] + points[1:]) // 2, [points[-1] + 2]])
    accepted_point = ~(shifted_signed_rank(values, users, points).p_value < alpha)  # NaN (all dropped): kept
    accepted_gap = ~(shifted_signed_rank(values, users, gaps).p_value < alpha)
    # elements in order: gap 0, point 0, gap 1, …, point m−1, gap m; each as (low, high, closed)
    ends = np.concatenate([[-np.inf], averages, [np.inf]])
    elements = [(float(ends[0]), float(ends[1]), False, bool(accepted_gap[0]))]
    for k in range(points.size):
        elements += [(float(averages[k]), float(averages[k]), True, bool(accepted_point[k])),
                     (float(ends[k + 1]), float(ends[k + 2]), False, bool(accepted_gap[k + 1]))]
    zero = shifted_signed_rank(values, users, np.zeros(1, dtype=np.int64))
    if zero.p_value[0] < alpha:  # the verdict's preference: its side of 0 only
        side = float(np.sign(zero.z[0]))
        elements = [e for e in elements if side * e[0] >= 0 and side * e[1] >= 0 and (e[0], e[1]) != (0.0, 0.0)]
    kept = [e for e in elements if e[3]]
    if not kept:
        return PseudoMedian(estimate, None, "the signed-rank test rejects every shift on the verdict's side of 0 "
                                            "(too few distinct credit differences)")
    first, last = kept[0], kept[-1]
    return PseudoMedian(estimate, ShiftInterval(float(first[0]), float(last[1]), first[2], last[2]))


# ------------------------------------------------------------------------------------ the readout


@dataclass(frozen=True)
class InterleavingSettings:
    alpha: float = 0.05
    sequential: bool = False
    planned_users: int | None = None  # users with a preference the sequential test is tuned to
    looks: int | None = None
    power: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if not 0 < self.power < 1:
            raise ValueError(f"power must be between 0 and 1, got {self.power}")
        if self.planned_users is not None and self.planned_users < 1:
            raise ValueError(f"planned users must be at least 1, got {self.planned_users}")
        if self.looks is not None and not 1 <= self.looks <= 1000:
            raise ValueError(f"looks must be between 1 and 1000, got {self.looks}")


Method = Literal["Wilcoxon signed-rank test of the credit differences", "t-test of the mean credit difference",
                 "exact sign test", "beta-mixture SPRT"]
SIGNED_RANK: Method = "Wilcoxon signed-rank test of the credit differences"
T_TEST: Method = "t-test of the mean credit difference"


@dataclass(frozen=True)
class InterleavingResult:
    """The interleaving readout.  ``p_value`` and ``verdict`` are the deciding test's (``method``): the
    signed-rank test of the credit differences (for counts kept before their values: the t-test of
    the mean credit difference, or the exact sign test where that does not exist), or the
    always-valid sign test when sequential.  ``ci`` is the preference share's interval —
    Clopper-Pearson (exact), or the confidence sequence when sequential; ``mean_difference_ci`` the
    mean credit difference's t interval (fixed horizon only), whose test is ``t_test_p_value``.
    ``pseudomedian_ci`` is the interval that goes with the fixed-horizon verdict: the inversion of
    the same signed-rank test (:func:`pseudomedian_test`), excluding 0 exactly when the verdict calls
    a preference; ``pseudomedian`` its Hodges–Lehmann estimate (fixed horizon, values kept only)."""

    counts: PreferenceCounts
    alpha: float
    method: Method
    preference_share: float | None = None  # share of decided users preferring B
    ci: Interval | None = None
    p_value: float | None = None
    verdict: Verdict = "no data"
    sign_test_p_value: float | None = None  # the exact sign test's (fixed horizon), whatever decides
    t_test_p_value: float | None = None  # the mean credit difference's t-test (fixed horizon), whatever decides
    mean_difference: float | None = None  # mean over all users of credit B − credit A
    mean_difference_ci: Interval | None = None
    beta_prior: float | None = None  # a of the Beta(a, a) mixture, sequential only
    pseudomedian: float | None = None  # Hodges–Lehmann estimate of d over users with a preference
    pseudomedian_ci: ShiftInterval | None = None  # the signed-rank test inverted: the verdict's interval
    pseudomedian_message: str | None = None  # why there is no estimate or interval
    positions: tuple[PositionCredit, ...] = field(default_factory=tuple)
    message: str | None = None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha


def preference_test(
    counts: PreferenceCounts,
    settings: InterleavingSettings | None = None,
    positions: tuple[PositionCredit, ...] = (),
) -> InterleavingResult:
    """Preference share, interval, p-value and verdict from the per-user counts.

    Degenerate inputs (no user yet, no user with a preference) come back as a message, never raise.
    """
    settings = settings or InterleavingSettings()
    # without the sums (counts kept before them) the t statistic is as undefined as with one user
    test = mean_difference_test(counts.difference_sum or 0, counts.difference_squares or 0,
                                counts.users if counts.difference_squares is not None else 0)
    signed_rank = signed_rank_test(*counts.signed_counts()) if counts.differences is not None else None
    method: Method = (
        "beta-mixture SPRT" if settings.sequential else SIGNED_RANK if signed_rank is not None
        else T_TEST if not np.isnan(test.p_value) else "exact sign test"
    )
    base = InterleavingResult(counts=counts, alpha=settings.alpha, method=method, positions=positions)
    if counts.users == 0:
        return replace(base, message="no users yet")
    if counts.decided == 0:
        message = (
            f"none of the {counts.users} users credited one ranker more than the other "
            "(all ties or no clicks): no preference to test"
        )
        return replace(base, verdict="no preference detected", message=message)
    share = counts.wins / counts.decided
    sign_p = float(sign_test_p_value(counts.wins, counts.decided))
    mean_ci = None
    beta_prior = None
    size = PseudoMedian(None, None, "the sequential test decides by the signs")
    if settings.sequential:
        planned = settings.planned_users or counts.decided
        beta_prior = beta_prior_for_plan(planned, settings.looks, settings.alpha, settings.power)
        p_value = float(always_valid_p_values(np.array([counts.wins]), np.array([counts.decided]), beta_prior)[0])
        ci = confidence_sequence(counts.wins, counts.decided, beta_prior, settings.alpha)
        direction = 1 if share > 0.5 else -1
    else:
        p, sign = preference_p_values(counts.wins, counts.losses, test, signed_rank)
        p_value, direction = float(p), int(sign)
        ci = clopper_pearson(counts.wins, counts.decided, settings.alpha)
        if not np.isnan(test.p_value):
            low, high = test.ci(settings.alpha)
            mean_ci = (float(low), float(high))
        size = pseudomedian_test(counts, settings.alpha)
    verdict: Verdict = "no preference detected"
    if p_value < settings.alpha and direction != 0:
        verdict = "B preferred" if direction > 0 else "A preferred"
    mean = float(test.mean) if counts.difference_sum is not None else None
    t_p = None if np.isnan(test.p_value) or settings.sequential else float(test.p_value)
    return replace(base, preference_share=share, ci=ci, p_value=p_value, verdict=verdict, beta_prior=beta_prior,
                   sign_test_p_value=sign_p, t_test_p_value=t_p, mean_difference=mean, mean_difference_ci=mean_ci,
                   pseudomedian=size.estimate, pseudomedian_ci=size.interval, pseudomedian_message=size.message)


def interleaving_readout(
    users: Sequence[Hashable],
    teams: Sequence[Sequence[Team]],
    outcomes: Sequence[ImpressionOutcome],
    settings: InterleavingSettings | None = None,
) -> InterleavingResult:
    """The full readout from the impression log: one ``(user, teams, outcome)`` per impression."""
    counts = preference_counts(
        list(users),
        np.array([o.credit_a for o in outcomes], dtype=float),
        np.array([o.credit_b for o in outcomes], dtype=float),
    )
    return preference_test(counts, settings, position_credit(teams, outcomes))
