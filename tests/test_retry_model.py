"""Retry's delay sequences against a model written from docs/retry.md alone.

For random configs (every jitter strategy, deadlines, Retry-After on or off)
and random scripts of attempt outcomes (errors with or without
``retry_after``, errors never retried, results to retry, open breakers,
interrupts, slow attempts), the model predicts the waits, the ``on_retry``
calls, the number of attempts and the outcome; the real ``Retry`` must
match on the sync and the async path alike.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient import CircuitOpenError, Retry, RetryConfig
from resilient.testing import FakeClock, fake_clock


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
            state = "forced_open" if math.isinf(self.remaining) else "open"
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


def model(cfg: RetryConfig, seed: int, script: list[Step]) -> Expected:
    """docs/retry.md, "Backoff and jitter" to "Around a circuit breaker"."""
    rng = random.Random(seed)
    initial, maximum = cfg.initial_delay, cfg.max_delay
    previous = initial  # decorrelated: "initial_delay at first"
    elapsed = 0.0
    sleeps: list[float] = []
    hooks: list[tuple[int, str | None, float]] = []

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
        if jitter == 0.0:
            return base(n)  # "0.0 is exactly base(n)"
        return min(maximum, base(n) * (1 + rng.uniform(-jitter, jitter)))

    for n in range(1, cfg.max_attempts + 1):
        step = script[n - 1]
        elapsed += step.duration
        error, result = step.outcome()
        name = type(error).__name__ if error is not None else None
        if step.what == "ok":
            return Expected(sleeps, hooks, n, None, result)
        if step.what == "interrupt":
            return Expected(sleeps, hooks, n, name)  # never retried, never noted
        if step.what == "fatal":
            # "(after some retries) an error that is not retried" is noted
            return Expected(sleeps, hooks, n, name, noted_attempts=n if n > 1 else None)
        if n == cfg.max_attempts:
            # "the last result is returned" / "the last exception itself is
            # re-raised", noted; except for one attempt: "a pass-through"
            if error is None:
                return Expected(sleeps, hooks, n, None, result)
            return Expected(sleeps, hooks, n, name, noted_attempts=n if n > 1 else None)
        if step.what == "open" and step.remaining > 0:
            if step.remaining > maximum:
                return Expected(sleeps, hooks, n, name, noted_attempts=n)
            delay = step.remaining  # the breaker's remaining time, as is
        else:
            delay = wait(n)
            if cfg.respect_retry_after and step.retry_after is not None:
                delay = max(delay, step.retry_after)  # "at least that long"
        if cfg.deadline is not None and elapsed + delay > cfg.deadline:
            if error is None:
                return Expected(sleeps, hooks, n, None, result)
            return Expected(sleeps, hooks, n, name, noted_attempts=n)
        hooks.append((n, name, delay))
        if delay > 0:  # a wait of 0 sleeps not at all
            sleeps.append(delay)
        elapsed += delay
    raise AssertionError("unreachable: the last attempt always decides")


# -- running the real thing --------------------------------------------------------------


@dataclass
class Observed:
    sleeps: list[float]
    hooks: list[tuple[int, str | None, float]]
    attempts: int
    error: str | None
    result: object = None
    noted_attempts: int | None = None


def _noted(error: BaseException) -> int | None:
    for note in getattr(error, "__notes__", ()):
        if note.startswith("resilient: gave up after "):
            return int(note.split()[4])
    return None


def _observe(
    clock: FakeClock, hooks: list[Any], attempts: int, error: BaseException | None, result: object
) -> Observed:
    if error is None:
        return Observed(list(clock.sleeps), hooks, attempts, None, result)
    return Observed(list(clock.sleeps), hooks, attempts, type(error).__name__, None, _noted(error))


def run_sync(fields: dict[str, Any], seed: int, script: list[Step]) -> Observed:
    hooks: list[tuple[int, str | None, float]] = []
    cfg = _config(fields, seed, hooks)
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

        try:
            result = Retry(cfg).call(attempt)
        except BaseException as exc:  # KeyboardInterrupt is one of the outcomes
            return _observe(clock, hooks, attempts, exc, None)
        return _observe(clock, hooks, attempts, None, result)


def run_async(fields: dict[str, Any], seed: int, script: list[Step]) -> Observed:
    hooks: list[tuple[int, str | None, float]] = []
    cfg = _config(fields, seed, hooks)
    attempts = 0

    with fake_clock() as clock:

        async def attempt() -> object:
            nonlocal attempts
            step = script[attempts]
            attempts += 1
            clock.advance(step.duration)
            error, result = step.outcome()
            if error is not None:
                raise error
            return result

        async def main() -> Observed:
            try:
                result = await Retry(cfg).call_async(attempt)
            except Exception as exc:
                return _observe(clock, hooks, attempts, exc, None)
            return _observe(clock, hooks, attempts, None, result)

        return asyncio.run(main())


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


@settings(
    max_examples=int(os.environ.get("RESILIENT_MODEL_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fields=configs(), seed=st.integers(0, 2**32), script=SCRIPTS)
def test_retry_follows_the_documented_schedule(
    fields: dict[str, Any], seed: int, script: list[Step]
) -> None:
    expected = model(RetryConfig(**fields), seed, script)
    _same(run_sync(fields, seed, script), expected)
    if expected.error != "KeyboardInterrupt":  # asyncio.run re-raises it out of the loop
        _same(run_async(fields, seed, script), expected)
