"""engine.console.cache_actions: audited cache operations, against the real test Redis."""

from __future__ import annotations

import pytest
import redis

from engine.console import cache_actions
from engine.runtime import Engine
from tests.support.experiment_users import first_request_tier, served_list_keys, start_arm_experiments


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


def test_run_confirmed_says_what_happened_or_why_nothing_did(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    engine.service.recommend(user, n=5)
    done = cache_actions.run_confirmed(engine, {"kind": "invalidate_user", "user": user}, "ada")
    assert (done.level, done.text) == ("success", f"Invalidated `{user}`: 1 cached lists and 1 feature hash deleted.")
    refused = cache_actions.run_confirmed(engine, {"kind": "invalidate_all", "typed": "please"}, "ada")
    assert (refused.level, refused.text) == ("error", "Type “invalidate all” to confirm. Nothing was done.")
    bad = cache_actions.run_confirmed(engine, {"kind": "invalidate_user", "user": "../x"}, "ada")
    assert bad.level == "error" and "not a valid user id" in bad.text and bad.text.endswith(" Nothing was done.")
    unknown = cache_actions.run_confirmed(engine, {"kind": "flush"}, "ada")
    assert (unknown.level, unknown.text) == ("error", "Unknown action 'flush'; nothing was done.")
    everything = cache_actions.run_confirmed(engine, {"kind": "invalidate_all", "typed": "invalidate all"}, "ada")
    assert everything.succeeded and everything.text == "Invalidated every cached list: 0 deleted."
    assert [e.action for e in engine.audit.recent(10)] == ["invalidate_all", "invalidate_user"]


def test_warm_caches_the_lists_each_user_is_served_in_an_experiment(engine: Engine) -> None:
    # an A/B arm with its own model, length and re-ranking, an exploring arm (its candidate pool is
    # cached, drawn from per request) and an interleaving experiment (both rankers' lists)
    users = start_arm_experiments(engine)
    n = 5
    keys = {user: served_list_keys(engine, user, n) for user in users.all}
    assert not any(engine.redis.exists(k) for ks in keys.values() for k in ks)
    report = cache_actions.warm(engine, users.all, "ada", n=n)
    assert report.users == 3 and report.keys_written == 4
    assert report.lists == {"ab/treatment": 1, "ab/explore": 1, "ilv/control": 1, "ilv/treatment": 1}
    assert all(engine.redis.exists(k) for ks in keys.values() for k in ks)
    assert {user: first_request_tier(engine, user, n) for user in users.all} == dict.fromkeys(users.all, "l1")
    assert "per arm: ab/explore 1, ab/treatment 1, ilv/control 1, ilv/treatment 1" in engine.audit.recent(1)[0].detail
