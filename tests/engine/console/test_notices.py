"""engine.console.notices: dependency failures as readable messages, never tracebacks."""

from __future__ import annotations

import redis

from engine.console import notices
from engine.console.dependencies import Health
from engine.console.monitoring_panels import MetricsUnavailableError


def test_each_dependency_failure_has_its_message() -> None:
    down = notices.dependency_failed(redis.ConnectionError("Connection refused"), "reading users")
    assert down.level == "error" and down.icon == notices.DATABASE_OFF
    assert down.text.startswith("**Redis is unreachable** while reading users: Connection refused.")
    refused = notices.dependency_failed(redis.ResponseError("WRONGTYPE"), "reading users")
    assert (refused.level, refused.text) == ("error", "Redis refused a command while reading users: WRONGTYPE")
    metrics = notices.dependency_failed(MetricsUnavailableError("Prometheus at x failed"), "querying")
    assert metrics.level == "warning"
    assert metrics.text == "Metrics are unavailable while querying: Prometheus at x failed"
    for failure in (redis.TimeoutError(), ConnectionError(), TimeoutError(), MetricsUnavailableError()):
        assert isinstance(failure, notices.DEPENDENCY_FAILURES)
    assert not isinstance(ValueError(), notices.DEPENDENCY_FAILURES)  # a bug is not a dependency failure


def test_redis_down_and_engine_failure_banners() -> None:
    banner = notices.redis_down(Health("Redis", "down", "ConnectionError: refused", url="redis://:***@db:6379/0"))
    assert "(redis://:***@db:6379/0): ConnectionError: refused." in banner.text and banner.level == "error"
    assert "(REDIS_URL)" in notices.redis_down(Health("Redis", "down", "x")).text
    failed = notices.engine_failed(FileNotFoundError("no world"))
    assert failed.text.startswith("**The engine could not start**: FileNotFoundError: no world.")
    assert not failed.succeeded and notices.Notice("success", "done").succeeded
