"""engine.console.dependencies: the health of Redis, the API and Prometheus."""

from __future__ import annotations

import redis

from engine.console import dependencies
from engine.console.dependencies import Health
from engine.local_processes import free_port


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
    assert "hunter2" not in f"{down}" and "hunter2" not in down.summary


def test_health_of_a_live_redis_and_api(redis_client: redis.Redis, api: object) -> None:
    up_redis = dependencies.check_redis(redis_client, "redis://127.0.0.1:6379/0")
    assert up_redis.ok and up_redis.summary.startswith("PING answered · ")
    assert up_redis.summary.endswith(" ms  \n`redis://127.0.0.1:6379/0`")
    up = dependencies.check_api(api.url)  # type: ignore[attr-defined]
    assert up.state == "up" and up.latency_ms is not None


def test_summary_without_latency_or_url() -> None:
    assert Health("API", "absent", "not set").summary == "not set"
    assert Health("API", "down", "refused", url="http://x").summary == "refused  \n`http://x`"
