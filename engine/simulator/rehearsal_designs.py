"""A/B and interleaving rehearsed on ground truth: click draws and decisions, vectorised over rehearsals.

Pure: the inputs are each user's lists as the world's click law sees them — the probability of a
click on the item at every position — computed once per (user, ranker) by
:mod:`engine.simulator.rehearsal`.  Many rehearsals then cost only random numbers:

- **A/B.**  Users are split in two halves at random (the first half of a random draw is control);
  each user sees their arm's list on ``visits`` visits.  A click on each shown position is an
  independent Bernoulli of its probability (the demo world's law: examination × attractiveness,
  independent across positions), so a user's clicks over their visits follow the Poisson-binomial
  law of their list repeated ``visits`` times: one uniform number per user, inverted through that
  law's CDF, draws the same count as one Bernoulli per shown position.  The metric is clicks per
  user, tested by the project's Welch t (:func:`analysis.frequentist.welch_ttest`, relative lift).
- **Interleaving.**  Each user sees a team-draft merge of the two lists on each visit (one of the
  user's precomputed drafts, drawn at random), clicks are drawn per position, credited to the team
  that contributed the position unless it lies in the two lists' common prefix (credited to
  neither, as :func:`analysis.interleaving.credit` does), summed over the user's visits, and the
  decision is :func:`analysis.interleaving.preference_p_values`' — the Wilcoxon signed-rank test of
  the users' credit differences, the rule :func:`analysis.interleaving.preference_test` decides by.

Team "A"/control and "B"/treatment as in :mod:`analysis.interleaving`.  A decision's ``direction``
is +1 when the treatment is significantly better, −1 when the control is, 0 when not significant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.frequentist import FrequentistResult, FrequentistSettings, welch_ttest
from analysis.interleaving import (
    PreferenceCounts,
    mean_difference_test,
    preference_p_values,
    signed_counts,
    signed_rank_test,
)
from analysis.stats import SampleStats

Design = Literal["ab", "interleaving"]
DESIGNS: tuple[Design, ...] = ("ab", "interleaving")
# random numbers drawn at once: bounds the temporaries of one chunk of rehearsals at ~100 MB
CHUNK_DRAWS = 4_000_000
# team-draft merges precomputed per user when visits vary: each visit shows one of them, drawn at random
DRAFTS = 16


@dataclass(frozen=True)
class ListClicks:
    """One ranker's lists for a pool of users: ``probability[u, k]`` = P(click) at position k (0 past the end)."""

    probability: np.ndarray  # (users, positions)

    @property
    def expected_clicks(self) -> np.ndarray:
        """Per user: the expected clicks of one view of their list (the truth's per-user value)."""
        return self.probability.sum(axis=1)


@dataclass(frozen=True)
class Interleavings:
    """Team-draft merges of two rankers' lists, several per user (the draft's coin flips differ)."""

    probability: np.ndarray  # (users, drafts, positions): P(click) of the merged list's item there
    team_b: np.ndarray  # (users, drafts, positions) bool: position filled by B (treatment); False past the end
    shared_prefix: np.ndarray  # (users, drafts) int: the top positions holding both lists' common prefix

    @property
    def drafts(self) -> int:
        return int(self.probability.shape[1])


@dataclass(frozen=True)
class Decisions:
    """The outcome of many rehearsals of one design: arrays over rehearsals."""

    p_value: np.ndarray
    significant: np.ndarray  # bool
    direction: np.ndarray  # +1 treatment better, -1 control better, 0 not significant

    @property
    def rehearsals(self) -> int:
        return int(self.p_value.size)

    @classmethod
    def concatenate(cls, parts: list[Decisions]) -> Decisions:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("p_value", "significant", "direction")))


# ------------------------------------------------------------------------------------------ A/B


def click_count_cdf(lists: ListClicks, visits: int) -> np.ndarray:
    """Per user, the CDF of their total clicks over ``visits`` views of their list (Poisson-binomial).

    Shape ``(users, positions · visits + 1)``; built by convolving one Bernoulli at a time.
    """
    if visits < 1:
        raise ValueError(f"visits must be at least 1, got {visits}")
    p = lists.probability
    users, positions = p.shape
    pmf = np.zeros((users, positions * visits + 1))
    pmf[:, 0] = 1.0
    top = 0
    for _ in range(visits):
        for k in range(positions):
            q = p[:, k : k + 1]
            shifted = pmf[:, : top + 1] * q
            pmf[:, : top + 1] *= 1.0 - q
            pmf[:, 1 : top + 2] += shifted
            top += 1
    cdf = np.cumsum(pmf, axis=1)
    cdf[:, -1] = 1.0  # rounding never leaves a uniform above the last step
    return cdf


