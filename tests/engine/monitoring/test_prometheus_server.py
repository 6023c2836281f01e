"""A real Prometheus started by PrometheusServer scrapes a real /metrics endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_api_client import PrometheusConnect
from prometheus_client import CollectorRegistry, Counter, start_http_server

from engine.monitoring.prometheus_server import PrometheusServer, find_prometheus_binary
from engine.storage.embedded_redis import free_port, pid_alive
from tests.conftest import require_binary

SCRAPE_WAIT_SECONDS = 30.0


@pytest.fixture
def metrics_target() -> Iterator[str]:
    """host:port of a /metrics endpoint with 3 ok + 2 error recommendation requests counted."""
    registry = CollectorRegistry()
    requests = Counter(
        "recops_recommendation_requests_total", "test double of engine.metrics", ["status", "model"],
        registry=registry,
    )
    requests.labels(status="ok", model="als").inc(3)
    requests.labels(status="error", model="als").inc(2)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def wait_for_result(client: PrometheusConnect, query: str) -> list[dict]:
    deadline = time.monotonic() + SCRAPE_WAIT_SECONDS
    while time.monotonic() < deadline:
        result = client.custom_query(query)
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"{query!r} stayed empty for {SCRAPE_WAIT_SECONDS}s")


def wait_for_evaluated_rules(url: str) -> list[dict]:
    """Rule groups once every rule has been evaluated at least once (health no longer "unknown")."""
    deadline = time.monotonic() + SCRAPE_WAIT_SECONDS
    while time.monotonic() < deadline:
        groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        if groups and all(rule["health"] != "unknown" for g in groups for rule in g["rules"]):
            return groups
        time.sleep(0.5)
    pytest.fail(f"rules were not all evaluated within {SCRAPE_WAIT_SECONDS}s")


def test_find_prometheus_binary_matches_path() -> None:
    binary = require_binary("prometheus")
    assert find_prometheus_binary() == binary


def test_prometheus_scrapes_the_api_and_stops(tmp_path: Path, metrics_target: str) -> None:
    require_binary("prometheus")
    server = PrometheusServer(data_dir=tmp_path, api_target=metrics_target).start()
    try:
        assert server.owned
        assert server.config_path == tmp_path / "prometheus" / "prometheus.yml"
        assert metrics_target in server.config_path.read_text()
        client = PrometheusConnect(url=server.url, disable_ssl=True)

        [sample] = wait_for_result(client, "sum(recops_recommendation_requests_total)")
        assert float(sample["value"][1]) == 5.0
        [up] = client.custom_query('up{job="recops-api"}')
        assert up["metric"]["instance"] == metrics_target
        assert up["value"][1] == "1"

        groups = wait_for_evaluated_rules(server.url)
        assert {group["name"] for group in groups} == {"recops-serving", "recops-business", "recops-alerts"}
        failing = {rule["name"]: rule.get("lastError") for g in groups for rule in g["rules"]
                   if rule["health"] != "ok"}
        assert not failing

        # a second PrometheusServer for the same data dir and target reuses the running one
        again = PrometheusServer(data_dir=tmp_path, api_target=metrics_target).start()
        assert (again.url, again.owned) == (server.url, False)
    finally:
        process = server.process
        server.stop()

    assert process is not None
    assert process.poll() is not None
    assert not pid_alive(process.pid)
    assert not (tmp_path / "prometheus" / "server.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/-/ready", timeout=1)
