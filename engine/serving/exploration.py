"""Exploring rankings with logged propensities: what off-policy evaluation needs from serving.

Pure numpy, no I/O: the serving path hands in a candidate score vector and a ``numpy`` generator,
and logs, for each shown item, the probability the policy had of putting it there.

Two exploring policies:

- **Plackett-Luce** with a temperature ``T`` (Plackett 1975; Luce 1959): slot by slot, an item among
  those not shown yet is drawn with probability ``softmax(score / T)`` over them.  It is sampled with
  the Gumbel-max trick (sorting ``score / T + Gumbel`` is an exact Plackett-Luce draw; Yellott 1977).
  ``T → 0`` approaches the model's ranking, large ``T`` a uniform shuffle.
- **ε-greedy per slot**: slot by slot, with probability ``1 - ε`` the best remaining item by score,
  otherwise one of the remaining items uniformly (the greedy one included).

For each shown item the policy logs its *conditional* propensity ``π(item at k | items above)``; the
product of those up to ``k`` is the prefix propensity (what the cascade estimator of
:mod:`analysis.off_policy` weights by), and the product over the list the list's probability (what
the standard slate estimator weights by).  :func:`deterministic_propensities` and
:func:`plackett_luce_propensities` give the same quantities for a *target* policy evaluated on a
logged list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampledList:
    """Indices (into the candidate array) of the shown items, best slot first, with propensities."""

    items: np.ndarray
    propensities: np.ndarray  # π(items[k] at slot k | items[:k] above it)

    @property
    def prefix_propensities(self) -> np.ndarray:
        """``π(items[:k+1])``: probability of the list down to slot ``k``."""
        return np.cumprod(self.propensities)

    @property
    def list_propensity(self) -> float:
        return float(np.prod(self.propensities))


def _check_scores(scores: np.ndarray) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"candidate scores must be a non-empty 1-d array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("candidate scores must be finite numbers")
    return arr


def _check_shown(shown: np.ndarray, candidates: int) -> np.ndarray:
    idx = np.asarray(shown, dtype=int)
    if idx.ndim != 1 or ((idx < 0) | (idx >= candidates)).any():
        raise ValueError(f"shown items must be indices below {candidates}")
    if np.unique(idx).size != idx.size:
        raise ValueError("a list shows each item at most once")
    return idx


def _check_temperature(temperature: float) -> float:
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"the Plackett-Luce temperature must be a positive number, got {temperature}")
    return float(temperature)


def _check_epsilon(epsilon: float) -> None:
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be between 0 and 1, got {epsilon}")


def greedy_order(scores: np.ndarray) -> np.ndarray:
    """The model's ranking: by descending score, ties by candidate index (stable)."""
    return np.argsort(-np.asarray(scores, dtype=float), kind="stable")


# ------------------------------------------------------------------------------------ Plackett-Luce


def plackett_luce_propensities(scores: np.ndarray, shown: np.ndarray, temperature: float) -> np.ndarray:
    """``π(shown[k] at k | shown[:k])`` under Plackett-Luce with ``temperature``.

    One row per slot over the candidates still available there, each normalised by its own maximum
    (no remainder is computed by subtraction, which would cancel when the shown items dominate).
    """
    logits = _check_scores(scores) / _check_temperature(temperature)
    idx = _check_shown(shown, logits.size)
    if idx.size == 0:
        return np.empty(0)
    available = np.ones((idx.size, logits.size), dtype=bool)
    above = np.tril(np.ones((idx.size, idx.size), dtype=bool), k=-1)  # above[k, j]: slot j is above slot k
    rows, cols = np.nonzero(above)
    available[rows, idx[cols]] = False
    masked = np.where(available, logits, -np.inf)
    top = masked.max(axis=1)  # finite: every slot has its own item available
    log_norm = top + np.log(np.exp(masked - top[:, None]).sum(axis=1))
    return np.exp(logits[idx] - log_norm)


def sample_plackett_luce(scores: np.ndarray, n: int, temperature: float, rng: np.random.Generator) -> SampledList:
    """Draw ``min(n, candidates)`` items without replacement by Plackett-Luce, with their propensities."""
    logits = _check_scores(scores) / _check_temperature(temperature)
    keys = logits + rng.gumbel(size=logits.size)
    shown = np.argsort(-keys, kind="stable")[: max(0, min(n, logits.size))]
    return SampledList(shown, plackett_luce_propensities(scores, shown, temperature))


# ------------------------------------------------------------------------------------ ε-greedy


def epsilon_greedy_propensities(scores: np.ndarray, shown: np.ndarray, epsilon: float) -> np.ndarray:
    """``π(shown[k] at k | shown[:k])`` under ε-greedy per slot."""
    arr = _check_scores(scores)
    _check_epsilon(epsilon)
    idx = _check_shown(shown, arr.size)
    order = greedy_order(arr)
    available = np.ones(arr.size, dtype=bool)
    out = np.empty(idx.size)
    for k, item in enumerate(idx):
        best = order[available[order]][0]
        uniform = epsilon / available.sum()
        out[k] = uniform + (1.0 - epsilon) * (item == best)
        available[item] = False
    return out


def sample_epsilon_greedy(scores: np.ndarray, n: int, epsilon: float, rng: np.random.Generator) -> SampledList:
    """Fill ``min(n, candidates)`` slots by ε-greedy, with their propensities."""
    arr = _check_scores(scores)
    _check_epsilon(epsilon)
    order = greedy_order(arr)
    available = np.ones(arr.size, dtype=bool)
    shown = []
    for _ in range(max(0, min(n, arr.size))):
        remaining = order[available[order]]
        item = remaining[rng.integers(remaining.size)] if rng.random() < epsilon else remaining[0]
        shown.append(item)
        available[item] = False
    idx = np.asarray(shown, dtype=int)
    return SampledList(idx, epsilon_greedy_propensities(arr, idx, epsilon))


# ------------------------------------------------------------------------------------ target policies


@dataclass(frozen=True)
class TargetPropensities:
    """A target policy's probabilities for a logged list, per slot."""

    marginal: np.ndarray  # π(shown[k] at slot k), whatever is above
    prefix: np.ndarray  # π(shown[:k+1]): the whole list down to slot k


def deterministic_propensities(ranking: np.ndarray, shown: np.ndarray) -> TargetPropensities:
    """A deterministic target that shows ``ranking``: 1 where it puts the logged item at that slot, else 0;
    the prefix probability is 1 while the logged list agrees with it slot for slot."""
    target = np.asarray(ranking, dtype=int)
    idx = np.asarray(shown, dtype=int)
    agrees = np.zeros(idx.size)
    depth = min(target.size, idx.size)
    agrees[:depth] = target[:depth] == idx[:depth]
    return TargetPropensities(marginal=agrees, prefix=np.cumprod(agrees))


def plackett_luce_target(scores: np.ndarray, shown: np.ndarray, temperature: float) -> np.ndarray:
    """Prefix probabilities ``π(shown[:k+1])`` of a logged list under a Plackett-Luce target.

    (The marginal probability of an item at slot ``k`` sums over every possible prefix and has no
    closed form under Plackett-Luce; estimators that need it are not offered for this target.)
    """
    return np.cumprod(plackett_luce_propensities(scores, shown, temperature))
