"""Health checks of an experiment's data, shown before its numbers: the readout's ``health`` (pure).

Each check is ``{"name", "status": "ok" | "warning" | "failed", "message", "details"}``:

``srm``              the arms' users against the configured split, whole phase (chi-square,
                     ``analysis.srm``: the field's p < 0.001 convention);
``srm_by_period``    the same per day (per hour for runs younger than two days), on each period's
                     new exposures; a bandit's weights move, so it is not checked per period;
``second_arm``       users served an arm other than the one their exposure recorded, within the phase
                     (a stale config in a serving process, a re-salted experiment): their metrics
                     count in the first arm while they saw the second.  Counted once per user at
                     exposure time.  Users whose arm in the previous phase differs are reported as
                     carried over (each phase is read separately, but what they saw before may linger).
                     Other experiments live in other key slots, so that overlap is looked up at readout
                     time, on a sample of ``OTHER_EXPERIMENT_SAMPLE`` users of the phase, in every
                     other experiment's phases that ran at the same time (a user moves there when an
                     earlier experiment stops or shrinks its coverage);
``unassigned``       exposures without an assignment record (the statistics count more units than
                     the assignment hash holds: records evicted or deleted), and events from users
                     the experiment assigns but who were never exposed (ignored by the statistics);
``arm_traffic``      an arm that received no exposure in the latest period with traffic while the
                     others did, when it should have received at least ``MIN_EXPECTED`` of them;
``freshness``        time since the last exposure and the last counted event, against the cadence
                     the run has shown so far (its mean gap between exposures).

:func:`dimension_srm` is the per-dimension SRM (``srm_by_dimension``): each cell of a breakdown
against the weights, corrected across the cells; ``engine.experiments.readout_document`` adds one
such check per dimension a readout is broken down by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from analysis.corrections import Correction, adjust
from analysis.srm import SRM_THRESHOLD, srm_test

Status = Literal["ok", "warning", "failed"]

SECOND_ARM_FAILED_SHARE = 0.01  # above 1% of exposed users in a second arm the estimates are biased
UNEXPOSED_EVENTS_WARNING_SHARE = 0.01
MIN_EXPECTED = 10  # exposures an arm should have had in a period before missing them is a finding
FRESHNESS_FLOOR_SECONDS = 15 * 60  # quiet spells shorter than this are never stale
FRESHNESS_GAPS = 20  # stale after this many mean gaps between exposures
FAILED_AFTER_SECONDS = 86_400
OTHER_EXPERIMENT_SAMPLE = 1_000  # users of the phase looked up in the other experiments


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HealthInputs:
    """What the checks read, gathered by the reader (``engine.experiments.diagnostics``)."""

    arms: Sequence[str]
    shares: Sequence[float]  # expected traffic shares, control first
    users: Sequence[int]  # exposed units per arm over the phase
    period_users: Sequence[tuple[str, Sequence[int]]]  # new exposures per arm in each period, oldest first
    bandit: bool
    running: bool
    now: float
    started_at: float
    counters: Mapping[str, float]  # the health hash: crossed, carried_over, unexposed, observed, last_*
    assignment_records: int
    sampled_users: int = 0  # users of this phase looked up in the other experiments
    other_experiments: Mapping[str, int] = field(default_factory=dict)  # "<key> phase <p>" -> sampled users in it


def _srm(arms: Sequence[str], users: Sequence[int], shares: Sequence[float]) -> tuple[float | None, bool, str | None]:
    try:
        result = srm_test(list(users), list(shares), SRM_THRESHOLD)
    except ValueError as exc:  # weights that cannot be tested against: said, not raised
        return None, False, f"not checked: {exc}"
    return result.p_value, result.flagged, result.message


def srm_check(inputs: HealthInputs) -> Check:
    p, flagged, message = _srm(inputs.arms, inputs.users, inputs.shares)
    details = {"p_value": p, "threshold": SRM_THRESHOLD, "users": dict(zip(inputs.arms, inputs.users, strict=True)),
               "expected_shares": dict(zip(inputs.arms, inputs.shares, strict=True))}
    if flagged:
        return Check("srm", "failed", f"{message}: assignment or logging is broken; no lift here can be trusted",
                     details)
    if p is None:
        return Check("srm", "warning", message or "not checked", details)
    return Check("srm", "ok", f"the split matches the configured weights (p = {p:.3g})", details)


def srm_by_period_check(inputs: HealthInputs) -> Check:
    if inputs.bandit:
        return Check("srm_by_period", "ok", "not checked per period: a bandit's weights move between epochs")
    flagged: list[dict[str, Any]] = []
    for label, counts in inputs.period_users:
        if sum(counts) == 0:
            continue
        p, bad, _ = _srm(inputs.arms, counts, inputs.shares)
        if bad:
            flagged.append({"period": label, "p_value": p, "users": dict(zip(inputs.arms, counts, strict=True))})
    if flagged:
        days = ", ".join(f["period"] for f in flagged)
        return Check("srm_by_period", "failed", f"sample ratio mismatch (p < {SRM_THRESHOLD:g}) in {days}",
                     {"flagged": flagged})
    return Check("srm_by_period", "ok", f"no period's split departs from the weights (p < {SRM_THRESHOLD:g})")


def second_arm_check(inputs: HealthInputs) -> Check:
    crossed = int(inputs.counters.get("crossed", 0))
    carried = int(inputs.counters.get("carried_over", 0))
    exposed = max(sum(inputs.users), 1)
    details: dict[str, Any] = {"crossed_users": crossed, "carried_over_users": carried, "share": crossed / exposed}
    if crossed and crossed / exposed > SECOND_ARM_FAILED_SHARE:
        return Check("second_arm", "failed", f"{crossed:,} users ({crossed / exposed:.1%}) were served a second arm "
                     "in this phase: their metrics count in the first arm while they saw the other", details)
    if crossed:
        return Check("second_arm", "warning", f"{crossed:,} users were served a second arm in this phase", details)
    others = {name: n for name, n in inputs.other_experiments.items() if n}
    if others:
        details.update(sampled_users=inputs.sampled_users, other_experiments=others)
        where = ", ".join(f"{n:,} in {name}" for name, n in others.items())
        return Check("second_arm", "warning", f"of {inputs.sampled_users:,} sampled users, {where}: they were "
                     "exposed to another experiment's arm during this phase", details)
    if carried:
        return Check("second_arm", "warning", f"{carried:,} users were in another arm in the previous phase: what "
                     "they saw then may still shape what they do", details)
    return Check("second_arm", "ok", "no user was served more than one arm", details)


def unassigned_check(inputs: HealthInputs) -> Check:
    units = sum(inputs.users)
    unexposed = int(inputs.counters.get("unexposed", 0))
    observed = int(inputs.counters.get("observed", 0))
    details = {"exposed_units": units, "assignment_records": inputs.assignment_records,
               "unexposed_event_updates": unexposed, "counted_event_updates": observed}
    # a bandit counts a user once per weight epoch: more units than records is its normal state
    if not inputs.bandit and units > inputs.assignment_records:
        missing = units - inputs.assignment_records
        return Check("unassigned", "failed", f"{missing:,} exposures have no assignment record (records evicted or "
                     "deleted): their later events are not counted", details)
    if unexposed and unexposed / (unexposed + observed) > UNEXPOSED_EVENTS_WARNING_SHARE:
        return Check("unassigned", "warning", f"{unexposed:,} event updates came from users assigned to the "
                     "experiment but never exposed; they are not counted", details)
    return Check("unassigned", "ok", "every exposure has its assignment record", details)


def arm_traffic_check(inputs: HealthInputs) -> Check:
    live = [(label, counts) for label, counts in inputs.period_users if sum(counts) > 0]
    if not live:
        return Check("arm_traffic", "ok", "no exposures yet")
    label, counts = live[-1]
    total, weight = sum(counts), sum(inputs.shares)
    starved = [arm for arm, n, share in zip(inputs.arms, counts, inputs.shares, strict=True)
               if n == 0 and share > 0 and total * share / weight >= MIN_EXPECTED]
    details = {"period": label, "users": dict(zip(inputs.arms, counts, strict=True))}
    if starved:
        return Check("arm_traffic", "failed", f"{', '.join(starved)} received no exposure in {label} while the other "
                     "arms did", details)
    return Check("arm_traffic", "ok", f"every arm received traffic in {label}", details)


def _age(seconds: float) -> str:
    if seconds < 3_600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def freshness_check(inputs: HealthInputs) -> Check:
    last_exposure = inputs.counters.get("last_exposure")
    last_event = inputs.counters.get("last_event")
    details = {"last_exposure": last_exposure, "last_event": last_event}
    if not inputs.running:
        return Check("freshness", "ok", "the experiment is not running: no new data is expected", details)
    if last_exposure is None:
        return Check("freshness", "warning", "no exposure recorded yet", details)
    units = max(sum(inputs.users), 1)
    gap = max(last_exposure - inputs.started_at, 0.0) / units
    limit = max(FRESHNESS_FLOOR_SECONDS, FRESHNESS_GAPS * gap)
    details.update(expected_gap_seconds=gap, stale_after_seconds=limit)
    quiet = inputs.now - max(last_exposure, last_event or 0.0)
    since_exposure = inputs.now - last_exposure
    if quiet > FAILED_AFTER_SECONDS:
        return Check("freshness", "failed", f"no exposure or event for {_age(quiet)}: is traffic reaching the "
                     "experiment?", details)
    if since_exposure > limit:
        return Check("freshness", "warning", f"last exposure {_age(since_exposure)} ago, against one every "
                     f"{_age(gap)} so far", details)
    if last_event is None and inputs.now - inputs.started_at > FRESHNESS_FLOOR_SECONDS:
        return Check("freshness", "warning", "exposures but no counted event yet: are events tracked?", details)
    event = "no event yet" if last_event is None else f"last event {_age(inputs.now - last_event)} ago"
    return Check("freshness", "ok", f"last exposure {_age(since_exposure)} ago, {event}", details)


def health_checks(inputs: HealthInputs) -> list[Check]:
    return [
        srm_check(inputs),
        srm_by_period_check(inputs),
        second_arm_check(inputs),
        unassigned_check(inputs),
        arm_traffic_check(inputs),
        freshness_check(inputs),
    ]


def dimension_srm(dimension: str, cells: Mapping[str, Sequence[int]], arms: Sequence[str], shares: Sequence[float],
                  bandit: bool = False, correction: Correction = "holm") -> Check:
    """SRM in each cell of a breakdown by ``dimension`` (``cells``: value → users per arm), the cells'
    p-values corrected as one family (``correction``, Holm by default: a breakdown by 30 countries is
    30 chances to cross p < 0.001 by luck) and each cell flagged when its adjusted p-value is below
    ``SRM_THRESHOLD``.

    A mismatch in one cell when the total is fine points at assignment or logging broken for that
    slice only (one device's client, one country's CDN)."""
    if bandit:
        return Check("srm_by_dimension", "ok", f"{dimension}: not checked per cell: a bandit's weights move "
                     "between epochs", {"dimension": dimension})
    tested: list[dict[str, Any]] = []
    for cell, counts in cells.items():
        if sum(counts) == 0:
            continue
        p, _, _ = _srm(arms, counts, shares)
        if p is not None:
            tested.append({"cell": cell, "p_value": p, "users": dict(zip(arms, counts, strict=True))})
    adjusted = adjust([t["p_value"] for t in tested], correction)
    for t, p_adj in zip(tested, adjusted.tolist(), strict=True):
        t.update(p_value_adjusted=p_adj, flagged=p_adj < SRM_THRESHOLD)
    details = {"dimension": dimension, "threshold": SRM_THRESHOLD, "correction": correction,
               "expected_shares": dict(zip(arms, shares, strict=True)), "cells": tested}
    flagged = [t for t in tested if t["flagged"]]
    if flagged:
        names = ", ".join(f"{t['cell']} (adjusted p = {t['p_value_adjusted']:.2g})" for t in flagged)
        return Check("srm_by_dimension", "failed", f"{dimension}: sample ratio mismatch in {names}: assignment or "
                     "logging is broken for that slice; its cells' lifts cannot be trusted",
                     {**details, "flagged": flagged})
    return Check("srm_by_dimension", "ok", f"{dimension}: no cell's split departs from the weights "
                 f"({correction}-adjusted p < {SRM_THRESHOLD:g} across {len(tested)} cells)", details)


def worst(checks: Sequence[Check]) -> Status:
    order: dict[Status, int] = {"ok": 0, "warning": 1, "failed": 2}
    return max((c.status for c in checks), key=order.__getitem__, default="ok")
