from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import resilient
from resilient import (
    Chaos,
    ChaosError,
    ChaosInjected,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    ResilienceError,
    events,
    with_chaos,
    with_retry,
)
from resilient.testing import FakeClock, fake_clock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


@pytest.fixture
def seen() -> Iterator[list[events.Event]]:
    got: list[events.Event] = []
    unsubscribe = resilient.subscribe(got.append)
    yield got
    unsubscribe()


def _fates(chaos: Chaos, n: int) -> list[str]:
    """What happened to each of ``n`` calls: ok or fault."""
    out = []
    for _ in range(n):
        try:
            chaos.call(lambda: None)
        except ChaosError:
            out.append("fault")
        else:
            out.append("ok")
    return out


# -- faults ------------------------------------------------------------------------


def test_every_call_fails_at_rate_one_and_the_function_never_runs() -> None:
    ran = []

    @with_chaos(fault_rate=1.0)
    def work() -> str:
        ran.append(1)
        return "done"

    for _ in range(3):
        with pytest.raises(ChaosError) as info:
            work()
        assert "resilient: injected by with_chaos" in info.value.__notes__
    assert ran == []


def test_no_call_fails_at_rate_zero() -> None:
    assert _fates(Chaos(fault_rate=0.0), 200) == ["ok"] * 200


def test_chaos_error_looks_like_a_dependency_failure() -> None:
    error = ChaosError()
    assert isinstance(error, ConnectionError)
    assert isinstance(error, ResilienceError)
    assert "injected" in str(error)


def test_a_seed_gives_the_same_fates_on_every_run() -> None:
    first = _fates(Chaos(fault_rate=0.3, seed=42), 300)
    again = _fates(Chaos(fault_rate=0.3, seed=42), 300)
    other = _fates(Chaos(fault_rate=0.3, seed=43), 300)
    assert first == again
    assert first != other
    assert 60 <= first.count("fault") <= 120  # about 30 %


def test_seeded_fates_do_not_depend_on_sync_or_async() -> None:
    async def run_async() -> list[str]:
        chaos = Chaos(fault_rate=0.5, seed=7)
        out = []

        async def ok() -> None:
            return None

        for _ in range(50):
            try:
                await chaos.call_async(ok)
            except ChaosError:
                out.append("fault")
            else:
                out.append("ok")
        return out

    assert asyncio.run(run_async()) == _fates(Chaos(fault_rate=0.5, seed=7), 50)


class Flaky(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def test_exception_type_instance_or_factory() -> None:
    with pytest.raises(TimeoutError):
        Chaos(fault_rate=1, exception=TimeoutError).call(lambda: None)

    template = Flaky(503)
    chaos = Chaos(fault_rate=1, exception=template)
    raised = []
    for _ in range(2):
        with pytest.raises(Flaky) as info:
            chaos.call(lambda: None)
        raised.append(info.value)
    # A fresh copy each time: tracebacks and notes do not pile up.
    assert raised[0] is not raised[1]
    assert raised[0] is not template
    assert [e.code for e in raised] == [503, 503]
    assert raised[1].__notes__ == ["resilient: injected by with_chaos"]
    assert not hasattr(template, "__notes__")

    codes = iter([500, 502])
    chaos = Chaos(fault_rate=1, exception=lambda: Flaky(next(codes)))
    for code in (500, 502):
        with pytest.raises(Flaky) as info:
            chaos.call(lambda: None)
        assert info.value.code == code


def test_a_factory_that_returns_no_exception_is_an_error() -> None:
    chaos = Chaos(fault_rate=1, exception=lambda: "oops")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="must return an exception"):
        chaos.call(lambda: None)


def test_base_exceptions_can_be_injected_and_propagate() -> None:
    with pytest.raises(KeyboardInterrupt):
        Chaos(fault_rate=1, exception=KeyboardInterrupt).call(lambda: None)


def test_a_result_replaces_the_call() -> None:
    ran = []

    @with_chaos(fault_rate=1.0, result={"status": "degraded"})
    def work() -> dict[str, str]:
        ran.append(1)
        return {"status": "ok"}

    assert work() == {"status": "degraded"}
    assert ran == []


def test_result_and_exception_together_are_an_error() -> None:
    with pytest.raises(TypeError, match="either a result or an exception"):
        Chaos(fault_rate=1, result=None, exception=ValueError)


# -- latency -----------------------------------------------------------------------


def test_latency_advances_the_fake_clock_instead_of_sleeping(clock: FakeClock) -> None:
    @with_chaos(latency=0.5)
    def work() -> int:
        return 1

    assert [work() for _ in range(4)] == [1] * 4
    assert clock.sleeps == [0.5] * 4
    assert clock.now() == 2.0


async def test_latency_on_coroutines(clock: FakeClock) -> None:
    @with_chaos(latency=0.25)
    async def work() -> int:
        return 1

    assert await work() == 1
    assert clock.sleeps == [0.25]


def test_latency_range_and_rate_are_drawn_from_the_seed(clock: FakeClock) -> None:
    chaos = Chaos(latency=(0.1, 0.3), latency_rate=0.5, seed=3)
    for _ in range(100):
        chaos.call(lambda: None)
    delays = clock.sleeps
    assert 30 <= len(delays) <= 70  # about half the calls
    assert all(0.1 <= d <= 0.3 for d in delays)
    assert len(set(delays)) == len(delays)

    with fake_clock() as again:
        chaos = Chaos(latency=(0.1, 0.3), latency_rate=0.5, seed=3)
        for _ in range(100):
            chaos.call(lambda: None)
        assert again.sleeps == delays


