from __future__ import annotations

import asyncio
import math
import threading

import pytest

from resilient import (
    BulkheadFullError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Event,
    StateChanged,
    set_active,
)
from resilient.testing import FakeClock
from tests.conftest import Boom


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom("boom")


def fail(breaker: CircuitBreaker, times: int = 1, exc: type[Exception] = Boom) -> None:
    for _ in range(times):
        with pytest.raises(exc):
            breaker.call(_raiser(exc))


def _raiser(exc: type[Exception]):  # type: ignore[no-untyped-def]
    def raise_it() -> None:
        raise exc("x")

    return raise_it


def make(**fields: object) -> CircuitBreaker:
    return CircuitBreaker("svc", CircuitBreakerConfig(**fields))  # type: ignore[arg-type]


# -- configuration -------------------------------------------------------------


def test_presets_have_the_designed_numbers() -> None:
    presets = CircuitBreakerConfig
    assert (presets.DEFAULT.failure_threshold, presets.DEFAULT.recovery_timeout) == (5, 30.0)
    assert (presets.LENIENT.failure_threshold, presets.LENIENT.recovery_timeout) == (10, 60.0)
    assert (presets.STRICT.failure_threshold, presets.STRICT.recovery_timeout) == (3, 15.0)
    ai = presets.AI_SERVICE
    assert (ai.failure_threshold, ai.recovery_timeout) == (3, 60.0)


def test_defaults() -> None:
    cfg = CircuitBreakerConfig()
    assert cfg == CircuitBreakerConfig.DEFAULT
    assert cfg.minimum_calls == 10
    assert cfg.window_size == 100
    assert cfg.half_open_max_calls == 1
    assert cfg.success_threshold == 2
    assert cfg.record_on == (Exception,)
    assert cfg.ignore_on == ()


@pytest.mark.parametrize(
    ("field", "value", "error", "fragment"),
    [
        ("failure_threshold", 0, ValueError, "failure_threshold must be >= 1, got 0"),
        ("failure_threshold", 2.5, TypeError, "failure_threshold must be an int, got 2.5"),
        ("failure_threshold", True, TypeError, "failure_threshold must be an int, got True"),
        ("failure_rate_threshold", 0, ValueError, "failure_rate_threshold"),
        ("failure_rate_threshold", 1.5, ValueError, "got 1.5"),
        ("failure_rate_threshold", math.nan, ValueError, "got nan"),
        ("minimum_calls", 0, ValueError, "minimum_calls must be >= 1, got 0"),
        ("window_size", -1, ValueError, "window_size must be >= 1, got -1"),
        ("window_duration", 0, ValueError, "window_duration"),
        ("window_duration", math.inf, ValueError, "got inf"),
        ("slow_call_duration", -1.0, ValueError, "slow_call_duration"),
        ("recovery_timeout", -5, ValueError, "recovery_timeout"),
        ("recovery_timeout", "30", TypeError, "recovery_timeout must be a number, got '30'"),
        ("half_open_max_calls", 0, ValueError, "half_open_max_calls"),
        ("success_threshold", 0, ValueError, "success_threshold"),
        ("record_on", ValueError(), TypeError, "record_on must be an exception type"),
        ("ignore_on", (KeyError, int), TypeError, "ignore_on"),
        ("failure_predicate", 3, TypeError, "failure_predicate must be callable"),
        ("result_predicate", "x", TypeError, "result_predicate must be callable"),
        ("timeout", 0, ValueError, "timeout"),
        ("health_check", 1, TypeError, "health_check must be callable"),
        ("health_check_interval", 0, ValueError, "health_check_interval"),
    ],
)
def test_bad_values_name_the_field_and_value(
    field: str, value: object, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match="CircuitBreakerConfig") as info:
        CircuitBreakerConfig(**{field: value})  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert field in str(info.value)


def test_slow_rate_needs_a_slow_duration() -> None:
    with pytest.raises(ValueError, match=r"slow_call_rate_threshold=0\.5 needs slow_call_duration"):
        CircuitBreakerConfig(slow_call_rate_threshold=0.5)


def test_unreachable_minimum_calls_is_rejected() -> None:
    with pytest.raises(ValueError, match="minimum_calls=10 can never be reached"):
        CircuitBreakerConfig(failure_rate_threshold=0.5, window_size=5)


def test_single_exception_type_is_accepted() -> None:
    assert CircuitBreakerConfig(record_on=OSError).record_on == (OSError,)  # type: ignore[arg-type]


