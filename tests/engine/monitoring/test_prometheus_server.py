"""A real Prometheus started by PrometheusServer scrapes a real /metrics endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_api_client import PrometheusConnect
from prometheus_client import CollectorRegistry, Counter, start_http_server

from engine.local_processes import free_port, pid_alive
from engine.monitoring.prometheus_server import PrometheusServer, find_prometheus_binary
from tests.conftest import require_binary
from tests.support.polling import poll

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


def evaluated_rules(url: str) -> list[dict]:
    """Rule groups once every rule has been evaluated at least once (health no longer "unknown"), else []."""
    groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return groups if all(rule["health"] != "unknown" for g in groups for rule in g["rules"]) else []


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

        query = "sum(recops_recommendation_requests_total)"
        result = poll(lambda: client.custom_query(query), SCRAPE_WAIT_SECONDS, every=0.5)
        assert result, f"{query!r} stayed empty for {SCRAPE_WAIT_SECONDS}s"
        [sample] = result
        assert float(sample["value"][1]) == 5.0
        [up] = client.custom_query('up{job="recops-api"}')
        assert up["metric"]["instance"] == metrics_target
        assert up["value"][1] == "1"

        groups = poll(lambda: evaluated_rules(server.url), SCRAPE_WAIT_SECONDS, every=0.5)
        assert groups, f"rules were not all evaluated within {SCRAPE_WAIT_SECONDS}s"
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
