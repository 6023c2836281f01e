"""engine.console: the console's back-end logic, against a real Redis and the small demo world."""

from __future__ import annotations

import math

import pytest
import redis
from pydantic import SecretStr

from analysis.ranking import jaccard, rbo
from engine.config import Settings
from engine.console import cache_actions, dependencies, keyspace, monitoring_panels, preview
from engine.console import experiments as console_experiments
from engine.console.auth import ANONYMOUS, AccessPolicy, configured_password, operator_name, password_matches
from engine.console.options import DEFAULT_REFRESH_SECONDS, ConsoleOptions
from engine.runtime import Engine
from engine.storage.embedded_redis import free_port
from engine.storage.keys import Keys
from tests.support.console import run_traffic

# ------------------------------------------------------------------------------ options and access


def test_options_refresh_can_be_switched_off_and_bad_values_fall_back() -> None:
    off = ConsoleOptions.from_env({"RECOPS_CONSOLE_REFRESH_SECONDS": "0"})
    assert off.refresh_seconds == 0 and not off.live
    assert ConsoleOptions.from_env({"RECOPS_CONSOLE_REFRESH_SECONDS": "2.5"}).refresh_seconds == 2.5
    for bad in ("soon", "-3", "nan", "inf"):
        opts = ConsoleOptions.from_env({"RECOPS_CONSOLE_REFRESH_SECONDS": bad})
        assert opts.refresh_seconds == DEFAULT_REFRESH_SECONDS
        assert opts.problems and "RECOPS_CONSOLE_REFRESH_SECONDS" in opts.problems[0]
    assert ConsoleOptions.from_env({"RECOPS_API_URL": "http://x:1/ "}).api_url == "http://x:1"


def test_login_for_reads_fails_closed_on_an_unreadable_value() -> None:
    assert ConsoleOptions.from_env({}).login_for_reads is False
    assert ConsoleOptions.from_env({"RECOPS_CONSOLE_LOGIN_FOR_READS": "1"}).login_for_reads is True
    assert ConsoleOptions.from_env({"RECOPS_CONSOLE_LOGIN_FOR_READS": "off"}).login_for_reads is False
    weird = ConsoleOptions.from_env({"RECOPS_CONSOLE_LOGIN_FOR_READS": "maybe"})
    assert weird.login_for_reads is True and weird.problems


def test_password_from_environment_wins_over_secrets_and_empty_means_open() -> None:
    from_env = Settings(console_password=SecretStr("env-pw"))
    assert configured_password(from_env, {"console_password": "file-pw"}).get_secret_value() == "env-pw"
    assert configured_password(Settings(), {"console_password": "file-pw"}).get_secret_value() == "file-pw"
    assert configured_password(Settings(), {"console_password": ""}) is None
    assert configured_password(Settings(), None) is None
    assert configured_password(Settings(console_password=SecretStr("")), {}) is None


def test_password_compare_and_policy() -> None:
    secret = SecretStr("s3cret-ü")
    assert password_matches("s3cret-ü", secret)
    assert not password_matches("s3cret", secret)
    assert not password_matches("", secret)
    assert "s3cret" not in repr(AccessPolicy(secret))  # never printable by accident
    open_console = AccessPolicy(None)
    assert not open_console.login_required(write=True) and open_console.check("anything")
    writes_only = AccessPolicy(secret)
    assert writes_only.login_required(write=True) and not writes_only.login_required(write=False)
    assert AccessPolicy(secret, login_for_reads=True).login_required(write=False)


def test_operator_names_are_validated() -> None:
    assert operator_name("  ada  ") == "ada"
    assert operator_name("") == ANONYMOUS
    for bad in ("<script>", "x" * 65, "-dash-first", "tab\tname"):
        with pytest.raises(ValueError, match="letters, digits"):
            operator_name(bad)


# ------------------------------------------------------------------------------ health


def test_health_checks_report_absent_and_down_without_raising() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert dependencies.check_api(None).state == "absent"
    assert dependencies.check_api(dead).state == "down"
    assert dependencies.check_prometheus(None).state == "absent"
    assert dependencies.check_prometheus(dead).state == "down"
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    down = dependencies.check_redis(client)
    assert down.state == "down" and "Connection" in down.detail


