"""engine.console.cache_view: what the Cache page shows, from the real test Redis and the small world."""

from __future__ import annotations

import pytest
import redis

from engine.console import cache_actions, cache_view, keyspace
from engine.console.cards import MetricCard
from engine.runtime import Engine
from engine.serving.cache import WarmReport
from engine.storage.keys import Keys


def test_keyspace_as_cards_table_and_charts(redis_client: redis.Redis) -> None:
    keys = Keys()
    redis_client.mset({keys.rec_list(f"u{i}", "als", 10): "x" * 100 for i in range(30)})
    for i in range(30):
        redis_client.expire(keys.rec_list(f"u{i}", "als", 10), 600)
    redis_client.set(keys.event_counts, 1)
    report = keyspace.scan_keyspace(redis_client, keys)
    cards = cache_view.keyspace_cards(report)
    assert cards[:2] == [MetricCard("Keys in the database", "31"), MetricCard("Keys under the prefix", "31")]
    assert cards[2].value.endswith(("B", "KiB")) and cards[3].value.endswith(" ms")
    table = report.table()
    shown = cache_view.families_table(table)
    assert list(shown.columns) == cache_view.FAMILY_COLUMNS
    rec = shown.iloc[0]
    assert (rec["family"], rec["keys"], rec["median TTL"]) == ("rec", 30, "10.0 min")
    assert shown.iloc[1]["median TTL"] == "–"  # event counters never expire
    memory = cache_view.memory_figure(table)
    assert list(memory.data[0].y) == list(table["what"]) and list(memory.data[0].text) == ["30", "1"]
    ttl = cache_view.ttl_figure(report)
    assert ttl is not None and [b.name for b in ttl.data] == ["recommendation lists (L2)"]
    assert "up to 200 keys per prefix" in cache_view.scan_caption(90) and "Scanned 1.5 min ago" in \
        cache_view.scan_caption(90)


def test_no_ttl_chart_when_nothing_expires(redis_client: redis.Redis) -> None:
    redis_client.set(Keys().event_counts, 1)
    assert cache_view.ttl_figure(keyspace.scan_keyspace(redis_client, Keys())) is None


def test_texts_around_the_operations() -> None:
    two = cache_actions.UserKeys(["a", "b"], True)
    assert cache_view.user_keys_text("u1", two) == "`u1` has 2 cached list(s) and a cached feature hash."
    assert cache_view.user_keys_text("u1", cache_actions.UserKeys([], False)).endswith("no cached feature hash.")
    assert cache_view.confirm_user_text("u1", two).startswith("Delete **2** cached list(s) and the feature hash")
    assert "**all 12,345**" in cache_view.confirm_all_text(12_345)
    assert cache_view.cached_lists_text(1234) == "1,234 cached recommendation lists in Redis."
    assert cache_view.warm_progress(50, 200) == (0.25, "50 / 200 users") and cache_view.warm_progress(0, 0)[0] == 0
    assert cache_view.warm_result_text(WarmReport(3, 3, 0.5)) == "Warmed 3 users: 3 lists written in 0.50 s."
    assert cache_view.warm_result_text(WarmReport(3, 2, 0.5, failed=1)).endswith(" (1 failed, see the log).")


def test_warm_request_from_a_pasted_list_or_the_most_active(engine: Engine) -> None:
    pasted = cache_view.warm_request(engine, "Pasted list", 5, "u1, u2\nu1")
    assert (pasted.users, pasted.source) == (["u1", "u2"], "list")
    with pytest.raises(ValueError) as bad:
        cache_view.warm_request(engine, "Pasted list", 5, "u1 ../etc/passwd")
    assert str(bad.value) == "Not valid user ids: '../etc/passwd'."
    top = cache_view.warm_request(engine, "Most active users", 5, "ignored ../x")
    assert top.users == engine.features.top_active_users(5) and top.source == "top 5 active"
    assert cache_view.warm_start_text(top) == "Warming 5 users …"


def test_inspect_a_user_and_an_item(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    fresh = cache_view.inspect_entity(engine, "User", user)
    assert fresh.caption == f"`{engine.keys.user_features(user)}` — not cached: computed from the source of truth now"
    features = dict(zip(fresh.table["feature"], fresh.table["value"], strict=True))
    assert features["known user"] == "True" and int(features["history items"]) > 0
    engine.service.recommend(user, n=5)  # caches the user's features
    assert "— cached, expires in " in cache_view.inspect_entity(engine, "User", user).caption
    item = str(engine.catalog.item_ids[0])
    found = cache_view.inspect_entity(engine, "Item", f" {item} ")
    assert dict(zip(found.table["feature"], found.table["value"], strict=True))["title"] == engine.catalog.titles[0]
    with pytest.raises(cache_view.NotInCatalogueError, match=r"No item `i-none` in the catalogue\."):
        cache_view.inspect_entity(engine, "Item", "i-none")
    with pytest.raises(ValueError, match="is not a valid item id"):
        cache_view.inspect_entity(engine, "Item", "bad id")


def test_audit_table_newest_first(engine: Engine) -> None:
    assert cache_view.audit_table(engine, 10).empty
    cache_actions.invalidate_all(engine, "ada", "invalidate all")
    cache_actions.invalidate_user(engine, "u1", "bob")
    table = cache_view.audit_table(engine, 10)
    assert list(table["who"]) == ["bob", "ada"] and list(table["what"]) == ["invalidate_user", "invalidate_all"]
    assert table.iloc[0]["when"].endswith(" UTC")
