"""Off-policy evaluation of a candidate policy from an exploring arm's logs (``recops ope``, the console).

What is estimated (``value``): the expected number of clicks per shown list — the sum over slots of
P(click) — had the *target* policy (a model spec with serving settings, deterministic) shown the list
instead of the logging policy, over the logged requests' users, slots counted down to the logged
list's length.  Divide by the list length for a click-through rate per shown item.

The logs are an exploring arm's ``impression`` events (``engine.events.impressions``: position and
propensities, joined to click events by ``(request_id, item_id)``).  The estimators are
``analysis.off_policy``'s, per slot, weighted by the *marginal* propensity π_log(item at k) the arm
logged (the independent / position-based IPS: unbiased under a position-based click model such as
the demo world's ``P(click) = bias(k) · attractiveness(u, i)``) against the target's 1 or 0 (it shows
that item there or not).  DR's reward model q̂ is the logged click rate of each slot.

Pure logic here (arrays in, numbers out); the I/O — reading the event log, serving the target's lists,
writing simulated logs — is in :class:`OfflineCheck`'s callers' hands through plain functions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.off_policy import evaluate, logged_feedback, logging_value
from engine.events.impressions import policy_label
from engine.serving.exploring_lists import (
    MARGINAL_SAMPLES,
    ExplorationPolicy,
    at_least_prefix,
    conditional_matrix,
    marginal_propensities,
    sample_prefixes,
)

ESTIMATOR_NAMES = ("ipw", "snips", "dr")
# mean weight below this: the logs rarely show the target's items where it puts them (biased estimate;
# bench/ope.py: item_item against ALS's exploring top 30 has 0.58 and errs by ~20%)
LOW_SUPPORT = 0.9
TargetLists = Mapping[str, Sequence[str]]  # user id -> the target's list (item ids, best first)


class NoLogsError(ValueError):
    """No exploring impressions (with propensities) in the log: nothing to estimate from."""


@dataclass(frozen=True)
class LoggedImpressions:
    """One row per shown item of an exploring list, with whether it was clicked."""

    request_id: np.ndarray
    user_id: np.ndarray
    item_id: np.ndarray
    position: np.ndarray
    marginal: np.ndarray
    reward: np.ndarray

    @property
    def requests(self) -> int:
        return int(np.unique(self.request_id).size)

    @property
    def depth(self) -> int:
        return int(self.position.max()) + 1

    def users(self) -> list[str]:
        return sorted(set(self.user_id.tolist()))


def logged_impressions(table: pa.Table) -> LoggedImpressions:
    """The exploring impressions of an event-log table, each with its click (0/1); ``NoLogsError`` when none."""
    frame = table.select(["type", "user_id", "item_id", "request_id", "position", "marginal_propensity"]).to_pandas()
    shown = frame[(frame["type"] == "impression") & frame["marginal_propensity"].notna()
                  & frame["position"].notna() & frame["request_id"].notna()]
    if shown.empty:
        raise NoLogsError("no logged exploring impressions (impression events with propensities): run an "
                          "experiment arm with exploration, or --simulate on the demo world")
    shown = shown.drop_duplicates(["request_id", "position"])
    clicks = frame[(frame["type"] == "click") & frame["request_id"].notna()][["request_id", "item_id"]]
    clicked = pd.MultiIndex.from_frame(clicks.drop_duplicates())
    reward = pd.MultiIndex.from_frame(shown[["request_id", "item_id"]]).isin(clicked).astype(float)
    return LoggedImpressions(
        request_id=shown["request_id"].to_numpy(str), user_id=shown["user_id"].to_numpy(str),
        item_id=shown["item_id"].to_numpy(str), position=shown["position"].to_numpy(np.int64),
        marginal=shown["marginal_propensity"].to_numpy(float), reward=reward,
    )


def _target_item(logged: LoggedImpressions, targets: TargetLists) -> np.ndarray:
    """The item the target shows at each logged row's (user, slot); '' where its list is shorter."""
    return np.asarray([
        lst[k] if k < len(lst) else ""
        for lst, k in zip((targets.get(u, ()) for u in logged.user_id), logged.position.tolist(), strict=True)
    ], dtype=object)


def position_click_rates(logged: LoggedImpressions) -> np.ndarray:
    """q̂ of DR: the logged click rate of each slot (a position-based reward model, item-blind)."""
    sums = np.bincount(logged.position, weights=logged.reward, minlength=logged.depth)
    counts = np.bincount(logged.position, minlength=logged.depth)
    return sums / np.maximum(counts, 1)


@dataclass(frozen=True)
class OffPolicyResult:
    target: str
    requests: int  # logged lists
    rows: int  # logged shown items
    depth: int  # slots evaluated
    matched: float  # share of logged rows where the logged item is the target's
    mean_weight: float  # mean importance weight: ≈ the share of the target's slots the logging policy covers
    logging_value: float
    estimates: dict[str, dict[str, Any]]
    truth: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target, "value": "expected clicks per shown list (sum over slots)",
            "requests": self.requests, "rows": self.rows, "depth": self.depth,
            "matched_share": round(self.matched, 6), "mean_weight": round(self.mean_weight, 6),
            "logging_value": self.logging_value,
        }
        out.update(self.estimates)
        out["truth"] = self.truth
        out.update(self.extra)
        return out