def test_urls_shown_on_pages_never_carry_credentials() -> None:
    assert dependencies.redact_url("redis://:hunter2@db.internal:6380/0") == "redis://:***@db.internal:6380/0"
    assert dependencies.redact_url("redis://user:pw@db/1") == "redis://user:***@db/1"
    assert dependencies.redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    down = dependencies.check_redis(client, "redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in f"{down}"


def test_health_of_a_live_redis_and_api(redis_client: redis.Redis, api: object) -> None:
    assert dependencies.check_redis(redis_client).ok
    up = dependencies.check_api(api.url)  # type: ignore[attr-defined]
    assert up.state == "up" and up.latency_ms is not None


# ------------------------------------------------------------------------------ keyspace


@pytest.mark.parametrize(("key", "family"), [
    ("recops:rec:{u:42}:als:10:c3l0.7", "rec"),
    ("recops:rec:{u:42}:als:10:c3l0.7:lock", "rec:lock"),
    ("recops:recidx:{u:42}", "recidx"),
    ("recops:feat:user:{u:42}", "feat:user"),
    ("recops:feat:item:i00042", "feat:item"),
    ("recops:events", "events"),
    ("recops:events:count", "events:count"),
    ("recops:exp:cfg:{e:abc}", "exp:cfg"),
    ("other:thing", "(outside prefix)"),
])
def test_key_family(key: str, family: str) -> None:
    assert keyspace.key_family(key, "recops") == family


def test_scan_keyspace_counts_samples_memory_and_ttls(redis_client: redis.Redis) -> None:
    keys = Keys()
    pipe = redis_client.pipeline()
    for i in range(300):
        pipe.set(keys.rec_list(f"u{i}", "als", 10), "x" * 100, ex=600)
    for i in range(20):
        pipe.hset(keys.item_features(f"i{i}"), mapping={"title": "t", "category": "c"})
        pipe.expire(keys.item_features(f"i{i}"), 3600)
    pipe.set(keys.event_counts, 1)  # no TTL on purpose
    pipe.set("someone-else:key", 1)  # outside the prefix: not scanned
    pipe.execute()
    report = keyspace.scan_keyspace(redis_client, keys, sample_per_family=50)
    rec, items, counts = report.family("rec"), report.family("feat:item"), report.family("events:count")
    assert rec is not None and items is not None and counts is not None
    assert (rec.keys, items.keys, counts.keys) == (300, 20, 1)
    assert report.scanned == 321 and report.db_size == 322 and not report.truncated
    assert rec.sampled == 50 and rec.mean_bytes is not None and rec.mean_bytes > 100
    assert rec.est_bytes == pytest.approx(rec.mean_bytes * 300)
    assert all(590 <= t <= 600 for t in rec.ttls) and rec.no_ttl == 0
    assert items.sampled == 20 and all(3590 <= t <= 3600 for t in items.ttls)
    assert counts.no_ttl == 1 and counts.ttls == []
    table = report.table()
    assert list(table["family"][:2]) == ["rec", "feat:item"]  # most keys first
    assert set(report.ttl_frame()["family"]) == {"recommendation lists (L2)", "item features"}


def test_scan_keyspace_stops_at_max_keys(redis_client: redis.Redis) -> None:
    redis_client.mset({f"recops:feat:item:i{i}": "1" for i in range(3000)})
    report = keyspace.scan_keyspace(redis_client, Keys(), max_keys=1000)
    assert report.truncated and 1000 <= report.scanned < 3000


# ------------------------------------------------------------------------------ monitoring

EXPOSITION = """\
# TYPE recops_recommendation_requests_total counter
recops_recommendation_requests_total{model="als",status="ok"} 97.0
recops_recommendation_requests_total{model="als",status="error"} 3.0
# TYPE recops_recommendation_latency_seconds histogram
recops_recommendation_latency_seconds_bucket{le="0.01",tier="l1"} 60.0
recops_recommendation_latency_seconds_bucket{le="0.1",tier="l1"} 60.0
recops_recommendation_latency_seconds_bucket{le="+Inf",tier="l1"} 60.0
recops_recommendation_latency_seconds_count{tier="l1"} 60.0
recops_recommendation_latency_seconds_sum{tier="l1"} 0.3
recops_recommendation_latency_seconds_bucket{le="0.01",tier="miss"} 0.0
recops_recommendation_latency_seconds_bucket{le="0.1",tier="miss"} 40.0
recops_recommendation_latency_seconds_bucket{le="+Inf",tier="miss"} 40.0
recops_recommendation_latency_seconds_count{tier="miss"} 40.0
recops_recommendation_latency_seconds_sum{tier="miss"} 2.0
# TYPE recops_cache_requests_total counter
recops_cache_requests_total{result="hit",tier="l1"} 60.0
recops_cache_requests_total{result="miss",tier="l1"} 40.0
recops_cache_requests_total{result="hit",tier="l2"} 10.0
recops_cache_requests_total{result="miss",tier="l2"} 30.0
# TYPE recops_events_total counter
recops_events_total{type="impression"} 1000.0
recops_events_total{type="click"} 40.0
recops_events_total{type="purchase"} 5.0
# TYPE recops_list_diversity_ratio histogram
recops_list_diversity_ratio_count 100.0
recops_list_diversity_ratio_sum 82.0
# TYPE recops_catalog_coverage_ratio gauge
recops_catalog_coverage_ratio 0.42
"""


def test_exposition_snapshot_computes_the_kpis() -> None:
    snap = monitoring_panels.ExpositionSnapshot.parse(EXPOSITION)
    kpis = snap.kpis()
    assert kpis["ctr"] == pytest.approx(0.04)
    assert kpis["conversion"] == pytest.approx(0.005)
    assert kpis["error_ratio"] == pytest.approx(0.03)
    assert kpis["cache_hit"] == pytest.approx(0.6)  # l1 answered 60 of 100 requests
    assert kpis["diversity"] == pytest.approx(0.82)
    assert kpis["coverage"] == pytest.approx(0.42)
    # 95th of 100: rank 95 falls in (0.01, 0.1] holding ranks 61..100 -> 0.01 + 0.09 * 35/40
    assert kpis["p95_latency"] == pytest.approx(0.01 + 0.09 * 35 / 40)
    assert snap.tier_hit_ratios() == {"l1": pytest.approx(0.6), "l2": pytest.approx(0.25)}
    assert snap.requests() == {"ok": 97.0, "error": 3.0}


def test_exposition_without_traffic_has_no_ratios() -> None:
    kpis = monitoring_panels.ExpositionSnapshot.parse("# TYPE recops_events_total counter\n").kpis()
    assert all(v is None for v in kpis.values())


def test_histogram_quantile_matches_prometheus_rules() -> None:
    buckets = [(0.1, 10.0), (0.2, 20.0), (math.inf, 20.0)]
    assert monitoring_panels.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert monitoring_panels.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert monitoring_panels.histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # first bucket starts at 0
    # beyond the last finite bucket Prometheus answers its upper bound
    assert monitoring_panels.histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == pytest.approx(0.1)
    assert monitoring_panels.histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert monitoring_panels.histogram_quantile(0.5, [(0.1, 3.0)]) is None  # no +Inf bucket
    with pytest.raises(ValueError):
        monitoring_panels.histogram_quantile(1.5, buckets)


def test_kpi_status_against_targets() -> None:
    kpi = monitoring_panels.KPI_BY_KEY
    assert kpi["ctr"].status(0.031) == "ok" and kpi["ctr"].status(0.029) == "bad"
    assert kpi["p95_latency"].status(0.2) == "ok" and kpi["p95_latency"].status(0.21) == "bad"
    assert kpi["error_ratio"].status(0.02) == "bad" and kpi["cache_hit"].status(0.8) == "ok"
    assert kpi["coverage"].status(0.49) == "bad" and kpi["diversity"].status(0.71) == "ok"
    assert kpi["conversion"].status(0.01) == "info" and kpi["ctr"].status(None) == "no data"
    assert kpi["ctr"].status(float("nan")) == "no data"
    assert kpi["p95_latency"].format(0.0421) == "42.1 ms" and kpi["ctr"].target_text == "≥ 3.00%"


def test_alerts_are_ordered_firing_and_critical_first() -> None:
    raw = [
        {"labels": {"alertname": "B", "severity": "warning"}, "state": "firing", "annotations": {"summary": "b"}},
        {"labels": {"alertname": "A", "severity": "warning"}, "state": "pending", "annotations": {}},
        {"labels": {"alertname": "C", "severity": "critical"}, "state": "firing",
         "annotations": {"summary": "c", "runbook": "1) look"}, "activeAt": "2026-01-01T00:00:00Z"},
    ]
    alerts = monitoring_panels.parse_alerts(raw)
    assert [a.name for a in alerts] == ["C", "B", "A"]
    assert alerts[0].runbook == "1) look" and alerts[0].active_at == "2026-01-01T00:00:00Z"


def test_prometheus_source_refuses_naive_times_and_reports_unreachable_servers() -> None:
    source = monitoring_panels.PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    with pytest.raises(monitoring_panels.MetricsUnavailableError):
        source.current()
    with pytest.raises(monitoring_panels.MetricsUnavailableError):
        source.alerts()
    import datetime as dt

    with pytest.raises(ValueError, match="timezone-aware"):
        source.range_frame(monitoring_panels.PANELS[0], dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), 60)
    with pytest.raises(monitoring_panels.MetricsUnavailableError):
        monitoring_panels.ExpositionSource(f"http://127.0.0.1:{free_port()}", timeout=0.5).current()


