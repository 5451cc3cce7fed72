"""The fleet tests on a real three-node Redis Cluster: one breaker's keys
share a hash tag, so its script runs on one node; names spread over nodes.

Each test starts its own cluster (about a second), so the module is marked
``slow`` as well as ``redis``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitState
from resilient.redis import RedisStorage
from resilient.redis._script import keys
from tests.redis_cluster import RedisCluster, redis_cluster
from tests.test_redis import (  # noqa: F401  (collected again here, on the cluster)
    test_a_failed_probe_reopens_the_fleet,
    test_a_failure_rate_in_the_fleets_window_opens_it,
    test_a_failure_wakes_the_background_sync,
    test_a_success_anywhere_breaks_the_fleets_run,
    test_counts_from_before_a_fleet_reset_do_not_count_after_it,
    test_failures_of_several_instances_add_up_to_the_threshold,
    test_forcing_a_name_before_any_instance_creates_it,
    test_forcing_one_instance_forces_the_fleet,
    test_instances_share_the_half_open_probe_limit,
    test_quorum_needs_failures_from_that_many_instances,
    test_storage_admin_reads,
)
from tests.test_redis_names import (  # noqa: F401
    test_opening_one_name_fleet_wide_leaves_every_other_alone,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

_namespaces = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    # One cluster for the module: the fixture of tests.redis_cluster, by hand.
    gen = redis_cluster.__wrapped__(tmp_path_factory.mktemp("cluster"))  # type: ignore[attr-defined]
    cluster = next(gen)
    yield cluster
    gen.close()


@pytest.fixture
def storages(cluster: RedisCluster) -> Iterator[Callable[..., RedisStorage]]:
    """Instances of a fleet on the cluster, each test in a namespace of its own."""
    made: list[RedisStorage] = []
    # A namespace no other test of the module used (the cluster outlives
    # each test; an id() is reused as soon as its object is freed).
    namespace = f"t{next(_namespaces)}"

    def make(**options: Any) -> RedisStorage:
        options.setdefault("refresh_interval", 60.0)  # tests sync by hand
        options.setdefault("namespace", namespace)
        storage = RedisStorage.from_url(cluster.url, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


def test_from_url_takes_a_cluster_url_and_the_client_a_cluster_client(
    cluster: RedisCluster,
) -> None:
    storage = RedisStorage.from_url(cluster.url, refresh_interval=60.0)
    assert isinstance(storage._client, ClusterClient)
    assert "cluster" in repr(storage)
    storage.close()
    client = ClusterClient(host="127.0.0.1", port=cluster.nodes[1].port)
    storage = RedisStorage(client=client, namespace="direct", refresh_interval=60.0)
    try:
        breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=storage))
        assert storage.sync()
        breaker.force_open()
        assert storage.describe("pay").state == "forced_open"  # type: ignore[union-attr]
    finally:
        storage.close()


def test_breakers_spread_over_the_nodes_and_each_runs_on_one(storages) -> None:
    storage = storages()
    names = [f"dep:{i}" for i in range(30)]
    kept = [CircuitBreaker(name, CircuitBreakerConfig(storage=storage)) for name in names]
    assert storage.sync()
    slots = {redis.cluster.key_slot(keys(storage.namespace, name)[0].encode()) for name in names}
    assert len(slots) > 1
    for name in names:
        assert len({redis.cluster.key_slot(k.encode()) for k in keys("ns", name)}) == 1
    assert sorted(storage.names()) == sorted(names)
    assert all(b.state is CircuitState.CLOSED for b in kept)
