"""The fleet merges outcomes in the order they happened, not in the order
instances sync.

Every sync here is made by the test: the stepped_storages' background threads are
not started, so each ordering of syncs is the one written down.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState
from resilient.redis import RedisStorage
from tests.conftest import Boom, fail, ok

pytestmark = pytest.mark.redis


def _sync(storage: RedisStorage) -> None:
    assert storage.sync()


def _orders() -> list[tuple[str, ...]]:
    """Every way to interleave the syncs with the race: B succeeds, then A
    fails twice; A syncs after its second failure and perhaps after its
    first; B syncs once, any time after its success."""
    found = []
    for mid in (False, True):
        steps = ["b_ok", "a_fail", *(["sync_a"] if mid else []), "a_fail", "sync_a"]
        for at in range(1, len(steps) + 1):
            found.append((*steps[:at], "sync_b", *steps[at:]))
    return found


ORDERS = _orders()


def _run(order: tuple[str, ...], a: CircuitBreaker, b: CircuitBreaker, step: Callable[[], None]):
    stores = {"sync_a": a, "sync_b": b}
    for action in order:
        if action == "b_ok":
            assert b.call(ok) == "ok"
        elif action == "a_fail":
            # (Rejected once the fleet opened: a view with A's earlier
            # failure and not yet B's success may open it sooner.)
            with pytest.raises((Boom, CircuitOpenError)):
                a.call(fail)
        else:
            storage = stores[action].config.storage
            assert isinstance(storage, RedisStorage)
            _sync(storage)
        step()


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_an_older_success_never_ends_a_newer_run_of_failures(stepped_storages, order) -> None:
    # Breakers made just before the calls, 30 times: opens 30 of 30.
    host_a, host_b = stepped_storages(), stepped_storages()
    opened = 0
    for attempt in range(30):
        name = f"pay-{attempt}"
        a = CircuitBreaker(name, CircuitBreakerConfig(storage=host_a, failure_threshold=2))
        b = CircuitBreaker(name, CircuitBreakerConfig(storage=host_b, failure_threshold=2))
        _run(order, a, b, lambda: None)
        _sync(host_b)
        info = host_a.describe(name)
        assert info is not None
        opened += info.state == "open"
        assert b.state is CircuitState.OPEN
    assert opened == 30


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_a_timed_older_success_never_ends_a_newer_run(stepped_storages, clock, order) -> None:
    # B has heard of a run of failures, so its success is timed exactly; A's
    # two failures come 0.5 s and 1 s after it, whatever the order of syncs.
    host_a, host_b = stepped_storages(), stepped_storages()
    a = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_a, failure_threshold=2))
    b = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_b, failure_threshold=2))
    _sync(host_a), _sync(host_b)
    with pytest.raises(Boom):
        a.call(fail)  # an earlier failure: B's success will end its run
    _sync(host_a), _sync(host_b)
    assert host_a.describe("pay").consecutive_failures == 1  # type: ignore[union-attr]
    _run(order, a, b, lambda: clock.advance(0.5))
    _sync(host_b), _sync(host_a)
    assert (a.state, b.state) == (CircuitState.OPEN, CircuitState.OPEN)


def test_a_newer_success_ends_the_run_and_a_later_failure_starts_one(
    stepped_storages, clock
) -> None:
    host_a, host_b = stepped_storages(), stepped_storages()
    a = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_a, failure_threshold=3))
    b = CircuitBreaker("pay", CircuitBreakerConfig(storage=host_b, failure_threshold=3))
    _sync(host_a), _sync(host_b)
    for _ in range(2):
        clock.advance(1.0)
        with pytest.raises(Boom):
            a.call(fail)
    _sync(host_a), _sync(host_b)  # B hears of the run: its successes are timed
    clock.advance(1.0)
    assert b.call(ok) == "ok"
    clock.advance(1.0)
    with pytest.raises(Boom):
        a.call(fail)  # after B's success: a run of one
    _sync(host_b)  # B's success, newer than A's first two failures, ends them
    _sync(host_a)  # A's third failure is newer than B's success
    info = host_a.describe("pay")
    assert info is not None
    assert info.consecutive_failures == 1
    assert info.state == "closed"


def test_a_failure_made_while_the_first_sync_is_on_its_way_goes_up_with_the_next(
    stepped_storages, monkeypatch
) -> None:
    # The first sync's reply made the instance mirror the fleet's period and
    # took every count made so far as sent: one made during the round trip
    # was lost (the fleet's run missed it; a quorum waited for ever).
    host = stepped_storages()
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=host, failure_threshold=3))
    execute = host.execute

    def failing_meanwhile(calls):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(host, "execute", execute)
        with pytest.raises(Boom):
            breaker.call(fail)  # after the snapshot, before the reply
        return execute(calls)

    monkeypatch.setattr(host, "execute", failing_meanwhile)
    _sync(host)
    _sync(host)
    info = host.describe("pay")
    assert info is not None
    assert (info.consecutive_failures, info.failures) == (1, 1)


# -- a model: the fleet sees what one process seeing every outcome sees -------


def _fleet_run(outcomes: list[tuple[float, bool]]) -> int:
    """Failures after the latest success, by time (True: a failure)."""
    last_ok = max((t for t, failed in outcomes if not failed), default=-1.0)
    return sum(1 for t, failed in outcomes if failed and t > last_ok)


@pytest.mark.parametrize("seed", range(6))
def test_merged_outcome_streams_match_one_process_seeing_them_all(
    stepped_storages, clock, seed
) -> None:
    rng = random.Random(seed)
    hosts = [stepped_storages() for _ in range(3)]
    config = {"failure_threshold": 1000, "window_size": 1000}
    breakers = [CircuitBreaker("m", CircuitBreakerConfig(storage=h, **config)) for h in hosts]
    alone = CircuitBreaker("m-alone", CircuitBreakerConfig(**config))
    for host in hosts:
        _sync(host)
    made: list[list[tuple[float, bool]]] = [[], [], []]  # per process, in time order
    reported = [0, 0, 0]  # how many of them the fleet has heard of
    for _ in range(60):
        clock.advance(10.0)
        who = rng.randrange(3)
        failed = rng.random() < 0.6
        now = clock.now()
        for breaker in (breakers[who], alone):
            if failed:
                with pytest.raises(Boom):
                    breaker.call(fail)
            else:
                # A flush now: a success counted without the lock is placed
                # at the flush before it, here its own time.
                breaker.metrics()
                assert breaker.call(ok) == "ok"
        made[who].append((now, failed))
        if rng.random() < 0.4:
            syncing = rng.randrange(3)
            _sync(hosts[syncing])
            reported[syncing] = len(made[syncing])
            heard = [o for p in range(3) for o in made[p][: reported[p]]]
            info = hosts[0].describe("m")
            assert info is not None
            assert info.consecutive_failures == _fleet_run(heard)
    last = [0, 1, 2]
    rng.shuffle(last)
    for p in last:
        _sync(hosts[p])
    info = hosts[0].describe("m")
    assert info is not None
    assert info.consecutive_failures == alone.metrics().consecutive_failures
    assert info.calls == sum(len(m) for m in made)
    assert info.failures == sum(1 for m in made for _, failed in m if failed)
