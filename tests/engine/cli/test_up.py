"""`recops up` starts every part, serves traffic, and stops with nothing left running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from bench.harness import metric_total
from engine.cli.up import REPO_ROOT, find_console_app
from engine.config import Settings
from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetStore
from engine.data.event_log import EventLog
from engine.experiments.demo import DEMO_KEY
from engine.local_processes import pid_alive
from engine.models.registry import CANDIDATE, ModelRegistry, VersionRecord
from engine.monitoring.prometheus_server import find_prometheus_binary
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.conftest import require_binary
from tests.engine.data.fixture_files import write_csv
from tests.support.engine_fixtures import small_world_env
from tests.support.imported_data import NAME, import_small_dataset
from tests.support.logged_events import log_events
from tests.support.polling import poll


def _stack_env(small_world_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the trained small world (no training here) and an environment without an
    external Redis or Prometheus, so that `recops up` starts its own."""
    data_dir = tmp_path / "stack-data"
    shutil.copytree(small_world_dir, data_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_URL")}
    env.update(small_world_env(), RECOPS_DATA_DIR=str(data_dir), RECOPS_API_PORT="0",
               RECOPS_CONSUMER_FLUSH_SECONDS="0.5")
    return data_dir, env


def test_up_starts_the_stack_and_stops_it_cleanly(small_world_dir: Path, tmp_path: Path) -> None:
    require_binary("prometheus")
    data_dir, env = _stack_env(small_world_dir, tmp_path)
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "up", "--no-console", "--simulator-rate", "5"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    state_file = data_dir / "stack.json"
    try:
        def ready() -> bool:
            if not state_file.exists():
                return False
            state = json.loads(state_file.read_text())
            return ("api" in state["urls"] and "prometheus" in state["urls"]
                    and {"simulator", "consumer"} <= set(state["children"]))

        assert poll(ready, 120, every=0.25), (tmp_path / "up.log").read_text()
        state = json.loads(state_file.read_text())
        api = state["urls"]["api"]
        assert httpx.get(api + "/health", timeout=5).json()["status"] == "healthy"

        def simulated_traffic() -> bool:
            return metric_total(httpx.get(api + "/metrics", timeout=5).text, "recops_events_total") > 0

        assert poll(simulated_traffic, 60, every=0.25), "the simulator sent no events"
        # the consumer moves them into the event log, and Prometheus scrapes its metrics
        event_log = EventLog.for_dataset(Settings(data_dir=data_dir), "demo")
        assert poll(lambda: event_log.count() > 0, 60, every=0.5), (data_dir / "logs" / "consumer.log").read_text()

        def consumer_scraped() -> bool:
            targets = httpx.get(state["urls"]["prometheus"] + "/api/v1/targets", timeout=5).json()
            return any(t["labels"]["job"] == "recops-consumer" and t["health"] == "up"
                       for t in targets["data"]["activeTargets"])

        assert poll(consumer_scraped, 30, every=0.5), "Prometheus does not scrape the consumer"
        assert metric_total(httpx.get(state["urls"]["consumer_metrics"], timeout=5).text,
                            "recops_consumer_events_total") > 0
        assert httpx.get(state["urls"]["prometheus"] + "/-/ready", timeout=5).status_code == 200
        pids = [*state["children"].values(), state["redis_pid"], state["prometheus_pid"]]
        assert all(isinstance(p, int) and pid_alive(p) for p in pids), state
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, (tmp_path / "up.log").read_text()
    assert poll(lambda: not any(pid_alive(p) for p in pids), 10, every=0.25), "a child outlived `recops up`"
    assert not state_file.exists()
    assert "RecOps stopped." in (tmp_path / "up.log").read_text()
    consumer_log = (data_dir / "logs" / "consumer.log").read_text()  # it stopped cleanly, with its summary
    assert "Traceback" not in consumer_log and "events written" in consumer_log


def test_a_first_start_runs_the_demo_experiment_and_the_simulator_fills_both_arms(
    small_world_dir: Path, tmp_path: Path
) -> None:
    data_dir, env = _stack_env(small_world_dir, tmp_path)
    log = tmp_path / "up.log"
    # the simulator at `make run`'s rate: the Readout page must show both arms within two minutes
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--no-console", "--no-prometheus"],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        assert poll(lambda: "RecOps is up." in log.read_text(), 120, every=0.25), log.read_text()
        api = json.loads((data_dir / "stack.json").read_text())["urls"]["api"]
        readout_url = f"{api}/experiments/{DEMO_KEY}/readout"

        def both_arms_have_users() -> bool:
            arms = httpx.get(readout_url, timeout=10).json()["arms"]
            return len(arms) == 2 and all(a["users"] > 0 for a in arms)

        assert poll(both_arms_have_users, 120, every=1.0), httpx.get(readout_url, timeout=10).text
        readout = httpx.get(readout_url, timeout=10).json()
        assert readout["status"] == "running" and [a["model"] for a in readout["arms"]] == [
            "als@production", "item_item@production"]
        assert {s["variant"] for s in readout["served"]} == {"als", "item_item"}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    output = log.read_text()
    assert code == 0, output
    assert f"experiment  {DEMO_KEY}: running, als@production vs item_item@production on ctr" in output


def test_the_demo_experiment_can_be_switched_off(small_world_dir: Path, tmp_path: Path) -> None:
    # with the simulator on, which is what the demo needs otherwise
    data_dir, env = _stack_env(small_world_dir, tmp_path)
    log = tmp_path / "up.log"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--no-console", "--no-prometheus",
                             "--simulator-rate", "1"], env={**env, "RECOPS_DEMO_EXPERIMENT": "0"},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        assert poll(lambda: "RecOps is up." in log.read_text(), 120, every=0.25), log.read_text()
        api = json.loads((data_dir / "stack.json").read_text())["urls"]["api"]
        assert httpx.get(f"{api}/experiments/{DEMO_KEY}/readout", timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0 and "experiment  " not in log.read_text()


def test_a_signal_during_start_up_leaves_nothing_running(small_world_dir: Path, tmp_path: Path) -> None:
    data_dir, env = _stack_env(small_world_dir, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--no-console", "--no-simulator"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    state_file = data_dir / "stack.json"
    # the API child exists but the supervisor is still waiting for it to answer
    assert poll(lambda: state_file.exists() and "api" in json.loads(state_file.read_text())["children"], 60, every=0.25)
    state = json.loads(state_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    pids = [*state["children"].values(), state["redis_pid"]]
    assert poll(lambda: not any(pid_alive(p) for p in pids if p), 10, every=0.25), "a child outlived `recops up`"


def test_up_serves_an_imported_dataset_without_a_simulator(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack-data"
    import_small_dataset(data_dir)  # no models yet: `recops up` trains them once
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_URL", "RECOPS_DATASET")}
    env.update(RECOPS_DATA_DIR=str(data_dir), RECOPS_API_PORT="0")
    log = tmp_path / "up.log"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--dataset", NAME, "--no-console",
                             "--no-prometheus"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    state_file = data_dir / "stack.json"
    try:
        assert poll(lambda: "RecOps is up." in log.read_text(), 120, every=0.25), log.read_text()
        state = json.loads(state_file.read_text())
        # no simulator: the shop has no ground truth to simulate
        assert set(state["children"]) == {"api", "consumer"}
        served = httpx.get(state["urls"]["api"] + "/health", timeout=5).json()["dataset"]
        assert (served["name"], served["version"], served["users"]) == (NAME, 1, 60)
        listed = httpx.post(state["urls"]["api"] + "/recommendations", params={"user_id": "a00"}, timeout=10).json()
        assert listed["model"] == "als" and listed["items"] and not listed["fallback"]
        # no demo experiment: an imported dataset has no simulator to fill it
        assert httpx.get(f"{state['urls']['api']}/experiments/{DEMO_KEY}/readout", timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    output = log.read_text()
    assert code == 0, output
    assert f"dataset     {NAME} v1: " in output and "users, 24 items" in output
    assert f"consumer    events → {data_dir / 'events' / NAME} at least every 5s" in output
    assert "simulator   not started: the simulator's shoppers follow the demo world's ground truth" in output
    assert f"`recops replay --dataset {NAME} --from TIME`" in output


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_dataset_that_cannot_be_served_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    events = write_csv(tmp_path / "one.csv", ["user_id", "item_id"], [["solo", "i1"], ["solo", "i2"]])
    import_dataset(DatasetStore(data_dir / "datasets"), "one", events)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_URL", "RECOPS_DATASET")}
    env.update(RECOPS_DATA_DIR=str(data_dir), RECOPS_API_PORT="0")
    for flags, extra, message in [
        (["--dataset", "nope"], {}, "no dataset named 'nope' (datasets: one)"),
        ([], {"RECOPS_DATASET": "nope"}, "no dataset named 'nope'"),
        (["--dataset", "one"], {}, "dataset 'one' (version 1) has 1 user with interactions"),
    ]:
        done = subprocess.run([sys.executable, "-m", "engine.cli", command, *flags], env={**env, **extra},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(f"recops {command}: ")
        assert message in done.stderr and "Traceback" not in done.stdout + done.stderr
    # refused before anything started or was written
    assert not (data_dir / "redis").exists() and not (data_dir / "stack.json").exists()
    assert not (data_dir / "models" / "registry.json").exists()


def test_prometheus_binary_lookup_matches_path() -> None:
    assert (find_prometheus_binary() is None) == (shutil.which("prometheus") is None)


def test_the_console_app_is_found_beside_its_pages_only(tmp_path: Path) -> None:
    assert find_console_app([REPO_ROOT]) == REPO_ROOT / "app.py"  # this checkout
    (tmp_path / "app.py").write_text("")
    assert find_console_app([tmp_path]) is None  # an app.py without pages/ is somebody else's
    (tmp_path / "pages").mkdir()
    assert find_console_app([tmp_path / "site-packages", tmp_path]) == tmp_path / "app.py"


def test_up_retrains_on_a_schedule_as_candidates_when_events_arrive(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack-data"
    import_small_dataset(data_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_URL", "RECOPS_DATASET")}
    env.update(RECOPS_DATA_DIR=str(data_dir), RECOPS_API_PORT="0", RECOPS_RETRAIN_EVERY="1s")
    log = tmp_path / "up.log"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--dataset", NAME, "--no-console",
                             "--no-prometheus"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    registry = ModelRegistry(data_dir / "models")
    try:
        assert poll(lambda: "RecOps is up." in log.read_text(), 120, every=0.25), log.read_text()
        state = json.loads((data_dir / "stack.json").read_text())
        assert set(state["children"]) == {"api", "consumer", "retrain"}
        production = registry.served(NAME)
        assert sorted(production) == ["als", "item_item", "popularity"]
        retrain_log = data_dir / "logs" / "retrain.log"
        # ticks without new events train nothing
        assert poll(lambda: retrain_log.exists() and "skipped: als: no new events" in retrain_log.read_text(),
                    60, every=0.25), retrain_log.read_text() if retrain_log.exists() else log.read_text()
        assert len(registry.records(NAME)) == 3

        written = log_events(data_dir, NAME, [("zz-new", "A01", "purchase"), ("zz-new", "A02", "click")])

        def candidates() -> list[VersionRecord]:
            return [r for r in registry.records(NAME) if r.stage == CANDIDATE]

        assert poll(lambda: len(candidates()) == 3, 60, every=0.25), retrain_log.read_text()
        assert registry.served(NAME) == production  # candidates only: nothing promoted
        assert {r.lineage["events"] for r in candidates()} == {written}
        audit = AuditLog(redis.Redis.from_url(state["urls"]["redis"], decode_responses=True), Keys())
        [entry] = [e for e in audit.recent() if e.action == "retrain_models"]
        assert (entry.actor, entry.target) == ("schedule", f"{NAME}:v1")
        assert all(r.version in entry.detail for r in candidates())
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    output = log.read_text()
    assert code == 0, output
    assert "retrain     every 1 s when new events were logged, candidates only" in output
    assert poll(lambda: not pid_alive(state["children"]["retrain"]), 10, every=0.25)
