"""``recops consume``: drains the served dataset's stream into its event log, stops cleanly, refuses bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from bench.harness import metric_total
from engine.config import Settings
from engine.data.event_log import EventLog
from engine.events.consumer import GROUP
from engine.events.tracker import Event, EventTracker
from engine.local_processes import free_port
from engine.runtime import dataset_keys
from tests.conftest import REPO_ROOT
from tests.support.cli import Recops
from tests.support.imported_data import NAME, import_small_dataset
from tests.support.polling import poll


def _track(settings: Settings, client: redis.Redis, dataset: str, n: int) -> set[str]:
    tracker = EventTracker(client, dataset_keys(settings, dataset), settings)
    events = [Event(user_id=f"u{k % 4}", item_id=f"i{k}", type="click") for k in range(n)]
    tracker.track_many(events)
    return {e.event_id for e in events}


@pytest.fixture
def env(recops: Recops, settings: Settings, redis_url: str) -> Recops:
    recops.env(RECOPS_DATA_DIR=str(settings.data_dir), REDIS_URL=redis_url)
    return recops


def test_consume_once_drains_the_stream_and_prints_a_json_summary(
    env: Recops, settings: Settings, redis_client: redis.Redis
) -> None:
    ids = _track(settings, redis_client, "demo", 12)
    redis_client.xadd(dataset_keys(settings, "demo").event_stream, {"user_id": "u1"})  # malformed
    code, out, err = env(["consume", "--once", "--json"])
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["consumed"], summary["written"], summary["dead_lettered"]) == (13, 12, 1)
    assert summary["dataset"] == "demo" and summary["event_log"]["events"] == 12
    logged = EventLog.for_dataset(settings, "demo").read()
    assert set(logged["event_id"].to_pylist()) == ids
    assert redis_client.xlen(dataset_keys(settings, "demo").event_stream) == 0

    code, out, _ = env(["consume", "--once"])  # nothing new: nothing written twice
    assert code == 0 and out.startswith("consumed 0 entries: 0 events written") and "12 events in" in out


def test_consume_once_with_several_consumer_processes(
    env: Recops, settings: Settings, redis_client: redis.Redis
) -> None:
    ids = _track(settings, redis_client, "demo", 300)
    code, out, err = env(["consume", "--once", "--json", "--consumers", "2", "--batch-size", "25"])
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["consumed"], summary["written"]) == (300, 300)
    assert set(EventLog.for_dataset(settings, "demo").read()["event_id"].to_pylist()) == ids
    assert redis_client.xinfo_groups(dataset_keys(settings, "demo").event_stream)[0]["pending"] == 0


def test_consume_logs_an_imported_dataset_under_its_own_name(
    env: Recops, settings: Settings, redis_client: redis.Redis
) -> None:
    import_small_dataset(settings.data_dir)
    ids = _track(settings, redis_client, NAME, 5)
    _track(settings, redis_client, "demo", 3)  # another dataset's stream: not this consumer's
    code, out, err = env(["consume", "--dataset", NAME, "--once", "--json"])
    assert code == 0, err
    assert json.loads(out)["written"] == 5
    assert set(EventLog.for_dataset(settings, NAME).read()["event_id"].to_pylist()) == ids
    assert EventLog.for_dataset(settings, "demo").count() == 0
    assert redis_client.xlen(dataset_keys(settings, "demo").event_stream) == 3


@pytest.mark.parametrize(("argv", "message"), [
    (["consume", "--dataset", "nope", "--once"], "no dataset named 'nope' (datasets: none imported yet)"),
    (["consume", "--json"], "--json needs --once"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(env: Recops, argv: list[str], message: str) -> None:
    code, out, err = env(argv)
    assert code == 2 and out == ""
    assert err.startswith("recops consume: ") and len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("consumers", [1, 2])
def test_a_running_consumer_writes_within_the_flush_interval_and_stops_cleanly_on_sigterm(
    consumers: int, settings: Settings, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "RECOPS_DATA_DIR": str(settings.data_dir), "REDIS_URL": redis_url,
           "RECOPS_CONSUMER_FLUSH_SECONDS": "0.5", "RECOPS_DATASET": "demo"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    output = tmp_path / "consume.log"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "consume", "--consumers", str(consumers),
                             "--metrics-port", str(port)],
                            env=env, cwd=REPO_ROOT, stdout=output.open("wb"), stderr=subprocess.STDOUT)
    stream = dataset_keys(settings, "demo").event_stream
    log = EventLog.for_dataset(settings, "demo")
    try:
        first = _track(settings, redis_client, "demo", 4)
        assert poll(lambda: log.count() == 4, 30, every=0.05), output.read_text()
        second = _track(settings, redis_client, "demo", 2)
        assert poll(lambda: redis_client.xinfo_groups(stream)[0]["lag"] == 0, 10, every=0.01)  # delivered
        # the metrics port reports every process's writes
        metrics = f"http://127.0.0.1:{port}/metrics"
        assert poll(lambda: metric_total(httpx.get(metrics, timeout=5).text, "recops_consumer_events_total") >= 4,
                    10, every=0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, output.read_text()
    assert set(log.read()["event_id"].to_pylist()) == first | second  # what it held was written at the stop
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
    assert redis_client.xinfo_consumers(stream, GROUP) == []  # every process left the group
    assert "consumed 6 entries: 6 events written" in output.read_text()
