"""Background traffic grows with changes, not with time or breakers: an idle
process sends one heartbeat per ``heartbeat_interval`` whatever it shares,
and a transition costs each other instance one fetch of that breaker.

Counted by Redis itself (``INFO commandstats``). Real time is the measure
here, so each test watches a short window with a short heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitState
from resilient.redis import RedisStorage
from tests.redis_server import RedisServer, wait_for

pytestmark = pytest.mark.redis

HEARTBEAT = 0.2
WINDOW = 1.0


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def _calls(client: redis.Redis, command: str | None = None) -> int:
    stats = client.info("commandstats")
    return sum(
        v["calls"]
        for k, v in stats.items()
        if (command is None and "config" not in k and "info" not in k) or k == f"cmdstat_{command}"
    )


def _settled(client: redis.Redis, namespace: str, storage: RedisStorage) -> None:
    """Wait until the storage's background thread made its second heartbeat:
    its first round (a heartbeat, then the one full sync, made once it
    listens) is over, and every breaker made before has been synced."""
    key = f"{namespace}:instances"
    first = wait_for(lambda: client.zscore(key, storage.instance), what="a heartbeat")
    wait_for(lambda: (client.zscore(key, storage.instance) or 0) > first, what="a second one")


def _idle_commands(
    url: str, client: redis.Redis, count: int, busy: bool = False, **fields: Any
) -> int:
    storage = RedisStorage.from_url(
        url, namespace=f"idle{count}", refresh_interval=0.05, heartbeat_interval=HEARTBEAT
    )
    try:
        kept = [
            CircuitBreaker(f"dep:{i}", CircuitBreakerConfig(storage=storage, **fields))
            for i in range(count)
        ]
        assert storage.sync()
        _settled(client, f"idle{count}", storage)
        client.config_resetstat()
        ends = time.monotonic() + WINDOW  # the window measured
        while busy and time.monotonic() < ends:
            for breaker in kept:  # healthy traffic: successes only
                breaker.call(lambda: None)
        time.sleep(max(0.0, ends - time.monotonic()))
        sent = _calls(client)
        del kept
        return sent
    finally:
        storage.close()


def test_an_idle_process_costs_the_same_for_one_breaker_or_two_hundred(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    one = _idle_commands(redis_server.url, client, 1)
    many = _idle_commands(redis_server.url, client, 200)
    beats = WINDOW / HEARTBEAT + 1
    assert one <= 2 * beats  # a ZADD and a prune per beat
    assert many <= 2 * beats  # not 200 times as much (was ~17 per breaker per second)


def test_a_busy_healthy_process_costs_what_an_idle_one_does(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    sent = _idle_commands(redis_server.url, client, 100, busy=True)
    assert sent <= 2 * (WINDOW / HEARTBEAT + 1)


RATES = {
    "count": {"failure_rate_threshold": 0.5, "window_size": 50},
    "time": {"failure_rate_threshold": 0.5, "window_duration": 60.0},
}


@pytest.mark.parametrize("rates", RATES.values(), ids=RATES.keys())
def test_a_busy_healthy_process_sends_no_window_while_the_fleets_has_no_failure(
    redis_server: RedisServer, client: redis.Redis, rates: dict[str, Any]
) -> None:
    # Successes go into each breaker's outcome log, but go up only with a
    # failure, or while the fleet's window holds failures.
    sent = _idle_commands(redis_server.url, client, 100, busy=True, **rates)
    assert sent <= 2 * (WINDOW / HEARTBEAT + 1)


def test_a_run_of_failures_that_starts_is_ended_by_successes_elsewhere(
    redis_server: RedisServer,
) -> None:
    options = {"refresh_interval": 0.05, "heartbeat_interval": 60.0}
    a = RedisStorage.from_url(redis_server.url, **options)  # type: ignore[arg-type]
    b = RedisStorage.from_url(redis_server.url, **options)  # type: ignore[arg-type]
    try:
        config = {"failure_threshold": 4}
        one = CircuitBreaker("pay", CircuitBreakerConfig(storage=a, **config))  # type: ignore[arg-type]
        two = CircuitBreaker("pay", CircuitBreakerConfig(storage=b, **config))  # type: ignore[arg-type]
        assert a.sync()
        assert b.sync()
        for _ in range(2):
            with pytest.raises(ZeroDivisionError):
                one.call(lambda: 1 / 0)
        wait_for(
            lambda: (info := a.describe("pay")) is not None and info.consecutive_failures == 2,
            what="a's failures to reach Redis",
        )
        # The run's start was published; b hears of it within milliseconds
        # (by hand here, to be sure): a success of its own now ends it.
        assert b.sync()
        two.call(lambda: "ok")
        wait_for(
            lambda: (info := a.describe("pay")) is not None and info.calls == 3,
            what="b's success to reach Redis",
        )
        info = a.describe("pay")
        assert info is not None
        assert info.consecutive_failures == 0
    finally:
        a.close()
        b.close()


def test_a_transition_costs_each_other_instance_one_fetch_of_that_breaker(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    # (Heartbeats are not script calls: they do not count here.)
    options = {"refresh_interval": 0.05, "heartbeat_interval": HEARTBEAT}
    a = RedisStorage.from_url(redis_server.url, **options)  # type: ignore[arg-type]
    b = RedisStorage.from_url(redis_server.url, **options)  # type: ignore[arg-type]
    try:
        mine = [CircuitBreaker(f"d{i}", CircuitBreakerConfig(storage=a)) for i in range(50)]
        theirs = [CircuitBreaker(f"d{i}", CircuitBreakerConfig(storage=b)) for i in range(50)]
        assert a.sync()
        assert b.sync()
        _settled(client, "resilient", a)
        _settled(client, "resilient", b)
        client.config_resetstat()
        mine[7].force_open()  # one script call, one publish
        wait_for(lambda: theirs[7].state is CircuitState.FORCED_OPEN, what="b to fetch d7")
        time.sleep(0.2)
        # a's control, then b's fetch of d7 (and a's own, woken by its publish):
        # never one per breaker.
        assert _calls(client, "evalsha") <= 3
        assert all(t.state is CircuitState.CLOSED for i, t in enumerate(theirs) if i != 7)
    finally:
        a.close()
        b.close()
