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

from .. import events
from .._runtime import clock as _clock
from ..circuit_breaker.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from ..errors import CircuitOpenError
from ..retry.retry import Retry, RetryConfig

__all__ = ["HerdResult", "herd_breaker_config", "herd_rows", "run_herd"]


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
    #: Real seconds each failed or rejected call took, start to error.
    error_latencies: list[float] = field(default_factory=list)
    #: Rejected calls that had slept on the open breaker first: because no
    #: probe was free for them (a herd), or because it reopened meanwhile.
    rejected_after_sleeping_no_probe: int = 0
    rejected_after_sleeping_reopened: int = 0
    #: ... of which went to sleep once the dependency was healthy again.
    rejected_after_sleeping_since_recovery: int = 0
    #: The most callers asleep on the open breaker at once.
    max_sleepers: int = 0
    #: The most calls in the dependency at once that entered it half-open.
    max_concurrent_probes: int = 0
    #: Calls that reached the dependency while it was failing.
    dependency_hits_while_failing: int = 0
    recovered_at: float = 0.0
    closed_at: float | None = None  # the first close after the recovery
    open_time: float = 0.0  # the last open period before the close

    @property
    def time_to_close(self) -> float | None:
        return None if self.closed_at is None else self.closed_at - self.recovered_at

    def rejection_p99(self) -> float | None:
        return _p99(self.rejection_latencies)

    def error_p99(self) -> float | None:
        return _p99(self.error_latencies)

    @property
    def rejected_after_sleeping(self) -> int:
        return self.rejected_after_sleeping_no_probe + self.rejected_after_sleeping_reopened


def _p99(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


class _Caller:
    __slots__ = ("attempted", "sleeping", "slept", "slept_at")

    def __init__(self) -> None:
        self.sleeping = False
        self.slept = False
        self.attempted = 0.0  # real time the last attempt started
        self.slept_at = 0.0  # clock time it last went to sleep on the breaker


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
    config: CircuitBreakerConfig | None = None,
) -> HerdResult:
    """``callers`` tasks call the dependency in a loop (``think_time``
    between calls) for ``duration`` seconds; it fails for the first
    ``fail_for`` seconds. Protected: retry (``max_delay`` twice the open
    time) around a breaker (``config``, by default
    ``herd_breaker_config``); unprotected: the same retry, no breaker."""
    start = _clock.monotonic()
    fail_until = start + fail_for
    end = start + duration
    result = HerdResult(protected, recovered_at=fail_until, open_time=open_time)
    cfg = config if config is not None else herd_breaker_config(open_time)
    breaker = CircuitBreaker("herd", cfg, listeners=events.ListenerSet())
    sleepers = 0
    in_probes = 0

    def on_change(event: events.Event) -> None:
        if not isinstance(event, events.StateChanged):
            return
        if event.new_state == "open" and result.closed_at is None:
            # The open period recovery is measured against: the last one before the close.
            result.open_time = breaker.with_core(lambda core, _: core.open_for)
        if event.new_state == "closed":
            now = _clock.monotonic()
            if now >= fail_until and result.closed_at is None:
                result.closed_at = now

    breaker.subscribe(on_change)

    async def dependency() -> str:
        nonlocal in_probes
        probe = breaker.with_core(lambda core, _: core.state) is CircuitState.HALF_OPEN
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
            caller.slept_at = _clock.monotonic()
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
            began = time.perf_counter()
            try:
                await call()
            except CircuitOpenError as error:
                result.rejected += 1
                ended = time.perf_counter()
                result.rejection_latencies.append(ended - caller.attempted)
                result.error_latencies.append(ended - began)
                if caller.slept:
                    if error.state == CircuitState.HALF_OPEN.value:
                        result.rejected_after_sleeping_no_probe += 1
                    else:
                        result.rejected_after_sleeping_reopened += 1
                    if caller.slept_at >= fail_until:
                        result.rejected_after_sleeping_since_recovery += 1
            except ConnectionError:
                result.failed += 1
                result.error_latencies.append(time.perf_counter() - began)
            else:
                result.succeeded += 1
            await _clock.sleep_async(think_time)

    # Each task runs in its own copy of the context: its own _Caller.
    await asyncio.gather(*(one_caller() for _ in range(callers)))
    return result


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def herd_rows(unprotected: HerdResult, protected: HerdResult) -> list[tuple[str, str, str]]:
    """The demo's summary: (label, unprotected, protected) rows."""

    def both(label: str, value: Callable[[HerdResult], object]) -> tuple[str, str, str]:
        return label, str(value(unprotected)), str(value(protected))

    def breaker_only(label: str, value: Callable[[HerdResult], object]) -> tuple[str, str, str]:
        return label, "-", str(value(protected))

    close = protected.time_to_close
    return [
        both("calls", lambda r: r.calls),
        both("succeeded", lambda r: r.succeeded),
        both("failed", lambda r: r.failed),
        both("rejected by the breaker", lambda r: r.rejected),
        both("calls into the failing dependency", lambda r: r.dependency_hits_while_failing),
        both("p99 time to an error", lambda r: _ms(r.error_p99())),
        breaker_only("p99 rejection latency", lambda r: _ms(r.rejection_p99())),
        breaker_only("rejected after sleeping", lambda r: r.rejected_after_sleeping),
        breaker_only(
            "  of which since recovery", lambda r: r.rejected_after_sleeping_since_recovery
        ),
        breaker_only(
            "  of which for want of a probe", lambda r: r.rejected_after_sleeping_no_probe
        ),
        breaker_only("most callers asleep on the breaker", lambda r: r.max_sleepers),
        breaker_only("most concurrent probes", lambda r: r.max_concurrent_probes),
        (
            "closed after recovery",
            "-",
            "never" if close is None else f"{close:.2f} s (open time {protected.open_time:g} s)",
        ),
    ]
