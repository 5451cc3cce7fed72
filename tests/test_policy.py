from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilient
from resilient import (
    BulkheadConfig,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Fallback,
    FallbackUsed,
    Registry,
    Resilience,
    ResiliencePolicies,
    ResiliencePolicy,
    RetryConfig,
    RetryPolicies,
    TimeoutConfig,
    config,
    with_resilience,
)
from resilient.events import Event
from resilient.testing import FakeClock, fake_clock
from tests.conftest import PICKUP

NO_JITTER = RetryConfig(max_attempts=3, initial_delay=1.0, jitter=0.0)
QUICK = 0.02  # a per-attempt timeout for calls that hang on purpose


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    events: list[Event] = []
    unsubscribe = resilient.subscribe(events.append)
    yield events
    unsubscribe()


class Script:
    """Plays its outcomes in order (the last one repeats): raises the
    exceptions, returns the rest, and records the arguments of each call."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class AsyncScript(Script):
    async def __call__(self, *args: Any) -> Any:  # type: ignore[override]
        return super().__call__(*args)


def run(mode: str, policy: Callable[[Any], Any], script: Script, *args: Any) -> Any:
    """Decorate ``script`` (sync or async by ``mode``) and call it once.

    A script is a callable object, which the decorator binds with wrapt and
    sends through the layers' ``_call``; the "plain" modes decorate a plain
    function calling it, which gets the layers' own closures, nested.
    """
    if mode == "sync":
        return policy(script)(*args)
    if mode == "plain sync":

        def plain(*args: Any) -> Any:
            return script(*args)

        return policy(plain)(*args)
    target = AsyncScript()
    target.outcomes, target.calls = script.outcomes, script.calls  # one script, played async
    if mode == "plain async":

        async def aplain(*args: Any) -> Any:
            return await target(*args)

        return asyncio.run(policy(aplain)(*args))
    return asyncio.run(policy(target)(*args))


MODES = pytest.mark.parametrize("mode", ["sync", "async", "plain sync", "plain async"])


# -- ResiliencePolicy ------------------------------------------------------------


def test_the_default_policy_is_breaker_retry_and_a_30s_timeout() -> None:
    policy = ResiliencePolicy()
    assert policy.circuit_breaker == CircuitBreakerConfig.DEFAULT
    assert policy.retry == RetryConfig.DEFAULT
    assert policy.timeout == 30.0
    assert policy.bulkhead is None
    assert policy.fallback is None


def test_the_default_policy_follows_the_environment() -> None:
    try:
        config.reload(
            {
                "RESILIENT_DEFAULT_TIMEOUT": "5",
                "RESILIENT_RETRY_MAX_ATTEMPTS": "4",
                "RESILIENT_CB_FAILURE_THRESHOLD": "7",
                "RESILIENT_CB_RECOVERY_TIMEOUT": "9",
            }
        )
        policy = ResiliencePolicy()
        assert policy.timeout == 5.0
        assert policy.retry is not None
        assert policy.retry.max_attempts == 4
        assert policy.circuit_breaker is not None
        assert policy.circuit_breaker.failure_threshold == 7
        assert policy.circuit_breaker.recovery_timeout == 9.0
        assert ResiliencePolicy(timeout=2.0).timeout == 2.0
    finally:
        config.reload()


def test_a_policy_is_immutable_and_replace_makes_a_changed_copy() -> None:
    policy = ResiliencePolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.timeout = 1.0  # type: ignore[misc]
    changed = policy.replace(timeout=None, bulkhead=BulkheadConfig(3))
    assert (changed.timeout, changed.bulkhead) == (None, BulkheadConfig(3))
    assert (policy.timeout, policy.bulkhead) == (30.0, None)
    with pytest.raises(TypeError, match="no field 'timout'; the fields are circuit_breaker"):
        policy.replace(timout=1.0)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"timeout": 0}, ValueError, "ResiliencePolicy.timeout must be a finite number"),
        ({"timeout": "5"}, TypeError, "ResiliencePolicy.timeout must be a number"),
        ({"circuit_breaker": 5}, TypeError, "circuit_breaker must be a CircuitBreakerConfig"),
        ({"retry": 3}, TypeError, "ResiliencePolicy.retry must be a RetryConfig or None"),
        ({"bulkhead": 10}, TypeError, "ResiliencePolicy.bulkhead must be a BulkheadConfig"),
        ({"fallback": "x"}, TypeError, "ResiliencePolicy.fallback must be a Fallback or None"),
    ],
)
def test_bad_fields_name_the_field_and_the_value(
    fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ResiliencePolicy(**fields)


# -- presets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "breaker", "attempts", "timeout", "bulkhead"),
    [
        (ResiliencePolicies.api, (5, 60.0), 3, 30.0, (50, 100)),
        (ResiliencePolicies.ai, (3, 120.0), 5, 120.0, (10, 50)),
        (ResiliencePolicies.database, (10, 30.0), 3, 30.0, (100, 200)),
        (ResiliencePolicies.external, (5, 60.0), 4, 15.0, (20, 50)),
        (ResiliencePolicies.critical, None, 5, 60.0, (5, 10)),
    ],
)
def test_presets_have_the_documented_numbers(
    preset: Callable[[], ResiliencePolicy],
    breaker: tuple[int, float] | None,
    attempts: int,
    timeout: float,
    bulkhead: tuple[int, int],
) -> None:
    policy = preset()
    cb = policy.circuit_breaker
    assert (None if cb is None else (cb.failure_threshold, cb.recovery_timeout)) == breaker
    assert policy.retry is not None
    assert policy.retry.max_attempts == attempts
    assert policy.timeout == timeout
    assert policy.bulkhead is not None
    assert (policy.bulkhead.max_concurrent, policy.bulkhead.max_queue) == bulkhead
    assert policy.fallback is None


def test_preset_retries_fit_their_dependency() -> None:
    def undated(retry: RetryConfig | None) -> RetryConfig:
        assert retry is not None
        return dataclasses.replace(retry, deadline=None)

    assert undated(ResiliencePolicies.api().retry) == RetryPolicies.exponential(3)
    assert undated(ResiliencePolicies.ai().retry) == RetryPolicies.api_rate_limit()
    assert undated(ResiliencePolicies.external().retry) == RetryPolicies.network()
    assert undated(ResiliencePolicies.critical().retry) == RetryConfig.AGGRESSIVE
    db = ResiliencePolicies.database().retry
    assert db is not None
    assert (db.initial_delay, db.max_delay) == (0.1, 1.0)


def test_presets_are_fresh_policies_that_overrides_can_change() -> None:
    assert ResiliencePolicies.api() == ResiliencePolicies.api()
    assert ResiliencePolicies.api().replace(bulkhead=None).bulkhead is None


# -- with_resilience: registration and decoration ----------------------------------------


def test_the_name_registers_the_breaker_and_the_bulkhead() -> None:
    policy = ResiliencePolicy(timeout=None, bulkhead=BulkheadConfig(4, max_queue=2))

    @with_resilience("payments", policy)
    def charge(amount: int) -> str:
        return f"charged {amount}"

    assert charge(5) == "charged 5"
    breaker = resilient.registry.get("payments")
    assert breaker is not None
    assert breaker.config == CircuitBreakerConfig()
    bulkhead = resilient.registry.get_bulkhead("payments")
    assert bulkhead is not None
    assert bulkhead.config == BulkheadConfig(4, max_queue=2)
    assert bulkhead.metrics().completed == 1


def test_overrides_replace_fields_and_none_removes_a_layer() -> None:
    composed = Resilience("x", ResiliencePolicies.api().replace(circuit_breaker=None, timeout=None))
    assert (composed.breaker, composed.timeout) == (None, None)
    assert composed.bulkhead is not None
    assert repr(composed) == "<Resilience 'x' retry > bulkhead>"

    @with_resilience("y", retry=None, timeout=None, bulkhead=BulkheadConfig(1))
    def f() -> int:
        return 1

    assert f() == 1
    assert resilient.registry.get_bulkhead("y") is not None
    with pytest.raises(TypeError, match="no field 'retries'"):
        with_resilience("z", retries=None)
    with pytest.raises(TypeError, match="policy must be a ResiliencePolicy"):
        with_resilience("z", CircuitBreakerConfig())  # type: ignore[arg-type]


def test_one_name_with_two_different_breakers_is_an_error() -> None:
    with_resilience("db", ResiliencePolicies.database())
    with_resilience("db", ResiliencePolicies.database())  # the same: shared
    with pytest.raises(ValueError, match="circuit breaker 'db' already exists"):
        with_resilience("db", ResiliencePolicies.api())


def test_a_custom_registry_holds_the_layers() -> None:
    reg = Registry()
    composed = Resilience("svc", ResiliencePolicies.api(), registry=reg)
    assert reg.get("svc") is composed.breaker
    assert reg.get_bulkhead("svc") is composed.bulkhead
    assert resilient.registry.get("svc") is None


def test_functions_coroutines_and_methods_keep_their_signatures() -> None:
    class Service:
        @with_resilience("svc", timeout=None)
        def get(self, key: str, *, default: int = 0) -> int:
            return len(key) + default

        @with_resilience("svc", timeout=None)
        async def aget(self, key: str) -> int:
            return len(key)

        @classmethod
        @with_resilience("svc", timeout=None)
        def make(cls, n: int) -> int:
            return n

        @staticmethod
        @with_resilience("svc", timeout=None)
        def pure(n: int) -> int:
            return -n

    svc = Service()
    assert svc.get("abc", default=1) == 4
    assert asyncio.run(svc.aget("ab")) == 2
    assert Service.make(3) == 3
    assert Service.pure(3) == -3
    assert (
        str(inspect.signature(Service.get)) == "(self, key: 'str', *, default: 'int' = 0) -> 'int'"
    )
    assert inspect.iscoroutinefunction(Service.aget)


def test_call_and_call_async_without_a_decorator() -> None:
    composed = Resilience("svc", ResiliencePolicy(timeout=None))

    async def double(x: int) -> int:
        return 2 * x

    assert composed.call(lambda x: x + 1, 1) == 2
    assert asyncio.run(composed.call_async(double, 4)) == 8


def test_an_empty_policy_is_a_pass_through() -> None:
    composed = Resilience(
        "nothing", ResiliencePolicy(circuit_breaker=None, retry=None, timeout=None)
    )
    assert repr(composed) == "<Resilience 'nothing' pass-through>"
    assert composed.call(lambda: 7) == 7
    only_fallback = Resilience(
        "fb",
        ResiliencePolicy(
            circuit_breaker=None, retry=None, timeout=None, fallback=Fallback(value="fb")
        ),
    )
    assert only_fallback.call(Script(OSError())) == "fb"


# -- composition order, shown by behaviour -----------------------------------------------


@MODES
def test_the_breaker_counts_each_attempt(mode: str, clock: FakeClock) -> None:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=3), retry=NO_JITTER, timeout=None
    )
    script = Script(OSError("down"))
    with pytest.raises(OSError):
        run(mode, with_resilience("dep", policy), script)
    assert len(script.calls) == 3
    breaker = resilient.registry.get("dep")
    assert breaker is not None
    assert breaker.state is CircuitState.OPEN  # three attempts, three failures


@MODES
def test_fallback_answers_only_once_retries_are_spent(
    mode: str, clock: FakeClock, seen: list[Event]
) -> None:
    attempts_when_used: list[int] = []
    script = Script(OSError("1"), OSError("2"), "third time")

    def handler(*args: Any, error: Exception) -> str:
        attempts_when_used.append(len(script.calls))
        return f"fallback after {error}"

    policy = ResiliencePolicy(retry=NO_JITTER, timeout=None, fallback=Fallback(handler=handler))
    assert run(mode, with_resilience("dep", policy), script) == "third time"
    assert not [e for e in seen if isinstance(e, FallbackUsed)]

    always = Script(OSError("down"))
    assert run(mode, with_resilience("dep2", policy), always) == "fallback after down"
    assert attempts_when_used == [3]
    assert len([e for e in seen if isinstance(e, FallbackUsed)]) == 1


@MODES
def test_retry_gives_up_at_once_on_a_breaker_open_longer_than_its_delays(
    mode: str, clock: FakeClock
) -> None:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60.0),
        retry=RetryConfig(max_attempts=5, initial_delay=1.0, max_delay=10.0, jitter=0.0),
        timeout=None,
    )
    script = Script(OSError("down"))
    with pytest.raises(CircuitOpenError):
        run(mode, with_resilience("dep", policy), script)
    # One real attempt opened the breaker; retry then waited one backoff
    # step, met the open breaker, and stopped: no hammering.
    assert len(script.calls) == 1
    assert clock.sleeps == [1.0]


@MODES
def test_retry_waits_out_a_short_open_period_and_the_probe_succeeds(
    mode: str, clock: FakeClock
) -> None:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=5.0, success_threshold=1
        ),
        retry=RetryConfig(max_attempts=4, initial_delay=1.0, max_delay=10.0, jitter=0.0),
        timeout=None,
    )
    script = Script(OSError("blip"), "ok")
    assert run(mode, with_resilience("dep", policy), script) == "ok"
    assert len(script.calls) == 2
    # 1 s backoff, then the 4 s the breaker still had to stay open.
    assert clock.sleeps == [1.0, 4.0]
    breaker = resilient.registry.get("dep")
    assert breaker is not None
    assert breaker.state is CircuitState.CLOSED


@MODES
def test_a_forced_open_breaker_is_not_retried_and_the_call_never_runs(
    mode: str, clock: FakeClock
) -> None:
    resilient.registry.force_open("dep")
    script = Script("never")
    with pytest.raises(CircuitOpenError):
        run(mode, with_resilience("dep", retry=NO_JITTER, timeout=None), script)
    assert script.calls == []
    assert clock.sleeps == []


@MODES
def test_a_full_bulkhead_is_not_a_breaker_failure(mode: str, clock: FakeClock) -> None:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
        retry=None,
        timeout=None,
        bulkhead=BulkheadConfig(1),
    )
    decorate = with_resilience("dep", policy)
    bulkhead = resilient.registry.get_bulkhead("dep")
    assert bulkhead is not None
    with bulkhead:  # every slot taken
        for _ in range(3):
            with pytest.raises(BulkheadFullError):
                run(mode, decorate, Script("never"))
    breaker = resilient.registry.get("dep")
    assert breaker is not None
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().failures == 0
    assert bulkhead.metrics().rejected == 3


def test_retry_waits_outside_the_bulkhead(clock: FakeClock) -> None:
    active_while_waiting: list[int] = []
    holder: list[Any] = []

    def on_retry(attempt: int, error: BaseException | None, delay: float) -> None:
        active_while_waiting.append(holder[0].metrics().active)

    policy = ResiliencePolicy(
        circuit_breaker=None,
        retry=dataclasses.replace(NO_JITTER, on_retry=on_retry),
        timeout=None,
        bulkhead=BulkheadConfig(1),
    )
    composed = Resilience("dep", policy)
    holder.append(composed.bulkhead)
    assert composed.call(Script(OSError(), OSError(), "ok")) == "ok"
    assert active_while_waiting == [0, 0]  # no slot held through a backoff


@MODES
def test_an_open_breaker_rejects_before_the_bulkhead_is_asked(mode: str) -> None:
    policy = ResiliencePolicy(retry=None, timeout=None, bulkhead=BulkheadConfig(1))
    decorate = with_resilience("dep", policy)
    resilient.registry.force_open("dep")
    bulkhead = resilient.registry.get_bulkhead("dep")
    assert bulkhead is not None
    with bulkhead, pytest.raises(CircuitOpenError):
        run(mode, decorate, Script("never"))
    assert bulkhead.metrics().rejected == 0


def test_the_timeout_bounds_each_attempt_of_a_sync_call(clock: FakeClock) -> None:
    hang = threading.Event()
    calls: list[int] = []

    def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) < 3:
            hang.wait(10)  # abandoned by the timeout; released below
        return "fast"

    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=5),
        retry=NO_JITTER,
        timeout=TimeoutConfig(PICKUP, mode="thread"),  # each attempt must start
    )
    try:
        assert with_resilience("dep", policy)(slow_then_fast)() == "fast"
    finally:
        hang.set()
    assert len(calls) == 3
    breaker = resilient.registry.get("dep")
    assert breaker is not None
    assert breaker.metrics().consecutive_failures == 0
    assert breaker.metrics().failures == 2  # each timed-out attempt counted


async def test_the_timeout_bounds_each_attempt_of_a_coroutine(clock: FakeClock) -> None:
    calls: list[int] = []

    async def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) < 3:
            await asyncio.Event().wait()  # hangs until the timeout cancels it
        return "fast"

    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=5),
        retry=NO_JITTER,
        timeout=QUICK,
    )
    assert await with_resilience("dep", policy)(slow_then_fast)() == "fast"
    assert len(calls) == 3
    breaker = resilient.registry.get("dep")
    assert breaker is not None
    assert breaker.metrics().failures == 2


async def test_every_attempt_timing_out_ends_in_the_timeout_error(clock: FakeClock) -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    policy = ResiliencePolicy(retry=NO_JITTER, timeout=QUICK)
    with pytest.raises(CallTimeoutError) as info:
        await with_resilience("dep", policy)(hangs)()
    assert info.value.timeout == QUICK
    assert "gave up after 3 attempts" in "".join(info.value.__notes__)


async def test_the_time_queued_at_the_bulkhead_is_not_part_of_the_timeout() -> None:
    policy = ResiliencePolicy(
        circuit_breaker=None, retry=None, timeout=QUICK, bulkhead=BulkheadConfig(1, max_queue=1)
    )

    @with_resilience("dep", policy)
    async def quick() -> str:
        return "ran"

    bulkhead = resilient.registry.get_bulkhead("dep")
    assert bulkhead is not None
    async with bulkhead:
        task = asyncio.create_task(quick())
        # Queued for several timeouts' worth of real time: what is tested
        # here is time passing, so it really passes.
        await asyncio.sleep(5 * QUICK)
        assert not task.done()
    assert await task == "ran"


@MODES
def test_the_retry_deadline_bounds_the_whole_call(mode: str, clock: FakeClock) -> None:
    retry = RetryConfig(max_attempts=10, initial_delay=1.0, jitter=0.0, deadline=2.5)
    script = Script(OSError("down"))
    with pytest.raises(OSError):
        run(mode, with_resilience("dep", retry=retry, timeout=None), script)
    assert clock.sleeps == [1.0]  # the next wait (2 s) would cross the deadline
    assert len(script.calls) == 2


@MODES
def test_switched_off_every_layer_passes_calls_through(mode: str, clock: FakeClock) -> None:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
        retry=NO_JITTER,
        timeout=None,
        bulkhead=BulkheadConfig(1),
        fallback=Fallback(value="fallback"),
    )
    resilient.set_active(False)
    script = Script(OSError("down"))
    for _ in range(2):
        with pytest.raises(OSError):
            run(mode, with_resilience("dep", policy), script)
    assert len(script.calls) == 2  # no retries, no fallback
    breaker = resilient.registry.get("dep")
    assert breaker is not None
    assert breaker.state is CircuitState.CLOSED


def test_base_exceptions_pass_every_layer_untouched(clock: FakeClock) -> None:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
        retry=NO_JITTER,
        timeout=None,
        bulkhead=BulkheadConfig(1),
        fallback=Fallback(value="fallback"),
    )
    script = Script(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        with_resilience("dep", policy)(script)()
    assert len(script.calls) == 1
    assert resilient.registry.get("dep").state is CircuitState.CLOSED  # type: ignore[union-attr]
    assert resilient.registry.get_bulkhead("dep").metrics().active == 0  # type: ignore[union-attr]


async def test_a_cancelled_call_leaves_no_permit_and_no_failure() -> None:
    policy = ResiliencePolicy(retry=NO_JITTER, timeout=None, bulkhead=BulkheadConfig(1))
    started = asyncio.Event()

    @with_resilience("dep", policy)
    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(hangs())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert resilient.registry.get_bulkhead("dep").metrics().active == 0  # type: ignore[union-attr]
    assert resilient.registry.get("dep").metrics().failures == 0  # type: ignore[union-attr]


# -- fallback inside the composition -----------------------------------------------------


def test_the_fallback_handler_gets_the_method_call_arguments(clock: FakeClock) -> None:
    class Client:
        def cached(self, user: int, *, error: Exception) -> str:
            return f"cached {user} after {type(error).__name__}"

        @with_resilience(
            "users",
            retry=NO_JITTER,
            timeout=None,
            fallback=Fallback(handler=lambda self, user, *, error: self.cached(user, error=error)),
        )
        def fetch(self, user: int) -> str:
            raise ConnectionError

    assert Client().fetch(7) == "cached 7 after ConnectionError"


async def test_an_async_fallback_handler_answers_for_a_coroutine(clock: FakeClock) -> None:
    async def handler(x: int) -> str:
        return f"fallback {x}"

    policy = ResiliencePolicy(retry=NO_JITTER, timeout=None, fallback=Fallback(handler=handler))

    @with_resilience("dep", policy)
    async def fails(x: int) -> str:
        raise OSError

    assert await fails(3) == "fallback 3"


def test_an_async_fallback_handler_cannot_serve_a_sync_function() -> None:
    async def handler() -> str:
        return "x"

    with pytest.raises(TypeError, match="async handler cannot answer for the sync function"):
        with_resilience("dep", fallback=Fallback(handler=handler))(lambda: None)
    composed = Resilience("dep2", ResiliencePolicy(fallback=Fallback(handler=handler)))
    with pytest.raises(TypeError, match="async handler"):
        composed.call(Script(OSError()))


def test_errors_outside_the_fallbacks_on_are_raised(clock: FakeClock) -> None:
    policy = ResiliencePolicy(
        retry=None, timeout=None, fallback=Fallback(value="x", on=(ConnectionError,))
    )
    with pytest.raises(KeyError):
        with_resilience("dep", policy)(Script(KeyError("k")))()
    assert with_resilience("dep", policy)(Script(ConnectionError()))() == "x"


def test_fallback_events_carry_the_policy_name() -> None:
    from resilient import CircuitBreakerConfig, Fallback, FallbackUsed, subscribe, with_resilience

    seen: list[object] = []
    unsubscribe = subscribe(seen.append)
    shared = Fallback(value="cached")

    @with_resilience(
        "named-policy",
        fallback=shared,
        retry=None,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
    )
    def fetch() -> str:
        raise ConnectionError()

    try:
        assert fetch() == "cached"
    finally:
        unsubscribe()
    used = [e for e in seen if isinstance(e, FallbackUsed)]
    assert [e.name for e in used] == ["named-policy"]
    assert shared.name is None  # the policy's own copy was named, not the shared object
