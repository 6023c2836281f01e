"""Contract tests over real HTTP: a `recops serve` process against the test Redis."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from bench.harness import metric_total
from tests.support.api import ADMIN_TOKEN, api_env, running_api
from tests.support.polling import poll

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _active_user(client: httpx.Client) -> str:
    # u00000.. exist in every demo world; the most active one has history for sure
    for uid in (f"u{i:05d}" for i in range(50)):
        body = client.post("/recommendations", params={"user_id": uid, "n": 10}).json()
        if not any(i["reason"] == "Popular" for i in body["items"]):
            return uid
    raise AssertionError("no user with history among the first 50")


def test_response_shape(client: httpx.Client) -> None:
    r = client.post("/recommendations", params={"user_id": "u00001", "n": 7})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"user_id", "items", "cached", "cache_tier", "model", "experiment", "variant",
                         "fallback", "request_id"}
    assert body["user_id"] == "u00001" and len(body["items"]) == 7
    assert body["cache_tier"] == "miss" and body["cached"] is False and body["fallback"] is False
    assert body["experiment"] is None and body["variant"] is None
    for item in body["items"]:
        assert set(item) == {"item_id", "title", "category", "score", "reason"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])


def test_json_body_works_too(client: httpx.Client) -> None:
    r = client.post("/recommendations", json={"user_id": "u00002", "n": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_second_call_is_served_from_cache(client: httpx.Client) -> None:
    first = client.post("/recommendations", params={"user_id": "u00003", "n": 10}).json()
    second = client.post("/recommendations", params={"user_id": "u00003", "n": 10}).json()
    assert first["cache_tier"] == "miss"
    assert second["cached"] is True and second["cache_tier"] == "l1"
    assert [i["item_id"] for i in second["items"]] == [i["item_id"] for i in first["items"]]


def test_purchase_recomputes_the_list_without_the_item(client: httpx.Client) -> None:
    uid = _active_user(client)
    before = client.post("/recommendations", params={"user_id": uid, "n": 10}).json()
    bought = before["items"][0]["item_id"]
    refreshed = metric_total(client.get("/metrics").text, "recops_cache_refreshes_total", result="done")
    r = client.post("/events", json={"user_id": uid, "item_id": bought, "type": "purchase", "value": 12.5})
    assert r.status_code == 200 and r.json()["accepted"] is True
    # the purchase dropped the cached list and the API recomputes it in the background
    # (refresh-ahead, on by default), so the next request is a hit on the new list
    assert poll(lambda: metric_total(client.get("/metrics").text, "recops_cache_refreshes_total", result="done")
                > refreshed, 10, every=0.05), "no background refresh after the purchase"
    after = client.post("/recommendations", params={"user_id": uid, "n": 10}).json()
    assert after["cache_tier"] in ("l1", "l2")
    assert bought not in {i["item_id"] for i in after["items"]}


def test_seed_track_endpoints_and_idempotent_events(client: httpx.Client) -> None:
    item = client.post("/recommendations", params={"user_id": "u00004", "n": 1}).json()["items"][0]["item_id"]
    for kind in ("impression", "click", "add_to_cart", "purchase"):
        r = client.post(f"/track/{kind}", params={"user_id": "u00004", "item_id": item})
        assert r.status_code == 200, r.text
    event = {"event_id": "ev-1", "user_id": "u00004", "item_id": item, "type": "click"}
    assert client.post("/events", json=event).json()["duplicate"] is False
    assert client.post("/events", json=event).json()["duplicate"] is True


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("post", "/recommendations", {"params": {"user_id": "u1", "n": 0}}),
        ("post", "/recommendations", {"params": {"user_id": "u1", "n": 101}}),
        ("post", "/recommendations", {"params": {"user_id": "u1", "n": "ten"}}),
        ("post", "/recommendations", {"params": {"user_id": "u*"}}),
        ("post", "/recommendations", {"params": {"user_id": "a" * 129}}),
        ("post", "/recommendations", {"params": {"user_id": "bad id"}}),
        ("post", "/recommendations", {}),
        ("post", "/recommendations", {"json": {"user_id": "u[1]"}}),
        ("post", "/events", {"json": {"user_id": "u1", "item_id": "i00001", "type": "teleport"}}),
        ("post", "/events", {"json": {"item_id": "i00001", "type": "click"}}),
        ("post", "/events", {"json": {"user_id": "u1", "type": "click"}}),
        ("post", "/events", {"json": {"user_id": "u1", "item_id": "no-such-item", "type": "click"}}),
        ("post", "/events", {"json": {"user_id": "u1", "item_id": "i00001", "type": "rating"}}),
        ("post", "/events", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("post", "/track/teleport", {"params": {"user_id": "u1", "item_id": "i00001"}}),
        ("post", "/track/click", {"params": {"user_id": "u?", "item_id": "i00001"}}),
    ],
)
def test_bad_input_is_a_422_with_a_json_message(client: httpx.Client, method: str, path: str, kwargs: dict) -> None:
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"]


def test_admin_needs_the_token(client: httpx.Client) -> None:
    assert client.post("/admin/cache/invalidate/all").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/admin/cache/invalidate/all", headers=wrong).status_code == 401
    client.post("/recommendations", params={"user_id": "u00005", "n": 5})
    r = client.post("/admin/cache/invalidate/user/u00005", headers=ADMIN)
    assert r.status_code == 200 and r.json()["removed_keys"] >= 1
    assert client.post("/recommendations", params={"user_id": "u00005", "n": 5}).json()["cache_tier"] == "miss"
    r = client.post("/admin/cache/warm", headers=ADMIN, json={"top_n": 20, "n": 10})
    assert r.status_code == 200 and r.json()["users"] == 20
    assert r.json()["lists"] == {"default": 20}  # no experiment running: the default lists only
    r = client.post("/admin/cache/invalidate/all", headers=ADMIN)
    assert r.status_code == 200 and r.json()["removed_keys"] >= 20


def test_admin_is_disabled_without_a_configured_token(
    small_world_dir: Path, redis_url: str, redis_client: object, tmp_path: Path
) -> None:
    with running_api(api_env(small_world_dir, redis_url, RECOPS_ADMIN_TOKEN=""), tmp_path / "api.log") as proc:
        r = httpx.post(proc.url + "/admin/cache/invalidate/all", headers=ADMIN)
        assert r.status_code == 403 and "disabled" in r.json()["detail"]


def test_health(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["redis"]["status"] == "ok" and body["models"]["status"] == "ok"


def test_metrics_after_traffic(client: httpx.Client) -> None:
    checks = [
        ("recops_recommendation_requests_total", {"status": "ok"}, 3),
        ("recops_recommendation_latency_seconds_count", {"tier": "miss"}, 1),
        ("recops_recommendation_latency_seconds_count", {"tier": "l1"}, 2),
        ("recops_cache_requests_total", {"tier": "l1", "result": "hit"}, 2),
        ("recops_events_total", {"type": "click"}, 1),
        ("recops_list_diversity_ratio_count", {}, 3),
        ("recops_events_rejected_total", {"reason": "invalid"}, 2),
    ]
    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/recommendations", params={"user_id": "metrics-user-6", "n": 10})
    client.post("/track/click", params={"user_id": "metrics-user-6", "item_id": "i00001"})
    invalid = {"user_id": "metrics-user-6", "item_id": "i00001", "type": "nope"}
    assert client.post("/events", json=invalid).status_code == 422
    assert client.post("/track/nope", params={"user_id": "metrics-user-6", "item_id": "i00001"}).status_code == 422
    after = client.get("/metrics").text
    for name, labels, delta in checks:
        assert metric_total(after, name, **labels) - metric_total(before, name, **labels) == delta, name
    assert metric_total(after, "recops_catalog_coverage_ratio") > 0
    assert "metrics-user-6" not in after  # no user ids in labels


def test_multi_worker_metrics_sum_over_workers(
    small_world_dir: Path, redis_url: str, redis_client: object, tmp_path: Path
) -> None:
    with running_api(api_env(small_world_dir, redis_url), tmp_path / "api.log", workers=2) as proc, \
            httpx.Client(base_url=proc.url, timeout=10) as c:
        # fresh connections spread requests over both workers
        for i in range(40):
            r = httpx.post(proc.url + "/recommendations", params={"user_id": f"mw{i}", "n": 5})
            assert r.status_code == 200
        texts = [c.get("/metrics", headers={"Connection": "close"}).text for _ in range(6)]
    # every scrape, whichever worker answers it, reports the total of both
    for text in texts:
        assert metric_total(text, "recops_recommendation_requests_total") == 40
