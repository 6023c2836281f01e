"""Thompson-sampling traffic weights for k conversion arms.

Thompson sampling sends each user to the arm whose posterior draw is highest, so the share an arm
receives is its posterior probability of being best.  That probability is computed exactly by
quadrature (:func:`analysis.bayesian.prob_best`) or, optionally, by Monte Carlo with a fixed
seed.  A floor ``min_weight`` keeps every arm learning: ``w = min_weight + (1 - k·min_weight)·p``,
which keeps the ranking of ``p``, respects the floor and sums to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.bayesian import BetaPrior, beta_posterior, prob_best

UNIFORM_PRIOR = BetaPrior()


@dataclass(frozen=True)
class BanditWeights:
    weights: tuple[float, ...]
    prob_best: tuple[float, ...]
    method: str
    message: str | None = None


def thompson_weights(
    conversions: Sequence[float],
    users: Sequence[int],
    prior: BetaPrior = UNIFORM_PRIOR,
    min_weight: float = 0.01,
    method: Literal["exact", "mc"] = "exact",
    draws: int = 100_000,
    seed: int = 0,
) -> BanditWeights:
    """Traffic weights for the next period from each arm's conversions and users so far."""
    k = len(users)
    if k < 1 or len(conversions) != k:
        raise ValueError(f"need one conversion count per arm, got {len(conversions)} for {k} arms")
    if not 0.0 <= min_weight <= 1.0 / k:
        raise ValueError(f"min_weight must be in [0, 1/k] = [0, {1.0 / k:.4g}], got {min_weight}")
    for i, (x, n) in enumerate(zip(conversions, users, strict=True)):
        if n < 0 or not 0 <= x <= n:
            raise ValueError(f"arm {i}: {x} conversions for {n} users is not a proportion")
    posteriors = [beta_posterior(x, n, prior) for x, n in zip(conversions, users, strict=True)]
    if method == "exact":
        p = prob_best(posteriors)
    elif method == "mc":
        rng = np.random.default_rng(seed)
        samples = np.column_stack([d.rvs(draws, random_state=rng) for d in posteriors])
        p = np.bincount(samples.argmax(axis=1), minlength=k) / draws
    else:
        raise ValueError(f"unknown method {method!r}: use 'exact' or 'mc'")
    p = p / p.sum()  # quadrature leaves ~1e-12 of drift; weights must sum to exactly 1
    w = min_weight + (1.0 - k * min_weight) * p
    message = "no data yet: equal weights" if sum(users) == 0 else None
    return BanditWeights(tuple(float(v) for v in w), tuple(float(v) for v in p), method, message)
