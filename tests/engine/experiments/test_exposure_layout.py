"""EXPOSE and OBSERVE/OBSERVE_CUSTOM carry two features' arguments in one positional layout
(``engine.experiments.scripts``): a phase-2 exposure with a served list, custom counters and user
dimensions records all of them, on a real Redis, and nothing of one feature lands in the other's place."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from engine.events.tracker import Event
from engine.experiments import ExperimentService, PreExposure
from engine.experiments.arm_stats import parse_stats
from engine.experiments.exposure import utc_day, utc_hour
from engine.experiments.quality import ServedList
from engine.storage.keys import Keys

T0 = 1_790_000_000.0 - 1_790_000_000.0 % 86_400 + 6 * 3_600  # 06:00 UTC
USERS = [f"u{i:03d}" for i in range(200)]
PRE_VIEWS = {u: float(i % 7) for i, u in enumerate(USERS)}
DIMS = {u: {"device": "mobile" if i % 3 else "desktop"} for i, u in enumerate(USERS)}
ARMS = ["control", "als"]


@pytest.fixture
def service(redis_client: redis.Redis) -> Iterator[ExperimentService]:
    svc = ExperimentService(
        redis_client, Keys(), covariates=PreExposure({}, {"count:view": PRE_VIEWS}), clock=lambda: T0,
        attributes=lambda u: DIMS.get(u, {}),
    )
    yield svc
    svc.close()


def variants(control_weight: float) -> list[dict[str, object]]:
    return [{"name": "control", "model": "popularity", "weight": control_weight},
            {"name": "als", "model": "als", "weight": 1 - control_weight}]


def test_a_phase_two_exposure_records_list_quality_carry_over_custom_pre_values_and_dimensions(
    service: ExperimentService, redis_client: redis.Redis
) -> None:
    keys = Keys()
    service.create({"key": "exp", "name": "layout", "goal_metric": "ctr", "variants": variants(0.5),
                    "metrics": [{"name": "views", "kind": "count", "event_type": "view", "role": "secondary"}]})
    service.start("exp")
    first = {}
    for u in USERS:
        a = service.assign(u)
        assert a is not None
        first[u] = a.variant
        service.record_exposure(a)
    service.update("exp", {"variants": variants(0.2)})
    assert service.get("exp").phase == 2
    second = {}
    served = ServedList(("a", "b"), cold_start=True)
    for u in USERS:
        a = service.assign(u)
        assert a is not None and a.phase == 2
        second[u] = a.variant
        service.record_exposure(a, served)
    moved = sum(1 for u in USERS if first[u] != second[u])
    assert moved > 0

    # main's part: quality counters, the list sample, health (carried over, last exposure)
    quality = redis_client.hgetall(keys.experiment_quality("exp", 2))
    for arm in ARMS:
        n = sum(1 for v in second.values() if v == arm)
        assert int(quality[f"{arm}|lists"]) == n and int(quality[f"{arm}|cold"]) == n
        assert redis_client.llen(keys.experiment_lists("exp", 2, arm)) == n
    health = redis_client.hgetall(keys.experiment_health("exp", 2))
    assert int(health["carried_over"]) == moved and float(health["last_exposure"]) == T0
    # metrics17's part: the pre-exposure value ends the assignment record, the dimensions have their hash
    assignments, _, dims = service.store.read_units("exp", 2)
    for u in USERS:
        assert assignments[u].split("|")[-1] == repr(PRE_VIEWS[u])
        assert dims[u] == f"device={DIMS[u]['device']}"
    stats = parse_stats(redis_client.hgetall(keys.experiment_stats("exp", 2)), ARMS)
    for arm in ARMS:
        assert stats[arm].get("px:count:view") == pytest.approx(
            sum(PRE_VIEWS[u] for u, v in second.items() if v == arm))

    # events: OBSERVE and OBSERVE_CUSTOM both write the hour's statistics beside the day's
    views = {u: 1 + i % 3 for i, u in enumerate(USERS)}
    events = [Event(user_id=u, item_id="i", type="view", timestamp=T0 + 60) for u in USERS for _ in range(views[u])]
    events += [Event(user_id=u, item_id="i", type="click", timestamp=T0 + 90) for u in USERS[:50]]
    service.observe(events)
    hourly = parse_stats(redis_client.hgetall(keys.experiment_hourly("exp", 2, utc_hour(T0 + 60))), ARMS)
    daily = parse_stats(redis_client.hgetall(keys.experiment_daily("exp", 2, utc_day(T0))), ARMS)
    for arm in ARMS:
        mine = [u for u, v in second.items() if v == arm]
        assert hourly[arm].get("s:count:view") == daily[arm].get("s:count:view") == sum(views[u] for u in mine)
        assert hourly[arm].get("sx:count:view@count:view") == pytest.approx(sum(views[u] * PRE_VIEWS[u] for u in mine))
        assert hourly[arm].get("s:clicks") == sum(1 for u in USERS[:50] if second[u] == arm)
    health = redis_client.hgetall(keys.experiment_health("exp", 2))
    assert float(health["last_event"]) == T0 + 90
    assert int(health["observed"]) == 50  # the clicks' (user, hour) slots: OBSERVE's count, not OBSERVE_CUSTOM's
