"""Off-policy estimators: closed-form cases, unbiasedness by simulation (single slot and lists under a
position-based click model, logged by the exploring policies of engine/serving/exploration.py), DR's
variance with a good reward model, bootstrap intervals against scipy's and their coverage over seeds,
degenerate input, and agreement with Open Bandit Pipeline when it is importable."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.off_policy import (
    DoublyRobust,
    InverseProbabilityWeighting,
    LoggedFeedback,
    SelfNormalizedIPS,
    evaluate,
    logged_feedback,
    logging_value,
)
from engine.serving.exploration import deterministic_propensities, sample_plackett_luce
from tests.conftest import missing

IPS, SNIPS, DR = InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust()


# ------------------------------------------------------------------------------------ a synthetic bandit


@dataclass(frozen=True)
class Bandit:
    """Contexts × actions with known click probabilities, a softmax logging policy, and a target."""

    q: np.ndarray  # contexts × actions: true click probability
    logging: np.ndarray  # contexts × actions: π_b(a | x)
    target: np.ndarray  # contexts × actions: π_e(a | x)

    @classmethod
    def draw(cls, rng: np.random.Generator, contexts: int = 10, actions: int = 5, deterministic: bool = True) -> Bandit:
        q = rng.uniform(0.02, 0.4, size=(contexts, actions))
        logits = rng.normal(size=(contexts, actions))
        logging = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        if deterministic:  # the target shows the truly best action
            target = np.eye(actions)[q.argmax(axis=1)]
        else:
            scores = np.exp(3 * q)
            target = scores / scores.sum(axis=1, keepdims=True)
        return cls(q, logging, target)

    @property
    def truth(self) -> float:
        return float((self.target * self.q).sum(axis=1).mean())  # contexts are equally likely

    def log(self, rng: np.random.Generator, rounds: int, q_hat: np.ndarray | None = None) -> LoggedFeedback:
        x = rng.integers(self.q.shape[0], size=rounds)
        cum = self.logging[x].cumsum(axis=1)
        a = (rng.random((rounds, 1)) > cum).sum(axis=1)
        r = (rng.random(rounds) < self.q[x, a]).astype(float)
        model = self.q if q_hat is None else q_hat
        return logged_feedback(
            r,
            self.logging[x, a],
            self.target[x, a],
            q_hat=model[x, a],
            q_hat_target=(self.target[x] * model[x]).sum(axis=1),
        )


# ------------------------------------------------------------------------------------ closed forms


def test_uniform_logging_deterministic_target_ips_is_k_times_the_matched_clicks() -> None:
    rng = np.random.default_rng(0)
    k, rounds = 4, 1000
    action = rng.integers(k, size=rounds)
    target_action = rng.integers(k, size=rounds)
    reward = rng.integers(0, 2, size=rounds).astype(float)
    matched = action == target_action
    data = logged_feedback(reward, np.full(rounds, 1 / k), matched.astype(float))
    assert IPS.estimate_policy_value(data) == pytest.approx(k * reward[matched].sum() / rounds)
    assert SNIPS.estimate_policy_value(data) == pytest.approx(reward[matched].mean())
    assert logging_value(data) == pytest.approx(reward.mean())


def test_snips_is_the_weighted_mean_and_dr_the_formula() -> None:
    rng = np.random.default_rng(1)
    n = 500
    reward = rng.random(n)
    pscore = rng.uniform(0.05, 1, n)
    target = rng.uniform(0, 1, n)
    q_hat = rng.random(n)
    q_target = rng.random(n)
    data = logged_feedback(reward, pscore, target, q_hat=q_hat, q_hat_target=q_target)
    w = target / pscore
    assert SNIPS.estimate_policy_value(data) == pytest.approx(np.average(reward, weights=w))
    assert IPS.estimate_policy_value(data) == pytest.approx(np.mean(w * reward))
    assert DR.estimate_policy_value(data) == pytest.approx(np.mean(q_target + w * (reward - q_hat)))


def test_on_policy_logs_make_every_estimator_the_plain_mean() -> None:
    rng = np.random.default_rng(2)
    reward = rng.integers(0, 2, 300).astype(float)
    p = rng.uniform(0.1, 1, 300)
    data = logged_feedback(reward, p, p, q_hat=np.full(300, 0.3), q_hat_target=np.full(300, 0.3))
    for estimator in (IPS, SNIPS, DR):
        assert estimator.estimate_policy_value(data) == pytest.approx(reward.mean())


def test_slates_sum_slots_and_self_normalise_per_slot() -> None:
    # two impressions × two slots, rows in any order
    data = logged_feedback(
        reward=[1, 0, 1, 1],
        pscore=[0.5, 0.5, 0.25, 0.5],
        target_pscore=[1, 1, 0, 0.5],
        position=[0, 1, 0, 1],
        slate_id=["s1", "s1", "s2", "s2"],
    )
    # IPS: (1·2 + 0·2 + 1·0 + 1·1) / 2 impressions
    assert IPS.estimate_policy_value(data) == pytest.approx(1.5)
    # SNIPS: slot 0: (2 + 0) / (2 + 0) = 1; slot 1: (0 + 1) / (2 + 1) = 1/3
    assert SNIPS.estimate_policy_value(data) == pytest.approx(1 + 1 / 3)
    assert logging_value(data) == pytest.approx(1.5)


def test_bootstrap_resamples_whole_impressions() -> None:
    """Every impression has exactly one click over its two slots: each impression's total is 1, so an
    interval from resampled impressions has no width, where resampling rows would give it some."""
    rng = np.random.default_rng(8)
    impressions = 400
    first = rng.integers(0, 2, impressions).astype(float)
    reward = np.column_stack([first, 1 - first]).ravel()
    data = logged_feedback(
        reward,
        np.full(2 * impressions, 0.5),
        np.full(2 * impressions, 0.5),
        position=np.tile([0, 1], impressions),
        slate_id=np.repeat(np.arange(impressions), 2),
    )
    lo, hi = IPS.estimate_interval(data, n_bootstrap=500, rng=1)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    rows = logged_feedback(reward, np.full(2 * impressions, 0.5), np.full(2 * impressions, 0.5))
    lo, hi = IPS.estimate_interval(rows, n_bootstrap=500, rng=1)
    assert hi - lo > 0.05


# ------------------------------------------------------------------------------------ by simulation


def _estimates(bandit: Bandit, seeds: range, rounds: int, q_hat: np.ndarray | None = None) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {"ipw": [], "snips": [], "dr": []}
    for seed in seeds:
        data = bandit.log(np.random.default_rng(seed), rounds, q_hat)
        for estimator in (IPS, SNIPS, DR):
            out[estimator.name].append(estimator.estimate_policy_value(data))
    return {name: np.array(values) for name, values in out.items()}


@pytest.mark.parametrize("deterministic", [True, False])
def test_ips_and_dr_are_unbiased(deterministic: bool) -> None:
    """The mean estimate over 600 logs is within 3.5 standard errors of the true value, for DR even with a
    reward model that is badly wrong (its correction term removes the model's bias)."""
    bandit = Bandit.draw(np.random.default_rng(100), deterministic=deterministic)
    wrong_model = np.clip(bandit.q + np.random.default_rng(101).normal(0, 0.15, bandit.q.shape), 0, 1)
    values = _estimates(bandit, range(600), 300, q_hat=wrong_model)
    for name in ("ipw", "dr"):
        v = values[name]
        assert abs(v.mean() - bandit.truth) < 3.5 * v.std(ddof=1) / math.sqrt(v.size), name
    # the reward model alone is biased: what DR corrects
    direct = float((bandit.target * wrong_model).sum(axis=1).mean())
    assert abs(direct - bandit.truth) > 0.01


def test_dr_with_a_perfect_reward_model_has_lower_variance_than_ips() -> None:
    bandit = Bandit.draw(np.random.default_rng(7))
    values = _estimates(bandit, range(300), 300)
    assert values["dr"].var() < values["ipw"].var()
    _, p = stats.levene(values["dr"], values["ipw"])
    assert p < 0.01


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap() -> None:
    bandit = Bandit.draw(np.random.default_rng(3))
    data = bandit.log(np.random.default_rng(4), 2000)
    ours = IPS.estimate_interval(data, alpha=0.1, n_bootstrap=4000, rng=5)
    per_round = data.weights * data.reward
    ref = stats.bootstrap((per_round,), np.mean, n_resamples=4000, confidence_level=0.9, method="percentile", rng=6)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=0.05 * width)
    assert IPS.estimate_interval(data, n_bootstrap=200, rng=9) == IPS.estimate_interval(data, n_bootstrap=200, rng=9)


