"""The local Redis Cluster comes back on its ports with its keys, and starts anew when it cannot."""

from __future__ import annotations

import json
from pathlib import Path

from engine.local_processes import pid_alive
from engine.storage.embedded_cluster import EmbeddedRedisCluster


def test_a_second_start_brings_the_same_cluster_back_with_its_keys(tmp_path: Path) -> None:
    first = EmbeddedRedisCluster(tmp_path / "cluster").start()
    try:
        client = first.client()
        for i in range(30):  # over all three masters
            client.set(f"k{i}", str(i))
        url, pids = first.url, first.pids
    finally:
        first.stop()
    assert not any(pid_alive(p) for p in pids)
    again = EmbeddedRedisCluster(tmp_path / "cluster").start()
    try:
        assert again.url == url
        assert [again.client().get(f"k{i}") for i in range(30)] == [str(i) for i in range(30)]
    finally:
        again.stop()


def test_a_cluster_that_cannot_come_back_is_created_anew(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    directory.mkdir()
    (directory / "cluster.json").write_text(json.dumps({"ports": [1, 2, 3]}))  # no node files
    cluster = EmbeddedRedisCluster(directory).start()
    try:
        assert len(cluster.client().get_primaries()) == 3
        assert json.loads((directory / "cluster.json").read_text())["ports"] == [n.port for n in cluster.nodes]
    finally:
        cluster.stop()
