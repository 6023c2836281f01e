"""Refresh-ahead after invalidation: the queue itself, and the engine with it on (the default)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from engine.config import Settings
from engine.events.tracker import Event
from engine.runtime import Engine, build_engine
from engine.serving.cache import RefreshQueue


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
    assert engine.refresher.wait_idle(timeout=10)
    key = engine.service.list_key(user, engine.service.default_model, engine.settings.default_n)
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
    n = engine.settings.default_n
    assert engine.redis.exists(engine.service.list_key(user, "popularity", n)) == 1
    assert engine.redis.exists(engine.service.list_key(user, engine.service.default_model, n)) == 0


class _Gate:
    """A refresh callback that holds the worker on user "blocker" until released, so that the test
    can fill the queue meanwhile; user ``fail`` raises."""

    def __init__(self, fail: str | None = None) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.fail = fail
        self.done: list[str] = []

    def __call__(self, user: str) -> None:
        if user == "blocker":
            self.started.set()
            self.release.wait(5)
        if user == self.fail:
            raise RuntimeError("model exploded")
        self.done.append(user)


@contextlib.contextmanager
def _held_queue(gate: _Gate, max_pending: int = 10_000) -> Iterator[RefreshQueue]:
    queue = RefreshQueue(gate, max_pending=max_pending).start()
    try:
        queue.submit("blocker")
        assert gate.started.wait(5)
        yield queue
    finally:
        gate.release.set()
        queue.close()


def test_users_invalidated_again_while_pending_are_refreshed_once() -> None:
    gate = _Gate()
    with _held_queue(gate) as queue:
        for _ in range(50):
            queue.submit("u1")
            queue.submit("u2")
        assert queue.pending() == 2
        gate.release.set()
        assert queue.wait_idle(5)
        assert gate.done == ["blocker", "u1", "u2"]


def test_a_full_queue_drops_instead_of_blocking_and_a_failure_does_not_stop_the_worker() -> None:
    gate = _Gate(fail="bad")
    with _held_queue(gate, max_pending=2) as queue:
        assert queue.submit("bad") and queue.submit("u1")
        assert queue.submit("u2") is False  # full: dropped, the caller is not blocked
        assert queue.submit("u1") is True  # already pending: coalesced, not dropped
        gate.release.set()
        assert queue.wait_idle(5)
        assert gate.done == ["blocker", "u1"]
        assert queue.submit("u3") and queue.wait_idle(5) and gate.done[-1] == "u3"
    assert queue.submit("late") is False  # closed
