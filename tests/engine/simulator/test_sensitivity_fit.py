"""The sensitivity bench's reading of a power curve: N at 80% power from measured points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.sensitivity import Options, ab_guess, fit_n80, measure_curve
from engine.simulator.rehearsal_designs import Interleavings, ListClicks, RehearsalBench


def two_sided_power(users: np.ndarray, c: float) -> np.ndarray:
    z = stats.norm.ppf(0.975)
    return stats.norm.cdf(c * np.sqrt(users) - z) + stats.norm.cdf(-c * np.sqrt(users) - z)


def test_fit_recovers_the_n_of_an_exact_power_curve() -> None:
    c = 0.02
    exact_n80 = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / c) ** 2  # 19,622 users
    users = np.rint(exact_n80 * np.array([0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0])).astype(int)
    assert fit_n80(users, two_sided_power(users, c), 400) == pytest.approx(exact_n80, rel=0.01)


def test_measured_ab_curve_lands_on_the_normal_approximation() -> None:
    # equal variances, a modest lift: Welch t's N at 80% is the textbook one within Monte-Carlo error
    rng = np.random.default_rng(2)
    p_c = np.full((200, 10), 0.08)
    p_t = np.full((200, 10), 0.09)
    merged = Interleavings(np.zeros((200, 1, 10)), np.zeros((200, 1, 10), dtype=bool), np.zeros((200, 1), int))
    bench = RehearsalBench(ListClicks(p_c), ListClicks(p_t), merged)
    guess = ab_guess(bench)
    curve, _ = measure_curve(lambda n, r: bench.run("ab", n, r, rng), 1, guess, Options(rehearsals=300), rng)
    assert curve.n80 == pytest.approx(guess, rel=0.12)
    assert curve.n80_ci[0] < curve.n80 < curve.n80_ci[1]
    assert abs(curve.verified_power - 0.8) <= 4 * np.sqrt(0.16 / 300)
