"""A local Redis Cluster of real redis-server processes, for tests and for trying scale-out.

    cluster = EmbeddedRedisCluster(Path("data/cluster"), masters=3).start()
    REDIS_URL = cluster.url        # "redis://127.0.0.1:<port>/0?cluster=true"

``engine.storage.client.redis_client`` opens a ``RedisCluster`` client for URLs with ``cluster=true``.
Every multi-key operation of the engine keeps its keys in one slot with hash tags (``{u:<id>}``
per user, ``{e:<key>}`` per experiment), so Lua scripts and MGETs work unchanged on a cluster.

``cluster.json`` in the data dir keeps the nodes' ports: a later ``start`` on the same dir brings
the same cluster back with its keys (``recops up --redis-cluster``).  The masters run without
full coverage, so one that is down takes out only its own slots.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from engine.local_processes import free_port
from engine.storage.embedded_redis import EmbeddedRedis, RedisUnavailableError, find_redis_binary


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port <= 55_535 and _port_free(port + 10_000):
            return port
    for port in range(20_000, 55_535, 7):
        if _port_free(port) and _port_free(port + 10_000):
            return port
    raise RedisUnavailableError("no free port pair for a cluster node")


@dataclass
class EmbeddedRedisCluster:
    data_dir: Path
    masters: int = 3
    nodes: list[EmbeddedRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0?cluster=true"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "cluster.json"

    def start(self, timeout: float = 30.0) -> EmbeddedRedisCluster:
        """Start the nodes; a data dir that held this cluster before starts it again on the same
        ports with its keys (each node's nodes.conf remembers the others), else a new cluster."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._restart(timeout):
            return self
        self.stop()
        for i in range(self.masters):
            shutil.rmtree(self.data_dir / f"node-{i}", ignore_errors=True)  # a cluster that cannot come back
        self.state_file.unlink(missing_ok=True)
        for i in range(self.masters):
            self.nodes.append(self._node(i, free_cluster_port()).start())
        cli = str(Path(find_redis_binary()).with_name("redis-cli"))
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                  "--cluster-replicas", "0", "--cluster-yes"]
        result = subprocess.run(create, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            self.stop()
            raise RedisUnavailableError(f"redis-cli --cluster create failed: {result.stdout[-1000:]}{result.stderr}")
        if not self._wait_ok(timeout):
            self.stop()
            raise RedisUnavailableError(f"the cluster did not reach state ok within {timeout}s")
        self.state_file.write_text(json.dumps({"ports": [n.port for n in self.nodes]}))
        return self

    def _node(self, i: int, port: int) -> EmbeddedRedis:
        # without full coverage: a master that is down takes out only its own slots (its users fall
        # back), the other masters keep answering for theirs
        return EmbeddedRedis(
            data_dir=self.data_dir / f"node-{i}",
            port=port,
            extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "no"],
        )

    def _restart(self, timeout: float) -> bool:
        try:
            ports = [int(p) for p in json.loads(self.state_file.read_text())["ports"]]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if len(ports) != self.masters or not all((self.data_dir / f"node-{i}" / "nodes.conf").exists()
                                                 for i in range(self.masters)):
            return False
        try:
            for i, port in enumerate(ports):
                self.nodes.append(self._node(i, port).start())
        except RedisUnavailableError:
            return False
        return self._wait_ok(timeout)

    def _wait_ok(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                with contextlib.suppress(redis.RedisError):
                    states.append(redis.Redis.from_url(node.url).cluster("info")["cluster_state"])
            if states == ["ok"] * self.masters:
                return True
            time.sleep(0.2)
        return False

    @property
    def pids(self) -> list[int]:
        return [n.process.pid for n in self.nodes if n.process is not None]

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.nodes[0].url, decode_responses=True)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()
