"""`recops up --workers 2 --redis-cluster`: the stack on a local three-master Redis Cluster.

The supervisor starts the cluster under the data dir, two API workers, the consumer; lists are
served and events land in the cluster's stream and, through the consumer, in the event log; a
SIGINT stops everything, the cluster's redis-server processes included.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bench.soak import worker_pids
from engine.config import Settings
from engine.data.event_log import EventLog
from engine.local_processes import pid_alive
from engine.storage.client import redis_client
from engine.storage.keys import Keys
from tests.engine.cli.test_up import _stack_env
from tests.support.polling import poll


def test_up_with_workers_on_a_redis_cluster_serves_logs_events_and_stops_everything(
    small_world_dir: Path, tmp_path: Path
) -> None:
    data_dir, env = _stack_env(small_world_dir, tmp_path)
    log_path = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "up", "--workers", "2", "--redis-cluster",
         "--no-console", "--no-simulator", "--no-prometheus"],
        env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    state_file = data_dir / "stack.json"
    pids: list[int] = []
    try:
        def ready() -> bool:
            if not state_file.exists():
                return False
            state = json.loads(state_file.read_text())
            return "api" in state["urls"] and "consumer" in state["children"]

        assert poll(ready, 180, every=0.25), log_path.read_text()
        state = json.loads(state_file.read_text())
        api, url = state["urls"]["api"], state["urls"]["redis"]
        assert url.endswith("?cluster=true") and f"redis       {url}" in log_path.read_text()
        cluster_pids = state["redis_cluster_pids"]
        assert len(cluster_pids) == 3 and all(pid_alive(p) for p in cluster_pids)
        workers = worker_pids(state["children"]["api"])
        assert len(workers) == 2

        users = [f"u{i:05d}" for i in range(30)]
        with httpx.Client(base_url=api, timeout=10) as http:
            lists = {u: http.post("/recommendations", params={"user_id": u, "n": 5}) for u in users}
            assert all(r.status_code == 200 and not r.json()["fallback"] for r in lists.values()), \
                [r.text for r in lists.values()][:3]
            posted = [http.post("/events", json={"user_id": u, "item_id": r.json()["items"][0]["item_id"],
                                                 "type": "click"})
                      for u, r in lists.items()]
        assert all(p.status_code in (200, 201) for p in posted), [p.text for p in posted][:3]
        event_ids = {p.json()["event_id"] for p in posted}

        client = redis_client(url)
        try:
            assert len(client.get_primaries()) == 3  # type: ignore[attr-defined]
            # every click went into the cluster's stream (the consumer trims what it logged, so the
            # stream's counters tell, not its entries)
            assert client.hget(Keys().event_counts, "click") == str(len(users))
        finally:
            client.close()
        event_log = EventLog.for_dataset(Settings(data_dir=data_dir), "demo")
        # and the consumer moved them into the event log (flushing every 0.5 s here)
        assert poll(lambda: event_ids <= set(event_log.read().column("event_id").to_pylist()), 60, every=0.5), \
            (data_dir / "logs" / "consumer.log").read_text()
        pids = [*state["children"].values(), *workers, *cluster_pids]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log_path.read_text()
    assert pids and poll(lambda: not any(pid_alive(p) for p in pids), 15, every=0.25), \
        "a process outlived `recops up`"
    assert not state_file.exists()
    assert (data_dir / "redis-cluster" / "cluster.json").exists()  # the next `up` starts it again, keys kept


def test_redis_cluster_with_a_redis_url_or_no_workers_is_one_line_and_exit_2(
    small_world_dir: Path, tmp_path: Path
) -> None:
    data_dir, env = _stack_env(small_world_dir, tmp_path)
    for extra, flags, said in [({"REDIS_URL": "redis://127.0.0.1:1/0"}, ["--redis-cluster"], "unset REDIS_URL"),
                               ({}, ["--workers", "0"], "--workers must be at least 1")]:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "up", *flags, "--no-console"],
                              env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and said in done.stderr and "Traceback" not in done.stderr
    assert not (data_dir / "redis-cluster").exists() and not (data_dir / "stack.json").exists()
