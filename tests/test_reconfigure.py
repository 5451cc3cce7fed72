"""Settings changed in place: breakers, bulkheads and rate limiters keep
their state, counts and callers in flight."""

from __future__ import annotations

import contextlib
import threading

import pytest

from resilient import (
    Bulkhead,
    BulkheadConfig,
    BulkheadFullError,
    CircuitBreakerConfig,
    CircuitState,
    Event,
    RateLimitConfig,
    RateLimitExceededError,
    Reconfigured,
    Registry,
    with_bulkhead,
    with_circuit_breaker,
    with_rate_limit,
)
from resilient.metrics import MetricsCollector
from resilient.testing import FakeClock


def boom() -> None:
    raise OSError("down")


def test_a_lower_threshold_keeps_the_failures_counted(clock: FakeClock) -> None:
    reg = Registry()
    breaker = reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=5))
    for _ in range(2):
        with contextlib.suppress(OSError):
            breaker.call(boom)
    reg.reconfigure("db", failure_threshold=3)
    assert breaker.config.failure_threshold == 3
    assert breaker.metrics().consecutive_failures == 2
    assert breaker.state is CircuitState.CLOSED
    with contextlib.suppress(OSError):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN


def test_an_open_breaker_stays_open_with_its_timer(clock: FakeClock) -> None:
    reg = Registry()
    breaker = reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=1))
    with contextlib.suppress(OSError):
        breaker.call(boom)
    clock.advance(10.0)
    breaker.reconfigure(CircuitBreakerConfig(failure_threshold=4, recovery_timeout=60.0))
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics().remaining == pytest.approx(50.0)
    clock.advance(50.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_shrinking_window_keeps_its_newest_outcomes(clock: FakeClock) -> None:
    reg = Registry()
    config = CircuitBreakerConfig(
        failure_threshold=100, failure_rate_threshold=0.9, minimum_calls=10, window_size=10
    )
    breaker = reg.get_or_create("db", config)
    # oldest first: F S S S F F
    with contextlib.suppress(OSError):
        breaker.call(boom)
    for _ in range(3):
        breaker.call(lambda: None)
    for _ in range(2):
        with contextlib.suppress(OSError):
            breaker.call(boom)
    reg.reconfigure("db", window_size=3, minimum_calls=3)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (3, 2)
    reg.reconfigure("db", window_size=20, minimum_calls=10)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (3, 2)


def test_a_shrinking_time_window_keeps_its_newest_seconds(clock: FakeClock) -> None:
    reg = Registry()
    breaker = reg.get_or_create(
        "db", CircuitBreakerConfig(failure_threshold=100, window_duration=10.0)
    )
    for _ in range(4):
        with contextlib.suppress(OSError):
            breaker.call(boom)
        clock.advance(1.0)
    breaker.call(lambda: None)  # now: second 1004
    reg.reconfigure("db", window_duration=2.0)  # seconds 1003 and 1004
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (2, 1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": "x"}, "failure_threshold"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
        ({"failure_threshold": 2, "no_such_thing": 1}, "no_such_thing"),
    ],
)
def test_a_bad_value_changes_nothing_and_names_the_field(
    clock: FakeClock, fields: dict[str, object], field: str
) -> None:
    reg = Registry()
    config = CircuitBreakerConfig(failure_threshold=5)
    breaker = reg.get_or_create("db", config)
    seen: list[Event] = []
    reg.subscribe(seen.append)
    with pytest.raises(ValueError, match=field):
        reg.reconfigure("db", **fields)
    assert breaker.config is config
    assert not [e for e in seen if isinstance(e, Reconfigured)]


def test_a_bad_value_for_one_policy_changes_none_of_a_name(clock: FakeClock) -> None:
    reg = Registry()
    breaker = reg.get_or_create("api", CircuitBreakerConfig(failure_threshold=5))
    bulkhead = reg.bulkhead("api", max_concurrent=4)
    with pytest.raises(ValueError, match="max_concurrent"):
        reg.reconfigure("api", failure_threshold=2, max_concurrent=0)
    assert breaker.config.failure_threshold == 5
    assert bulkhead.config.max_concurrent == 4
    reg.reconfigure("api", failure_threshold=2, max_concurrent=2)
    assert (breaker.config.failure_threshold, bulkhead.config.max_concurrent) == (2, 2)


def test_an_unknown_name_and_an_ambiguous_field() -> None:
    reg = Registry()
    with pytest.raises(KeyError, match="nope"):
        reg.reconfigure("nope", failure_threshold=2)
    reg.get_or_create("api")
    reg.rate_limiter("api", rate=5)
    with pytest.raises(ValueError, match="'storage' is a setting of both"):
        reg.reconfigure("api", storage=None)
    with pytest.raises(ValueError, match="'max_concurrent' is not a setting"):
        reg.reconfigure("api", max_concurrent=3)


