"""Health, quality and results over time of a readout, on a real Redis: stored hourly and daily
statistics, each health check made to fire, quality numbers on a hand-checked case, exports."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import redis

from analysis.srm import srm_test
from engine.events.tracker import Event
from engine.experiments import ExperimentService, PreExposure
from engine.experiments.arm_stats import parse_stats
from engine.experiments.export import export_csv, report_html, results_rows
from engine.experiments.exposure import utc_day, utc_hour
from engine.experiments.health import dimension_srm
from engine.experiments.quality import Catalog, ServedList, quality_block
from engine.experiments.scripts import HOURLY_TTL_SECONDS, LIST_SAMPLE
from engine.experiments.timeseries import NO_DATA
from engine.storage.keys import Keys

HOUR = 3_600.0
DAY = 86_400.0
T0 = 1_790_000_000.0 - 1_790_000_000.0 % DAY + 6 * HOUR  # 06:00 UTC, so hour and day boundaries are known


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def users(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(redis_client: redis.Redis, clock: Clock) -> Iterator[ExperimentService]:
    catalog = Catalog(4, {"a": "x", "b": "x", "c": "y", "d": "z"}, {"a": 0.5, "b": 0.25, "c": 0.125, "d": 0.125})
    svc = ExperimentService(redis_client, Keys(), covariates=PreExposure(), clock=clock, catalog=lambda: catalog)
    yield svc
    svc.close()


def start(service: ExperimentService, key: str = "exp", engine: str = "frequentist", **fields: Any) -> None:
    service.create({
        "key": key, "name": f"Experiment {key}", "engine": engine, "goal_metric": "clicked",
        "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}], **fields,
    })
    service.start(key)


def expose(service: ExperimentService, ids: Iterable[str], only: str | None = None,
           served: ServedList | None = None) -> dict[str, str]:
    """Expose each user (only those ``only`` names as their arm, when given); user -> arm."""
    out = {}
    for u in ids:
        a = service.assign(u)
        assert a is not None
        if only is None or a.variant == only:
            service.record_exposure(a, served)
            out[u] = a.variant
    return out


def click(user: str, at: float) -> Event:
    return Event(user_id=user, item_id="i1", type="click", timestamp=at)


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["health"] if c["name"] == name)


# ---------------------------------------------------------------------- stored statistics


def test_hourly_statistics_sum_to_the_daily_and_expire(
    service: ExperimentService, redis_client: redis.Redis, clock: Clock
) -> None:
    start(service)
    keys = Keys()
    first = expose(service, users(60))
    clock.now += HOUR
    second = expose(service, users(40, "v"))
    service.observe([click(u, T0 + 10) for u in list(first)[:20]] + [click(u, T0 + HOUR + 5) for u in second])
    hours = [utc_hour(T0), utc_hour(T0 + HOUR)]
    assert hours == [f"{utc_day(T0)}T06", f"{utc_day(T0)}T07"]
    raw = [redis_client.hgetall(keys.experiment_hourly("exp", 1, h)) for h in hours]
    per_hour = [parse_stats(r, ["control", "als"]) for r in raw]
    daily = parse_stats(redis_client.hgetall(keys.experiment_daily("exp", 1, utc_day(T0))), ["control", "als"])
    for arm in ("control", "als"):
        assert per_hour[0][arm].n == sum(1 for v in first.values() if v == arm)
        assert per_hour[1][arm].n == sum(1 for v in second.values() if v == arm)
        assert per_hour[0][arm].n + per_hour[1][arm].n == daily[arm].n
        clicks = [h[arm].get("s:clicks") for h in per_hour]
        assert clicks[0] == sum(1 for u, v in first.items() if v == arm and u in list(first)[:20])
        assert sum(clicks) == daily[arm].get("s:clicks")
    for h in hours:
        ttl = redis_client.ttl(keys.experiment_hourly("exp", 1, h))
        assert 0 < ttl <= HOURLY_TTL_SECONDS


def test_young_run_is_charted_per_hour_for_every_engine(service: ExperimentService, clock: Clock) -> None:
    for engine in ("frequentist", "sequential", "bayesian"):
        key = f"e-{engine}"
        start(service, key, engine)
        exposed = expose(service, users(300, engine))
        clock.now += HOUR
        service.observe([click(u, clock.now) for u, v in exposed.items() if v == "als" or u.endswith("0")])
        report = service.report(key)
        assert report["timeseries_unit"] == "hour"
        rows = [r for r in report["timeseries"] if r["metric"] == "clicked"]
        assert {r["period"] for r in rows} == {utc_hour(T0 + (clock.now - T0) - HOUR), utc_hour(clock.now)}
        last = [r for r in rows if r["period"] == utc_hour(clock.now)]
        readout = service.readout(key)
        treatment = next(r for r in last if r["arm"] == "als")
        expected = next(r for r in readout.metrics["clicked"].readout.results  # type: ignore[union-attr]
                        if r.variant == "als")
        assert treatment["engine"] == engine and treatment["lift"] == pytest.approx(expected.lift)
        assert treatment["ci"] == pytest.approx(list(expected.ci))
        assert treatment["users"] == sum(1 for v in exposed.values() if v == "als")
        if engine == "bayesian":
            assert 0.5 < treatment["chance_to_win"] <= 1.0 and treatment["p_value"] is None
        else:
            assert treatment["p_value"] == pytest.approx(expected.decisive_p_value)
        control = next(r for r in last if r["arm"] == "control")
        clicked = readout.metrics["clicked"].readout
        assert clicked is not None
        assert control["lift"] is None and control["mean"] == pytest.approx(clicked.arms[0].mean)
        service.stop(key)  # the next experiment gets the users
        clock.now = T0


def test_a_group_sequential_run_shows_its_boundary_at_each_look(service: ExperimentService, clock: Clock) -> None:
    start(service, engine="sequential", sequential={"method": "group", "looks": 4}, planned_sample_size=2000)
    for hour in range(3):
        exposed = expose(service, users(200, f"h{hour}"))
        service.observe([click(u, clock.now) for u, v in exposed.items() if v == "als" or u.endswith(("0", "5"))])
        clock.now += HOUR
    rows = [r for r in service.report("exp")["timeseries"] if r["arm"] == "als" and r["metric"] == "clicked"]
    assert len(rows) == 4  # three hours with traffic, and the current one
    assert all(r["boundary"] is not None and r["boundary"] > 1.96 for r in rows[:3])
    readout = service.readout("exp").metrics["clicked"].readout
    assert readout is not None and readout.results[0].group_sequential is not None
    assert rows[-1]["boundary"] == pytest.approx(readout.results[0].group_sequential.boundary)
    assert rows[-1]["look"] == readout.results[0].group_sequential.look


def test_older_run_is_charted_per_day_and_says_when_a_day_had_no_data(
    service: ExperimentService, clock: Clock
) -> None:
    start(service)
    expose(service, users(200))
    clock.now += 2 * DAY  # nothing on the day in between
    expose(service, users(200, "w"))
    report = service.report("exp")
    assert report["timeseries_unit"] == "day"
    periods = list(dict.fromkeys(r["period"] for r in report["timeseries"]))
    assert periods == [utc_day(T0), utc_day(T0 + DAY), utc_day(T0 + 2 * DAY)]
    quiet = [r for r in report["timeseries"] if r["period"] == utc_day(T0 + DAY)]
    assert quiet and all(r["message"] == NO_DATA for r in quiet)
    users_by_day = [sum(r["users"] for r in report["timeseries"] if r["period"] == p and r["metric"] == "clicked")
                    for p in periods]
    assert users_by_day[0] == users_by_day[1] < users_by_day[2] == 400


def test_a_metric_without_data_carries_a_message_not_a_traceback(service: ExperimentService) -> None:
    start(service, goal_metric="ctr")
    expose(service, users(40))  # exposures, no impressions: ctr's denominator is zero in every arm
    rows = [r for r in service.report("exp")["timeseries"] if r["metric"] == "ctr"]
    assert rows and all(r["ci"] is None for r in rows)
    assert all(r["message"] == "no impressions in this arm yet: ctr is undefined here" for r in rows), rows


# ---------------------------------------------------------------------- health


def test_balanced_traffic_is_healthy(service: ExperimentService, clock: Clock) -> None:
    start(service)
    exposed = expose(service, users(400))
    service.observe([click(u, clock.now) for u in exposed])
    report = service.report("exp")
    assert [c["name"] for c in report["health"]] == [
        "srm", "srm_by_period", "second_arm", "unassigned", "arm_traffic", "freshness"]
    assert {c["status"] for c in report["health"]} == {"ok"}, report["health"]


def test_a_skewed_split_fails_srm_total_and_per_period(service: ExperimentService) -> None:
    start(service)
    exposed = expose(service, users(600), only="control")
    exposed.update(expose(service, users(100, "t"), only="als"))
    counts = [sum(1 for v in exposed.values() if v == arm) for arm in ("control", "als")]
    report = service.report("exp")
    srm = check(report, "srm")
    assert srm["status"] == "failed" and srm["details"]["p_value"] == pytest.approx(srm_test(counts).p_value)
    by_period = check(report, "srm_by_period")
    assert by_period["status"] == "failed" and by_period["details"]["flagged"][0]["period"] == utc_hour(T0)


def test_users_served_a_second_arm_are_counted_once(service: ExperimentService, redis_client: redis.Redis) -> None:
    start(service)
    exposed = expose(service, users(200))
    u, arm = next(iter(exposed.items()))
    a = service.assign(u)
    assert a is not None
    other = dataclasses.replace(a, variant="control" if arm == "als" else "als")
    for _ in range(3):  # every process that serves them again; counted once
        service.exposures.forget()
        assert service.record_exposure(other) is False
    second = check(service.report("exp"), "second_arm")
    assert second["status"] == "warning" and second["details"]["crossed_users"] == 1
    crossed = redis_client.hgetall(Keys().experiment_crossed("exp", 1))
    assert crossed == {u: f"{arm}>{other.variant}"}
    for v in list(exposed)[1:10]:
        b = service.assign(v)
        assert b is not None
        service.exposures.forget()
        service.record_exposure(dataclasses.replace(b, variant="control" if b.variant == "als" else "als"))
    assert check(service.report("exp"), "second_arm")["status"] == "failed"  # 10 of 200: above 1%


def test_users_in_another_arm_in_the_previous_phase_are_carried_over(service: ExperimentService) -> None:
    start(service)
    first = expose(service, users(300))
    service.update("exp", {"variants": [{"name": "control", "model": "popularity", "weight": 0.3},
                                        {"name": "als", "model": "als", "weight": 0.7}]})
    assert service.get("exp").phase == 2
    second = expose(service, users(300))
    moved = sum(1 for u, v in second.items() if first[u] != v)
    assert moved > 0
    report = service.report("exp")
    assert check(report, "second_arm")["details"]["carried_over_users"] == moved
    assert check(report, "second_arm")["status"] == "warning"


def test_users_who_move_from_another_experiment_are_found(service: ExperimentService, clock: Clock) -> None:
    start(service, "first", coverage_pct=50)
    clock.now += 60
    start(service, "second")
    everyone = users(400)
    before = {u: a.experiment for u in everyone if (a := service.assign(u)) is not None}
    expose(service, everyone)
    in_first = [u for u, e in before.items() if e == "first"]
    assert 100 < len(in_first) < 300
    assert check(service.report("second"), "second_arm")["status"] == "ok"
    clock.now += 60
    service.stop("first")  # its users now fall to the second experiment
    expose(service, in_first)
    second_arm = check(service.report("second"), "second_arm")
    assert second_arm["status"] == "warning"
    assert second_arm["details"]["other_experiments"] == {"first phase 1": len(in_first)}
    assert second_arm["details"]["sampled_users"] == len(everyone)


def test_exposures_without_assignment_records_fail(service: ExperimentService, redis_client: redis.Redis) -> None:
    start(service)
    exposed = expose(service, users(100))
    redis_client.hdel(Keys().experiment_assignments("exp", 1), *list(exposed)[:5])
    unassigned = check(service.report("exp"), "unassigned")
    assert unassigned["status"] == "failed" and unassigned["details"]["assignment_records"] == 95


def test_events_of_assigned_but_never_exposed_users_are_counted(service: ExperimentService, clock: Clock) -> None:
    start(service)
    exposed = expose(service, users(50))
    service.observe([click(u, clock.now) for u in exposed] + [click(u, clock.now) for u in users(20, "x")])
    unassigned = check(service.report("exp"), "unassigned")
    assert unassigned["details"]["unexposed_event_updates"] == 20
    assert unassigned["details"]["counted_event_updates"] == 50
    assert unassigned["status"] == "warning"


def test_an_arm_that_stopped_receiving_traffic_fails(service: ExperimentService, clock: Clock) -> None:
    start(service)
    expose(service, users(200))
    clock.now += HOUR
    expose(service, users(200, "late"), only="control")
    traffic = check(service.report("exp"), "arm_traffic")
    assert traffic["status"] == "failed" and "als" in traffic["message"]
    assert traffic["details"]["period"] == utc_hour(clock.now)


def test_freshness_turns_stale_then_failed(service: ExperimentService, clock: Clock) -> None:
    start(service)
    exposed = expose(service, users(200))
    service.observe([click(u, clock.now) for u in exposed])
    assert check(service.report("exp"), "freshness")["status"] == "ok"
    clock.now += 2 * HOUR
    assert check(service.report("exp"), "freshness")["status"] == "warning"
    clock.now += DAY
    assert check(service.report("exp"), "freshness")["status"] == "failed"
    service.pause("exp")
    assert check(service.report("exp"), "freshness")["status"] == "ok"


def test_dimension_srm_flags_the_broken_cell() -> None:
    result = dimension_srm("device", {"ios": [500, 500], "android": [700, 300], "web": [0, 0]}, ["control", "als"],
                           [0.5, 0.5])
    assert result.status == "failed" and [f["cell"] for f in result.details["flagged"]] == ["android"]
    assert dimension_srm("device", {"ios": [500, 510]}, ["control", "als"], [0.5, 0.5]).status == "ok"


# ---------------------------------------------------------------------- quality


def test_quality_numbers_on_a_hand_checked_case() -> None:
    catalog = Catalog(4, {"a": "x", "b": "x", "c": "y", "d": "z"}, {"a": 0.5, "b": 0.25, "c": 0.125, "d": 0.125})
    samples = {"control": [("u1", ["a", "b"]), ("u2", ["a", "b"])], "als": [("u3", ["c", "d"]), ("u4", ["a", "c"])]}
    counts = {"control": {"lists": 10, "cold": 2, "fallback": 1}, "als": {"lists": 4}}

    def other(user: str, variant: str, n: int) -> list[str]:
        return {"als": ["a", "c"], "control": ["a", "b"]}[variant][:n]

    block = quality_block(counts, samples, catalog, other)
    control, als = block["arms"]
    assert control["coverage"] == pytest.approx(2 / 4)  # {a, b} of 4 items
    assert als["coverage"] == pytest.approx(3 / 4)  # {a, c, d}
    assert control["diversity"] == pytest.approx(0.0)  # a and b share category x
    assert als["diversity"] == pytest.approx(1.0)  # every pair differs
    assert control["novelty"] == pytest.approx((1 + 2) / 2)  # -log2 .5 = 1, -log2 .25 = 2
    assert als["novelty"] == pytest.approx((3 + 3 + 1 + 3) / 4)
    assert control["cold_start_share"] == pytest.approx(0.2) and control["fallback_share"] == pytest.approx(0.1)
    assert als["cold_start_share"] == 0.0
    # control's users get als' [a, c] against their [a, b]: 1/3; als' get [a, b]: {c,d} vs {a,b} 0, {a,c} vs {a,b} 1/3
    assert block["overlap"][0]["jaccard"] == pytest.approx((1 / 3 + 1 / 3 + 0 + 1 / 3) / 4)
    assert block["overlap"][0]["users"] == 4
    no_engine = quality_block(counts, samples, catalog, None)
    assert no_engine["overlap"] is None and "serving engine" in no_engine["overlap_message"]
    empty = quality_block({}, {"control": [], "als": []}, None)
    assert all(a["message"] == "no list recorded for this arm yet" for a in empty["arms"])


def test_quality_is_recorded_at_exposure_and_the_sample_is_capped(
    service: ExperimentService, redis_client: redis.Redis
) -> None:
    start(service)
    cold = ServedList(("a", "c"), cold_start=True)
    plain = ServedList(("a", "b"))
    exposed = expose(service, users(20), served=cold)
    exposed.update(expose(service, users(LIST_SAMPLE + 30, "p"), served=plain))
    quality = service.report("exp")["quality"]
    arms = {a["variant"]: a for a in quality["arms"]}
    for arm in ("control", "als"):
        total = sum(1 for v in exposed.values() if v == arm)
        colds = sum(1 for u, v in exposed.items() if v == arm and u.startswith("u"))
        assert arms[arm]["lists"] == total
        assert arms[arm]["cold_start_share"] == pytest.approx(colds / total)
        assert arms[arm]["sampled_lists"] == min(total, LIST_SAMPLE)
        assert arms[arm]["fallback_share"] == 0.0
    sample = redis_client.lrange(Keys().experiment_lists("exp", 1, "control"), 0, 0)
    assert re.fullmatch(r"p\d{5}\|a,b", sample[0])


# ---------------------------------------------------------------------- export


def test_html_export_is_self_contained_and_holds_the_numbers(service: ExperimentService, clock: Clock) -> None:
    start(service)
    exposed = expose(service, users(400), served=ServedList(("a", "b")))
    service.observe([click(u, clock.now) for u, v in exposed.items() if v == "als" or u.endswith("3")])
    readout, report = service.readout("exp"), service.report("exp")
    page = report_html(readout, report)
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page, re.I)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", page, re.I)
    assert "Plotly.newPlot" in page and page.count("<script") >= 2
    assert readout.decision_text.split(":")[0] in page
    conversion = readout.metrics["clicked"].readout
    assert conversion is not None
    assert f"{conversion.results[0].lift:.4g}" in page
    for c in report["health"]:
        assert c["name"] in page
    csv_text = export_csv(readout, report)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("metric,role,kind,arm") and len(lines) == 1 + len(results_rows(readout))
    assert any(line.startswith("clicked,") and f"{conversion.results[0].lift!r}" in line for line in lines)
    series = export_csv(readout, report, "timeseries").strip().splitlines()
    assert series[0].startswith("period,metric,arm") and len(series) == 1 + len(report["timeseries"])
