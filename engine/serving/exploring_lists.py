"""Exploring lists: an arm's shown list sampled from the model's candidate scores, with propensities.

An arm whose serving settings carry ``exploration`` serves, per request, a list drawn from its
candidates instead of the deterministic ranking (``engine.serving.exploration`` has the policies):

- the candidates are the model's top ``pool`` items by score (the model's order, *no* MMR and no
  category cap: exploration replaces the re-rank for that arm, so that every candidate's probability
  is known in closed form per slot);
- scores are min-max scaled to [0, 1] over the pool first, so a temperature means the same for every
  model and user whatever the range of its scores;
- each shown item carries three probabilities: ``propensity`` = π(item at k | items above) (the
  policy's own, exact), ``prefix_propensity`` = π(list down to k) (exact), and
  ``marginal_propensity`` = π(item at k), whatever is above — what the position-based (independent)
  off-policy estimators weight by.  Plackett-Luce and ε-greedy have no closed form for it; it is
  estimated by Monte Carlo, Rao-Blackwellised: prefixes of ``k`` items are sampled from the policy
  (Gumbel-top-k for Plackett-Luce) and the *exact* conditional probability of the item at ``k``
  given each prefix is averaged, which is unbiased and far less noisy than counting how often the
  item landed at ``k``.

Pure numpy; the serving path (``engine.serving.service``) caches the pool and calls :func:`explore`
per request, the rehearsal (``engine.experiments.off_policy``) calls the vectorised functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine.serving.exploration import (
    epsilon_greedy_propensities,
    greedy_order,
    plackett_luce_propensities,
)

PLACKETT_LUCE = "plackett_luce"
EPSILON_GREEDY = "epsilon_greedy"
METHODS = (PLACKETT_LUCE, EPSILON_GREEDY)
MARGINAL_SAMPLES = 1024  # prefixes averaged per marginal: the relative error of 1/ρ is ~CV/32, its bias ~CV²/1024


@dataclass(frozen=True)
class ExplorationPolicy:
    """How an exploring arm draws its lists (the serving setting, validated in ``serving_params``)."""

    method: str
    temperature: float = 1.0  # Plackett-Luce, over scores scaled to [0, 1]
    epsilon: float = 0.1  # ε-greedy
    pool: int = 50  # the model's top candidates the list is drawn from

    @property
    def signature(self) -> str:
        """Short stable text for cache keys (the pool cached for an exploring arm is its own)."""
        knob = f"t{self.temperature:g}" if self.method == PLACKETT_LUCE else f"e{self.epsilon:g}"
        return f"x{self.method[:2]}{knob}p{self.pool}"


@dataclass(frozen=True)
class ExploredList:
    """Indices into the pool of the shown items, best slot first, with their three propensities."""

    items: np.ndarray
    propensity: np.ndarray
    prefix_propensity: np.ndarray
    marginal_propensity: np.ndarray


def scaled(scores: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to [0, 1] (all equal: all 1), so temperatures are model-free."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        return arr
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.ones_like(arr)


def conditional_propensities(scores: np.ndarray, shown: np.ndarray, policy: ExplorationPolicy) -> np.ndarray:
    """π(shown[k] at k | shown[:k]) under ``policy`` over raw ``scores`` (scaled here)."""
    if policy.method == PLACKETT_LUCE:
        return plackett_luce_propensities(scaled(scores), shown, policy.temperature)
    return epsilon_greedy_propensities(scaled(scores), shown, policy.epsilon)


def greedy_ranks(s: np.ndarray) -> np.ndarray:
    """Each pool item's place in the greedy order (0 = the best), ties broken as ``greedy_order`` does."""
    rank = np.empty(s.size, dtype=np.int64)
    rank[greedy_order(s)] = np.arange(s.size)
    return rank


def sample_prefixes(
    scores: np.ndarray, depth: int, policy: ExplorationPolicy, rng: np.random.Generator, count: int
) -> np.ndarray:
    """``count`` lists of ``depth`` items drawn from ``policy`` at once (count × depth pool indices)."""
    s = scaled(scores)
    depth = min(depth, s.size)
    if policy.method == PLACKETT_LUCE:
        keys = s / policy.temperature + rng.gumbel(size=(count, s.size))
        top = np.argpartition(-keys, depth - 1, axis=1)[:, :depth] if depth < s.size else np.tile(
            np.arange(s.size), (count, 1))
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)
    rank = greedy_ranks(s)
    available = np.ones((count, s.size), dtype=bool)
    out = np.empty((count, depth), dtype=np.int64)
    rows = np.arange(count)
    # One random order per list serves every slot: the first still-available item of a uniform order
    # is uniform among the available ones, whatever was taken before (earlier picks only tell that
    # the taken items came first), so a (count × pool) draw per list replaces one per slot.
    order_keys = rng.random((count, s.size))
    explores = rng.random((count, depth)) < policy.epsilon
    for k in range(depth):
        best = np.argmin(np.where(available, rank, s.size), axis=1)
        uniform = np.argmax(np.where(available, order_keys, -1.0), axis=1)
        pick = np.where(explores[:, k], uniform, best)
        out[:, k] = pick
        available[rows, pick] = False
    return out