def test_breaker_rejects_bad_name_and_config() -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        CircuitBreaker("")
    with pytest.raises(TypeError, match="CircuitBreakerConfig"):
        CircuitBreaker("x", {"failure_threshold": 1})  # type: ignore[arg-type]


# -- opening on consecutive failures ------------------------------------------


def test_opens_after_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.name == "svc"
    assert info.value.state == "open"
    assert info.value.remaining == 30.0


def test_a_success_breaks_the_run(clock: FakeClock) -> None:
    breaker = make(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.call(ok) == "ok"
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().consecutive_failures == 2


def test_open_rejects_without_calling(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1)
    fail(breaker)
    calls = []
    with pytest.raises(CircuitOpenError):
        breaker.call(calls.append, 1)
    assert calls == []


def test_remaining_counts_down(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    fail(breaker)
    clock.advance(4.0)
    assert breaker.metrics().remaining == pytest.approx(6.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.remaining == pytest.approx(6.0)
    assert "6.000s" in str(info.value)


# -- recovery -----------------------------------------------------------------


def test_half_open_after_recovery_timeout_on_state_read(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    fail(breaker)
    clock.advance(9.99)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.01)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics().remaining == 0.0


def test_half_open_after_recovery_timeout_on_call(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    fail(breaker)
    clock.advance(10.0)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_success_threshold_closes_and_clears_the_window(clock: FakeClock) -> None:
    breaker = make(failure_threshold=2, recovery_timeout=1.0, success_threshold=3)
    breaker.call(ok)
    fail(breaker, 2)
    clock.advance(1.0)
    breaker.call(ok)
    breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (0, 0, 0)


def test_failed_probe_reopens_and_restarts_the_timer(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    fail(breaker)
    clock.advance(10.0)
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics().remaining == 10.0
    clock.advance(5.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)


def test_half_open_admits_at_most_the_probe_limit(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=2)
    fail(breaker)
    clock.advance(1.0)
    with breaker, breaker:
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ok)
        assert info.value.state == "half_open"
        assert info.value.remaining == 0.0
    # Both probes succeeded (success_threshold=2): closed again.
    assert breaker.state is CircuitState.CLOSED


def test_stale_probe_does_not_release_a_new_permit(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, success_threshold=1)
    fail(breaker)
    clock.advance(1.0)
    breaker.__enter__()  # a probe is in flight...
    breaker.reset()  # ...when an operator resets the breaker
    fail(breaker)  # and it opens again
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.__exit__(None, None, None)  # the old probe ends: it must not count
    assert breaker.state is CircuitState.HALF_OPEN
    with breaker:  # the single permit of the new half-open period is still free
        pass
    assert breaker.state is CircuitState.CLOSED


# -- rates --------------------------------------------------------------------


def test_failure_rate_trips_only_after_minimum_calls(clock: FakeClock) -> None:
    breaker = make(
        failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=4, window_size=10
    )
    fail(breaker)
    breaker.call(ok)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED  # 2/3 failed, below minimum_calls
    breaker.call(ok)  # 2/4 = 0.5 >= 0.5
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_over_count_window_forgets_old_calls(clock: FakeClock) -> None:
    breaker = make(
        failure_threshold=100, failure_rate_threshold=0.6, minimum_calls=5, window_size=5
    )
    fail(breaker, 2)
    for _ in range(5):
        breaker.call(ok)  # the two failures slide out
    fail(breaker, 2)
    assert breaker.metrics().failure_rate == pytest.approx(0.4)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_exact_threshold_uses_division(clock: FakeClock) -> None:
    # 0.7 * 10 is 7.000000000000001 in floating point; 7/10 must still trip.
    breaker = make(
        failure_threshold=100, failure_rate_threshold=0.7, minimum_calls=10, window_size=10
    )
    for _ in range(3):
        breaker.call(ok)
    fail(breaker, 7)
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_over_time_window(clock: FakeClock) -> None:
    breaker = make(
        failure_threshold=100,
        failure_rate_threshold=0.5,
        minimum_calls=3,
        window_duration=10.0,
    )
    fail(breaker, 2)
    clock.advance(11.0)  # those failures slide out of the window
    breaker.call(ok)
    fail(breaker)
    assert breaker.metrics().calls == 2
    assert breaker.state is CircuitState.CLOSED
    breaker.call(ok)
    fail(breaker)  # 2/4
    assert breaker.state is CircuitState.OPEN


def test_slow_call_rate_trips(clock: FakeClock) -> None:
    breaker = make(
        slow_call_duration=1.0, slow_call_rate_threshold=0.5, minimum_calls=2, window_size=10
    )

    def slow() -> str:
        clock.advance(1.5)
        return "slow"

    assert breaker.call(slow) == "slow"
    assert breaker.state is CircuitState.CLOSED
    breaker.call(ok)
    assert breaker.state is CircuitState.OPEN  # 1 slow of 2
    assert breaker.metrics().slow_calls == 1
    assert breaker.metrics().slow_rate == 0.5


def test_metrics_rates_cover_the_window_below_minimum_calls(clock: FakeClock) -> None:
    breaker = make(failure_threshold=10)
    breaker.call(ok)
    fail(breaker)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.failure_rate) == (2, 1, 0.5)
    assert metrics.slow_rate == 0.0
    assert make().metrics().failure_rate == 0.0


# -- what counts --------------------------------------------------------------


def test_ignore_on_is_reraised_uncounted_and_keeps_the_run(clock: FakeClock) -> None:
    breaker = make(failure_threshold=2, ignore_on=(KeyError,))
    fail(breaker)
    fail(breaker, exc=KeyError)
    assert breaker.metrics().consecutive_failures == 1
    assert breaker.metrics().calls == 1
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_exceptions_outside_record_on_count_as_success(clock: FakeClock) -> None:
    breaker = make(failure_threshold=2, record_on=(OSError,))
    fail(breaker, exc=ConnectionError)
    fail(breaker, exc=ValueError)
    assert breaker.metrics().consecutive_failures == 0
    assert breaker.metrics().calls == 2
    fail(breaker, 2, exc=ConnectionError)
    assert breaker.state is CircuitState.OPEN


def test_failure_predicate_filters_recorded_errors(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, failure_predicate=lambda e: "fatal" in str(e))
    with pytest.raises(Boom):
        breaker.call(_raise_msg, "minor")
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Boom):
        breaker.call(_raise_msg, "fatal")
    assert breaker.state is CircuitState.OPEN


def _raise_msg(message: str) -> None:
    raise Boom(message)


def test_result_predicate_returns_the_result_and_counts_a_failure(clock: FakeClock) -> None:
    breaker = make(failure_threshold=2, result_predicate=lambda r: r is None)
    assert breaker.call(lambda: None) is None
    assert breaker.metrics().failures == 1
    assert breaker.call(lambda: None) is None
    assert breaker.state is CircuitState.OPEN


def test_bulkhead_rejection_is_not_a_failure_by_default(clock: FakeClock) -> None:
    def full() -> None:
        raise BulkheadFullError("svc", 1, 0)

    breaker = make(failure_threshold=1)
    with pytest.raises(BulkheadFullError):
        breaker.call(full)
    assert breaker.state is CircuitState.CLOSED
    counting = make(failure_threshold=1, record_on=(BulkheadFullError,))
    with pytest.raises(BulkheadFullError):
        counting.call(full)
    assert counting.state is CircuitState.OPEN


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_are_never_counted(clock: FakeClock, exc: type[BaseException]) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0)

    def interrupt() -> None:
        raise exc()

    with pytest.raises(exc):
        breaker.call(interrupt)
    assert breaker.metrics().calls == 0
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    clock.advance(1.0)
    with pytest.raises(exc):
        breaker.call(interrupt)  # a probe interrupted gives its permit back
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(ok) == "ok"


# -- forcing and resetting ------------------------------------------------------


def test_forced_open_rejects_with_infinite_remaining(clock: FakeClock) -> None:
    breaker = make()
    breaker.force_open()
    assert breaker.state is CircuitState.FORCED_OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.remaining == math.inf
    assert info.value.state == "forced_open"
    assert "until released" in str(info.value)
    clock.advance(1e6)
    assert breaker.state is CircuitState.FORCED_OPEN


def test_forced_closed_admits_records_and_never_transitions(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1)
    breaker.force_closed()
    fail(breaker, 5)
    assert breaker.state is CircuitState.FORCED_CLOSED
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (5, 5, 5)


def test_release_and_reset_leave_closed_with_a_cleared_window(clock: FakeClock) -> None:
    breaker = make(failure_threshold=3)
    breaker.force_closed()
    fail(breaker, 4)
    breaker.release()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().calls == 0
    fail(breaker, 2)
    breaker.release()  # not forced: nothing happens
    assert breaker.metrics().failures == 2
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics() == breaker.metrics()._replace(
        calls=0, failures=0, consecutive_failures=0
    )


# -- events -------------------------------------------------------------------


def test_every_transition_emits_exactly_one_event(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, success_threshold=1)
    seen: list[Event] = []
    unsubscribe = breaker.subscribe(seen.append)
    fail(breaker)
    clock.advance(1.0)
    breaker.call(ok)
    breaker.force_open()
    breaker.release()
    breaker.force_closed()
    breaker.reset()
    unsubscribe()
    fail(breaker)
    changes = [(e.old_state, e.new_state) for e in seen if isinstance(e, StateChanged)]
    assert changes == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("closed", "forced_open"),
        ("forced_open", "closed"),
        ("closed", "forced_closed"),
        ("forced_closed", "closed"),
    ]
    assert all(e.name == "svc" and e.policy == "circuit_breaker" for e in seen)


