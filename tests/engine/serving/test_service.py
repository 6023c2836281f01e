"""The recommendation service end to end against a real Redis and the small demo world."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.events.tracker import Event
from engine.runtime import Engine, build_engine
from engine.serving.diversity import DiversitySettings
from engine.serving.reasons import POPULAR
from engine.storage.embedded_redis import EmbeddedRedis


def _user_with_purchases(engine: Engine) -> tuple[str, set[str]]:
    ev = engine.dataset.events
    buyers = ev[ev["type"] == "purchase"].groupby("user_id")["item_id"].apply(set)
    user = str(buyers.index[buyers.map(len).argmax()])
    return user, buyers[user]


def test_a_new_user_gets_popular_items(engine: Engine) -> None:
    result = engine.service.recommend("someone-new", n=10)
    assert result.cold_start and not result.fallback
    assert len(result.items) == 10
    assert {item["reason"] for item in result.items} == {POPULAR}
    top = engine.catalog.most_popular(10)
    assert [i["item_id"] for i in result.items] == [engine.catalog.item_ids[p] for p in top]


def test_purchased_items_are_never_recommended(engine: Engine) -> None:
    user, bought = _user_with_purchases(engine)
    for model in engine.models:
        result = engine.service.recommend(user, n=30, model=model)
        assert not result.fallback
        assert len(result.items) > 0
        assert not bought & {i["item_id"] for i in result.items}, model


def test_category_cap_is_respected(engine: Engine) -> None:
    user, _ = _user_with_purchases(engine)
    result = engine.service.recommend(user, n=12, diversity=DiversitySettings(category_cap=2, mmr_lambda=0.9))
    counts = Counter(i["category"] for i in result.items)
    assert max(counts.values()) <= 2


def test_items_carry_titles_categories_and_reasons(engine: Engine) -> None:
    user, _ = _user_with_purchases(engine)
    result = engine.service.recommend(user, n=10)
    for item in result.items:
        pos = engine.catalog.index[item["item_id"]]
        assert item["title"] == engine.catalog.titles[pos]
        assert item["category"] == engine.catalog.categories[pos]
        assert item["reason"]
    assert any(i["reason"].startswith("Because you liked ") for i in result.items)


def test_second_call_is_cached_and_a_purchase_recomputes_without_the_item(engine: Engine) -> None:
    user, _ = _user_with_purchases(engine)
    first = engine.service.recommend(user, n=10)
    assert first.cache_tier == "miss"
    second = engine.service.recommend(user, n=10)
    assert second.cache_tier == "l1" and second.cached
    assert [i["item_id"] for i in second.items] == [i["item_id"] for i in first.items]

    bought = first.items[0]["item_id"]
    engine.events.track(Event(user_id=user, item_id=bought, type="purchase", value=10.0))
    after = engine.service.recommend(user, n=10)
    assert after.cache_tier == "miss"
    assert bought not in {i["item_id"] for i in after.items}


def test_fallback_while_redis_is_down_and_recovery(engine_settings, tmp_path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "own-redis").start()
    try:
        eng = build_engine(engine_settings.model_copy(update={"redis_url": server.url}))
        try:
            user = str(eng.dataset.events["user_id"].iloc[0])
            assert not eng.service.recommend(user, n=5).fallback
            server.stop()
            down = eng.service.recommend("another-user", n=5)
            assert down.fallback and down.fallback_reason == "redis_unavailable"
            assert len(down.items) == 5
            server.restart()
            back = eng.service.recommend("another-user", n=5)
            assert not back.fallback
        finally:
            eng.close()
    finally:
        server.stop()


@pytest.mark.parametrize("n", [1, 5, 25])
def test_list_length(engine: Engine, n: int) -> None:
    user, _ = _user_with_purchases(engine)
    assert len(engine.service.recommend(user, n=n).items) == n
