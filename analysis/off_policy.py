"""Off-policy evaluation: a target policy's value estimated from another policy's logs.

Pure numpy over arrays, one row per logged (impression, slot):

- ``reward`` — the observed reward (a click: 0/1);
- ``pscore`` — the logging policy's probability of what it showed there;
- ``target_pscore`` — the target policy's probability of the same thing;
- ``position`` (optional) — the slot, 0-based; ``slate_id`` (optional) — which impression the row
  belongs to (rows without one are impressions of their own);
- ``q_hat`` / ``q_hat_target`` (optional, for DR) — a reward model's estimate for the logged action,
  and its expectation under the target policy at that slot, ``Σ_a π_e(a) q̂(a)``.

The value estimated is the expected total reward of an impression (for one slot: its expected
reward), as in Open Bandit Pipeline (Saito, Aihara, Matsutani & Narita, NeurIPS 2021 datasets track).

For lists, the estimators weight each slot separately, ``w_k = target_pscore_k / pscore_k``, and which
estimator that is depends on the propensities logged (the estimators are the same code):

- the probability of the item at slot ``k`` whatever is above it → the independent / item-position
  IPS (Li, Kim, Zitouni et al., "Offline evaluation of ranking policies with click models", KDD 2018;
  obp's ``SlateIndependentIPS``), unbiased when a slot's reward depends on its own item only (e.g. the
  position-based click model);
- the probability of the list down to slot ``k`` → the cascade / reward-interaction IPS (McInerney
  et al., KDD 2020; obp's ``SlateRewardInteractionIPS``), unbiased when a slot's reward depends on the
  items above it;
- the probability of the whole list → the standard slate IPS (obp's ``SlateStandardIPS``), unbiased
  without any click model, and with the largest variance.

Estimators:

- :class:`InverseProbabilityWeighting` — Horvitz & Thompson (1952); Precup, Sutton & Singh (2000):
  ``mean(w · r)``.
- :class:`SelfNormalizedIPS` — Swaminathan & Joachims, "The self-normalized estimator for
  counterfactual learning", NeurIPS 2015: per slot ``Σ w r / Σ w``; biased but consistent, and bounded
  by the rewards.
- :class:`DoublyRobust` — Dudík, Langford & Li, "Doubly robust policy evaluation and learning",
  ICML 2011: ``mean(q̂_target + w · (r − q̂))``; unbiased when the propensities are right, and of lower
  variance the better q̂ is.

Intervals are percentile bootstraps over impressions (every row of a resampled impression comes
along), like obp's ``estimate_interval``, vectorised over replicates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

Interval = tuple[float, float]
ArrayLike = Sequence[float] | np.ndarray

_BOOTSTRAP_CHUNK_CELLS = 2_000_000  # replicates × impressions resampled at once (memory bound)


@dataclass(frozen=True)
class LoggedFeedback:
    """Validated logged rows (build it with :func:`logged_feedback`), grouped into impressions."""

    reward: np.ndarray
    pscore: np.ndarray
    target_pscore: np.ndarray
    position: np.ndarray  # 0-based slot, all zeros for single-slot logs
    impression: np.ndarray  # 0..n_impressions-1, the row's impression
    n_impressions: int
    q_hat: np.ndarray | None = None
    q_hat_target: np.ndarray | None = None

    @property
    def weights(self) -> np.ndarray:
        return self.target_pscore / self.pscore

    @property
    def n_positions(self) -> int:
        return int(self.position.max()) + 1


def _array(name: str, values: ArrayLike, size: int | None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if size is not None and arr.size != size:
        raise ValueError(f"{name} has {arr.size} values but reward has {size}: every array needs one value per row")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values ({int((~np.isfinite(arr)).sum())} rows)")
    return arr


def logged_feedback(
    reward: ArrayLike,
    pscore: ArrayLike,
    target_pscore: ArrayLike,
    *,
    position: ArrayLike | None = None,
    slate_id: Sequence[object] | np.ndarray | None = None,
    q_hat: ArrayLike | None = None,
    q_hat_target: ArrayLike | None = None,
) -> LoggedFeedback:
    """Check the arrays and group rows by impression; every problem is a ``ValueError`` saying which."""
    r = _array("reward", reward, None)
    if r.size == 0:
        raise ValueError("no logged rows: there is nothing to estimate from")
    p = _array("pscore", pscore, r.size)
    if (p <= 0).any() or (p > 1).any():
        raise ValueError(
            f"logging propensities must be in (0, 1]: {int((p <= 0).sum())} are zero or negative and "
            f"{int((p > 1).sum())} above 1 (an action the logging policy could not take cannot be reweighted)"
        )
    t = _array("target_pscore", target_pscore, r.size)
    if (t < 0).any() or (t > 1).any():
        raise ValueError(f"target probabilities must be in [0, 1]: {int(((t < 0) | (t > 1)).sum())} are not")
    pos = np.zeros(r.size, dtype=int) if position is None else _array("position", position, r.size)
    if (pos < 0).any() or (pos != np.round(pos)).any():
        raise ValueError("positions must be non-negative integers (0 is the top slot)")
    pos = pos.astype(int)
    if slate_id is None:
        impression = np.arange(r.size)
    else:
        ids = np.asarray(slate_id)
        if ids.shape != (r.size,):
            raise ValueError(f"slate_id has {ids.size} values but reward has {r.size}: every array needs one per row")
        _, impression = np.unique(ids, return_inverse=True)
        impression = impression.ravel()
    n_impressions = int(impression.max()) + 1
    cells = impression * (int(pos.max()) + 1) + pos
    if np.unique(cells).size != cells.size:
        raise ValueError("two rows share an impression and a position: each slot of an impression is logged once")
    if (q_hat is None) != (q_hat_target is None):
        raise ValueError("give both q_hat (for the logged action) and q_hat_target (under the target), or neither")
    q = None if q_hat is None else _array("q_hat", q_hat, r.size)
    q_t = None if q_hat_target is None else _array("q_hat_target", q_hat_target, r.size)
    return LoggedFeedback(r, p, t, pos, impression, n_impressions, q, q_t)


@dataclass(frozen=True)
class PositionTerms:
    """Per (impression, position) sums: the estimator is ``Σ_k Σ num_k / Σ den_k · Σ rows_k`` / impressions,
    with each sum weighted by how often the bootstrap drew the impression (once for the estimate)."""

    numerator: np.ndarray  # impressions × positions
    denominator: np.ndarray
    rows: np.ndarray


def _per_cell(data: LoggedFeedback, values: np.ndarray) -> np.ndarray:
    out = np.zeros((data.n_impressions, data.n_positions))
    np.add.at(out, (data.impression, data.position), values)
    return out


def _evaluate(terms: PositionTerms, draws: np.ndarray) -> np.ndarray:
    """The estimate for each row of ``draws`` (replicates × impressions: how often each impression is in)."""
    num = draws @ terms.numerator
    den = draws @ terms.denominator
    rows = draws @ terms.rows
    with np.errstate(divide="ignore", invalid="ignore"):
        per_position = np.where(den != 0, num / den, 0.0) * rows  # 0/0: nothing weighted at that slot
    return per_position.sum(axis=1) / draws.sum(axis=1)


@dataclass(frozen=True)
class PolicyValue:
    estimator: str
    value: float
    ci: Interval
    alpha: float
    n_bootstrap: int


class OffPolicyEstimator(ABC):
    """An estimator as a ratio per slot (see :class:`PositionTerms`), so the estimate and every bootstrap
    replicate are one matrix product."""

    name: ClassVar[str]

    @abstractmethod
    def terms(self, data: LoggedFeedback) -> PositionTerms: ...

    def estimate_policy_value(self, data: LoggedFeedback) -> float:
        return float(_evaluate(self.terms(data), np.ones((1, data.n_impressions)))[0])

    def estimate_interval(
        self,
        data: LoggedFeedback,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        rng: np.random.Generator | int | None = None,
    ) -> Interval:
        """Percentile bootstrap ``1 - alpha`` interval, resampling impressions with replacement."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
        if n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
        gen = np.random.default_rng(rng)
        terms = self.terms(data)
        n = data.n_impressions
        chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // n)
        replicates = []
        for start in range(0, n_bootstrap, chunk):
            size = min(chunk, n_bootstrap - start)
            picks = gen.integers(n, size=(size, n)) + n * np.arange(size)[:, None]
            draws = np.bincount(picks.ravel(), minlength=size * n).reshape(size, n).astype(float)
            replicates.append(_evaluate(terms, draws))
        values = np.concatenate(replicates)
        lower, upper = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        return (float(lower), float(upper))

    def estimate(
        self,
        data: LoggedFeedback,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        rng: np.random.Generator | int | None = None,
    ) -> PolicyValue:
        ci = self.estimate_interval(data, alpha, n_bootstrap, rng)
        return PolicyValue(self.name, self.estimate_policy_value(data), ci, alpha, n_bootstrap)


