"""ExperimentService on a real Redis: life cycle, phases, layers, exposure, exact statistics, bandits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest
import redis

from analysis.frequentist import ratio_ttest
from analysis.readout import VariantSummary, analyze
from analysis.stats import RatioStats
from engine.events.tracker import Event
from engine.experiments import (
    ConflictError,
    ExperimentError,
    ExperimentService,
    NotFoundError,
    PreExposure,
)
from engine.experiments.arm_stats import parse_stats
from engine.experiments.exposure import utc_day
from engine.experiments.metrics import COUNTERS
from engine.runtime import Engine
from engine.storage.keys import Keys
from tests.support.polling import poll
from tests.support.redis_roundtrips import counting_client

DAY = 86_400.0
T0 = 1_790_000_000.0  # a fixed UTC noon-ish instant, so day boundaries are known


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def covariates(n: int = 400, seed: int = 0) -> PreExposure:
    rng = np.random.default_rng(seed)
    return PreExposure({u: (float(rng.poisson(4)), float(rng.poisson(1))) for u in user_ids(n)})


def user_ids(n: int) -> list[str]:
    return [f"u{i:04d}" for i in range(n)]


def expose(service: ExperimentService, users: Iterable[str]) -> list[str]:
    """Assign each of ``users`` and record the exposure, in order; the users."""
    users = list(users)
    for u in users:
        service.record_exposure(service.assign(u))
    return users


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(redis_client: redis.Redis, clock: Clock) -> Iterator[ExperimentService]:
    svc = ExperimentService(redis_client, Keys(), covariates=covariates(), clock=clock)
    yield svc
    svc.close()


def spec(key: str = "exp", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": key,
        "name": f"Experiment {key}",
        "hypothesis": "ALS lists earn more clicks than best-sellers",
        "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}],
        "guardrail_metrics": ["revenue"],
    }
    return {**base, **fields}


def event(user: str, kind: str, ts: float = T0, value: float | None = None) -> Event:
    return Event(user_id=user, item_id="i1", type=kind, timestamp=ts, value=value)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ life cycle


def test_life_cycle_and_its_refusals(service: ExperimentService) -> None:
    exp = service.create(spec())
    assert (exp.status, exp.version, exp.phase) == ("draft", 1, 0)
    with pytest.raises(ExperimentError, match="already exists"):
        service.create(spec())
    with pytest.raises(ExperimentError, match="only a running experiment can pause"):
        service.pause("exp")
    with pytest.raises(ExperimentError, match="delete a draft instead"):
        service.stop("exp")
    with pytest.raises(ExperimentError, match="nothing to read out"):
        service.readout("exp")

    started = service.start("exp")
    assert (started.status, started.phase, started.version) == ("running", 1, 2)
    assert started.phases[0].reason == "start" and started.start_time is not None
    with pytest.raises(ExperimentError, match="already running"):
        service.start("exp")
    assert service.pause("exp").status == "paused"
    resumed = service.start("exp")
    assert (resumed.status, resumed.phase) == ("running", 1)
    stopped = service.stop("exp")
    assert stopped.status == "stopped" and stopped.phases[-1].ended_at is not None
    with pytest.raises(ExperimentError, match="cannot restart"):
        service.start("exp")
    with pytest.raises(ExperimentError, match="only \\['hypothesis', 'name'\\] can change"):
        service.update("exp", {"coverage_pct": 50})
    assert service.update("exp", {"name": "renamed"}).name == "renamed"
    assert [e.key for e in service.list_experiments()] == ["exp"]
    with pytest.raises(NotFoundError, match="no experiment 'nope'"):
        service.get("nope")


def test_managed_fields_versions_and_conflicts(service: ExperimentService) -> None:
    with pytest.raises(ExperimentError, match="managed by the experiment's life cycle"):
        service.create({**spec(), "status": "running"})
    service.create(spec())
    with pytest.raises(ExperimentError, match=r"\['phase'\]"):
        service.update("exp", {"phase": 3})
    updated = service.update("exp", {"hypothesis": "h2"}, expected_version=1)
    assert updated.version == 2
    with pytest.raises(ConflictError, match="at version 2, not 1"):
        service.update("exp", {"hypothesis": "h3"}, expected_version=1)
    with pytest.raises(ExperimentError, match="must sum to 1"):
        service.update("exp", {"variants": [{"name": "a", "model": "als", "weight": 0.3},
                                            {"name": "b", "model": "als", "weight": 0.3}]})
    assert service.get("exp").version == 2  # a refused update writes nothing


def test_models_must_be_trained_where_the_service_runs(redis_client: redis.Redis) -> None:
    svc = ExperimentService(redis_client, Keys(), available_models=lambda: ["popularity", "item_item"])
    with pytest.raises(ExperimentError, match="model 'als' is not trained here"):
        svc.create(spec())


def test_allocation_change_opens_a_phase_and_phases_never_mix(service: ExperimentService, clock: Clock) -> None:
    service.create(spec())
    service.start("exp")
    users = expose(service, user_ids(200))
    phase_one = service.readout("exp")
    assert sum(a.users for a in phase_one.arms) == 200

    clock.now += 3600
    kept = service.update("exp", {"name": "same allocation", "forced": {"qa": "als"}})
    assert kept.phase == 1
    changed = service.update(
        "exp",
        {"variants": [{"name": "control", "model": "popularity", "weight": 0.3},
                      {"name": "als", "model": "als", "weight": 0.7}]},
    )
    assert changed.phase == 2 and len(changed.phases) == 2
    assert changed.phases[0].ended_at == clock.now and "variants" in changed.phases[1].reason
    assert changed.phases[0].variants[0].weight == 0.5  # the old allocation is kept with its phase

    fresh = service.readout("exp")
    assert fresh.phase == 2 and sum(a.users for a in fresh.arms) == 0
    expose(service, users[:50])
    assert sum(a.users for a in service.readout("exp").arms) == 50
    old = service.readout("exp", phase=1)
    assert sum(a.users for a in old.arms) == 200 and [a.weight for a in old.arms] == [0.5, 0.5]
    assert any("each phase is read separately" in m for m in old.messages)
    with pytest.raises(ExperimentError, match=r"phases 1\.\.2, not 3"):
        service.readout("exp", phase=3)


def test_layers_allocate_disjoint_slices(service: ExperimentService) -> None:
    service.create(spec("a", layer="home", coverage_pct=60))
    service.create(spec("b", layer="home", coverage_pct=60))
    service.create(spec("c", layer="home", coverage_pct=40))
    assert service.start("a").layer_range == (0.0, 0.6)
    with pytest.raises(ExperimentError, match="layer 'home' has no free slice of 60%"):
        service.start("b")
    c = service.start("c")
    assert c.layer_range is not None and c.layer_range[0] == pytest.approx(0.6)
    service.stop("a")
    assert service.start("b").layer_range == (0.0, 0.6)  # a stopped experiment frees its slice
    users = [f"u{i:05d}" for i in range(5000)]
    by = {"b": 0, "c": 0}
    for u in users:
        a = service.assign(u)
        assert a is not None
        by[a.experiment] += 1
    assert abs(by["b"] / len(users) - 0.6) < 0.03


def test_holdout_keeps_users_out(service: ExperimentService) -> None:
    service.create(spec())
    service.start("exp")
    service.set_holdout(20.0)
    users = [f"u{i:05d}" for i in range(5000)]
    assert abs(sum(service.assign(u) is None for u in users) / len(users) - 0.2) < 0.03
    with pytest.raises(ExperimentError, match=r"holdout must be in \[0, 100\)"):
        service.set_holdout(100)


def test_other_processes_pick_changes_up_by_version(service: ExperimentService, redis_client: redis.Redis) -> None:
    other = ExperimentService(redis_client, Keys(), refresh_seconds=0.05)
    other.start_background()
    try:
        assert other.assign("u0001") is None
        service.create(spec())
        service.start("exp")
        assigned = poll(lambda: other.assign("u0001"), 10)
        assert assigned is not None and assigned == service.assign("u0001")
        assert other.refresh() is False  # nothing changed since: no reload
    finally:
        other.close()


# ------------------------------------------------------------------------- statistics


def simulate_events(
    service: ExperimentService, users: list[str], rng: np.random.Generator, ts: float = T0
) -> dict[str, np.ndarray]:
    """Random events for ``users`` sent through ``observe`` in a few batches; returns per-user totals."""
    totals = {c: np.zeros(len(users)) for c in COUNTERS}
    events: list[Event] = []
    for i, u in enumerate(users):
        for _ in range(int(rng.integers(0, 25))):
            events.append(event(u, "impression", ts))
            totals["impressions"][i] += 1
            if rng.random() < 0.12:
                events.append(event(u, "click", ts))
                totals["clicks"][i] += 1
                if rng.random() < 0.3:
                    events.append(event(u, "add_to_cart", ts))
                    totals["add_to_carts"][i] += 1
                    if rng.random() < 0.5:
                        price = float(rng.choice([9.5, 20.0, 35.25]))
                        events.append(event(u, "purchase", ts, price))
                        totals["purchases"][i] += 1
                        totals["revenue"][i] += price
    rng.shuffle(events)  # type: ignore[arg-type]
    for start in range(0, len(events), 300):
        service.observe(events[start : start + 300])
    return totals


def expected_stats(
    users: list[str], totals: dict[str, np.ndarray], pre: PreExposure, mask: np.ndarray
) -> dict[str, float]:
    x_clicks = np.array([pre.get(u)[0] for u in users])[mask]
    x_purchases = np.array([pre.get(u)[1] for u in users])[mask]
    cov = {"impressions": x_clicks, "clicks": x_clicks, "add_to_carts": x_purchases, "purchases": x_purchases,
           "revenue": x_purchases}
    imp = totals["impressions"][mask]
    out = {"n": float(mask.sum()), "px:clicks": x_clicks.sum(), "pxx:clicks": (x_clicks**2).sum(),
           "px:purchases": x_purchases.sum(), "pxx:purchases": (x_purchases**2).sum()}
    for c in COUNTERS:
        v = totals[c][mask]
        out |= {f"s:{c}": v.sum(), f"ss:{c}": (v**2).sum(), f"si:{c}": (v * imp).sum(), f"sx:{c}": (v * cov[c]).sum()}
    out |= {"s:clicked": float((totals["clicks"][mask] > 0).sum()),
            "sx:clicked": x_clicks[totals["clicks"][mask] > 0].sum(),
            "s:converted": float((totals["purchases"][mask] > 0).sum()),
            "sx:converted": x_purchases[totals["purchases"][mask] > 0].sum()}
    return out


def test_stored_statistics_are_exact_sums_over_users(service: ExperimentService) -> None:
    service.create(spec())
    service.start("exp")
    users = expose(service, user_ids(300))
    totals = simulate_events(service, users, np.random.default_rng(5))
    readout = service.readout("exp", metrics=["clicks", "converted"])
    variants = np.array([service.assign(u).variant for u in users])  # type: ignore[union-attr]
    arms = parse_stats(service.store.read_stats("exp", 1), ["control", "als"])
    for name in ("control", "als"):
        want = expected_stats(users, totals, service.covariates, variants == name)
        got = arms[name]
        for stat, value in want.items():
            assert got.get(stat) == pytest.approx(value, rel=1e-12, abs=1e-9), (name, stat)

    # CTR: the stored sums give exactly the delta-method ratio test on the per-user arrays
    def ratio(name: str) -> RatioStats:
        m = variants == name
        c, i = totals["clicks"][m], totals["impressions"][m]
        return RatioStats(int(m.sum()), c.sum(), (c**2).sum(), i.sum(), (i**2).sum(), (c * i).sum())

    direct = ratio_ttest(ratio("control"), ratio("als"))
    ctr = readout.goal.readout.results[0]  # type: ignore[union-attr]
    assert ctr.p_value == pytest.approx(direct.p_value, rel=1e-9)
    assert ctr.lift_abs == pytest.approx(direct.lift_abs, rel=1e-9)
    assert readout.goal.readout.arms[0].mean == pytest.approx(ratio("control").mean)  # type: ignore[union-attr]

    # clicks per user: CUPED on the stored cross-products equals CUPED on the raw arrays
    pre = np.array([service.covariates.get(u)[0] for u in users])
    raw = [
        VariantSummary(n, int((variants == n).sum()), totals["clicks"][variants == n].sum(),
                       (totals["clicks"][variants == n] ** 2).sum(), pre[variants == n].sum(),
                       (pre[variants == n] ** 2).sum(), (pre * totals["clicks"])[variants == n].sum())
        for n in ("control", "als")
    ]
    clicks = readout.metrics["clicks"].readout
    assert clicks is not None and clicks.cuped_theta is not None
    assert clicks.results[0].p_value == pytest.approx(analyze(raw, "mean").results[0].p_value, rel=1e-9)
    json.dumps(readout.to_dict())  # the console and the CLI need plain JSON


def test_exposure_is_recorded_once_and_unexposed_or_forced_users_do_not_count(
    service: ExperimentService, redis_client: redis.Redis
) -> None:
    service.create(spec(forced={"qa-anna": "als"}))
    service.start("exp")
    a = service.assign("u0001")
    assert service.record_exposure(a) is True
    assert service.record_exposure(a) is False
    # a second process without the in-memory shortcut still cannot expose the user twice
    again = ExperimentService(redis_client, Keys(), covariates=covariates())
    again.refresh()
    assert again.record_exposure(again.assign("u0001")) is False
    qa = service.assign("qa-anna")
    assert qa is not None and qa.forced and service.record_exposure(qa) is False

    counted = service.observe([event("u0001", "impression"), event("u0001", "click"),
                               event("u0002", "impression"),  # assigned but never exposed
                               event("qa-anna", "impression"), event("u0001", "view")])
    assert counted == 1
    arms = {a.name: a for a in service.readout("exp").arms}
    assert sum(a.users for a in arms.values()) == 1
    assert sum(a.totals["impressions"] for a in arms.values()) == 1
    assert sum(a.totals["clicks"] for a in arms.values()) == 1


def test_paused_experiments_do_not_count(service: ExperimentService) -> None:
    service.create(spec())
    service.start("exp")
    service.record_exposure(service.assign("u0001"))
    service.pause("exp")
    assert service.assign("u0001") is None
    assert service.observe([event("u0001", "impression")]) == 0
    service.start("exp")
    assert service.observe([event("u0001", "impression")]) == 1


def test_one_round_trip_per_batch_and_per_exposure(redis_url: str, redis_client: redis.Redis) -> None:
    client, trips = counting_client(redis_url)
    svc = ExperimentService(client, Keys(), covariates=covariates())
    svc.create(spec())
    svc.start("exp")
    users = user_ids(100)
    exposures = []
    for u in users:
        trips.reset()
        svc.record_exposure(svc.assign(u))
        exposures.append(trips.count)
    assert exposures == [1] * len(users)
    trips.reset()
    svc.record_exposure(svc.assign(users[0]))
    assert trips.count == 0  # already exposed: remembered in process
    batch = [event(u, kind) for u in users for kind in ("impression", "impression", "click", "purchase")]
    trips.reset()
    assert svc.observe(batch) == len(users)
    assert trips.count == 1
    client.close()


def test_daily_time_series_is_cumulative(service: ExperimentService, clock: Clock) -> None:
    service.create(spec())
    service.start("exp")
    users = expose(service, user_ids(120))
    rng = np.random.default_rng(1)
    simulate_events(service, users, rng, ts=T0)
    simulate_events(service, users, rng, ts=T0 + DAY)
    series = service.time_series("exp")
    assert [p["day"] for p in series] == [utc_day(T0), utc_day(T0 + DAY)]
    final = service.readout("exp").goal.readout
    assert final is not None
    last = series[-1]
    assert last["means"] == pytest.approx({a.name: a.mean for a in final.arms})
    assert last["results"][0]["p_value"] == pytest.approx(final.results[0].p_value)
    assert series[0]["users"] == series[1]["users"] == {a.name: a.users for a in final.arms}
    with pytest.raises(ExperimentError, match="unknown metric 'nope'"):
        service.time_series("exp", metric="nope")


def test_srm_and_guardrails_shape_the_decision(service: ExperimentService) -> None:
    service.create(spec(goal_metric="clicks", guardrail_metrics=["revenue"], planned_sample_size=100))
    service.start("exp")
    users = expose(service, user_ids(400))
    rng = np.random.default_rng(3)
    events = []
    for u in users:
        treated = service.assign(u).variant == "als"  # type: ignore[union-attr]
        events += [event(u, "click")] * int(rng.poisson(3 if treated else 1))
        events += [event(u, "purchase", value=10.0 if treated else 50.0)] * int(rng.integers(1, 3))
    service.observe(events)
    readout = service.readout("exp")
    assert readout.decision.action == "hold" and readout.decision.rule == "stop_guardrail"
    assert readout.decision.metric == "revenue" and readout.decision.variant == "als"
    assert "als on revenue" in readout.decision_text
    assert readout.decision.guardrail_failures == {"revenue": ["als"]}
    assert readout.progress.fraction == 1.0 and readout.progress.source == "planned"
    assert not readout.srm_flag

    # skew the exposures: 300 more users in the control only
    control_only = [u for u in (f"x{i:04d}" for i in range(2000)) if service.assign(u).variant == "control"]  # type: ignore[union-attr]
    expose(service, control_only[:300])
    skewed = service.readout("exp")
    assert skewed.srm_flag and skewed.srm_p_value < 0.001
    assert skewed.decision.action == "untrustworthy"


def test_delete_removes_every_key(service: ExperimentService, redis_client: redis.Redis) -> None:
    service.create(spec())
    service.start("exp")
    expose(service, ("u0001", "u0002", "u0003"))
    service.observe([event("u0001", "click"), event("u0002", "impression", T0 + DAY)])
    with pytest.raises(ExperimentError, match="stop it before deleting"):
        service.delete("exp")
    service.stop("exp")
    assert service.delete("exp") >= 6
    left = [k for k in redis_client.scan_iter(match="recops:exp:*") if "{e:exp}" in k]
    assert left == []
    assert service.list_experiments() == []


# ------------------------------------------------------------------------------- bandits


def test_bandit_reweights_toward_the_better_arm_without_a_new_phase(service: ExperimentService) -> None:
    service.create(spec("bandit", kind="bandit", guardrail_metrics=[], bandit={"min_weight": 0.1}))
    service.start("bandit")
    users = expose(service, user_ids(400))
    events = []
    for i, u in enumerate(users):
        better = service.assign(u).variant == "als"  # type: ignore[union-attr]
        events += [event(u, "impression")] * 10
        events += [event(u, "click")] * (3 if better else (1 if i % 2 else 0))
    service.observe(events)
    exp = service.recompute_bandit_weights("bandit")
    assert exp.phase == 1 and exp.bandit is not None and exp.bandit.epoch == 1
    assert exp.weights[1] > 0.85 and exp.weights[0] == pytest.approx(0.1, abs=1e-9)
    assert sum(exp.weights) == pytest.approx(1.0)
    assert service.store.epoch_weights("bandit") == {0: [0.5, 0.5], 1: exp.weights}

    # epoch 1: every user is a new unit under the new weights; SRM follows the epoch mix
    newcomers = [f"n{i:04d}" for i in range(600)]
    expose(service, [*users, *newcomers])
    readout = service.readout("bandit")
    total = sum(a.users for a in readout.arms)
    assert total == 400 + 1000
    assert readout.expected_shares[1] > 0.6 and not readout.srm_flag
    assert readout.bandit is not None and readout.bandit["epoch"] == 1
    with pytest.raises(ExperimentError, match="is not a bandit"):
        service.create(spec("ab"))
        service.recompute_bandit_weights("ab")


def test_due_bandits_are_reweighted_by_the_periodic_job(service: ExperimentService, clock: Clock) -> None:
    service.create(spec("bandit", kind="bandit", guardrail_metrics=[], bandit={"interval_seconds": 60}))
    service.start("bandit")
    assert service.run_due_bandits() == []
    clock.now += 61
    assert service.run_due_bandits() == ["bandit"]
    assert service.get("bandit").bandit.epoch == 1  # type: ignore[union-attr]
    assert service.run_due_bandits() == []  # not due again until another interval has passed


# ----------------------------------------------------------------------------- wiring


def test_engine_feeds_accepted_events_to_experiments(engine: Engine) -> None:
    experiments = engine.experiments
    assert isinstance(experiments, ExperimentService)
    experiments.create(spec())
    experiments.start("exp")
    user = engine.features.top_active_users(1)[0]
    assignment = experiments.assign(user)
    assert assignment is not None
    result = engine.service.recommend(user, n=5, model=assignment.model)
    experiments.record_exposure(assignment)
    item = result.items[0]
    item_id = item["item_id"] if isinstance(item, dict) else item.item_id
    batch = [Event(user_id=user, item_id=item_id, type=t, event_id=f"e-{t}") for t in ("impression", "click")]
    engine.events.track_many(batch)
    engine.events.track_many(batch)  # duplicates are not accepted, so not counted again
    arm = next(a for a in experiments.readout("exp").arms if a.name == assignment.variant)
    assert arm.users == 1 and arm.totals["impressions"] == 1 and arm.totals["clicks"] == 1
    # the pre-exposure covariate came from the dataset history
    clicks_before = int((engine.dataset.events.query("user_id == @user and type == 'click'")).shape[0])
    stats = engine.redis.hget(engine.keys.experiment_assignments("exp", 1), user)
    assert stats is not None and stats.split("|")[2] == repr(float(clicks_before))
