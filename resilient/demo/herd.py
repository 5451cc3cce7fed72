"""The thundering herd at half-open, measured: many async callers with retry
through one breaker, against a dependency that fails for a while, then
recovers.

``run_herd`` reads time through resilient's clock, so under
``resilient.testing.fake_clock()`` the whole run takes no real time (the
suite's scenario test); ``python -m resilient demo --scenario herd`` runs it
in real time, protected and unprotected, and prints the summary.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import _clock, events
from ..circuit_breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from ..errors import CircuitOpenError
from ..retry import Retry, RetryConfig

__all__ = ["HerdResult", "herd_breaker_config", "run_herd"]


def herd_breaker_config(open_time: float) -> CircuitBreakerConfig:
    """The breaker of the scenario: the recovery advice of docs/circuit_breaker.md."""
    return CircuitBreakerConfig(
        failure_threshold=5,
        recovery_timeout=open_time,
        half_open_max_calls=2,
        success_threshold=2,
        max_half_open_duration=open_time,
    )


@dataclass
class HerdResult:
    protected: bool
    calls: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    #: Real seconds from the attempt a breaker rejected to the caller
    #: getting the error (a wait on the breaker included), per rejected call.
    rejection_latencies: list[float] = field(default_factory=list)
    #: Rejected calls that had slept on the open breaker first: because no
    #: probe was free for them (a herd), or because it reopened meanwhile.
    rejected_after_sleeping_no_probe: int = 0
    rejected_after_sleeping_reopened: int = 0
    rejected_after_sleeping_since_recovery: int = 0
    #: The most callers asleep on the open breaker at once.
    max_sleepers: int = 0
    #: The most calls in the dependency at once that entered it half-open.
    max_concurrent_probes: int = 0
    #: Calls that reached the dependency while it was failing.
    dependency_hits_while_failing: int = 0
    recovered_at: float = 0.0
    closed_at: float | None = None  # the first close after the recovery
    open_time: float = 0.0

    @property
    def time_to_close(self) -> float | None:
        return None if self.closed_at is None else self.closed_at - self.recovered_at

    def rejection_p99(self) -> float | None:
        latencies = sorted(self.rejection_latencies)
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]


class _Caller:
    __slots__ = ("attempted", "sleeping", "slept")

    def __init__(self) -> None:
        self.sleeping = False
        self.slept = False
        self.attempted = 0.0  # real time the last attempt started


_caller: contextvars.ContextVar[_Caller] = contextvars.ContextVar("resilient_herd_caller")


async def run_herd(
    *,
    protected: bool = True,
    callers: int = 200,
    open_time: float = 1.0,
    fail_for: float = 3.0,
    duration: float = 6.0,
    call_time: float = 0.02,
    think_time: float = 0.05,
    max_attempts: int = 3,
) -> HerdResult:
    """``callers`` tasks call the dependency in a loop (``think_time``
    between calls) for ``duration`` seconds; it fails for the first
    ``fail_for`` seconds. Protected: retry (``max_delay`` twice the open
    time) around a breaker; unprotected: the same retry, no breaker."""
    start = _clock.monotonic()
    fail_until = start + fail_for
    end = start + duration
    result = HerdResult(protected, recovered_at=fail_until, open_time=open_time)
    breaker = CircuitBreaker("herd", herd_breaker_config(open_time), listeners=events.ListenerSet())
    sleepers = 0
    in_probes = 0

    def on_change(event: events.Event) -> None:
        if isinstance(event, events.StateChanged) and event.new_state == "closed":
            now = _clock.monotonic()
            if now >= fail_until and result.closed_at is None:
                result.closed_at = now

    breaker.subscribe(on_change)

    async def dependency() -> str:
        nonlocal in_probes
        probe = breaker._core.state is CircuitState.HALF_OPEN
        if probe:
            in_probes += 1
            result.max_concurrent_probes = max(result.max_concurrent_probes, in_probes)
        try:
            failing = _clock.monotonic() < fail_until
            if failing:
                result.dependency_hits_while_failing += 1
            await _clock.sleep_async(call_time)
            if failing:
                raise ConnectionError("dependency down")
            return "ok"
        finally:
            if probe:
                in_probes -= 1

    def on_retry(attempt: int, error: BaseException | None, delay: float) -> None:
        nonlocal sleepers
        if isinstance(error, CircuitOpenError) and delay > 0:
            caller = _caller.get()
            caller.sleeping = caller.slept = True
            sleepers += 1
            result.max_sleepers = max(result.max_sleepers, sleepers)

    guarded: Callable[[], Awaitable[str]] = breaker(dependency) if protected else dependency

    async def attempt() -> str:
        nonlocal sleepers
        caller = _caller.get()
        caller.attempted = time.perf_counter()
        if caller.sleeping:
            caller.sleeping = False
            sleepers -= 1
        return await guarded()

    retry = Retry(
        RetryConfig(
            max_attempts=max_attempts,
            initial_delay=0.05,
            max_delay=2 * open_time,
            retry_on=(ConnectionError, CircuitOpenError),
            on_retry=on_retry,
        ),
        name="herd",
        listeners=events.ListenerSet(),
    )
    call = retry(attempt)

    async def one_caller() -> None:
        while _clock.monotonic() < end:
            caller = _Caller()
            _caller.set(caller)
            result.calls += 1
            try:
                await call()
            except CircuitOpenError as error:
                result.rejected += 1
                result.rejection_latencies.append(time.perf_counter() - caller.attempted)
                if caller.slept:
                    if error.state == CircuitState.HALF_OPEN.value:
                        result.rejected_after_sleeping_no_probe += 1
                    else:
                        result.rejected_after_sleeping_reopened += 1
                    if _clock.monotonic() >= fail_until + call_time:
                        result.rejected_after_sleeping_since_recovery += 1
            except ConnectionError:
                result.failed += 1
            else:
                result.succeeded += 1
            await _clock.sleep_async(think_time)

    # Each task runs in its own copy of the context: its own _Caller.
    await asyncio.gather(*(one_caller() for _ in range(callers)))
    return result