def _mean_terms(data: LoggedFeedback, per_row: np.ndarray) -> PositionTerms:
    rows = _per_cell(data, np.ones_like(per_row))
    return PositionTerms(_per_cell(data, per_row), rows, rows)


class InverseProbabilityWeighting(OffPolicyEstimator):
    """IPS (Horvitz & Thompson 1952; Precup et al. 2000): ``Σ_k mean(w_k · r_k)``, unbiased when the
    logging policy gives every action the target takes a positive propensity."""

    name = "ipw"

    def terms(self, data: LoggedFeedback) -> PositionTerms:
        return _mean_terms(data, data.weights * data.reward)


class SelfNormalizedIPS(OffPolicyEstimator):
    """SNIPS (Swaminathan & Joachims, NeurIPS 2015): per slot ``Σ w r / Σ w``, i.e. IPS divided by the
    mean weight (which is 1 in expectation); a slot whose weights are all zero contributes 0."""

    name = "snips"

    def terms(self, data: LoggedFeedback) -> PositionTerms:
        w = data.weights
        return PositionTerms(_per_cell(data, w * data.reward), _per_cell(data, w), _per_cell(data, np.ones_like(w)))


class DoublyRobust(OffPolicyEstimator):
    """DR (Dudík, Langford & Li, ICML 2011): ``Σ_k mean(q̂_target + w · (r − q̂))``; needs q̂."""

    name = "dr"

    def terms(self, data: LoggedFeedback) -> PositionTerms:
        if data.q_hat is None or data.q_hat_target is None:
            raise ValueError("the doubly robust estimator needs q_hat and q_hat_target (a reward model's estimates)")
        return _mean_terms(data, data.q_hat_target + data.weights * (data.reward - data.q_hat))


ESTIMATORS: dict[str, OffPolicyEstimator] = {
    e.name: e for e in (InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust())
}


def logging_value(data: LoggedFeedback) -> float:
    """The logging policy's own value: the mean total reward of a logged impression (on-policy)."""
    return float(data.reward.sum() / data.n_impressions)


def evaluate(
    data: LoggedFeedback,
    estimators: Sequence[str] = ("ipw", "snips", "dr"),
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> dict[str, PolicyValue]:
    """Each named estimator's value and interval, all from one generator (reproducible given ``rng``)."""
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {', '.join(unknown)}; choose from {', '.join(ESTIMATORS)}")
    gen = np.random.default_rng(rng)
    return {name: ESTIMATORS[name].estimate(data, alpha, n_bootstrap, gen) for name in estimators}