def test_state_changes_are_logged_at_warning(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make(failure_threshold=1)
    with caplog.at_level("INFO", logger="resilient"):
        breaker.call(ok)
        assert caplog.records == []  # nothing on the success path
        fail(breaker)
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.new_state == "open"  # type: ignore[attr-defined]


# -- ways of calling ------------------------------------------------------------


def test_context_manager_records_outcomes(clock: FakeClock) -> None:
    breaker = make(failure_threshold=2)
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            raise Boom()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pass


async def test_async_context_manager_and_call_async(clock: FakeClock) -> None:
    breaker = make(failure_threshold=2)

    async def aok(x: int) -> int:
        return x * 2

    assert await breaker.call_async(aok, 21) == 42
    async with breaker:
        pass
    with pytest.raises(Boom):
        async with breaker:
            raise Boom()
    with pytest.raises(Boom):
        await breaker.call_async(_araise)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(aok, 1)


async def _araise() -> None:
    raise Boom()


def test_breaker_is_a_decorator(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1)

    @breaker
    def double(x: int) -> int:
        return x * 2

    assert double(2) == 4
    assert double.__name__ == "double"


def test_inactive_is_a_pass_through(clock: FakeClock) -> None:
    breaker = make()
    breaker.force_open()
    set_active(False)
    assert breaker.call(ok) == "ok"
    with breaker:
        pass
    set_active(True)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)


