"""A real three-node Redis Cluster on loopback: three ``redis-server
--cluster-enabled yes`` (no replicas, no persistence) joined by
``redis-cli --cluster create``. Under ``CI=true`` a missing binary fails the
test; locally it skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, _free_port, redis_binary, wait_for

__all__ = ["RedisCluster", "cluster_of_three", "redis_cluster"]


def _free_pair() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = _free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    pytest.fail("no free port pair for a cluster node")


class ClusterNode(RedisServer):
    def __init__(self, binary: str, workdir: Path, *options: str) -> None:
        super().__init__(binary, workdir)
        self.port = _free_pair()
        self.options = options  # more redis-server options

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.workdir / f"nodes-{self.port}.conf"),
             "--cluster-node-timeout", "2000",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--loglevel", "warning", *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=10.0, what=f"cluster node on port {self.port}")


class RedisCluster:
    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def state_ok(self) -> bool:
        import redis

        for node in self.nodes:
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1.0)
            try:
                info = client.execute_command("CLUSTER", "INFO")
            finally:
                client.close()
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text:
                return False
        return True


def _cli_binary() -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        message = "redis-cli is not installed (apt-get install redis-tools)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """Three nodes, every slot assigned, stopped after the test."""
    yield from cluster_of_three(tmp_path)


def cluster_of_three(tmp_path: Path, *options: str) -> Iterator[RedisCluster]:
    """Three masters (``options``: more redis-server options for each),
    every slot assigned; stopped when the generator is closed."""
    server, cli = redis_binary(), _cli_binary()
    nodes = [ClusterNode(server, tmp_path, *options) for _ in range(3)]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        cluster = RedisCluster(nodes)
        wait_for(cluster.state_ok, timeout=20.0, what="the cluster to be ready")
        yield cluster
    finally:
        for node in nodes:
            node.stop()
