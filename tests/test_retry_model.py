"""Retry's delay sequences against a model written from docs/retry.md alone.

For random configs (every jitter strategy, deadlines, Retry-After on or off)
and random scripts of attempt outcomes (errors with or without
``retry_after``, errors never retried, results to retry, open breakers,
interrupts, slow attempts), the model predicts the waits, the ``on_retry``
calls, the number of attempts, the outcome, and what a listener gets; the
real ``Retry`` must match through every way in: ``retry.call(fn)``, a
decorated function, ``await retry.call_async(fn)`` and a decorated
coroutine function (Retry has no context manager).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient import CircuitOpenError, Retry, RetryConfig, events, with_retry
from resilient.testing import fake_clock


class Boom(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("boom")
        if retry_after is not None:
            self.retry_after = retry_after


class Fatal(Exception):
    """In ``give_up_on``: never retried."""


AGAIN = "again"  # a result that retry_if_result rejects


@dataclass(frozen=True)
class Step:
    """One attempt: it takes ``duration`` seconds, then does ``what``."""

    what: str  # "ok", "again", "boom", "fatal", "open", "interrupt"
    duration: float = 0.0
    retry_after: float | None = None  # for "boom"
    remaining: float = 0.0  # for "open"

    def outcome(self) -> tuple[BaseException | None, object]:
        if self.what == "ok":
            return None, "ok"
        if self.what == "again":
            return None, AGAIN
        if self.what == "boom":
            return Boom(self.retry_after), None
        if self.what == "fatal":
            return Fatal(), None
        if self.what == "open":
            state = (
                "forced_open"
                if math.isinf(self.remaining)
                else "open"
                if self.remaining
                else "half_open"  # its probes busy: nothing to wait for
            )
            return CircuitOpenError("dep", state, self.remaining), None
        return KeyboardInterrupt(), None


# -- the model ----------------------------------------------------------------------


@dataclass
class Expected:
    sleeps: list[float]
    hooks: list[tuple[int, str | None, float]]
    attempts: int
    error: str | None  # the type name raised, or None when a result is returned
    result: object = None
    noted_attempts: int | None = None  # "gave up after N attempts", if noted
    exhausted: bool = False  # retrying stopped on a retryable outcome (RetriesExhausted)
    retry_after: list[float | None] = field(default_factory=list)  # honoured, per hook


def model(cfg: RetryConfig, seed: int, script: list[Step]) -> Expected:
    """docs/retry.md, "Backoff and jitter" to "Around a circuit breaker"."""
    rng = random.Random(seed)
    initial, maximum = cfg.initial_delay, cfg.max_delay
    previous = initial  # decorrelated: "initial_delay at first"
    elapsed = 0.0
    sleeps: list[float] = []
    hooks: list[tuple[int, str | None, float]] = []
    retry_after: list[float | None] = []

    def done(n: int, error: BaseException | None, result: object, exhausted: bool) -> Expected:
        name = type(error).__name__ if error is not None else None
        noted = n if error is not None and (exhausted or n > 1) else None
        return Expected(
            sleeps, hooks, n, name, result if error is None else None, noted, exhausted, retry_after
        )

    def base(n: int) -> float:
        return min(maximum, initial * cfg.multiplier ** (n - 1))

    def wait(n: int) -> float:
        nonlocal previous
        jitter = cfg.jitter
        if jitter == "full":
            return rng.uniform(0, base(n))
        if jitter == "equal":
            return base(n) / 2 + rng.uniform(0, base(n) / 2)
        if jitter == "decorrelated":
            previous = min(maximum, rng.uniform(initial, 3 * previous))
            return previous
        assert isinstance(jitter, float)
        if jitter == 0.0 or base(n) == 0.0:
            return base(n)  # "exactly base(n), and draws nothing from rng"
        return min(maximum, base(n) * (1 + rng.uniform(-jitter, jitter)))

    for n in range(1, cfg.max_attempts + 1):
        step = script[n - 1]
        elapsed += step.duration
        error, result = step.outcome()
        if step.what == "ok":
            return done(n, None, result, exhausted=False)
        if step.what == "interrupt":
            # never retried, never noted
            return Expected(sleeps, hooks, n, "KeyboardInterrupt", retry_after=retry_after)
        if step.what == "fatal":
            # "(after some retries) an error that is not retried" is noted
            return done(n, error, None, exhausted=False)
        if n == cfg.max_attempts:
            # "the last result is returned" / "the last exception itself is
            # re-raised", noted; except for one attempt: "a pass-through"
            return done(n, error, result, exhausted=n > 1)
        asked: float | None = None
        if step.what == "open":
            # "gives up at once" when it stays open past max_delay, is
            # half-open with no probe free, or the wait passes the deadline;
            # else "wakes at remaining plus up to 10 %" (the jitter fraction,
            # at most 0.1; 0.1 for a strategy), cut at the deadline.
            left = step.remaining
            if left > maximum or left == 0:
                return done(n, error, result, exhausted=True)
            room = math.inf if cfg.deadline is None else cfg.deadline - elapsed
            if left > room:
                return done(n, error, result, exhausted=True)
            jitter = cfg.jitter
            spread = 0.1 if isinstance(jitter, str) else min(0.1, jitter)
            delay = min(left + left * rng.uniform(0, spread), room) if spread else left
        else:
            delay = wait(n)
            if cfg.respect_retry_after and step.retry_after is not None:
                asked = step.retry_after
                delay = max(delay, asked)  # "at least that long"
        if cfg.deadline is not None and elapsed + delay > cfg.deadline:
            return done(n, error, result, exhausted=True)
        if step.what != "open" and delay > maximum:  # "a retry_after past max_delay: give up"
            return done(n, error, result, exhausted=True)
        hooks.append((n, type(error).__name__ if error is not None else None, delay))
        retry_after.append(asked)
        if delay > 0:  # a wait of 0 sleeps not at all
            sleeps.append(delay)
        elapsed += delay
    raise AssertionError("unreachable: the last attempt always decides")


# -- running the real thing --------------------------------------------------------------

# The ways in, as users write them; Retry has no context manager.
PATHS = ("call", "decorated", "call_async", "decorated_async")


@dataclass
class Observed:
    sleeps: list[float]
    hooks: list[tuple[int, str | None, float]]
    attempts: int
    error: str | None
    result: object = None
    noted_attempts: int | None = None
    seen: list[events.Event] = field(default_factory=list)  # what a listener got


def _noted(error: BaseException) -> int | None:
    for note in getattr(error, "__notes__", ()):
        if note.startswith("resilient: gave up after "):
            return int(note.split()[4])
    return None


def run(path: str, fields: dict[str, Any], seed: int, script: list[Step], listen: bool) -> Observed:
    """One call of a function that follows ``script``, through ``path``."""
    hooks: list[tuple[int, str | None, float]] = []
    retry = Retry(_config(fields, seed, hooks), listeners=events.ListenerSet())
    seen: list[events.Event] = []
    if listen:
        retry.subscribe(seen.append)
    attempts = 0

    with fake_clock() as clock:

        def attempt() -> object:
            nonlocal attempts
            step = script[attempts]
            attempts += 1
            clock.advance(step.duration)
            error, result = step.outcome()
            if error is not None:
                raise error
            return result

        async def attempt_async() -> object:
            return attempt()

        fn = attempt_async if path.endswith("async") else attempt
        try:
            if path == "call":
                result = retry.call(attempt)
            elif path == "decorated":
                result = with_retry(retry)(attempt)()
            elif path == "call_async":
                result = asyncio.run(retry.call_async(attempt_async))
            else:
                assert path == "decorated_async"
                result = asyncio.run(with_retry(retry)(attempt_async)())
        except BaseException as exc:  # KeyboardInterrupt is one of the outcomes
            name = type(exc).__name__
            observed = Observed(list(clock.sleeps), hooks, attempts, name, None, _noted(exc), seen)
        else:
            observed = Observed(list(clock.sleeps), hooks, attempts, None, result, None, seen)
    # An unnamed Retry reports under the name of the function it runs.
    assert all(e.name == fn.__qualname__ and e.policy == "retry" for e in seen), seen
    return observed


def _config(
    fields: dict[str, Any], seed: int, hooks: list[tuple[int, str | None, float]]
) -> RetryConfig:
    def on_retry(attempt: int, error: BaseException | None, delay: float) -> None:
        hooks.append((attempt, type(error).__name__ if error is not None else None, delay))

    return RetryConfig(
        **fields,
        give_up_on=(Fatal,),
        retry_if_result=lambda result: result == AGAIN,
        on_retry=on_retry,
        rng=random.Random(seed),
    )


# -- strategies ------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    initial = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    return {
        "max_attempts": draw(st.integers(1, 7)),
        "initial_delay": initial,
        "max_delay": initial + draw(st.sampled_from([0.0, 0.5, 2.0, 10.0])),
        "multiplier": draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])),
        "jitter": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, "full", "equal", "decorrelated"])),
        "deadline": draw(st.none() | st.sampled_from([0.5, 3.0, 10.0])),
        "respect_retry_after": draw(st.booleans()),
    }


STEPS = st.one_of(
    st.builds(Step, st.sampled_from(["ok", "again", "fatal"]), st.sampled_from([0.0, 0.25, 1.0])),
    st.builds(
        Step,
        st.just("boom"),
        st.sampled_from([0.0, 0.25, 1.0]),
        retry_after=st.none() | st.sampled_from([0.0, 0.5, 3.0, 100.0]),
    ),
    st.builds(
        Step,
        st.just("open"),
        remaining=st.sampled_from([0.0, 0.25, 1.5, 20.0, math.inf]),
    ),
    st.just(Step("interrupt")),
)

# Failures are more interesting than early successes: weight the script.
SCRIPTS = st.lists(STEPS.filter(lambda s: s.what != "ok") | STEPS, min_size=7, max_size=7)


def _same(observed: Observed, expected: Expected) -> None:
    assert observed.sleeps == pytest.approx(expected.sleeps, rel=1e-12, abs=1e-12)
    assert [(a, e) for a, e, _ in observed.hooks] == [(a, e) for a, e, _ in expected.hooks]
    assert [d for *_, d in observed.hooks] == pytest.approx([d for *_, d in expected.hooks])
    assert observed.attempts == expected.attempts
    assert observed.error == expected.error
    assert observed.result == expected.result
    assert observed.noted_attempts == expected.noted_attempts


def _summary(event: events.Event) -> tuple[Any, ...]:
    if isinstance(event, events.CallStarted):
        return ("started", event.level)
    if isinstance(event, events.RateLimited):
        return ("rate_limited", event.retry_after)
    if isinstance(event, events.RetryAttempted):
        return ("retry", event.attempt, _name(event.error), event.delay)
    if isinstance(event, events.RetriesExhausted):
        return ("exhausted", event.attempts, _name(event.error))
    if isinstance(event, events.CallSucceeded):
        return ("succeeded", event.level)
    if isinstance(event, events.CallFailed):
        return ("failed", event.level, _name(event.error))
    if isinstance(event, events.CallRejected):
        return ("rejected", event.level, event.state, event.remaining)
    raise AssertionError(f"unexpected event {event!r}")


def _name(error: BaseException | None) -> str | None:
    return type(error).__name__ if error is not None else None


def _expected_events(expected: Expected, observed: Observed, script: list[Step]) -> list[Any]:
    """One request around the whole loop: started; for each retry, the
    Retry-After it honours and the retry (with the delay ``on_retry`` got);
    giving up; then the request's end as its caller saw it (none for an
    interrupt)."""
    seen: list[Any] = [("started", events.REQUEST)]
    for (attempt, error, _), (_, _, delay), asked in zip(
        expected.hooks, observed.hooks, expected.retry_after, strict=True
    ):
        if asked is not None:
            seen.append(("rate_limited", asked))
        seen.append(("retry", attempt, error, delay))
    if expected.exhausted:
        seen.append(("exhausted", expected.attempts, expected.error))
    if expected.error is None:
        seen.append(("succeeded", events.REQUEST))
    elif expected.error == "CircuitOpenError":
        last = script[expected.attempts - 1]
        error = last.outcome()[0]
        assert isinstance(error, CircuitOpenError)
        state = error.state
        seen.append(("rejected", events.REQUEST, state, last.remaining))
    elif expected.error != "KeyboardInterrupt":
        seen.append(("failed", events.REQUEST, expected.error))
    return seen


@settings(
    max_examples=int(os.environ.get("RESILIENT_MODEL_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fields=configs(), seed=st.integers(0, 2**32), script=SCRIPTS, listen=st.booleans())
def test_retry_follows_the_documented_schedule(
    fields: dict[str, Any], seed: int, script: list[Step], listen: bool
) -> None:
    expected = model(RetryConfig(**fields), seed, script)
    for path in PATHS:
        if expected.error == "KeyboardInterrupt" and path.endswith("async"):
            continue  # asyncio.run re-raises it out of the loop
        observed = run(path, fields, seed, script, listen)
        _same(observed, expected)
        if listen:
            summary = [_summary(e) for e in observed.seen]
            assert summary == _expected_events(expected, observed, script), path
        else:
            assert observed.seen == []
