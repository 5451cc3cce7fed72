"""A rate limit shared by the fleet through a real redis-server: one atomic
script per acquisition, the bound across processes, the local fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from resilient import RateLimitConfig, RateLimiter, RateLimitExceededError, with_rate_limit
from resilient.redis import RedisStorage
from resilient.redis._limit import limit_keys
from resilient.testing import fake_clock
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def storages(redis_server: RedisServer) -> Iterator[Callable[..., RedisStorage]]:
    made: list[RedisStorage] = []

    def make(**options: Any) -> RedisStorage:
        options.setdefault("refresh_interval", 60.0)
        storage = RedisStorage.from_url(redis_server.url, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


def _admits(limiter: RateLimiter) -> bool:
    try:
        limiter.call(lambda: None)
    except RateLimitExceededError:
        return False
    return True


def shared(name: str, storage: RedisStorage, **fields: Any) -> RateLimiter:
    return RateLimiter(name, RateLimitConfig(storage=storage, **fields))


def test_instances_share_one_burst(storages: Callable[..., RedisStorage]) -> None:
    one = shared("api", storages(), rate=1, burst=4)
    two = shared("api", storages(), rate=1, burst=4)
    assert [_admits(limiter) for limiter in (one, two, one, two, one, two)] == [True] * 4 + [
        False
    ] * 2
    with pytest.raises(RateLimitExceededError) as caught:
        one.call(lambda: None)
    assert 0.0 < caught.value.retry_after <= 1.0


def test_one_round_trip_per_admitted_call(
    storages: Callable[..., RedisStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storages()
    limiter = shared("api", storage, rate=1000)
    limiter.call(lambda: None)  # the script is loaded
    sent: list[object] = []
    original = redis.connection.Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    for _ in range(50):
        limiter.call(lambda: None)
    assert len(sent) == 50


def test_keys_are_made_in_one_place(storages: Callable[..., RedisStorage]) -> None:
    storage = storages(namespace="ns")
    shared("odd:name{x}", storage, rate=5).call(lambda: None)
    tat, instances = limit_keys("ns", "odd:name{x}")
    assert storage._client.exists(tat) == 1
    assert storage._client.zcard(instances) == 1
    assert storage._client.pttl(tat) > 0  # it expires once the burst is full again


def test_a_waiter_that_gives_up_gives_the_fleet_its_turn_back(
    storages: Callable[..., RedisStorage],
) -> None:
    limiter = shared("api", storages(), rate=2, burst=1, max_wait=5.0)
    limiter.call(lambda: None)
    token, wait = limiter._shared.acquire(5.0)  # type: ignore[union-attr]
    assert token is not None
    assert 0.0 < wait <= 0.5
    limiter._shared.give_back(token)  # type: ignore[union-attr]
    again, wait_again = limiter._shared.acquire(5.0)  # type: ignore[union-attr]
    assert again == token or wait_again <= wait


def test_unreachable_redis_limits_each_instance_at_its_share(
    storages: Callable[..., RedisStorage], redis_server: RedisServer
) -> None:
    first, second = storages(), storages()
    one = shared("api", first, rate=10, burst=10)
    two = shared("api", second, rate=10, burst=10)
    one.call(lambda: None)
    two.call(lambda: None)
    one.call(lambda: None)
    assert one._shared.instances == 2  # type: ignore[union-attr]
    redis_server.kill()
    with fake_clock() as clock:
        admitted = 0
        for _ in range(20):
            try:
                one.call(lambda: None)
                admitted += 1
            except RateLimitExceededError:
                pass
        assert one._shared.local  # type: ignore[union-attr]
        assert admitted == 5  # half the burst: it last saw two instances
        # ...and half the rate after it.
        clock.advance(1.0)
        admitted = sum(1 for _ in range(20) if _admits(one))
        assert admitted == 5


@pytest.mark.slow
def test_four_processes_admit_no_more_than_the_limit_over_5s(redis_server: RedisServer) -> None:
    rate, burst, seconds = 50.0, 10, 5.0
    start = time.time() + 2.0  # all four begin together
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "redis_limit_worker.py"),
                redis_server.url,
                "fleet",
                str(rate),
                str(burst),
                repr(start),
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    times: list[float] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        mine = json.loads(out)
        assert mine, "a worker was never admitted"
        times += mine
    times.sort()
    # Within one burst of the limit over the 5 s (wall clocks of one host).
    assert len(times) <= burst + rate * (times[-1] - times[0]) + 1
    assert len(times) >= rate * seconds * 0.8


def test_the_limit_is_shared_again_once_redis_is_back(
    storages: Callable[..., RedisStorage], redis_server: RedisServer
) -> None:
    limiter = shared("api", storages(refresh_interval=5.0), rate=100)
    assert _admits(limiter)
    redis_server.kill()
    with fake_clock() as clock:
        assert _admits(limiter)
        assert limiter._shared.local  # type: ignore[union-attr]
        redis_server.start()
        assert _admits(limiter)  # not asked again before refresh_interval
        assert limiter._shared.local  # type: ignore[union-attr]
        clock.advance(5.0)
        assert _admits(limiter)
        assert not limiter._shared.local  # type: ignore[union-attr]


async def test_the_async_path_never_blocks_the_event_loop_on_a_stalled_redis(
    storages: Callable[..., RedisStorage], redis_server: RedisServer
) -> None:
    import asyncio
    import signal

    limiter = shared("lag", storages(), rate=1000.0)
    assert await limiter.call_async(asyncio.sleep, 0, "ok") == "ok"  # connected, script loaded
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        # How late the loop runs a task that asked to wake in 1 ms.
        while not done.is_set():
            began = time.monotonic()
            await asyncio.sleep(0.001)
            lags.append(time.monotonic() - began - 0.001)

    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    ticking = asyncio.create_task(ticker())
    try:
        for _ in range(3):  # the first waits out the socket timeout, then local turns
            assert await limiter.call_async(asyncio.sleep, 0, "ok") == "ok"
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        done.set()
        await ticking
    shared_limit = limiter._shared  # type: ignore[attr-defined]
    assert shared_limit is not None
    assert shared_limit.local  # it went on alone
    # Blocked, the loop would have stalled for the whole socket timeout (0.25 s).
    assert len(lags) > 10
    assert max(lags) < 0.1, f"worst loop lag {max(lags) * 1000:.1f} ms"


def test_instances_share_one_weighed_burst(storages: Callable[..., RedisStorage]) -> None:
    one = shared("tpm", storages(), rate=1, period=60.0, burst=100)
    two = shared("tpm", storages(), rate=1, period=60.0, burst=100)
    weighed_one = with_rate_limit(one, cost=lambda n: float(n))(lambda n: n)
    weighed_two = with_rate_limit(two, cost=lambda n: float(n))(lambda n: n)
    assert weighed_one(60) == 60
    with pytest.raises(RateLimitExceededError) as caught:
        weighed_two(50)
    assert 9 * 60.0 < caught.value.retry_after <= 10 * 60.0
    assert weighed_two(40) == 40


def test_adjust_is_shared_by_the_fleet(storages: Callable[..., RedisStorage]) -> None:
    one = shared("tpm", storages(), rate=1, period=60.0, burst=100)
    two = shared("tpm", storages(), rate=1, period=60.0, burst=100)
    settled = with_rate_limit(one, cost=lambda: 80.0, actual=lambda r: 10.0)(lambda: "ok")
    assert settled() == "ok"  # 80 taken, 70 refunded: 90 left for the fleet
    weighed = with_rate_limit(two, cost=lambda n: float(n))(lambda n: n)
    assert weighed(90) == 90
    with pytest.raises(RateLimitExceededError):
        weighed(1)
    two.adjust(-50)  # a refund from either instance
    assert weighed(50) == 50
    one.adjust(30)  # a charge: the fleet owes it
    with pytest.raises(RateLimitExceededError):
        weighed(1)


def test_a_weighed_turn_given_back_is_the_fleets_again(
    storages: Callable[..., RedisStorage],
) -> None:
    limiter = shared("tpm", storages(), rate=10, burst=10, max_wait=5.0)
    token, wait = limiter._shared.acquire(5.0, 7.0)  # type: ignore[union-attr]
    assert token is not None
    assert wait == 0.0
    limiter._shared.give_back(token)  # type: ignore[union-attr]
    again, _ = limiter._shared.acquire(0.0, 10.0)  # type: ignore[union-attr]
    assert again is not None


def test_one_round_trip_per_weighed_admission(
    storages: Callable[..., RedisStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = shared("tpm", storages(), rate=100000, burst=100000)
    weighed = with_rate_limit(limiter, cost=lambda: 5.0)(lambda: None)
    weighed()  # the script is loaded
    sent: list[object] = []
    original = redis.connection.Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    for _ in range(20):
        weighed()
    assert len(sent) == 20