# -- cancellation ---------------------------------------------------------------


async def test_cancelled_call_is_neither_success_nor_failure(clock: FakeClock) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, success_threshold=1)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call_async(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.metrics().calls == 0

    fail(breaker)
    clock.advance(1.0)
    started.clear()
    probe = asyncio.create_task(breaker.call_async(hang))
    await started.wait()
    with pytest.raises(CircuitOpenError):  # the single permit is taken
        await breaker.call_async(_araise)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is CircuitState.HALF_OPEN  # a cancelled probe does not close
    async with breaker:  # and its permit came back
        pass
    assert breaker.state is CircuitState.CLOSED


# -- concurrency ------------------------------------------------------------------


def test_threads_hammering_one_breaker_count_exactly() -> None:
    breaker = make(failure_threshold=10**9, window_size=10**6)
    threads, per_thread = 8, 5000
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            if (i + index) % 4 == 0:
                with pytest.raises(Boom):
                    breaker.call(boom)
            else:
                breaker.call(ok)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    metrics = breaker.metrics()
    assert metrics.calls == threads * per_thread
    assert metrics.failures == threads * per_thread // 4


def test_half_open_admits_exactly_the_limit_across_threads(clock: FakeClock) -> None:
    limit, threads = 3, 12
    breaker = make(failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=limit)
    fail(breaker)
    clock.advance(1.0)
    arrived = threading.Barrier(threads + 1)
    release = threading.Event()
    admitted: list[int] = []
    rejected: list[int] = []
    lock = threading.Lock()

    def probe(n: int) -> None:
        try:
            with breaker:
                with lock:
                    admitted.append(n)
                arrived.wait()
                release.wait()
        except CircuitOpenError:
            with lock:
                rejected.append(n)
            arrived.wait()

    pool = [threading.Thread(target=probe, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    arrived.wait()  # every thread either holds a permit or was rejected
    assert len(admitted) == limit
    assert len(rejected) == threads - limit
    release.set()
    for t in pool:
        t.join()
    assert breaker.state is CircuitState.CLOSED


async def test_many_tasks_count_exactly() -> None:
    breaker = make(failure_threshold=10**9, window_size=10**5)

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        if i % 5 == 0:
            raise Boom()
        return i

    results = await asyncio.gather(
        *(breaker.call_async(work, i) for i in range(5000)), return_exceptions=True
    )
    assert sum(isinstance(r, Boom) for r in results) == 1000
    assert breaker.metrics().calls == 5000
    assert breaker.metrics().failures == 1000


# -- time from outside ------------------------------------------------------------


def test_freezegun_moves_the_breaker_to_half_open() -> None:
    freezegun = pytest.importorskip("freezegun")
    with freezegun.freeze_time("2026-01-01 00:00:00") as frozen:
        breaker = make(failure_threshold=1, recovery_timeout=30.0)
        fail(breaker)
        frozen.tick(29)
        assert breaker.state is CircuitState.OPEN
        frozen.tick(1)
        assert breaker.state is CircuitState.HALF_OPEN


# -- decorated calls: the closures of _wrap_sync / _wrap_async --------------------
#
# A decorated plain function runs through the breaker's own closure, which
# has its own lock-free success and rejection paths; these tests drive both
# a sync and an async decorated function through every state.


def _decorated(breaker: CircuitBreaker, is_async: bool, calls: list[str]):  # type: ignore[no-untyped-def]
    """A decorated function that records its calls; ``run(outcome)`` calls it
    (awaiting when async) with "ok" or "boom" and returns the result."""
    if is_async:

        @breaker
        async def afn(outcome: str) -> str:
            calls.append(outcome)
            if outcome == "boom":
                raise Boom(outcome)
            return outcome

        async def arun(outcome: str = "ok") -> str:
            return await afn(outcome)

        return lambda outcome="ok": asyncio.run(arun(outcome))

    @breaker
    def fn(outcome: str) -> str:
        calls.append(outcome)
        if outcome == "boom":
            raise Boom(outcome)
        return outcome

    return fn


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_decorated_calls_are_counted_and_trip(clock: FakeClock, is_async: bool) -> None:
    breaker = make(failure_threshold=2)
    calls: list[str] = []
    run = _decorated(breaker, is_async, calls)
    assert run("ok") == "ok"
    assert run("ok") == "ok"
    assert breaker.metrics().calls == 2
    for _ in range(2):
        with pytest.raises(Boom):
            run("boom")
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics().failures == 2


def test_decorated_open_rejects_without_calling(clock: FakeClock, is_async: bool) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    calls: list[str] = []
    run = _decorated(breaker, is_async, calls)
    with pytest.raises(Boom):
        run("boom")
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as info:
        run("ok")
    assert calls == ["boom"]
    error = info.value
    assert (error.name, error.state, error.remaining) == ("svc", "open", pytest.approx(6.0))
    assert str(error) == "circuit 'svc' is open; next probe allowed in 6.000s"


def test_decorated_forced_open_rejects_with_infinite_remaining(
    clock: FakeClock, is_async: bool
) -> None:
    breaker = make()
    calls: list[str] = []
    run = _decorated(breaker, is_async, calls)
    breaker.force_open()
    with pytest.raises(CircuitOpenError) as info:
        run("ok")
    assert (info.value.state, info.value.remaining) == ("forced_open", math.inf)
    assert calls == []


def test_decorated_call_probes_once_the_timer_ran_out(clock: FakeClock, is_async: bool) -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    calls: list[str] = []
    run = _decorated(breaker, is_async, calls)
    with pytest.raises(Boom):
        run("boom")
    clock.advance(10.0)
    assert run("ok") == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_decorated_rejection_is_an_event_when_listened_to(clock: FakeClock, is_async: bool) -> None:
    from resilient import CallRejected

    breaker = make(failure_threshold=1)
    calls: list[str] = []
    run = _decorated(breaker, is_async, calls)
    with pytest.raises(Boom):
        run("boom")
    seen: list[Event] = []
    unsubscribe = breaker.subscribe(seen.append)
    try:
        with pytest.raises(CircuitOpenError):
            run("ok")
    finally:
        unsubscribe()
    rejected = [e for e in seen if isinstance(e, CallRejected)]
    assert sorted((e.level, e.name, e.state) for e in rejected) == [
        ("policy", "svc", "open"),
        ("request", "svc", "open"),
    ]


def test_decorated_open_breaker_is_a_pass_through_when_inactive(
    clock: FakeClock, is_async: bool
) -> None:
    breaker = make(failure_threshold=1)
    calls: list[str] = []
    run = _decorated(breaker, is_async, calls)
    with pytest.raises(Boom):
        run("boom")
    set_active(False)
    assert run("ok") == "ok"
    set_active(True)
    with pytest.raises(CircuitOpenError):
        run("ok")


def test_rejection_without_the_lock_matches_the_locked_one(clock: FakeClock) -> None:
    """``call`` rejects an open breaker without taking the lock; a listener
    makes it take the locked path. Both errors say the same."""
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    fail(breaker)
    with pytest.raises(CircuitOpenError) as quick:
        breaker.call(ok)
    unsubscribe = breaker.subscribe(lambda event: None)
    try:
        with pytest.raises(CircuitOpenError) as locked:
            breaker.call(ok)
    finally:
        unsubscribe()
    assert quick.value.args[:3] == locked.value.args[:3] == ("svc", "open", 10.0)
    # Nobody listened to the first: no request id was made for it.
    assert quick.value.request_id is None
    assert isinstance(locked.value.request_id, str)


def test_reject_until_follows_the_open_timer(clock: FakeClock) -> None:
    """What the decorator's closure reads to reject without the lock: the end
    of an OPEN period, and 0.0 whenever a call must go the locked way."""
    breaker = make(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    core = breaker._core
    assert core.reject_until == 0.0
    fail(breaker)
    assert core.reject_until == 1010.0
    clock.advance(10.0)
    assert breaker.state is CircuitState.HALF_OPEN
    assert core.reject_until == 0.0
    breaker.force_open()  # forced: rejected by the locked path's lock-free check
    assert core.reject_until == 0.0
    breaker.release()
    fail(breaker)
    core.adopt(CircuitState.OPEN, 3.0, clock.now())  # a shared store's verdict
    assert core.reject_until == clock.now() + 3.0
    checked = make(failure_threshold=1, health_check=lambda: False)
    fail(checked)
    assert checked.state is CircuitState.OPEN
    assert checked._core.reject_until == 0.0  # the health check must be asked


# -- listeners run outside the lock, and see transitions in order ----------------


def _in_thread(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_listener_may_read_the_breaker_it_listens_to(clock: FakeClock) -> None:
    # A CallRejected listener reading breaker.state used to deadlock: the
    # event was emitted under the breaker's own lock.
    breaker = CircuitBreaker("reader", CircuitBreakerConfig(failure_threshold=1))
    states: list[tuple[str, CircuitState]] = []
    breaker.subscribe(
        lambda event: (
            states.append((type(event).__name__, breaker.state))
            if getattr(event, "level", "policy") == "policy"
            else None
        )
    )

    def run() -> None:
        with pytest.raises(Boom):
            breaker.call(boom)
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)

    thread = _in_thread(run)
    thread.join(timeout=10)
    assert not thread.is_alive(), "deadlocked"
    assert [name for name, _ in states] == ["StateChanged", "CallFailed", "CallRejected"]
    assert {state for _, state in states} == {"open"}


def test_a_transition_caused_by_a_listener_is_announced_after_it(clock: FakeClock) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0)
    breaker = CircuitBreaker("reentrant", cfg)
    seen: list[tuple[str, str]] = []

    def listener(event: Event) -> None:
        if isinstance(event, StateChanged):
            seen.append((event.old_state, event.new_state))
            if event.new_state == "open":
                clock.advance(1.0)
                assert breaker.state == "half_open"  # a transition, from inside a listener

    breaker.subscribe(listener)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert seen == [("closed", "open"), ("open", "half_open")]


def test_state_changes_reach_listeners_in_order_across_threads(clock: FakeClock) -> None:
    # Thread A is still delivering closed->open when thread B moves the
    # breaker on: B leaves its change to A, which delivers it next.
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0)
    breaker = CircuitBreaker("ordered", cfg)
    seen: list[tuple[str, str, str]] = []
    delivering = threading.Event()
    go_on = threading.Event()

    def listener(event: Event) -> None:
        if isinstance(event, StateChanged):
            seen.append((event.old_state, event.new_state, threading.current_thread().name))
            if event.new_state == "open":
                delivering.set()
                go_on.wait()

    breaker.subscribe(listener)

    def trip() -> None:
        with pytest.raises(Boom):
            breaker.call(boom)

    a = threading.Thread(target=trip, name="A", daemon=True)
    a.start()
    assert delivering.wait(timeout=10)
    clock.advance(1.0)
    assert breaker.state == "half_open"  # B (this thread) moves it on
    assert seen == [("closed", "open", "A")]  # not yet delivered, and not out of order
    go_on.set()
    a.join(timeout=10)
    assert seen == [("closed", "open", "A"), ("open", "half_open", "A")]