def test_exposition_source_reads_a_live_api(api: object) -> None:
    import httpx

    httpx.post(f"{api.url}/recommendations", params={"user_id": "u00003"}, timeout=10)  # type: ignore[attr-defined]
    snap = monitoring_panels.ExpositionSource(api.url).snapshot()  # type: ignore[attr-defined]
    assert sum(snap.requests().values()) >= 1
    assert snap.kpis()["p95_latency"] is not None


# ------------------------------------------------------------------------------ cache actions


def test_parse_user_ids() -> None:
    parsed = cache_actions.parse_user_ids("u1, u2;u3\nu1  bad/id u4")
    assert parsed.valid == ["u1", "u2", "u3", "u4"] and parsed.invalid == ["bad/id"]
    with pytest.raises(ValueError, match="not a valid user id"):
        cache_actions.check_user_id("a b")
    with pytest.raises(ValueError, match="Enter a user id"):
        cache_actions.check_user_id("   ")


def test_invalidate_user_counts_first_deletes_and_audits(engine: Engine, redis_client: redis.Redis) -> None:
    user = engine.features.top_active_users(1)[0]
    engine.service.recommend(user, n=5, model="als")
    engine.service.recommend(user, n=5, model="popularity")
    before = cache_actions.user_keys(engine.redis, engine.keys, user)
    assert len(before.lists) == 2 and before.features and before.total == 3
    result = cache_actions.invalidate_user(engine, user, actor="ada")
    assert (result.lists, result.features, result.keys) == (2, 1, 3)
    assert all(not redis_client.exists(k) for k in before.lists)
    assert cache_actions.user_keys(engine.redis, engine.keys, user).total == 0
    entry = engine.audit.recent(1)[0]
    assert (entry.actor, entry.action, entry.target, entry.keys) == ("ada", "invalidate_user", user, 3)


