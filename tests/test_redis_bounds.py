"""A caller waits at most the probe bound (``socket_timeout``, 0.25 s) for
Redis: with Redis stalled, a Cluster node killed, or the event loop's
default executor full of the application's own jobs; and a storage made
while its Cluster is down starts on local state and joins it later.

The bound is the storage's own wait; a loaded machine may add scheduling
delay to it, which ``SLACK`` allows for.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState
from resilient.redis import RedisStorage
from resilient.redis._script import keys
from tests.conftest import Boom
from tests.redis_cluster import RedisCluster, cluster_of_three
from tests.redis_server import RedisServer, wait_for

pytestmark = pytest.mark.redis

BOUND = 0.25
SLACK = 0.25  # scheduling delay on a loaded machine, on top of the bound


def fail() -> None:
    raise Boom


@pytest.fixture
def storages(redis_server: RedisServer) -> Iterator[Callable[..., RedisStorage]]:
    made: list[RedisStorage] = []

    def make(url: str = redis_server.url, **options: Any) -> RedisStorage:
        options.setdefault("refresh_interval", 60.0)
        storage = RedisStorage.from_url(url, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


def _half_open(storage: RedisStorage, name: str = "pay") -> CircuitBreaker:
    """A shared breaker the fleet opened, whose timer ran out: the next call
    asks Redis for a probe."""
    breaker = CircuitBreaker(
        name,
        CircuitBreakerConfig(
            storage=storage, failure_threshold=1, recovery_timeout=0.2, success_threshold=1
        ),
    )
    assert storage.sync()
    with pytest.raises(Boom):
        breaker.call(fail)
    assert storage.sync()
    assert breaker.state in (CircuitState.OPEN, CircuitState.HALF_OPEN)
    wait_for(lambda: breaker.state is CircuitState.HALF_OPEN, what="the recovery timeout")
    return breaker


async def test_an_async_probe_never_waits_on_the_default_executor(storages) -> None:
    storage = storages()
    breaker = _half_open(storage)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    # The application's own jobs take every thread of the default executor.
    jobs = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    try:
        began = time.monotonic()
        assert await breaker.call_async(asyncio.sleep, 0, "probed") == "probed"
        took = time.monotonic() - began
        assert not release.is_set()
        assert not any(job.done() for job in jobs)  # still waiting: not in our way
    finally:
        release.set()
        await asyncio.gather(*jobs)
    assert took <= BOUND + SLACK
    assert storage.sync()
    assert breaker.state is CircuitState.CLOSED  # the fleet's probe closed it


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_probe_waits_at_most_the_bound_for_a_stalled_redis(
    storages, redis_server: RedisServer, flavour: str
) -> None:
    storage = storages()
    breaker = _half_open(storage)
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        if flavour == "sync":
            assert breaker.call(lambda: "probed") == "probed"  # the local probe stands
        else:
            assert asyncio.run(breaker.call_async(asyncio.sleep, 0, "probed")) == "probed"
        took = time.monotonic() - began
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert BOUND * 0.9 <= took <= BOUND + SLACK


# -- a Redis Cluster with a node down ------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of this test's own: the test kills one of its nodes."""
    gen = cluster_of_three(tmp_path)
    yield next(gen)
    gen.close()


def _node_of(cluster: RedisCluster, name: str, namespace: str = "resilient") -> int:
    """Which of the cluster's nodes holds breaker ``name``."""
    slot = redis.cluster.key_slot(keys(namespace, name)[0].encode())
    client = redis.Redis(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for start, end, (_, port, *_) in [
            (s[0], s[1], s[2]) for s in client.execute_command("CLUSTER", "SLOTS")
        ]:
            if start <= slot <= end:
                return next(i for i, n in enumerate(cluster.nodes) if n.port == int(port))
    finally:
        client.close()
    raise AssertionError(f"no node holds slot {slot}")


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_probe_on_a_killed_cluster_node_waits_at_most_the_bound(
    storages, cluster: RedisCluster, flavour: str
) -> None:
    storage = storages(cluster.url)
    breaker = _half_open(storage)
    cluster.nodes[_node_of(cluster, "pay")].kill()
    began = time.monotonic()
    if flavour == "sync":
        result = breaker.call(lambda: "probed")
    else:
        result = asyncio.run(breaker.call_async(asyncio.sleep, 0, "probed"))
    took = time.monotonic() - began
    assert result == "probed"  # the local probe stands
    assert took <= BOUND + SLACK


@pytest.mark.slow
def test_from_url_with_a_cluster_node_down_starts_locally_and_joins_later(
    storages, cluster: RedisCluster
) -> None:
    down = cluster.nodes[0]  # the node the URL names
    down.kill()
    storage = storages(cluster.url)  # no error: local state for now
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=storage, failure_threshold=2))
    assert storage.sync() is False
    assert not storage.up
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state is CircuitState.OPEN  # decided locally
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    down.start()
    wait_for(cluster.state_ok, timeout=30.0, what="the node to rejoin")
    wait_for(storage.sync, timeout=30.0, what="the storage to join the cluster")
    assert storage.up
    other = storages(cluster.url)
    other.force_open("pay")
    assert storage.sync()
    assert breaker.state is CircuitState.FORCED_OPEN  # shared again