def _slot_conditionals(
    s: np.ndarray, prefixes: np.ndarray, depth: int, policy: ExplorationPolicy
) -> Iterator[np.ndarray]:
    """For ``k`` below ``depth``: π(each pool item at ``k`` | the first ``k`` items of each row of
    ``prefixes``), a (rows × pool) matrix (0 for the items already above)."""
    count = prefixes.shape[0]
    available = np.ones((count, s.size), dtype=bool)
    rows = np.arange(count)
    weight = np.exp((s - s.max()) / policy.temperature) if policy.method == PLACKETT_LUCE else None
    rank = greedy_ranks(s)
    for k in range(depth):
        if k:
            available[rows, prefixes[:, k - 1]] = False
        if weight is not None:
            mass = np.where(available, weight, 0.0)
            yield mass / mass.sum(axis=1, keepdims=True)
        else:
            best = np.argmin(np.where(available, rank, s.size), axis=1)
            conditional = np.where(available, policy.epsilon / available.sum(axis=1, keepdims=True), 0.0)
            conditional[rows, best] += 1.0 - policy.epsilon
            yield conditional


def marginal_propensities(
    scores: np.ndarray, depth: int, policy: ExplorationPolicy, rng: np.random.Generator,
    samples: int = MARGINAL_SAMPLES,
) -> np.ndarray:
    """π(item at slot k) for every pool item and slot below ``depth`` (pool × depth), by Rao-Blackwellised
    Monte Carlo: the exact conditional at ``k`` averaged over sampled prefixes of ``k`` items."""
    s = scaled(scores)
    depth = min(depth, s.size)
    prefixes = sample_prefixes(scores, max(depth - 1, 0), policy, rng, samples)
    columns = [conditional.mean(axis=0) for conditional in _slot_conditionals(s, prefixes, depth, policy)]
    return np.stack(columns, axis=1) if columns else np.empty((s.size, 0))


def conditional_matrix(scores: np.ndarray, shown: np.ndarray, policy: ExplorationPolicy) -> np.ndarray:
    """:func:`conditional_propensities` of many lists at once (rows of ``shown``, pool indices)."""
    lists = np.asarray(shown, dtype=np.int64)
    out = np.empty(lists.shape)
    for k, conditional in enumerate(_slot_conditionals(scaled(scores), lists, lists.shape[1], policy)):
        out[:, k] = conditional[np.arange(lists.shape[0]), lists[:, k]]
    return out


def shown_marginals(
    scores: np.ndarray, shown: np.ndarray, policy: ExplorationPolicy, rng: np.random.Generator,
    samples: int = MARGINAL_SAMPLES,
) -> np.ndarray:
    """π(shown[k] at slot k) for one list: :func:`marginal_propensities` at the shown cells only, which for
    Plackett-Luce needs no (samples × pool) pass per slot (what serving pays per request)."""
    idx = np.asarray(shown, dtype=np.int64)
    if policy.method != PLACKETT_LUCE:
        return _epsilon_greedy_shown_marginals(scaled(scores), idx, policy, rng, samples)
    s = scaled(scores)
    weight = np.exp((s - s.max()) / policy.temperature)
    prefixes = sample_prefixes(scores, max(idx.size - 1, 0), policy, rng, samples)  # samples × (depth - 1)
    above = np.cumsum(weight[prefixes], axis=1)
    taken = np.concatenate([np.zeros((samples, 1)), above], axis=1)[:, : idx.size]  # mass above slot k
    # shown[k] among a sample's first k items: it cannot be drawn at k then
    seen = (prefixes[:, None, :] == idx[None, :, None]) & np.tri(idx.size, prefixes.shape[1], -1, dtype=bool)
    conditional = np.where(seen.any(axis=2), 0.0, weight[idx] / (weight.sum() - taken))
    return conditional.mean(axis=0)


def _epsilon_greedy_shown_marginals(
    s: np.ndarray, idx: np.ndarray, policy: ExplorationPolicy, rng: np.random.Generator, samples: int
) -> np.ndarray:
    """ε-greedy's :func:`shown_marginals`: given a sampled prefix, ``shown[k]`` is drawn at ``k`` with
    probability ε / (pool − k) if it is still available, plus 1 − ε if it is the best one available,
    which it is exactly when every item ranked above it is in the prefix."""
    rank = greedy_ranks(s)
    prefixes = sample_prefixes(s, max(idx.size - 1, 0), policy, rng, samples)  # samples × (depth - 1)
    above = np.tri(idx.size, prefixes.shape[1], -1, dtype=bool)  # [k, t]: prefix slot t is above slot k
    seen = ((prefixes[:, None, :] == idx[None, :, None]) & above).any(axis=2)  # samples × depth
    better_taken = ((rank[prefixes][:, None, :] < rank[idx][None, :, None]) & above).sum(axis=2)
    best = better_taken == rank[idx][None, :]
    conditional = policy.epsilon / (s.size - np.arange(idx.size)) + (1.0 - policy.epsilon) * best
    return np.where(seen, 0.0, conditional).mean(axis=0)


def at_least_prefix(marginal: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """A Monte Carlo marginal floored at its exact lower bound, the probability of the shown prefix itself
    (one of the ways the item gets to its slot): an item shown where it almost never lands would otherwise
    be logged with a marginal of 0 when no sampled prefix left room for it there."""
    return np.maximum(marginal, prefix)


def explore(scores: np.ndarray, n: int, policy: ExplorationPolicy, rng: np.random.Generator) -> ExploredList:
    """One shown list of ``min(n, pool)`` items drawn from ``scores`` (the pool's), with propensities."""
    shown = sample_prefixes(scores, n, policy, rng, 1)[0]
    conditional = conditional_propensities(scores, shown, policy)
    prefix = np.cumprod(conditional)
    marginal = at_least_prefix(shown_marginals(scores, shown, policy, rng), prefix)
    return ExploredList(shown, conditional, prefix, marginal)