def test_invalidate_all_needs_the_typed_phrase(engine: Engine, redis_client: redis.Redis) -> None:
    engine.service.warm(engine.features.top_active_users(12), n=5)
    assert cache_actions.count_cached_lists(engine.redis, engine.keys) == 12
    with pytest.raises(ValueError, match="invalidate all"):
        cache_actions.invalidate_all(engine, "ada", "yes")
    assert cache_actions.count_cached_lists(engine.redis, engine.keys) == 12  # nothing happened
    assert engine.audit.recent(5) == []
    result = cache_actions.invalidate_all(engine, "ada", "  Invalidate ALL ")
    assert result.lists == 12 and cache_actions.count_cached_lists(engine.redis, engine.keys) == 0
    assert engine.audit.recent(1)[0].action == "invalidate_all" and engine.audit.recent(1)[0].keys == 12


def test_warm_validates_reports_progress_and_audits(engine: Engine) -> None:
    users = engine.features.top_active_users(150)
    seen: list[tuple[int, int]] = []
    report = cache_actions.warm(engine, users, "ada", n=5, progress=lambda d, t: seen.append((d, t)))
    assert report.users == 150 and report.keys_written == 150
    assert seen[-1] == (150, 150) and len(seen) == 2  # one call per batch of 100
    assert cache_actions.count_cached_lists(engine.redis, engine.keys) == 150
    assert engine.audit.recent(1)[0].keys == 150
    with pytest.raises(ValueError, match="No users"):
        cache_actions.warm(engine, [], "ada")
    with pytest.raises(ValueError, match="Invalid user id"):
        cache_actions.warm(engine, ["ok", "not ok"], "ada")
    assert len(engine.audit.recent(10)) == 1  # refusals are not recorded as actions