def test_bootstrap_intervals_cover_the_truth_in_at_least_90_percent_of_seeds() -> None:
    bandit = Bandit.draw(np.random.default_rng(11), deterministic=False)
    covered = {"ipw": 0, "snips": 0, "dr": 0}
    seeds = 120
    for seed in range(seeds):
        data = bandit.log(np.random.default_rng(1000 + seed), 1000)
        for name, result in evaluate(data, n_bootstrap=300, rng=seed).items():
            lo, hi = result.ci
            covered[name] += lo <= bandit.truth <= hi
    for name, hits in covered.items():
        assert hits / seeds >= 0.9, (name, hits / seeds)


EXAMINATION = np.array([1.0, 0.6, 0.35])  # position-based click model over three slots


def test_per_slot_estimators_are_unbiased_on_lists_under_a_position_based_click_model() -> None:
    """Lists of 3 from 6 items logged by Plackett-Luce (engine/serving/exploration.py) with their
    propensities; the target shows a fixed ranking.  Prefix weights (the cascade estimator), whole-list
    weights (standard slate IPS) and, under uniform logging, per-slot marginal weights (independent IPS)
    all average to the target's true expected clicks per impression; conditional propensities read as
    marginal ones do not (they miss the lists where the target's item was already shown above)."""
    rng = np.random.default_rng(21)
    relevance = rng.uniform(0.05, 0.6, size=6)
    scores = 4 * relevance + rng.normal(0, 0.5, size=6)  # the logging model knows roughly what is relevant
    target = np.argsort(-relevance)[:3]
    truth = float((relevance[target] * EXAMINATION).sum())
    runs, impressions = 100, 300
    total = runs * impressions

    def clicks(shown: np.ndarray) -> np.ndarray:
        return (rng.random(shown.shape) < relevance[shown] * EXAMINATION).astype(float)

    logged = [sample_plackett_luce(scores, 3, 1.0, rng) for _ in range(total)]
    shown = np.array([s.items for s in logged])
    agree = [deterministic_propensities(target, s) for s in shown]
    prefix = np.array([s.prefix_propensities for s in logged])
    target_prefix = np.array([t.prefix for t in agree])
    weights = {  # kind: (logging propensities, target propensities), impressions × slots
        "prefix": (prefix, target_prefix),
        # a negative control: the conditional propensity is not the item's marginal probability at its slot
        "conditional as marginal": (np.array([s.propensities for s in logged]), np.array([t.marginal for t in agree])),
        "list": (prefix[:, -1:].repeat(3, axis=1), target_prefix[:, -1:].repeat(3, axis=1)),
    }
    reward = clicks(shown)
    uniform = rng.permuted(np.tile(np.arange(6), (total, 1)), axis=1)[:, :3]
    uniform_target = np.array([deterministic_propensities(target, s).marginal for s in uniform])
    position = np.tile(np.arange(3), impressions)
    slate = np.repeat(np.arange(impressions), 3)
    by_kind: dict[str, list[float]] = {kind: [] for kind in (*weights, "marginal")}
    uniform_reward = clicks(uniform)
    for run in range(runs):
        part = slice(run * impressions, (run + 1) * impressions)
        for kind, (pscore, target_pscore) in weights.items():
            data = logged_feedback(
                reward[part].ravel(),
                pscore[part].ravel(),
                target_pscore[part].ravel(),
                position=position,
                slate_id=slate,
            )
            by_kind[kind].append(IPS.estimate_policy_value(data))
        marginal = logged_feedback(
            uniform_reward[part].ravel(),
            np.full(3 * impressions, 1 / 6),
            uniform_target[part].ravel(),
            position=position,
            slate_id=slate,
        )
        by_kind["marginal"].append(IPS.estimate_policy_value(marginal))
    for kind, values in by_kind.items():
        v = np.array(values)
        unbiased = abs(v.mean() - truth) < 3.5 * v.std(ddof=1) / math.sqrt(runs)
        assert unbiased == (kind != "conditional as marginal"), (kind, v.mean(), truth)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reward": [], "pscore": [], "target_pscore": []}, "no logged rows"),
        ({"reward": [1, 0], "pscore": [0.5], "target_pscore": [1, 1]}, "pscore has 1 values but reward has 2"),
        ({"reward": [1, 0], "pscore": [0.5, 0.0], "target_pscore": [1, 1]}, r"\(0, 1\]: 1 are zero"),
        ({"reward": [1, 0], "pscore": [0.5, 1.5], "target_pscore": [1, 1]}, "1 above 1"),
        (
            {"reward": [1, 0], "pscore": [0.5, 0.5], "target_pscore": [1, 2]},
            r"target probabilities must be in \[0, 1\]",
        ),
        ({"reward": [1, np.nan], "pscore": [0.5, 0.5], "target_pscore": [1, 1]}, "reward contains NaN"),
        ({"reward": [1, 0], "pscore": [0.5, 0.5], "target_pscore": [1, 1], "position": [0, -1]}, "non-negative"),
        (
            {"reward": [1, 0], "pscore": [0.5, 0.5], "target_pscore": [1, 1], "position": [0, 0], "slate_id": [1, 1]},
            "share an impression and a position",
        ),
        ({"reward": [1, 0], "pscore": [0.5, 0.5], "target_pscore": [1, 1], "q_hat": [0.1, 0.1]}, "or neither"),
    ],
)
def test_degenerate_input_is_a_clear_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logged_feedback(**kwargs)  # type: ignore[arg-type]