def test_latency_then_fault(clock: FakeClock) -> None:
    with pytest.raises(ChaosError):
        Chaos(latency=1.0, fault_rate=1.0).call(lambda: None)
    assert clock.sleeps == [1.0]


async def test_cancelled_during_injected_latency_the_call_never_runs(clock: FakeClock) -> None:
    ran = []

    @with_chaos(latency=10.0)
    async def work() -> None:
        ran.append(1)

    task = asyncio.ensure_future(work())
    await asyncio.sleep(0)  # now inside the injected wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ran == []


# -- switching it off --------------------------------------------------------------


def test_disabled_is_a_pass_through() -> None:
    assert _fates(Chaos(fault_rate=1.0, enabled=False), 5) == ["ok"] * 5


def test_enabled_may_be_a_flag_asked_on_every_call() -> None:
    flag = {"on": False}
    chaos = Chaos(fault_rate=1.0, enabled=lambda: flag["on"])
    assert _fates(chaos, 2) == ["ok", "ok"]
    flag["on"] = True
    assert _fates(chaos, 2) == ["fault", "fault"]


def test_set_active_false_turns_chaos_off_too() -> None:
    resilient.set_active(False)
    try:
        assert _fates(Chaos(fault_rate=1.0), 3) == ["ok"] * 3
    finally:
        resilient.set_active(True)


# -- events ------------------------------------------------------------------------


def test_events_say_what_was_injected(clock: FakeClock, seen: list[events.Event]) -> None:
    @with_chaos(latency=0.5, fault_rate=1.0)
    def fetch() -> None:
        pass

    with pytest.raises(ChaosError) as info:
        fetch()
    injected = [e for e in seen if isinstance(e, ChaosInjected)]
    assert [(e.kind, e.delay) for e in injected] == [("latency", 0.5), ("fault", 0.0)]
    assert injected[1].error is info.value
    assert {e.policy for e in injected} == {"chaos"}
    assert {e.name for e in injected} == {fetch.__qualname__}
    assert injected[0].monotonic == 0.0  # announced before the wait


def test_result_event_and_policy_name(seen: list[events.Event]) -> None:
    chaos = Chaos(fault_rate=1.0, result=0, name="payments")
    assert chaos.call(lambda: 1) == 0
    (event,) = [e for e in seen if isinstance(e, ChaosInjected)]
    assert (event.name, event.kind, event.error) == ("payments", "result", None)
    # As its caller saw it, the call succeeded: one request, through chaos.
    requests = [(type(e).__name__, e.policy) for e in seen if getattr(e, "level", "") == "request"]
    assert requests == [("CallStarted", "chaos"), ("CallSucceeded", "chaos")]


def test_no_event_for_an_untouched_call(seen: list[events.Event]) -> None:
    Chaos(fault_rate=0.0).call(lambda: None)
    assert [e for e in seen if isinstance(e, ChaosInjected)] == []


def test_policy_listeners() -> None:
    got: list[events.Event] = []
    chaos = Chaos(fault_rate=1.0, result=1, listeners=events.ListenerSet())
    unsubscribe = chaos.subscribe(got.append)
    chaos.call(lambda: 0)
    unsubscribe()
    chaos.call(lambda: 0)
    assert [type(e).__name__ for e in got] == ["CallStarted", "ChaosInjected", "CallSucceeded"]


# -- decorating --------------------------------------------------------------------


def test_methods_classmethods_and_staticmethods() -> None:
    class Service:
        @with_chaos(fault_rate=1.0, result="chaos")
        def method(self) -> str:
            return "real"

        @with_chaos(fault_rate=1.0, result="chaos")
        @classmethod
        def klass(cls) -> str:
            return "real"

        @with_chaos(fault_rate=1.0, result="chaos")
        @staticmethod
        def static() -> str:
            return "real"

    service = Service()
    assert (service.method(), Service.klass(), Service.static()) == ("chaos",) * 3


def test_a_ready_policy_or_keywords_not_both() -> None:
    chaos = Chaos(fault_rate=1.0, result=5)
    assert with_chaos(chaos)(lambda: 1)() == 5
    with pytest.raises(TypeError, match="not both"):
        with_chaos(chaos, fault_rate=0.5)
    with pytest.raises(TypeError, match="expected a Chaos"):
        with_chaos("chaos")  # type: ignore[arg-type]


def test_decorating_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        with_chaos(fault_rate=1.0)(42)  # type: ignore[arg-type]


def test_repr() -> None:
    assert repr(Chaos(fault_rate=0.25, latency=(0.1, 0.5))) == (
        "<Chaos fault_rate=0.25 latency=0.1..0.5s latency_rate=1>"
    )


# -- under the other policies ------------------------------------------------------


def test_injected_faults_open_a_breaker() -> None:
    breaker = CircuitBreaker("chaotic", CircuitBreakerConfig(failure_threshold=3))

    @breaker
    @with_chaos(fault_rate=1.0)
    def call() -> None:
        pass

    for _ in range(3):
        with pytest.raises(ChaosError):
            call()
    with pytest.raises(CircuitOpenError):
        call()


def test_retry_rides_out_injected_faults(clock: FakeClock) -> None:
    attempts: list[Any] = []

    @with_retry(max_attempts=10, initial_delay=0.1, jitter=0.0)
    @with_chaos(fault_rate=0.3, seed=2)
    def call() -> str:
        attempts.append(1)
        return "ok"

    for _ in range(20):
        assert call() == "ok"
    assert len(attempts) == 20  # the function ran once per call, faults were retried
    assert clock.sleeps  # and waited between them