def draw_clicks(cdf: np.ndarray, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Total clicks of each user in ``users`` (pool indices, any shape), by inverting their CDF."""
    u = rng.random(users.shape)
    return (u[..., None] >= cdf[users][..., :-1]).sum(axis=-1)


def ab_clicks(
    cdf_c: np.ndarray, cdf_t: np.ndarray, users: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks per user of rehearsals ``users`` (rehearsals × users, drawn at random): the first half
    of each row is control, the rest treatment."""
    half = users.shape[-1] // 2
    return draw_clicks(cdf_c, users[..., :half], rng), draw_clicks(cdf_t, users[..., half:], rng)


def ab_test(clicks_c: np.ndarray, clicks_t: np.ndarray, alpha: float) -> FrequentistResult:
    """The A/B readout of one rehearsal: clicks per user, Welch t on the relative lift."""
    return welch_ttest(SampleStats.from_values(clicks_c), SampleStats.from_values(clicks_t),
                       FrequentistSettings(alpha=alpha))


def ab_decisions(clicks_c: np.ndarray, clicks_t: np.ndarray, alpha: float) -> Decisions:
    """Decisions of rehearsals given row-wise: the same Welch test as :func:`ab_test`, from each row's sums."""
    n_c, n_t = clicks_c.shape[-1], clicks_t.shape[-1]
    sums = np.stack([clicks_c.sum(-1), (clicks_c.astype(float) ** 2).sum(-1),
                     clicks_t.sum(-1), (clicks_t.astype(float) ** 2).sum(-1)], axis=-1).tolist()
    settings = FrequentistSettings(alpha=alpha)
    p_values, directions = [], []
    for s_c, q_c, s_t, q_t in sums:
        result = welch_ttest(SampleStats(n_c, s_c, q_c), SampleStats(n_t, s_t, q_t), settings)
        p_values.append(1.0 if result.p_value is None else result.p_value)
        directions.append(_direction(result.significant, result.lift_abs or 0.0))
    p = np.asarray(p_values)
    return Decisions(p, p < alpha, np.asarray(directions, dtype=int))


def _direction(significant: bool, effect: float) -> int:
    return int(np.sign(effect)) if significant else 0


# ------------------------------------------------------------------------------------------ interleaving


def interleaving_credits(
    merged: Interleavings, users: np.ndarray, drafts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Credits of A and of B per user, summed over visits.

    ``users``: pool indices, shape ``(..., users)``; ``drafts``: which of the user's merges each visit
    showed, shape ``(..., users, visits)``.
    """
    probability = merged.probability[users[..., None], drafts]  # (..., users, visits, positions)
    team_b = merged.team_b[users[..., None], drafts]
    shared = merged.shared_prefix[users[..., None], drafts]
    click = rng.random(probability.shape) < probability
    click &= np.arange(probability.shape[-1]) >= shared[..., None]  # the common prefix credits neither team
    credit_b = (click & team_b).sum(axis=(-1, -2))
    credit_a = click.sum(axis=(-1, -2)) - credit_b
    return credit_a, credit_b


def preference_counts_of(credit_a: np.ndarray, credit_b: np.ndarray) -> PreferenceCounts:
    """One rehearsal's users' counts and sums (per-user credits already summed over visits)."""
    return PreferenceCounts.of(np.asarray(credit_b) - np.asarray(credit_a))


def interleaving_decisions(credit_a: np.ndarray, credit_b: np.ndarray, alpha: float) -> Decisions:
    """Decisions of rehearsals given row-wise: the readout's rule, from each row's counts by value."""
    d = np.asarray(credit_b, dtype=np.int64) - np.asarray(credit_a, dtype=np.int64)
    test = mean_difference_test(d.sum(-1), (d * d).sum(-1), d.shape[-1])
    p, direction = preference_p_values((d > 0).sum(-1), (d < 0).sum(-1), test, signed_rank_test(*signed_counts(d)))
    significant = p < alpha
    return Decisions(p, significant, np.where(significant, direction, 0).astype(int))


# ------------------------------------------------------------------------------------------ many rehearsals


@dataclass(frozen=True)
class VisitLaw:
    """How often each pool user visits during an experiment: ``Poisson(rate[u])`` visits, and a user who
    never visits never enrols.  A rehearsal's users are enrolled users: pool users drawn with
    probability ∝ ``1 − e^{−rate}``, each with a zero-truncated Poisson number of visits."""

    rate: np.ndarray  # (pool,) expected visits over the experiment

    @property
    def enrol(self) -> np.ndarray:
        """P(a pool user visits at least once)."""
        return -np.expm1(-self.rate)

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pool user: the weight among enrolled users, ``E[visits]`` and ``E[visits²]`` once enrolled."""
        enrol = self.enrol
        return enrol / enrol.sum(), self.rate / enrol, (self.rate + self.rate**2) / enrol

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Enrolled users (pool indices) and their visits, of the given shape."""
        weight, _, _ = self.moments()
        users = rng.choice(self.rate.size, size=shape, p=weight)
        rate = self.rate[users]
        visits = rng.poisson(rate)
        redraw = np.flatnonzero(visits == 0)
        while redraw.size:  # rejection: a draw kept only when at least 1 is the law conditioned on enrolling
            visits.flat[redraw] = rng.poisson(rate.flat[redraw])
            redraw = redraw[visits.flat[redraw] == 0]
        return users, visits.astype(np.int64)


class RehearsalBench:
    """Everything many rehearsals of two rankers need, for a pool of users the rehearsals draw from.

    Users come ``visits`` times each (an int: every user alike), or as ``visits`` (a :class:`VisitLaw`)
    says; both designs see the same users and visits.  Clicks are drawn visit by visit (one view of a
    list per visit) and summed per user.
    """

    def __init__(
        self, control: ListClicks, treatment: ListClicks, merged: Interleavings, visits: int | VisitLaw = 1,
        alpha: float = 0.05,
    ) -> None:
        self.control, self.treatment, self.merged = control, treatment, merged
        self.visits, self.alpha = visits, alpha
        self.cdf_c = click_count_cdf(control, 1)
        self.cdf_t = click_count_cdf(treatment, 1)

    @property
    def pool(self) -> int:
        return int(self.control.probability.shape[0])

    def visit_moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pool user: weight among the rehearsals' users, ``E[visits]``, ``E[visits²]``."""
        if isinstance(self.visits, VisitLaw):
            return self.visits.moments()
        ones = np.ones(self.pool)
        return ones / self.pool, ones * self.visits, ones * self.visits**2

    def truth(self) -> tuple[float, float]:
        """Expected clicks per view of each ranker's lists over the pool, views weighted as users make them."""
        weight, visits, _ = self.visit_moments()
        views = weight * visits
        return (float(views @ self.control.expected_clicks / views.sum()),
                float(views @ self.treatment.expected_clicks / views.sum()))

    def draw_users(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Users (pool indices, with replacement) and their visits, of the given shape."""
        if isinstance(self.visits, VisitLaw):
            return self.visits.draw(shape, rng)
        return rng.integers(0, self.pool, size=shape), np.full(shape, self.visits, dtype=np.int64)

    def ab_clicks(self, users: np.ndarray, visits: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Clicks per user over their visits, rows of rehearsals: the first half of a row is control."""
        return ab_clicks_over_visits(self.cdf_c, self.cdf_t, users, visits, rng)

    def interleaving_credits(self, users: np.ndarray, visits: np.ndarray, rng: np.random.Generator
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Credits of A and of B per user over their visits, each visit a fresh draft (of the user's)."""
        return interleaving_credits_over_visits(self.merged, users, visits, rng)

    def run(self, design: Design, users: int, rehearsals: int, rng: np.random.Generator) -> Decisions:
        """``rehearsals`` rehearsals of ``users`` users each, drawn from the pool with replacement."""
        if users < 2:
            raise ValueError(f"a rehearsal needs at least 2 users, got {users}")
        _, mean_visits, _ = self.visit_moments()
        # per user: the CDF row of each visit's A/B draw, or the positions of each visit's merged list
        width = (self.cdf_c.shape[1] if design == "ab" else self.merged.probability.shape[-1]) * float(
            mean_visits.max())
        parts = []
        for chunk in _chunks(rehearsals, int(users * width)):
            drawn, visits = self.draw_users((chunk, users), rng)
            if design == "ab":
                parts.append(ab_decisions(*self.ab_clicks(drawn, visits, rng), self.alpha))
            else:
                parts.append(interleaving_decisions(*self.interleaving_credits(drawn, visits, rng), self.alpha))
        return Decisions.concatenate(parts)


def ab_clicks_over_visits(
    cdf_c: np.ndarray, cdf_t: np.ndarray, users: np.ndarray, visits: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks per user over their ``visits`` (each a view of the user's list, drawn through the one-view
    CDFs of :func:`click_count_cdf`), rows of rehearsals: the first half of a row is control."""
    half = users.shape[-1] // 2
    return (_per_visit(lambda seen: draw_clicks(cdf_c, seen, rng), users[..., :half], visits[..., :half]),
            _per_visit(lambda seen: draw_clicks(cdf_t, seen, rng), users[..., half:], visits[..., half:]))


def interleaving_credits_over_visits(
    merged: Interleavings, users: np.ndarray, visits: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Credits of A and of B per user over their ``visits``, each visit one of the user's merges drawn
    at random."""
    def credits(seen: np.ndarray) -> np.ndarray:
        drafts = rng.integers(0, merged.drafts, size=(seen.size, 1))
        a, b = interleaving_credits(merged, seen, drafts, rng)
        return np.stack([a, b], axis=-1)

    both = _per_visit(credits, users, visits)
    return both[..., 0], both[..., 1]


def _per_visit(draw: Callable[[np.ndarray], np.ndarray], users: np.ndarray, visits: np.ndarray) -> np.ndarray:
    """``draw`` once per visit (its argument: the pool index of each visit's user, flat), summed per user."""
    owner = np.repeat(np.arange(users.size), visits.ravel())
    drawn = draw(users.ravel()[owner])
    columns = drawn.reshape(owner.size, -1)
    summed = [np.bincount(owner, weights=columns[:, k], minlength=users.size) for k in range(columns.shape[1])]
    return np.rint(np.stack(summed, axis=-1)).astype(np.int64).reshape(*users.shape, *drawn.shape[1:])


def _chunks(rehearsals: int, draws_each: int) -> Iterator[int]:
    per_chunk = max(1, CHUNK_DRAWS // max(draws_each, 1))
    left = rehearsals
    while left > 0:
        take = min(per_chunk, left)
        yield take
        left -= take
