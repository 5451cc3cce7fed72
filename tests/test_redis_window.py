"""The fleet's failure-rate window, merged in Redis from every instance's
outcomes in the order they happened.

Every sync here is made by the test: the stepped_storages' background threads are
not started, so each ordering of syncs is the one written down. Time is a
fake clock (each instance learns its offset to Redis's clock at its first
sync), so outcomes are stamped exactly.
"""

from __future__ import annotations

import random

import pytest

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState
from resilient.circuit_breaker.windows import CountWindow, TimeWindow
from resilient.redis import RedisStorage
from resilient.testing import FakeClock
from tests.conftest import Boom, fail, ok

pytestmark = pytest.mark.redis


def _sync(*stores: RedisStorage) -> None:
    for storage in stores:
        assert storage.sync()


def _calls(breaker: CircuitBreaker, clock: FakeClock, outcomes: str) -> None:
    """``o`` a success, ``x`` a failure, a second apart."""
    for outcome in outcomes:
        clock.advance(1.0)
        breaker.metrics()  # a flush: a success without the lock is stamped here
        if outcome == "o":
            assert breaker.call(ok) == "ok"
        else:
            with pytest.raises(Boom):
                breaker.call(fail)


WINDOWS = {
    "count": {"window_size": 20},
    "time": {"window_duration": 60.0},
}


@pytest.mark.parametrize("window", WINDOWS.values(), ids=WINDOWS.keys())
@pytest.mark.parametrize("first", ["a", "b"])
def test_two_instances_each_seeing_half_the_failures_open_the_fleet(
    stepped_storages, clock, window, first
) -> None:
    # Each instance sees 6 calls, 3 failing: under minimum_calls=10 alone
    # (an unshared breaker seeing the same stays closed); the fleet's window
    # holds 12 calls, 6 failing: 50 %, and opens, whichever syncs first.
    fields = {
        "failure_threshold": 100,
        "failure_rate_threshold": 0.5,
        "minimum_calls": 10,
        **window,
    }
    host_a, host_b = stepped_storages(), stepped_storages()
    a = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_a, **fields))
    b = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_b, **fields))
    alone = CircuitBreaker("alone", CircuitBreakerConfig(**fields))
    _sync(host_a, host_b)
    for breaker in (a, b, alone):
        _calls(breaker, clock, "oxoxox")
    assert alone.state is CircuitState.CLOSED
    hosts = {"a": host_a, "b": host_b}
    _sync(hosts[first])
    info = host_a.describe("pay")
    assert info is not None
    assert (info.state, info.window_calls, info.window_failures) == ("closed", 6, 3)
    _sync(hosts["b" if first == "a" else "a"])
    _sync(host_a, host_b)
    assert (a.state, b.state) == (CircuitState.OPEN, CircuitState.OPEN)
    with pytest.raises(CircuitOpenError):
        a.call(ok)


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_a_count_window_holds_the_newest_outcomes_whoever_reports_last(
    stepped_storages, clock, order
) -> None:
    # A's five failures happened before B's ten successes: the fleet's last
    # ten outcomes are B's, so it stays closed in either order of syncs.
    fields = {
        "failure_threshold": 100,
        "failure_rate_threshold": 0.3,
        "minimum_calls": 5,
        "window_size": 10,
    }
    host_a, host_b = stepped_storages(), stepped_storages()
    a = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_a, **fields))
    b = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_b, **fields))
    _sync(host_a, host_b)
    _calls(a, clock, "xxxx")
    _calls(b, clock, "oooooooooo")
    _sync(*((host_b, host_a) if order == "new-first" else (host_a, host_b)))
    # (Old first: A alone made the fleet's window 4 of 4 failing, under
    # minimum_calls; then B's newer successes pushed them out.)
    info = host_a.describe("pay")
    assert info is not None
    assert (info.state, info.window_calls, info.window_failures) == ("closed", 10, 0)


