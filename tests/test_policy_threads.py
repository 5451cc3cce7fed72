"""A stack's timeout never moves a sync function to another thread unless
it asks to, and every preset bounds the whole call with a deadline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from resilient import (
    CallTimeoutError,
    Registry,
    Resilience,
    ResiliencePolicies,
    ResiliencePolicy,
    TimeoutConfig,
    with_resilience,
)
from resilient.testing import fake_clock

PRESETS: dict[str, Callable[[], ResiliencePolicy]] = {
    "api": ResiliencePolicies.api,
    "ai": ResiliencePolicies.ai,
    "database": ResiliencePolicies.database,
    "external": ResiliencePolicies.external,
    "critical": ResiliencePolicies.critical,
}
DEADLINES = {"api": 60.0, "ai": 300.0, "database": 60.0, "external": 30.0, "critical": 300.0}


def _thread_of_call(stack: Resilience) -> int:
    return stack.call(threading.get_ident)


def test_a_default_stack_runs_a_sync_function_in_the_callers_thread() -> None:
    local = threading.local()
    local.session = "mine"

    @with_resilience("threads-default", registry=Registry())
    def session() -> tuple[int, str]:
        return threading.get_ident(), local.session

    assert session() == (threading.get_ident(), "mine")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_a_sync_function_in_the_callers_thread(preset: str) -> None:
    stack = Resilience(f"threads-{preset}", PRESETS[preset](), registry=Registry())
    assert _thread_of_call(stack) == threading.get_ident()


def test_a_timeout_that_asks_for_a_thread_gets_one() -> None:
    policy = ResiliencePolicy(timeout=TimeoutConfig(5.0, mode="thread"))
    stack = Resilience("threads-asked", policy, registry=Registry())
    assert _thread_of_call(stack) != threading.get_ident()


def test_a_sync_call_that_overruns_fails_as_it_returns_and_is_retried() -> None:
    attempts: list[int] = []
    with fake_clock() as clock:

        @with_resilience("threads-overrun", timeout=1.0, registry=Registry())
        def slow() -> str:
            attempts.append(threading.get_ident())
            clock.advance(2.0)  # the call takes twice its timeout
            return "late"

        with pytest.raises(CallTimeoutError) as caught:
            slow()
    assert caught.value.timeout == 1.0
    assert len(attempts) == 3  # every attempt timed out and was retried
    assert set(attempts) == {threading.get_ident()}


def test_a_sync_call_in_time_keeps_its_result_and_an_error_passes_as_itself() -> None:
    with fake_clock() as clock:
        stack = Resilience("threads-in-time", ResiliencePolicy(retry=None), registry=Registry())

        def quick() -> str:
            clock.advance(29.0)
            return "ok"

        assert stack.call(quick) == "ok"

        def broken() -> str:
            clock.advance(31.0)
            raise KeyError("own")

        with pytest.raises(KeyError):
            stack.call(broken)


def test_a_coroutine_is_still_cancelled_at_its_timeout() -> None:
    stack = Resilience(
        "threads-async", ResiliencePolicy(timeout=0.05, retry=None), registry=Registry()
    )

    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError):
        asyncio.run(stack.call_async(hang))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_has_an_overall_deadline(preset: str) -> None:
    retry = PRESETS[preset]().retry
    assert retry is not None
    assert retry.deadline == DEADLINES[preset]