# ------------------------------------------------------------------------------ preview


def test_search_random_and_new_users(engine: Engine) -> None:
    top = engine.features.top_active_users(3)
    assert preview.search_users(engine, "")[:3] == top
    found = preview.search_users(engine, top[0][-3:].upper())
    assert top[0] in found and all(top[0][-3:] in u for u in found)
    assert preview.search_users(engine, "no-such-user") == []
    assert preview.random_user(engine) in set(preview.known_users(engine))
    new = preview.new_user_id()
    assert new.startswith("new-") and not engine.features.known_user(new)


def test_compare_lists_uses_the_ranking_metrics(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    a = engine.service.recommend(user, n=10, model="als").items
    b = engine.service.recommend(user, n=10, model="popularity").items
    shares = preview.popularity_shares(engine.dataset)
    cmp = preview.compare_lists(a, b, shares)
    ids_a, ids_b = [i["item_id"] for i in a], [i["item_id"] for i in b]
    assert cmp.jaccard == pytest.approx(jaccard(ids_a, ids_b))
    assert cmp.rbo == pytest.approx(rbo(ids_a, ids_b, p=preview.RBO_P))
    assert cmp.shared == [i for i in ids_a if i in ids_b]
    same = preview.compare_lists(a, a, shares)
    assert same.jaccard == 1.0 and same.rbo == pytest.approx(1.0)
    assert 0.0 <= cmp.diversity_a <= 1.0 and cmp.novelty_b > 0
    # popular items are less novel than what ALS finds for an active user
    assert cmp.novelty_b < cmp.novelty_a
    assert max(shares.values()) <= 1.0


def test_served_choice_follows_the_running_experiment(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    assert preview.served_choice(engine, user).experiment is None
    assert preview.served_choice(engine, user).model == engine.service.default_model
    console_experiments.create(engine, {"key": "serve-test", "name": "t", "variants": [
        {"name": "only", "model": "item_item", "weight": 0.5}, {"name": "same", "model": "item_item", "weight": 0.5}]},
        "ada")
    console_experiments.transition(engine, "serve-test", "start", "ada")
    choice = preview.served_choice(engine, user)
    assert (choice.experiment, choice.model) == ("serve-test", "item_item") and choice.variant in ("only", "same")


# ------------------------------------------------------------------------------ experiments


def _spec(**overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {"key": "exp-1", "name": "Popularity vs ALS", "variants": [
        {"name": "control", "model": "popularity", "weight": 0.5}, {"name": "als", "model": "als", "weight": 0.5}]}
    spec.update(overrides)
    return spec


def test_form_errors_point_at_the_field() -> None:
    models = ["als", "popularity", "item_item"]
    assert console_experiments.form_errors(_spec(), models) == {}
    bad_weights = _spec(variants=[{"name": "a", "model": "als", "weight": 0.7},
                                  {"name": "b", "model": "als", "weight": 0.7}])
    errors = console_experiments.form_errors(bad_weights, models)
    assert list(errors) == ["variants"] and "sum to 1" in errors["variants"][0]
    assert "key" in console_experiments.form_errors(_spec(key="bad key!"), models)
    assert "coverage_pct" in console_experiments.form_errors(_spec(coverage_pct=0), models)
    assert "guardrail_metrics" in console_experiments.form_errors(_spec(guardrail_metrics=["ctr"]), models)
    assert "guardrail_metrics" in console_experiments.form_errors(_spec(guardrail_metrics=["nope"]), models)
    assert "goal_metric" in console_experiments.form_errors(_spec(goal_metric="nope"), models)
    missing = console_experiments.form_errors(_spec(), ["als"])
    assert "variants" in missing and "popularity" in missing["variants"][0]


def test_life_cycle_actions_are_audited_and_refused_when_not_allowed(engine: Engine) -> None:
    console_experiments.create(engine, _spec(), "ada")
    with pytest.raises(Exception, match="only a running experiment can pause"):
        console_experiments.transition(engine, "exp-1", "pause", "ada")
    for action, status in (("start", "running"), ("pause", "paused"), ("start", "running"), ("stop", "stopped")):
        assert console_experiments.transition(engine, "exp-1", action, "ada").status == status
    actions = [e.action for e in reversed(engine.audit.recent(10))]
    assert actions == ["experiment_create", "experiment_start", "experiment_pause", "experiment_start",
                       "experiment_stop"]
    with pytest.raises(ValueError, match="unknown action"):
        console_experiments.transition(engine, "exp-1", "explode", "ada")


def test_plan_and_traffic() -> None:
    p = console_experiments.plan("ctr", 0.05, 0.1, 0.05, 0.8, [0.5, 0.5], traffic_per_day=2000, coverage_pct=50)
    assert p.users_per_variant > 1000 and p.days == pytest.approx(p.total_users / 1000, rel=0.05)
    with pytest.raises(ValueError):
        console_experiments.plan("ctr", 0.05, 0.1, 0.05, 0.8, [1.0], None)
    assert console_experiments.plan("revenue", 10.0, 0.05, 0.05, 0.8, [0.5, 0.5], None, std=20).days is None
    assert console_experiments.duration_text(0.5) == "about 12.0 hours at current traffic"
    assert console_experiments.duration_text(None).startswith("no traffic")
    assert console_experiments.compact(257_431) == "257.4k"


def test_readout_tables_and_badges(engine: Engine) -> None:
    console_experiments.create(engine, _spec(guardrail_metrics=["conversion_rate"]), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    users = preview.known_users(engine)[:300]
    assert run_traffic(engine, users, seed=1, boost={"als": 3.0}) > 250
    r = engine.experiments.readout("exp-1")  # type: ignore[union-attr]
    table = console_experiments.readout_table(r)
    assert list(table["metric"]) == ["ctr", "conversion_rate"] and list(table["variant"]) == ["als", "als"]
    goal = table.iloc[0]
    assert goal["lift"] > 0 and goal["ci_low"] < goal["lift"] < goal["ci_high"] and goal["direction"] == "better"
    assert r.progress.fraction is not None and r.progress.fraction < 1 and console_experiments.peeking(r)
    badge = console_experiments.status_badge(r)  # a frequentist winner before the planned sample is only a peek
    assert badge.label == "healthy" and badge.reason
    arms = console_experiments.arms_table(r)
    assert arms["users"].sum() == sum(a.users for a in r.arms) and arms["observed share"].sum() == pytest.approx(1)
    bayes = engine.experiments.readout("exp-1", engine="bayesian")  # type: ignore[union-attr]
    assert console_experiments.readout_table(bayes).iloc[0]["chance_to_win"] > 0.95
    assert console_experiments.status_badge(bayes).label == "ready to decide"  # a Bayesian verdict may be read any time
    curves = console_experiments.posterior_curves(bayes)
    assert set(curves["variant"]) == {"als"} and curves["density"].max() > 0
    series = console_experiments.series_frame(engine.experiments.time_series("exp-1"))  # type: ignore[union-attr]
    assert len(series) == 1 and series.iloc[0]["lift"] == pytest.approx(goal["lift"], rel=1e-6)


def test_srm_badge_when_one_arm_loses_exposures(engine: Engine) -> None:
    console_experiments.create(engine, _spec(), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    svc = engine.experiments
    assert svc is not None
    kept = 0
    for user in preview.known_users(engine)[:400]:
        a = svc.assign(user)
        if a is not None and (a.variant == "control" or kept % 3 == 0):  # two thirds of "als" exposures lost
            svc.record_exposure(a)
        kept += a is not None and a.variant == "als"
    badge = console_experiments.status_badge(svc.readout("exp-1"))
    assert badge.label == "SRM" and badge.color == "red"


def test_underpowered_badge_when_the_plan_is_smaller_than_the_mde_needs(engine: Engine) -> None:
    console_experiments.create(engine, _spec(planned_sample_size=20), "ada")
    console_experiments.transition(engine, "exp-1", "start", "ada")
    run_traffic(engine, preview.known_users(engine)[:200], seed=2)
    r = engine.experiments.readout("exp-1")  # type: ignore[union-attr]
    assert r.progress.fraction == 1.0  # the plan is reached ...
    badge = console_experiments.status_badge(r)  # ... but it was too small to detect the MDE
    assert badge.label == "underpowered" and "planned 20 users" in badge.reason
