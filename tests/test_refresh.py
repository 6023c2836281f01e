"""Refresh-ahead after invalidation: the queue itself, and the engine with it on (the default)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from engine.cache import RefreshQueue
from engine.config import Settings
from engine.events import Event
from engine.runtime import Engine, build_engine


def _buyer(engine: Engine) -> str:
    ev = engine.dataset.events
    return str(ev[ev["type"] == "purchase"]["user_id"].value_counts().index[0])


@pytest.fixture
def refreshing_engine(engine_settings: Settings) -> Iterator[Engine]:
    eng = build_engine(engine_settings.model_copy(update={"refresh_after_invalidation": True}))
    yield eng
    eng.close()


def test_a_purchase_is_followed_by_a_cached_list_without_the_item(refreshing_engine: Engine) -> None:
    engine = refreshing_engine
    user = _buyer(engine)
    bought = engine.service.recommend(user).items[0]["item_id"]
    engine.events.track(Event(user_id=user, item_id=bought, type="purchase", value=5.0))
    assert engine.refresher is not None and engine.refresher.wait_idle(timeout=10)
    key = engine.keys.rec_list(user, engine.service.default_model, engine.settings.default_n,
                               engine.service.diversity.signature)
    assert engine.redis.exists(key) == 1  # in L2 for every process, not only in this one's L1
    after = engine.service.recommend(user)
    assert after.cached and after.cache_tier == "l1"
    assert bought not in {i["item_id"] for i in after.items}


def test_a_batch_refreshes_each_user_once_after_all_its_events(refreshing_engine: Engine) -> None:
    engine = refreshing_engine
    seen: list[str] = []
    engine.events.after_invalidation = seen.extend
    user = _buyer(engine)
    items = engine.service.recommend(user, n=3).items
    engine.events.track_many([
        Event(user_id=user, item_id=items[0]["item_id"], type="add_to_cart"),
        Event(user_id=user, item_id=items[0]["item_id"], type="purchase", value=1.0),
        Event(user_id=user, item_id=items[1]["item_id"], type="click"),
    ])
    assert seen == [user]


def test_the_refresh_serves_the_users_experiment_variant(refreshing_engine: Engine) -> None:
    engine = refreshing_engine
    assert engine.experiments is not None
    engine.experiments.create({
        "key": "pop", "name": "Best-sellers for everyone", "hypothesis": "both arms serve best-sellers",
        "variants": [{"name": "control", "model": "popularity"}, {"name": "same", "model": "popularity"}],
        "coverage_pct": 100,
    })
    engine.experiments.start("pop")
    engine.experiments.refresh(force=True)
    user = _buyer(engine)
    assert engine.serving_model(user) == "popularity"
    engine.refresh_list(user)
    n, signature = engine.settings.default_n, engine.service.diversity.signature
    assert engine.redis.exists(engine.keys.rec_list(user, "popularity", n, signature)) == 1
    assert engine.redis.exists(engine.keys.rec_list(user, engine.service.default_model, n, signature)) == 0


def test_users_invalidated_again_while_pending_are_refreshed_once() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def refresh(user: str) -> None:
        if user == "blocker":
            started.set()
            release.wait(5)
        done.append(user)

    queue = RefreshQueue(refresh).start()
    try:
        queue.submit("blocker")
        assert started.wait(5)
        for _ in range(50):
            queue.submit("u1")
            queue.submit("u2")
        assert queue.pending() == 2
        release.set()
        assert queue.wait_idle(5)
        assert done == ["blocker", "u1", "u2"]
    finally:
        release.set()
        queue.close()


def test_a_full_queue_drops_instead_of_blocking_and_a_failure_does_not_stop_the_worker() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def refresh(user: str) -> None:
        if user == "blocker":
            started.set()
            release.wait(5)
        if user == "bad":
            raise RuntimeError("model exploded")
        done.append(user)

    queue = RefreshQueue(refresh, max_pending=2).start()
    try:
        queue.submit("blocker")
        assert started.wait(5)
        assert queue.submit("bad") and queue.submit("u1")
        assert queue.submit("u2") is False  # full: dropped, the caller is not blocked
        assert queue.submit("u1") is True  # already pending: coalesced, not dropped
        release.set()
        assert queue.wait_idle(5)
        assert done == ["blocker", "u1"]
        assert queue.submit("u3") and queue.wait_idle(5) and done[-1] == "u3"
    finally:
        release.set()
        queue.close()
    assert queue.submit("late") is False  # closed