def test_each_change_emits_reconfigured(clock: FakeClock) -> None:
    reg = Registry()
    reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=5))
    seen: list[Event] = []
    reg.subscribe(seen.append)
    reg.reconfigure("db", failure_threshold=3)
    reg.reconfigure("db", failure_threshold=3)  # nothing changes: no event
    changes = [e for e in seen if isinstance(e, Reconfigured)]
    assert len(changes) == 1
    assert changes[0].name == "db"
    assert changes[0].policy == "circuit_breaker"
    assert changes[0].changes == {"failure_threshold": (5, 3)}


def test_a_call_site_asking_later_gets_the_operators_settings() -> None:
    reg = Registry()
    reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=5))
    reg.reconfigure("db", failure_threshold=9)

    @with_circuit_breaker("db", config=CircuitBreakerConfig(failure_threshold=5), registry=reg)
    def call() -> int:
        return 1

    assert call() == 1
    breaker = reg.get("db")
    assert breaker is not None
    assert breaker.config.failure_threshold == 9


def test_a_shrinking_bulkhead_takes_no_permit_from_running_calls() -> None:
    bulkhead = Bulkhead("pool", BulkheadConfig(3))
    with contextlib.ExitStack() as running:
        for _ in range(3):
            running.enter_context(bulkhead)
        bulkhead.reconfigure(BulkheadConfig(1))
        assert bulkhead.metrics().active == 3
        with pytest.raises(BulkheadFullError):
            bulkhead.call(lambda: None)
    assert bulkhead.metrics().active == 0
    assert bulkhead.call(lambda: 7) == 7


def test_a_shrinking_bulkhead_admits_no_one_until_under_the_new_bound() -> None:
    bulkhead = Bulkhead("pool", BulkheadConfig(3))
    blocks = [contextlib.ExitStack() for _ in range(3)]
    for block in blocks:
        block.enter_context(bulkhead)
    bulkhead.reconfigure(BulkheadConfig(2))
    with pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: None)
    blocks.pop().close()  # 2 running: at the new bound
    with pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: None)
    blocks.pop().close()  # 1 running
    assert bulkhead.call(lambda: 1) == 1
    assert bulkhead.metrics().active == 1
    blocks.pop().close()
    assert bulkhead.metrics().active == 0
    bulkhead.reconfigure(BulkheadConfig(3))
    for _ in range(3):
        blocks.append(contextlib.ExitStack())
        blocks[-1].enter_context(bulkhead)
    assert bulkhead.metrics().active == 3
    for block in blocks:
        block.close()


def test_a_growing_bulkhead_admits_its_waiters() -> None:
    bulkhead = Bulkhead("pool", BulkheadConfig(1, max_queue=1))
    entered = threading.Event()
    done = threading.Event()
    with bulkhead:

        def waiter() -> None:
            bulkhead.call(entered.set)
            done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        while bulkhead.metrics().queued == 0:
            thread.join(0.001)
        bulkhead.reconfigure(BulkheadConfig(2, max_queue=1))
        assert done.wait(10)
    thread.join()
    assert entered.is_set()


def test_a_rate_limiter_keeps_the_turns_taken(clock: FakeClock) -> None:
    reg = Registry()
    limiter = reg.rate_limiter("api", rate=2, burst=2)
    limiter.call(lambda: None)
    limiter.call(lambda: None)
    with pytest.raises(RateLimitExceededError):
        limiter.call(lambda: None)
    reg.reconfigure("api", rate=4, burst=4)
    assert limiter.metrics().available == 2
    limiter.call(lambda: None)
    limiter.call(lambda: None)
    with pytest.raises(RateLimitExceededError):
        limiter.call(lambda: None)
    with pytest.raises(ValueError, match="rate"):
        reg.reconfigure("api", rate=0)
    assert limiter.config == RateLimitConfig(4, burst=4)


def test_a_decorated_rate_limit_follows_its_new_rate(clock: FakeClock) -> None:
    reg = Registry()

    @with_rate_limit("api", rate=1, burst=1, registry=reg)
    def call() -> int:
        return 1

    assert call() == 1
    with pytest.raises(RateLimitExceededError):
        call()
    clock.advance(0.5)
    reg.reconfigure("api", rate=100, burst=1)
    # the turn taken was owed 0.5 s more at 1/s: 0.005 s at 100/s
    with pytest.raises(RateLimitExceededError) as refused:
        call()
    assert refused.value.retry_after == pytest.approx(0.005)
    clock.advance(0.005)
    assert call() == 1


def test_per_key_breakers_are_reconfigured_together(clock: FakeClock) -> None:
    reg = Registry()
    layer = with_circuit_breaker("hosts", key=lambda host: host, registry=reg, failure_threshold=5)

    @layer
    def fetch(host: str) -> str:
        return host

    fetch("a")
    fetch("b")
    keyed = reg.get("hosts", key="a")
    assert keyed is not None
    reg.reconfigure("hosts", key="a", failure_threshold=2)
    assert keyed.config.failure_threshold == 2
    with pytest.raises(KeyError, match="per-key breaker 'hosts'\\['zz'\\]"):
        reg.reconfigure("hosts", key="zz", failure_threshold=2)
    other = reg.get("hosts", key="b")
    assert other is not None
    assert other.config.failure_threshold == 5


