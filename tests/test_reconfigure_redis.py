"""Reconfiguring Redis-shared breakers and rate limiters: the settings are
one process's choice, and no other instance is reconfigured."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    RateLimitConfig,
    RateLimiter,
)
from resilient.errors import RateLimitExceededError
from resilient.redis import RedisStorage
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def storages(redis_server: RedisServer) -> Iterator[Callable[..., RedisStorage]]:
    made: list[RedisStorage] = []

    def make(**options: Any) -> RedisStorage:
        options.setdefault("refresh_interval", 60.0)  # the test syncs by hand
        storage = RedisStorage.from_url(redis_server.url, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


def fail() -> None:
    raise ConnectionError("down")


def test_a_shared_breaker_sends_its_new_threshold_and_others_keep_theirs(
    storages: Callable[..., RedisStorage],
) -> None:
    a, b = storages(), storages()
    one = CircuitBreaker("pay", CircuitBreakerConfig(storage=a, failure_threshold=4))
    two = CircuitBreaker("pay", CircuitBreakerConfig(storage=b, failure_threshold=4))
    assert a.sync()
    assert b.sync()
    one.reconfigure(CircuitBreakerConfig(storage=a, failure_threshold=2))
    assert two.config.failure_threshold == 4  # another instance: not reconfigured
    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            one.call(fail)
    assert a.sync()
    assert b.sync()
    assert one.state is CircuitState.OPEN  # two failures: the threshold it sent
    assert two.state is CircuitState.OPEN  # the fleet's state, mirrored
    with pytest.raises(ValueError, match="storage cannot change"):
        one.reconfigure(CircuitBreakerConfig(storage=b, failure_threshold=2))


def test_a_shared_rate_limit_takes_its_new_burst(storages: Callable[..., RedisStorage]) -> None:
    a = storages()
    limiter = RateLimiter("quota", rate=100, period=60.0, burst=1, storage=a)
    assert limiter.call(lambda: 1) == 1  # the fleet's next turn is 0.6 s away
    with pytest.raises(RateLimitExceededError):
        limiter.call(lambda: 1)
    limiter.reconfigure(RateLimitConfig(100, period=60.0, burst=5, storage=a))
    admitted = 0
    for _ in range(10):
        with contextlib.suppress(RateLimitExceededError):
            limiter.call(lambda: 1)
            admitted += 1
    # A burst of 5, one turn taken 0.6 s ahead: 4 now (5 if 0.6 s went by).
    assert 4 <= admitted <= 5