def test_estimator_misuse_is_a_clear_value_error() -> None:
    data = logged_feedback([1, 0], [0.5, 0.5], [1, 0])
    with pytest.raises(ValueError, match="needs q_hat"):
        DR.estimate_policy_value(data)
    with pytest.raises(ValueError, match="unknown estimator"):
        evaluate(data, ["ips"])
    with pytest.raises(ValueError, match="alpha"):
        IPS.estimate_interval(data, alpha=0)
    with pytest.raises(ValueError, match="n_bootstrap"):
        IPS.estimate_interval(data, n_bootstrap=0)


# ------------------------------------------------------------------------------------ Open Bandit Pipeline


def test_agrees_with_open_bandit_pipeline() -> None:
    """IPS, SNIPS and DR against obp's on the Open Bandit Dataset sample obp bundles (10,000 rows logged by
    the uniform random policy), for a random target policy and a random reward model.  The sample is read
    from obp's package folder (obp 0.4's own loader breaks on pandas 2)."""
    try:
        import obp
        from obp.ope import DoublyRobust as ObpDR
        from obp.ope import InverseProbabilityWeighting as ObpIPW
        from obp.ope import SelfNormalizedInverseProbabilityWeighting as ObpSNIPW
    except ImportError as exc:  # obp imports torch, scikit-learn, matplotlib and seaborn: the `obp` extra brings them
        missing(f"obp is not importable here ({exc}): pip install -e '.[obp]' on Python 3.11 (`make test` does)")
    sample = Path(obp.__file__).parent / "dataset" / "obd" / "random" / "all" / "all.csv"
    if not sample.exists():
        missing(f"obp {obp.__version__} does not bundle the Open Bandit Dataset sample ({sample})")
    logs = pd.read_csv(sample, usecols=["item_id", "position", "click", "propensity_score"])
    n = len(logs)
    action = logs["item_id"].to_numpy()
    position = stats.rankdata(logs["position"], method="dense").astype(int) - 1
    reward = logs["click"].to_numpy().astype(float)
    pscore = logs["propensity_score"].to_numpy()
    rng = np.random.default_rng(0)
    action_dist = rng.dirichlet(np.ones(action.max() + 1), size=(n, position.max() + 1)).transpose(0, 2, 1)
    q = rng.uniform(0, 0.02, size=action_dist.shape)
    rows = np.arange(n)
    data = logged_feedback(
        reward,
        pscore,
        action_dist[rows, action, position],
        q_hat=q[rows, action, position],
        q_hat_target=(action_dist[rows, :, position] * q[rows, :, position]).sum(axis=1),
    )
    common = {"reward": reward, "action": action, "position": position, "pscore": pscore, "action_dist": action_dist}
    assert IPS.estimate_policy_value(data) == pytest.approx(ObpIPW().estimate_policy_value(**common), rel=1e-9)
    assert SNIPS.estimate_policy_value(data) == pytest.approx(ObpSNIPW().estimate_policy_value(**common), rel=1e-9)
    expected_dr = ObpDR().estimate_policy_value(**common, estimated_rewards_by_reg_model=q)
    assert DR.estimate_policy_value(data) == pytest.approx(expected_dr, rel=1e-9)