@pytest.mark.slow
def test_reconfiguring_under_eight_threads_loses_and_doubles_no_call() -> None:
    reg = Registry()
    collector = MetricsCollector()
    unsubscribe = reg.subscribe(collector)
    calls_per_thread = 3000
    threads = 8
    window = 10 * threads * calls_per_thread  # never shrinks below the calls made

    @with_circuit_breaker("svc", registry=reg, failure_threshold=10**6, window_size=window)
    @with_bulkhead("svc", max_concurrent=8, max_queue=100, registry=reg)
    @with_rate_limit("svc", rate=10**6, burst=10**6, registry=reg)
    def call(i: int) -> int:
        if i % 7 == 0:
            raise OSError(i)
        return i

    start = threading.Barrier(threads + 2)
    stop = threading.Event()
    done = [0, 0]  # calls made when the operator started, changes made

    def work() -> None:
        start.wait()
        for i in range(calls_per_thread):
            with contextlib.suppress(OSError):
                call(i)
            if i == calls_per_thread // 2:
                halfway.wait()

    def operate() -> None:
        start.wait()
        n = 0
        while not stop.is_set() or n < 20:
            n += 1
            done[1] = n
            if n == 20:
                halfway.wait()  # the workers go on only once 20 changes were made
            reg.reconfigure(
                "svc",
                failure_threshold=10**6 - n % 3,
                slow_call_duration=None if n % 2 else 60.0,
                window_size=window + n,
                max_concurrent=8 - n % 5,
                rate=10**6 - n % 2,
            )

    halfway = threading.Barrier(threads + 1)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    operator = threading.Thread(target=operate)
    operator.start()
    start.wait()
    for worker in workers:
        worker.join()
    stop.set()
    operator.join()
    assert done[1] >= 20  # reconfigured while the calls ran
    try:
        total = threads * calls_per_thread
        failures = threads * len(range(0, calls_per_thread, 7))
        breaker = reg.get("svc")
        assert breaker is not None
        metrics = breaker.metrics()
        assert (metrics.calls, metrics.failures) == (total, failures)
        bulkhead = reg.get_bulkhead("svc")
        assert bulkhead is not None
        assert bulkhead.metrics().completed == total
        assert bulkhead.metrics().active == 0
        limiter = reg.get_rate_limiter("svc")
        assert limiter is not None
        assert limiter.metrics().admitted == total
        stats = collector.statistics.by_name["svc"]
        assert (stats.total_requests, stats.failures) == (total, failures)
    finally:
        unsubscribe()


def test_a_per_key_group_reconfigures_every_key_and_the_keys_to_come(clock: FakeClock) -> None:
    from resilient.circuit_breaker.keyed import KeyedBreakers

    reg = Registry()
    group = KeyedBreakers(
        "tenants",
        lambda tenant: tenant,
        config=CircuitBreakerConfig(failure_threshold=5),
        max_keys=8,
        registry=reg,
    )
    first = group.breaker("acme")
    with contextlib.suppress(OSError):
        first.call(boom)
    group.breaker("globex")
    group.reconfigure(CircuitBreakerConfig(failure_threshold=2))
    assert [group.breaker(k).config.failure_threshold for k in ("acme", "globex")] == [2, 2]
    assert first.metrics().consecutive_failures == 1  # kept
    assert group.breaker("initech").config.failure_threshold == 2  # a key to come
    with pytest.raises(TypeError):
        group.reconfigure("strict")  # type: ignore[arg-type]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_shrunk_decorated_bulkhead_keeps_its_new_bound(flavour: str) -> None:
    """The decorated fast paths give a permit back to the new bound, not the old."""
    import asyncio

    reg = Registry()
    gates = [threading.Event() for _ in range(5)]
    gates[4].set()  # the probe: returns at once if (wrongly) admitted
    entered = threading.Semaphore(0)

    if flavour == "sync":

        @with_bulkhead("pool", max_concurrent=3, registry=reg)
        def hold(i: int) -> int:
            entered.release()
            gates[i].wait()
            return i

        def run(i: int) -> int:
            return hold(i)

    else:

        @with_bulkhead("pool", max_concurrent=3, registry=reg)
        async def ahold(i: int) -> int:
            entered.release()
            await asyncio.to_thread(gates[i].wait)
            return i

        def run(i: int) -> int:
            return asyncio.run(ahold(i))

    bulkhead = reg.get_bulkhead("pool")
    assert bulkhead is not None
    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        assert entered.acquire(timeout=10)
    reg.reconfigure("pool", max_concurrent=1)
    for i, thread in enumerate(threads):
        with pytest.raises(BulkheadFullError):
            run(4)  # 3 - i running: none is under the new bound of 1
        assert entered.acquire(blocking=False) is False
        gates[i].set()
        thread.join()
    assert bulkhead.metrics().active == 0
    holder = threading.Thread(target=run, args=(3,))
    holder.start()
    assert entered.acquire(timeout=10)
    with pytest.raises(BulkheadFullError):
        run(4)  # one running: the bound is 1, whatever the old one was
    gates[3].set()
    holder.join()
    assert bulkhead.metrics().active == 0