def test_a_count_window_opens_on_newer_failures_reported_before_older_successes(
    stepped_storages, clock
) -> None:
    # B's successes are older than A's failures: reported last, they fill
    # the window only behind A's outcomes, and do not dilute them.
    fields = {
        "failure_threshold": 100,
        "failure_rate_threshold": 0.3,
        "minimum_calls": 10,
        "window_size": 10,
    }
    host_a, host_b = stepped_storages(), stepped_storages()
    a = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_a, **fields))
    b = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_b, **fields))
    _sync(host_a, host_b)
    _calls(b, clock, "oooooooooo")
    _calls(a, clock, "oxxxx")
    _sync(host_a)  # 5 calls: under minimum_calls
    info = host_a.describe("pay")
    assert info is not None
    assert (info.state, info.window_calls) == ("closed", 5)
    _sync(host_b)  # the newest 10: 5 of B's, then A's 5 (4 failing)
    info = host_a.describe("pay")
    assert info is not None
    assert info.state == "open"


def test_the_quorum_counts_instances_failing_in_the_window(stepped_storages, clock) -> None:
    fields = {
        "failure_threshold": 100,
        "failure_rate_threshold": 0.5,
        "minimum_calls": 4,
        "window_size": 10,
    }
    host_a, host_b = stepped_storages(quorum=2), stepped_storages(quorum=2)
    a = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_a, **fields))
    b = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_b, **fields))
    _sync(host_a, host_b)
    _calls(a, clock, "xxxx")
    _calls(b, clock, "oo")
    _sync(host_a, host_b)  # 4 of 6 failing, all A's: one instance only
    info = host_a.describe("pay")
    assert info is not None
    assert (info.state, info.rate_votes) == ("closed", 1)
    _calls(b, clock, "x")
    _sync(host_b)  # 5 of 7, from two instances
    assert b.state is CircuitState.OPEN


# -- Redis's merge is the model's ---------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("window", WINDOWS.values(), ids=WINDOWS.keys())
def test_redis_merges_three_streams_as_one_window_seeing_them_all(
    stepped_storages, clock, seed, window
) -> None:
    # Random outcomes (slow ones too) of three instances, synced in a random
    # order, against one window fed every outcome in fleet-time order.
    rng = random.Random(seed)
    fields = {
        "failure_threshold": 1000,
        "failure_rate_threshold": 1.0,
        "minimum_calls": 20,
        "slow_call_duration": 1.0,
        **window,
    }
    hosts = [stepped_storages() for _ in range(3)]
    breakers = [CircuitBreaker("m", CircuitBreakerConfig(storage=h, **fields)) for h in hosts]
    _sync(*hosts)
    offsets = [h.clock_offset for h in hosts]
    made: list[tuple[float, bool, bool]] = []  # (fleet time, failed, slow)
    for _ in range(70):
        clock.advance(rng.choice((1.0, 2.0, 5.0)))
        who = rng.randrange(3)
        breaker = breakers[who]
        failed, slow = rng.random() < 0.4, rng.random() < 0.2

        def call(failed: bool = failed, slow: bool = slow) -> None:
            if slow:
                clock.advance(1.5)
            if failed:
                raise Boom

        breaker.metrics()
        if failed:
            with pytest.raises(Boom):
                breaker.call(call)
        else:
            breaker.call(call)
        made.append((clock.now() + offsets[who], failed, slow))  # type: ignore[operator]
        if rng.random() < 0.3:
            _sync(hosts[rng.randrange(3)])
    for p in rng.sample(range(3), 3):
        _sync(hosts[p])
    alone: CountWindow | TimeWindow = (
        CountWindow(20) if "window_size" in window else TimeWindow(60.0)
    )
    for at, failed, slow in sorted(made):
        alone.record(failed, slow, at)
    alone.expire(max(at for at, _, _ in made))
    info = hosts[0].describe("m")
    assert info is not None
    assert info.state == "closed"
    held = (info.window_calls, info.window_failures, info.window_slow)
    assert held == (alone.calls, alone.failures, alone.slow)
