"""Users the dataset has never seen: their events are kept, and they are served, never refused.

Checked here (it is what every model does today, no change was needed): with no history the list
is the cold start (popular items); once their events are in the live log, history-based models fold
them in from it (ALS solves their factor, item-to-item and EASE sum over their items; popularity
stays popular), so the next list is computed for them — neither an error nor the fallback — until a
retraining includes them as ordinary users.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from engine.events.tracker import Event
from engine.runtime import Engine
from engine.storage.keys import Keys
from tests.support.api import ApiProcess

KEYS = Keys()


def _new_user() -> str:
    return f"new-{uuid.uuid4().hex[:10]}"


def test_a_new_user_is_welcome_their_events_are_kept_and_they_are_served(
    client: httpx.Client, api_redis: redis.Redis
) -> None:
    user = _new_user()
    first = client.post("/recommendations", params={"user_id": user, "n": 8})
    assert first.status_code == 200
    body = first.json()
    assert body["fallback"] is False and len(body["items"]) == 8
    assert {i["reason"] for i in body["items"]} == {"Popular"}  # a cold start: popular items

    known = client.post("/recommendations", params={"user_id": "u00001", "n": 3}).json()
    liked = [i["item_id"] for i in known["items"]]
    answers = [client.post("/events", json={"user_id": user, "item_id": item, "type": "add_to_cart"}) for item in liked]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json()["accepted"] and not a.json()["spooled"] for a in answers)
    ids = {a.json()["event_id"] for a in answers}
    stored = {fields["event_id"] for _, fields in api_redis.xrange(KEYS.event_stream) if fields["user_id"] == user}
    assert stored == ids  # kept in the stream for the event log and retraining
    assert api_redis.llen(KEYS.user_log(user)) == 3  # and in their live history

    after = client.post("/recommendations", params={"user_id": user, "n": 8}).json()
    assert after["fallback"] is False and len(after["items"]) == 8
    served = [i["item_id"] for i in after["items"]]
    assert not set(served) & set(liked)  # computed from their history: what they just did is left out
    assert any(i["reason"].startswith("Because you") for i in after["items"]), after["items"]


def test_every_model_serves_a_new_user_with_live_history(engine: Engine) -> None:
    user = _new_user()
    for model in engine.models:
        cold = engine.service.recommend(user, n=5, model=model, use_cache=False)
        assert cold.cold_start and not cold.fallback, model
    liked = [item["item_id"] for item in engine.service.recommend("u00001", n=3, use_cache=False).items]
    engine.ingest.track_many([Event(user_id=user, item_id=item, type="add_to_cart") for item in liked])
    for model in engine.models:
        result = engine.service.recommend(user, n=5, model=model, use_cache=False)
        assert not result.fallback and len(result.items) == 5, (model, result)
        assert not {i["item_id"] for i in result.items} & set(liked), model


@pytest.fixture
def api_redis(api: ApiProcess, redis_url: str) -> Iterator[redis.Redis]:
    """The module API's Redis, not flushed (the API's state lives there)."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client
