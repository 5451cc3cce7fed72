"""Failover: the next target at once when one fails with an error ``on``
accepts; the first answer wins; a note naming the targets when all fail;
events, counts by the target that answered; sync, async, streams; its place
in ResiliencePolicy."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

import resilient
from resilient import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    Failover,
    FailoverUsed,
    RateLimitExceededError,
    Registry,
    Resilience,
    ResiliencePolicy,
    RetryConfig,
    with_circuit_breaker,
    with_failover,
    with_rate_limit,
)
from resilient._execution.compose import chain_of, handing_back
from resilient.http.errors import ServerError
from resilient.testing import fake_clock


class Retryable(Exception):
    is_retryable = True


def primary(prompt: str) -> str:
    raise Retryable("primary down")


def secondary(prompt: str) -> str:
    return f"secondary:{prompt}"


def tertiary(prompt: str) -> str:
    return f"tertiary:{prompt}"


def test_a_healthy_primary_answers_and_no_alternate_is_called() -> None:
    called: list[str] = []

    def alternate(prompt: str) -> str:
        called.append(prompt)
        return "alt"

    failover = Failover("llm", [alternate])
    ask = failover(lambda prompt: f"primary:{prompt}")
    assert ask("hi") == "primary:hi"
    assert called == []
    assert failover.metrics().answered == {"primary": 1, "alternate": 0}


def test_a_retryable_error_moves_to_the_next_target_at_once() -> None:
    seen: list[Any] = []
    with fake_clock() as clock:
        failover = Failover("llm", [secondary, tertiary])
        failover.subscribe(seen.append)
        ask = failover(primary)
        assert ask("hi") == "secondary:hi"
        assert clock.delays == []
    used = [e for e in seen if isinstance(e, FailoverUsed)]
    assert [(e.name, e.target, type(e.error)) for e in used] == [("llm", "secondary", Retryable)]
    assert failover.metrics() == ({"primary": 0, "secondary": 1, "tertiary": 0}, 1, 0)


def test_an_open_breaker_is_skipped_at_the_cost_of_the_rejection() -> None:
    with fake_clock() as clock, Registry().isolated() as registry:
        calls: list[str] = []

        @with_failover("llm", [secondary])
        @with_circuit_breaker("primary", registry=registry)
        def ask(prompt: str) -> str:
            calls.append(prompt)
            return "primary"

        registry.get("primary").force_open()  # type: ignore[union-attr]
        assert ask("hi") == "secondary:hi"
        assert calls == []
        assert clock.delays == []


def test_a_spent_quota_is_skipped_and_the_alternate_has_its_own_limit() -> None:
    with fake_clock(), Registry().isolated() as registry:
        backup = with_rate_limit("backup", rate=1, registry=registry)(secondary)

        @with_failover("llm", [backup])
        @with_rate_limit("main", rate=1, registry=registry)
        def ask(prompt: str) -> str:
            return f"main:{prompt}"

        assert ask("a") == "main:a"
        assert ask("b") == "secondary:b"
        with pytest.raises(RateLimitExceededError) as caught:
            ask("c")
    assert caught.value.name == "backup"
    assert caught.value.__notes__ == [
        "resilient: failover 'llm' tried primary, secondary; all failed"
    ]


def test_every_target_failing_raises_the_last_error_naming_the_targets() -> None:
    last = Retryable("the last one")

    def fails_too(prompt: str) -> str:
        raise last

    failover = Failover("llm", [fails_too])
    with pytest.raises(Retryable) as caught:
        failover(primary)("hi")
    assert caught.value is last
    assert caught.value.__notes__ == [
        "resilient: failover 'llm' tried primary, fails_too; all failed"
    ]
    assert caught.value.__context__ is None  # not chained onto the primary's error
    assert failover.metrics().exhausted == 1


def test_an_error_on_does_not_accept_is_raised_at_once() -> None:
    called: list[str] = []

    def alternate(prompt: str) -> str:
        called.append(prompt)
        return "alt"

    def broken(prompt: str) -> str:
        raise KeyError(prompt)

    with pytest.raises(KeyError):
        with_failover("llm", [alternate])(broken)("hi")
    assert called == []


def test_http_server_errors_are_retryable_and_fail_over() -> None:
    def failing(prompt: str) -> str:
        raise ServerError("upstream", status_code=503)

    assert with_failover("llm", [secondary])(failing)("x") == "secondary:x"


@pytest.mark.parametrize(
    "on",
    [(KeyError,), lambda error: isinstance(error, KeyError)],
    ids=["types", "predicate"],
)
def test_on_takes_types_or_a_predicate(on: Any) -> None:
    def broken(prompt: str) -> str:
        raise KeyError(prompt)

    assert with_failover("llm", [secondary], on=on)(broken)("x") == "secondary:x"
    with pytest.raises(Retryable):  # no longer accepted: only KeyError is
        with_failover("llm", [secondary], on=on)(primary)("x")


async def test_coroutines_fail_over() -> None:
    async def down(prompt: str) -> str:
        raise Retryable("down")

    async def up(prompt: str) -> str:
        return f"up:{prompt}"

    failover = Failover("llm", [down, up])
    assert failover.metrics().answered == {"primary": 0, "down": 0, "up": 0}
    ask = failover(down)
    assert await ask("x") == "up:x"
    assert failover.metrics().answered == {"primary": 0, "down": 0, "up": 1}
    with pytest.raises(Retryable) as caught:
        await Failover("llm", [down])(down)("x")
    assert caught.value.__notes__ == ["resilient: failover 'llm' tried primary, down; all failed"]


async def test_a_stream_fails_over_before_its_first_item_only() -> None:
    async def broken(n: int) -> AsyncIterator[int]:
        raise Retryable("before the first item")
        yield n  # pragma: no cover

    async def breaks_later(n: int) -> AsyncIterator[int]:
        yield n
        raise Retryable("after the first item")

    async def healthy(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    stream = with_failover("llm", [healthy])(broken)
    assert [i async for i in stream(3)] == [0, 1, 2]
    later = with_failover("llm", [healthy])(breaks_later)
    got: list[int] = []

    async def consume() -> None:
        async for i in later(5):
            got.append(i)

    with pytest.raises(Retryable, match="after the first item"):
        await consume()
    assert got == [5]  # nothing repeated, nothing from the alternate


def test_resilience_policy_puts_failover_between_retry_and_hedging() -> None:
    with fake_clock() as clock, Registry().isolated() as registry:
        policy = ResiliencePolicy(
            circuit_breaker=None,
            timeout=None,
            retry=RetryConfig(max_attempts=3, initial_delay=1.0, jitter=0.0),
            failover=Failover("ignored", [secondary]),
        )
        stack = Resilience("llm", policy, registry=registry)
        assert repr(stack) == "<Resilience 'llm' retry > failover>"
        assert stack.call(primary, "x") == "secondary:x"
        assert clock.delays == []  # the alternate answered: no retry
        assert stack.failover is not None
        assert stack.failover.name == "llm"


def test_retry_outside_failover_tries_every_target_again() -> None:
    rounds: list[str] = []

    def flaky(prompt: str) -> str:
        rounds.append("alt")
        raise Retryable("alt down")

    with fake_clock() as clock, Registry().isolated() as registry:
        stack = Resilience(
            "llm",
            ResiliencePolicy(
                circuit_breaker=None,
                timeout=None,
                retry=RetryConfig(max_attempts=2, initial_delay=1.0, jitter=0.0),
                failover=Failover("llm", [flaky]),
            ),
            registry=registry,
        )
        with pytest.raises(Retryable):
            stack.call(primary, "x")
        assert rounds == ["alt", "alt"]
        assert clock.delays == [1.0]


def test_breaker_rejections_fail_over_by_default() -> None:
    error = CircuitOpenError("primary", "open", 5.0)

    def rejected(prompt: str) -> str:
        raise error

    assert with_failover("llm", [secondary])(rejected)("x") == "secondary:x"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "", "alternates": []}, ValueError, "name"),
        ({"name": "x", "alternates": secondary}, TypeError, "alternates"),
        ({"name": "x", "alternates": "ab"}, TypeError, "alternates"),
        ({"name": "x", "alternates": [3]}, TypeError, "alternates"),
        ({"name": "x", "alternates": [], "on": 3}, TypeError, "on"),
        ({"name": "x", "alternates": [], "on": (int,)}, TypeError, "on"),
    ],
    ids=["empty-name", "not-a-sequence", "a-string", "not-callable", "bad-on", "not-exceptions"],
)
def test_bad_settings_name_the_field(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Failover(**kwargs)


def test_the_policy_field_must_be_a_failover() -> None:
    with pytest.raises(TypeError, match="failover"):
        ResiliencePolicy(failover=[secondary])  # type: ignore[arg-type]


def test_interrupts_are_never_failed_over() -> None:
    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with_failover("llm", [secondary])(interrupted)("x")

    async def cancelled(prompt: str) -> str:
        raise asyncio.CancelledError

    async def up(prompt: str) -> str:
        return "up"

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(with_failover("llm", [up])(cancelled)("x"))


# -- a primary whose breaker is open: its refusal handed back, not raised ---------


def _opened(registry: Registry, failover: Failover) -> Any:
    """``failover`` around a breaker opened by two real failures."""
    failing = [True]

    @failover
    @with_circuit_breaker("primary", registry=registry, failure_threshold=2)
    def ask(prompt: str) -> str:
        if failing[0]:
            raise Retryable("down")
        return f"primary:{prompt}"

    for _ in range(2):
        assert ask("warm") == "secondary:warm"
    assert registry.get("primary").state.value == "open"  # type: ignore[union-attr]
    return ask


def test_an_opened_breaker_hands_its_refusal_to_the_failover_unraised() -> None:
    offered: list[BaseException] = []

    def on(error: BaseException) -> bool:
        offered.append(error)
        return True

    with fake_clock() as clock, Registry().isolated() as registry:
        failover = Failover("llm", [secondary], on=on)
        ask = _opened(registry, failover)
        offered.clear()
        assert ask("hi") == "secondary:hi"
        assert ask("ho") == "secondary:ho"
        assert clock.delays == []
    assert [type(e) for e in offered] == [CircuitOpenError, CircuitOpenError]
    assert offered[0].args[:2] == ("primary", "open")
    # Handed back, never raised: no traceback was ever made for it.
    assert [e.__traceback__ for e in offered] == [None, None]
    assert failover.metrics() == ({"primary": 0, "secondary": 4}, 4, 0)


def test_a_handed_back_refusal_with_no_target_left_is_raised_with_the_note() -> None:
    with fake_clock(), Registry().isolated() as registry:
        ask = _opened(registry, Failover("llm", [secondary]))
        lone = with_failover("alone", [])(registry_breaker_call(registry))
        with pytest.raises(CircuitOpenError) as caught:
            lone("hi")
        assert ask("x") == "secondary:x"
    assert caught.value.__notes__ == ["resilient: failover 'alone' tried primary; all failed"]


def registry_breaker_call(registry: Registry) -> Any:
    """A function behind the (open) breaker ``primary`` of ``registry``."""

    @with_circuit_breaker(registry.get("primary"))  # type: ignore[arg-type]
    def direct(prompt: str) -> str:
        return prompt

    return direct


def test_a_handed_back_refusal_on_does_not_accept_is_raised_as_it_is() -> None:
    with fake_clock(), Registry().isolated() as registry:
        _opened(registry, Failover("llm", [secondary]))
        strict = with_failover("strict", [secondary], on=(Retryable,))(
            registry_breaker_call(registry)
        )
        with pytest.raises(CircuitOpenError) as caught:
            strict("hi")
    assert not getattr(caught.value, "__notes__", [])


def test_skipping_an_opened_breaker_emits_the_rejection_and_the_switch() -> None:
    seen: list[Any] = []
    with fake_clock(), Registry().isolated() as registry:
        failover = Failover("llm", [secondary])
        ask = _opened(registry, failover)
        unsubscribe = resilient.subscribe(seen.append)
        try:
            assert ask("hi") == "secondary:hi"
        finally:
            unsubscribe()
    rejected = [e for e in seen if isinstance(e, CallRejected)]
    used = [e for e in seen if isinstance(e, FailoverUsed)]
    assert [(e.name, e.state) for e in rejected] == [("primary", "open")]
    assert [(e.name, e.target, type(e.error)) for e in used] == [
        ("llm", "secondary", CircuitOpenError)
    ]


def test_a_copy_of_a_closures_attributes_is_not_offered_a_hand_back() -> None:
    with Registry().isolated() as registry:

        @with_failover("llm", [secondary])
        @with_circuit_breaker("primary", registry=registry)
        def ask(prompt: str) -> str:
            return prompt

        closure = chain_of(ask)
        assert closure is not None
        inner = CircuitBreaker("inner")._wrap_sync(secondary, "inner")
        assert handing_back(inner) is not None

        @functools.wraps(inner)
        def impostor(prompt: str) -> str:
            return "impostor"

        assert handing_back(impostor) is None


def test_offering_a_hand_back_makes_no_reference_cycle() -> None:
    # A closure that held its own offer was a cycle: the breaker and its
    # counters lived on until the cyclic collector ran, and a collector
    # subscribed meanwhile was told of their retirement.
    import gc
    import weakref

    gc.collect()
    breaker = CircuitBreaker("inner")
    inner = breaker._wrap_sync(secondary, "inner")
    assert handing_back(inner) is not None
    gone = weakref.ref(breaker)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del breaker, inner
        assert gone() is None  # freed by reference counting alone
    finally:
        if was_enabled:
            gc.enable()


def test_a_breaker_whose_call_offered_a_hand_back_is_still_collected() -> None:
    # ``call`` keeps its chain on the breaker; the offer must not keep the
    # breaker alive through it (a table of offers did, for good).
    import gc
    import weakref

    breaker = CircuitBreaker("called")
    assert breaker.call(secondary, "hi") == secondary("hi")
    gone = weakref.ref(breaker)
    del breaker
    gc.collect()
    assert gone() is None
