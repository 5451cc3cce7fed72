"""A callback of the user's that raises, at the point it is called, in every
policy that calls it: its error reaches the caller as itself, and nothing is
left behind (no probe slot, no bulkhead permit), so the next call behaves.

The matrix: callback x (an ``Exception``, ``KeyboardInterrupt``) x (sync,
async) x (the policy alone, a ``with_resilience`` stack). Listeners are the
one exception to "reaches the caller": a listener's ``Exception`` is logged
and the call goes on; its interrupt reaches the caller. A per-key breaker's
``key`` function is checked on its own (sync, async): it runs before any
breaker is chosen, and must leave no key and no call in flight behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from resilient import (
    BulkheadConfig,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Fallback,
    Registry,
    Resilience,
    ResiliencePolicy,
    Retry,
    RetryConfig,
    StateChanged,
    with_circuit_breaker,
    with_rate_limit,
)
from resilient.testing import FakeClock, fake_clock


class Broken(Exception):
    """What the protected call raises (not the callback's error)."""


@dataclass
class Case:
    """One cell of the matrix."""

    callback: str
    error: BaseException
    run: Callable[[Callable[..., Any]], Any] = field(repr=False)
    breaker: CircuitBreaker | None = None
    stack: Resilience | None = None


CALLBACKS = (
    "result_predicate",
    "failure_predicate",
    "on_retry",
    "wait",
    "retry_if_result",
    "fallback_handler",
    "listener",
)
RAISES: dict[str, Callable[[], BaseException]] = {
    "exception": lambda: ValueError("the callback's own error"),
    "interrupt": KeyboardInterrupt,
}


def _raiser(
    error: BaseException, when: Callable[..., bool], otherwise: bool = False
) -> Callable[..., Any]:
    def callback(*args: Any, **kwargs: Any) -> bool:
        if when(*args, **kwargs):
            raise error
        return otherwise

    return callback


def _configs(callback: str, error: BaseException) -> dict[str, Any]:
    """The breaker, retry and fallback settings with ``callback`` raising ``error``."""
    breaker: dict[str, Any] = {"failure_threshold": 1, "recovery_timeout": 1.0}
    # Retry takes on ZeroDivisionError only: the callback's own error, and the
    # call's Broken, go straight to the caller (or the fallback).
    retry: dict[str, Any] = {
        "max_attempts": 2,
        "initial_delay": 0.0,
        "jitter": 0.0,
        "retry_on": (ZeroDivisionError,),
    }
    fallback: Fallback | None = None
    if callback == "result_predicate":
        breaker["result_predicate"] = _raiser(error, lambda r: r == "bad")
    elif callback == "failure_predicate":
        breaker["failure_predicate"] = _raiser(error, lambda e: isinstance(e, Broken), True)
    elif callback in ("on_retry", "wait"):
        retry[callback] = _raiser(error, lambda *a: True)
    elif callback == "retry_if_result":
        retry["retry_if_result"] = _raiser(error, lambda r: r == "bad")
    elif callback == "fallback_handler":

        def handler(*args: Any, **kwargs: Any) -> str:
            raise error

        fallback = Fallback(handler=handler, on=(Broken,))
    return {"breaker": breaker, "retry": retry, "fallback": fallback}


def _trigger(callback: str) -> Callable[[], Any]:
    """What the protected call does to make ``callback`` run (and raise)."""
    if callback in ("result_predicate", "retry_if_result"):
        return lambda: "bad"
    if callback == "listener":
        return lambda: "fine"
    if callback in ("on_retry", "wait"):
        return lambda: 1 / 0  # an error the retry takes on

    def broken() -> str:
        raise Broken("the call's own error")

    return broken


def _build(callback: str, error: BaseException, shape: str) -> Case:
    settings = _configs(callback, error)
    registry = Registry()
    if shape == "stack":
        stack = Resilience(
            f"cb-{callback}",
            ResiliencePolicy(
                circuit_breaker=CircuitBreakerConfig(**settings["breaker"]),
                retry=RetryConfig(**settings["retry"]),
                timeout=None,
                bulkhead=BulkheadConfig(1),
                fallback=settings["fallback"],
            ),
            registry=registry,
        )
        if callback == "listener":
            assert stack.breaker is not None
            stack.breaker.subscribe(_half_open_raiser(error))
        return Case(callback, error, stack.call, stack.breaker, stack)
    if callback in ("on_retry", "wait", "retry_if_result"):
        return Case(callback, error, Retry(RetryConfig(**settings["retry"])).call)
    if callback == "fallback_handler":
        return Case(callback, error, settings["fallback"].call)
    breaker = CircuitBreaker(f"cb-{callback}", CircuitBreakerConfig(**settings["breaker"]))
    if callback == "listener":
        breaker.subscribe(_half_open_raiser(error))
    return Case(callback, error, breaker.call, breaker)


def _half_open_raiser(error: BaseException) -> Callable[[Any], None]:
    def listener(event: Any) -> None:
        if isinstance(event, StateChanged) and event.new_state == "half_open":
            raise error

    return listener


def _trip(case: Case, clock: FakeClock) -> None:
    """Open the breaker and let its recovery time pass: the next call is a probe."""
    breaker = case.breaker
    if breaker is None:
        return
    breaker.force_open()
    breaker.release()  # CLOSED, window cleared
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.state is CircuitState.OPEN
    clock.advance(1.5)


def _expected_to_reach_caller(case: Case) -> bool:
    return not (case.callback == "listener" and isinstance(case.error, Exception))


def _check_nothing_left(case: Case, clock: FakeClock, call: Callable[..., Any]) -> None:
    clock.advance(60.0)  # past any reopening the callback's error caused
    for _ in range(3):  # enough probes and successes to close it again
        assert call(lambda: "ok") == "ok"
    if case.breaker is not None:
        assert case.breaker.state is CircuitState.CLOSED
    if case.stack is not None and case.stack.bulkhead is not None:
        assert case.stack.bulkhead.metrics().active == 0


def _sync_caller(case: Case) -> Callable[..., Any]:
    return case.run


def _async_caller(case: Case) -> Callable[..., Any]:
    stack, breaker = case.stack, case.breaker
    target: Any = stack or breaker or case.run.__self__  # type: ignore[attr-defined]

    def call(fn: Callable[[], Any]) -> Any:
        async def coroutine() -> Any:
            return fn()

        return asyncio.run(target.call_async(coroutine))

    return call


@pytest.mark.parametrize("shape", ["policy", "stack"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("raises", sorted(RAISES))
@pytest.mark.parametrize("callback", CALLBACKS)
def test_a_raising_callback_reaches_the_caller_and_leaves_nothing_behind(
    callback: str, raises: str, flavour: str, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = RAISES[raises]()
    with fake_clock() as clock:
        case = _build(callback, error, shape)
        call = _sync_caller(case) if flavour == "sync" else _async_caller(case)
        _trip(case, clock)
        if _expected_to_reach_caller(case):
            with pytest.raises(type(error)) as caught:
                call(_trigger(callback))
            assert caught.value is error
        else:
            assert call(_trigger(callback)) == "fine"
            assert "listener" in caplog.text
        _check_nothing_left(case, clock, call)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("raises", sorted(RAISES))
def test_a_raising_key_function_reaches_the_caller_and_leaves_no_key_behind(
    raises: str, flavour: str
) -> None:
    error = RAISES[raises]()
    registry = Registry()

    def key(k: str) -> str:
        if k == "boom":
            raise error
        return k

    if flavour == "sync":

        @with_circuit_breaker("keyed", key=key, registry=registry, max_keys=1)
        def sync_call(k: str) -> str:
            return k

        run: Callable[[str], str] = sync_call
    else:

        @with_circuit_breaker("keyed", key=key, registry=registry, max_keys=1)
        async def async_call(k: str) -> str:
            return k

        def run(k: str) -> str:
            return asyncio.run(async_call(k))

    assert run("a") == "a"
    with pytest.raises(type(error)) as caught:
        run("boom")
    assert caught.value is error
    assert registry.names() == ["keyed[a]"]  # no breaker for the failed call
    # Nothing of the failed call is in flight on "a": the bound drops it.
    assert run("b") == "b"
    assert registry.names() == ["keyed[b]"]


# -- rate limit costs: cost before the call, actual after it -------------------------


def _limited(callback: str, error: BaseException, shape: str, flavour: str) -> Any:
    """A call through one limit (``policy``) or three stacked (``stack``),
    with ``callback`` (``cost`` or ``actual``) raising ``error`` on "boom"."""
    registry = Registry()

    def raising(value: Any) -> float:
        if value in ("boom", "BOOM"):
            raise error
        return 1.0

    weighed = {callback: raising}

    def call(prompt: str) -> str:
        return prompt.upper()

    async def acall(prompt: str) -> str:
        return prompt.upper()

    fn: Any = call if flavour == "sync" else acall
    fn = with_rate_limit("weighed", rate=2, burst=2, registry=registry, **weighed)(fn)
    if shape == "stack":
        fn = with_rate_limit("outer", rate=2, burst=2, registry=registry)(fn)
        fn = with_rate_limit("outermost", cost=1, rate=2, burst=2, registry=registry)(fn)
    names = ("weighed", "outer", "outermost") if shape == "stack" else ("weighed",)
    return fn, [registry.rate_limiter(n) for n in names]


@pytest.mark.parametrize("shape", ["policy", "stack"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("raises", sorted(RAISES))
@pytest.mark.parametrize("callback", ["cost", "actual"])
def test_a_raising_cost_or_actual_reaches_the_caller_and_leaks_no_turn(
    callback: str, raises: str, flavour: str, shape: str
) -> None:
    error = RAISES[raises]()
    with fake_clock():
        fn, limiters = _limited(callback, error, shape, flavour)

        def run(prompt: str) -> Any:
            return fn(prompt) if flavour == "sync" else asyncio.run(fn(prompt))

        with pytest.raises(type(error)) as caught:
            run("boom")
        assert caught.value is error
        # cost raised: no turn was taken; actual raised: the call ran and
        # spent exactly its one turn, nothing more.
        spent = 0 if callback == "cost" else 1
        assert [lim.metrics().available for lim in limiters] == [2 - spent] * len(limiters)
        assert run("ok") == "OK"