def estimate(
    logged: LoggedImpressions,
    targets: TargetLists,
    target: str,
    estimators: Sequence[str] = ESTIMATOR_NAMES,
    truth: float | None = None,
    n_bootstrap: int = 1000,
    seed: int | None = None,
) -> OffPolicyResult:
    """The target's value by each estimator with a 95% bootstrap interval, and the logging policy's own."""
    wanted = _target_item(logged, targets)
    target_pscore = (wanted == logged.item_id).astype(float)
    rates = position_click_rates(logged)
    q_hat = rates[logged.position]
    q_hat_target = np.where(wanted != "", q_hat, 0.0)
    data = logged_feedback(
        logged.reward, logged.marginal, target_pscore, position=logged.position, slate_id=logged.request_id,
        q_hat=q_hat, q_hat_target=q_hat_target,
    )
    values = evaluate(data, list(estimators), n_bootstrap=n_bootstrap, rng=seed)
    return OffPolicyResult(
        target=target, requests=data.n_impressions, rows=int(logged.reward.size), depth=logged.depth,
        matched=float(target_pscore.mean()), mean_weight=float(data.weights.mean()),
        logging_value=logging_value(data),
        estimates={name: {"value": v.value, "ci": [v.ci[0], v.ci[1]]} for name, v in values.items()},
        truth=truth,
    )


def true_value(
    logged: LoggedImpressions, targets: TargetLists, click_probability: Callable[..., np.ndarray]
) -> float:
    """Ground truth (demo world): the target's expected clicks per list over the logged requests' users,
    ``click_probability(users, items, positions)`` summed over the slots its list fills."""
    first = pd.DataFrame({"r": logged.request_id, "u": logged.user_id}).drop_duplicates("r")
    per_user = {}
    for user in set(first["u"]):
        items = list(targets.get(user, ()))[: logged.depth]
        per_user[user] = float(click_probability(user, items, np.arange(len(items))).sum()) if items else 0.0
    return float(np.mean([per_user[u] for u in first["u"]]))


# ---- simulated logs (the demo world) ------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedList:
    user_id: str
    items: list[str]
    propensity: list[float]
    prefix_propensity: list[float]
    marginal_propensity: list[float]


def simulate_lists(
    pools: Mapping[str, tuple[Sequence[str], np.ndarray]],
    users: Sequence[str],
    n: int,
    policy: ExplorationPolicy,
    rng: np.random.Generator,
    samples: int = MARGINAL_SAMPLES,
) -> list[SimulatedList]:
    """One exploring list per entry of ``users``, drawn from the user's pool (item ids, scores) with the
    propensities serving would log (``engine.serving.exploring_lists``), vectorised per user."""
    out: list[SimulatedList] = []
    counts = pd.Series(users).value_counts(sort=False)
    for user, count in counts.items():
        ids, scores = pools[str(user)]
        if len(ids) == 0:
            continue
        marginal = marginal_propensities(scores, n, policy, rng, samples)
        shown = sample_prefixes(scores, n, policy, rng, int(count))
        conditional = conditional_matrix(scores, shown, policy)
        prefix = np.cumprod(conditional, axis=1)
        slots = np.arange(shown.shape[1])
        for row in range(shown.shape[0]):
            out.append(SimulatedList(
                str(user), [ids[i] for i in shown[row]], conditional[row].tolist(), prefix[row].tolist(),
                at_least_prefix(marginal[shown[row], slots], prefix[row]).tolist(),
            ))
    return out


def simulated_rows(
    lists: Sequence[SimulatedList], clicked: Sequence[Sequence[bool]], policy: str, now: float | None = None
) -> list[dict[str, Any]]:
    """Event-log rows of simulated lists and their clicks: the rows the consumer writes for the events
    ``impression_events`` builds and for click events with the same request id (the tests check the two
    agree; building a million ``Event`` objects would cost a minute)."""
    when = time.time() if now is None else now
    run = uuid.uuid4().hex[:12]
    ms = int(when * 1000)
    rows: list[dict[str, Any]] = []
    for i, (shown, clicks) in enumerate(zip(lists, clicked, strict=True)):
        request_id = f"ope-{run}-{i}"
        for k, item in enumerate(shown.items):
            rows.append({
                **_bare_row(f"{ms}-{len(rows)}", f"{request_id}.{k}", shown.user_id, item, "impression", when,
                            request_id),
                "position": k, "propensity": shown.propensity[k],
                "prefix_propensity": shown.prefix_propensity[k] or None,
                "marginal_propensity": shown.marginal_propensity[k] or None, "policy": policy,
            })
            if clicks[k]:
                rows.append(_bare_row(f"{ms}-{len(rows)}", f"{request_id}.{k}.click", shown.user_id, item, "click",
                                      when, request_id))
    return rows


def _bare_row(stream_id: str, event_id: str, user_id: str, item_id: str, kind: str, when: float,
              request_id: str) -> dict[str, Any]:
    return {"stream_id": stream_id, "event_id": event_id, "user_id": user_id, "item_id": item_id, "type": kind,
            "timestamp": when, "value": None, "request_id": request_id, "position": None, "propensity": None,
            "prefix_propensity": None, "marginal_propensity": None, "policy": None}


__all__ = ["NoLogsError", "OffPolicyResult", "estimate", "logged_impressions", "policy_label", "simulate_lists",
           "simulated_rows", "true_value"]
