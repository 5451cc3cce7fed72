"""``RetryConfig``, ``RetryPolicies`` and ``Retry``: run a call again when it fails.

The rules — the delay schedule and when to stop — are pure functions in
``resilient.retry.backoff``; ``Retry._plan`` feeds them after each failed
attempt and announces the outcome. The sync and async loops both drive it
and differ only in how they sleep.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from .. import events
from .._execution import streams as _streams
from .._execution.compose import watching
from .._execution.policy_base import PolicyBase
from .._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from .._runtime import clock as _clock
from .._runtime import validation as _validate
from .._runtime.environment import defaults
from .._runtime.mapping import FromDict
from .._runtime.switch import switch
from ..circuit_breaker import waiting as _waiting
from ..errors import CircuitOpenError
from ..events import METERED
from .backoff import (
    DEFAULT_RANDOM,
    JITTER_STRATEGIES,
    Backoff,
    Circuit,
    JitterStrategy,
    Plan,
    may_wait_for_circuit,
    plan,
    retry_after_of,
)
from .budget import RetryBudget

if TYPE_CHECKING:
    from .._execution.request import Request

__all__ = ["Retry", "RetryConfig", "RetryPolicies"]

R = TypeVar("R")

log = logging.getLogger("resilient")

_OWNER = "RetryConfig"

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig(FromDict):
    """When to try again and how long to wait. Validated at construction.

    Attributes:
        max_attempts: attempts in all, the first call included.
        initial_delay: seconds before the second attempt.
        max_delay: the longest wait, in seconds.
        multiplier: each wait is the previous one times this (>= 1).
        jitter: a fraction (±) of each wait, or ``"full"``, ``"equal"``,
            ``"decorrelated"`` (formulas in the docs).
        retry_on: exception types, or a predicate on the exception.
        give_up_on: exception types never retried (they win over ``retry_on``).
        retry_if_result: ``result -> bool``: a result to try again on.
        on_retry: called as ``on_retry(attempt, error, delay)`` before each wait.
        wait: ``wait(attempt, error, result) -> float | None`` picks the wait
            after failed attempt ``attempt`` (``error`` is None when a
            result is retried); ``None`` means the configured backoff. The
            deadline, ``max_delay`` and ``Retry-After`` rules still apply.
        respect_retry_after: wait what an error's ``retry_after`` says.
        deadline: seconds from the first attempt that bound the whole.
        rng: the random source of the jitter (a seeded ``random.Random``
            gives an exact sequence).
        budget: a ``RetryBudget`` shared by every retry holding it: a
            retry it refuses gives up (``None``: no budget).
    """

    # The presets, set below the class.
    DEFAULT: ClassVar[RetryConfig]
    AGGRESSIVE: ClassVar[RetryConfig]
    NO_RETRY: ClassVar[RetryConfig]

    _durations = frozenset({"initial_delay", "max_delay", "deadline"})

    max_attempts: int = field(default_factory=lambda: defaults.retry_max_attempts)
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float | JitterStrategy = 0.1
    retry_on: RetryOn = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()
    retry_if_result: Callable[[Any], bool] | None = None
    on_retry: Callable[[int, BaseException | None, float], object] | None = None
    wait: Callable[[int, BaseException | None, Any], float | None] | None = None
    respect_retry_after: bool = True
    deadline: float | None = None
    rng: random.Random | None = None
    budget: RetryBudget | None = None

    def __post_init__(self) -> None:
        v = _validate
        v.int_at_least(_OWNER, "max_attempts", self.max_attempts, 1)
        initial = v.seconds(_OWNER, "initial_delay", self.initial_delay)
        maximum = v.seconds(_OWNER, "max_delay", self.max_delay)
        if maximum < initial:
            raise ValueError(
                f"{_OWNER}.max_delay must be >= initial_delay ({initial!r}), got {self.max_delay!r}"
            )
        multiplier = v.number(_OWNER, "multiplier", self.multiplier, 1)
        object.__setattr__(self, "initial_delay", initial)
        object.__setattr__(self, "max_delay", maximum)
        object.__setattr__(self, "multiplier", multiplier)
        object.__setattr__(self, "jitter", _jitter(self.jitter))
        retry_on = self.retry_on
        if isinstance(retry_on, (type, tuple)):
            retry_on = v.exception_types(_OWNER, "retry_on", retry_on)
            object.__setattr__(self, "retry_on", retry_on)
        elif not callable(retry_on):
            raise TypeError(
                f"{_OWNER}.retry_on must be exception types or a predicate, got {retry_on!r}"
            )
        object.__setattr__(
            self, "give_up_on", v.exception_types(_OWNER, "give_up_on", self.give_up_on)
        )
        v.callable_or_none(_OWNER, "retry_if_result", self.retry_if_result)
        v.callable_or_none(_OWNER, "on_retry", self.on_retry)
        v.callable_or_none(_OWNER, "wait", self.wait)
        if not isinstance(self.respect_retry_after, bool):
            raise TypeError(
                f"{_OWNER}.respect_retry_after must be a bool, got {self.respect_retry_after!r}"
            )
        object.__setattr__(self, "deadline", v.seconds_or_none(_OWNER, "deadline", self.deadline))
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise TypeError(f"{_OWNER}.rng must be a random.Random or None, got {self.rng!r}")
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise TypeError(f"{_OWNER}.budget must be a RetryBudget or None, got {self.budget!r}")


def _jitter(value: object) -> float | str:
    if isinstance(value, str):
        if value not in JITTER_STRATEGIES:
            raise ValueError(
                f"{_OWNER}.jitter must be a fraction in [0, 1] or one of "
                f"{', '.join(map(repr, JITTER_STRATEGIES))}, got {value!r}"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{_OWNER}.jitter must be a fraction in [0, 1] or a strategy name, got {value!r}"
        )
    if not 0 <= value <= 1:
        raise ValueError(f"{_OWNER}.jitter must be a fraction in [0, 1], got {value!r}")
    return float(value)


RetryConfig.DEFAULT = RetryConfig(max_attempts=3, initial_delay=1.0)
RetryConfig.AGGRESSIVE = RetryConfig(max_attempts=5, initial_delay=0.5)
RetryConfig.NO_RETRY = RetryConfig(max_attempts=1)


class RetryPolicies:
    """Ready-made retry configurations for common dependencies."""

    @staticmethod
    def fixed(max_attempts: int = 3, delay: float = 1.0) -> RetryConfig:
        """The same wait every time, no jitter."""
        return RetryConfig(
            max_attempts=max_attempts,
            initial_delay=delay,
            max_delay=delay,
            multiplier=1.0,
            jitter=0.0,
        )

    @staticmethod
    def exponential(
        max_attempts: int = 3, initial_delay: float = 1.0, max_delay: float = 30.0
    ) -> RetryConfig:
        """Doubling waits from ``initial_delay`` up to ``max_delay``, ±10 % jitter."""
        return RetryConfig(
            max_attempts=max_attempts, initial_delay=initial_delay, max_delay=max_delay
        )

    @staticmethod
    def api_rate_limit() -> RetryConfig:
        """For rate-limited APIs: 5 attempts, full jitter up to 60 s, and a
        server's ``retry_after`` honoured."""
        return RetryConfig(
            max_attempts=5,
            initial_delay=1.0,
            max_delay=60.0,
            jitter="full",
            respect_retry_after=True,
        )

    @staticmethod
    def network() -> RetryConfig:
        """For connection trouble only (``ConnectionError``, ``TimeoutError``):
        4 attempts, decorrelated jitter from 0.5 s up to 10 s."""
        return RetryConfig(
            max_attempts=4,
            initial_delay=0.5,
            max_delay=10.0,
            jitter="decorrelated",
            retry_on=(ConnectionError, TimeoutError),
        )


def _plural(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


class Retry(PolicyBase):
    """Run a call up to ``config.max_attempts`` times. Stateless between calls,
    so one instance serves any number of threads and tasks.

    Args:
        config: a ``RetryConfig`` (default: ``RetryConfig()``).
        name: names its events and log lines; without one, the name of the
            function called is used.
    """

    _kind = "retry"

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        name: str | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        if config is not None and not isinstance(config, RetryConfig):
            raise TypeError(f"Retry config must be a RetryConfig, got {config!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Retry name must be a non-empty str or None, got {name!r}")
        cfg = config if config is not None else RetryConfig()
        self.config = cfg
        self.name = name
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._backoff = Backoff(cfg.initial_delay, cfg.max_delay, cfg.multiplier, cfg.jitter)
        # Read on every call: kept as plain attributes.
        self._deadline = cfg.deadline
        self._check_result = cfg.retry_if_result
        self._first_attempt = cfg.budget.first_attempt if cfg.budget is not None else None

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"<Retry{named} max_attempts={self.config.max_attempts}>"

    # -- the rules, shared by both loops ---------------------------------------

    def _retryable(self, error: BaseException) -> bool:
        cfg = self.config
        if isinstance(error, cfg.give_up_on):
            return False
        retry_on = cfg.retry_on
        if isinstance(retry_on, tuple):
            return isinstance(error, retry_on)
        return bool(retry_on(error))

    def _plan(
        self,
        name: str,
        attempt: int,
        error: BaseException | None,
        start: float,
        previous: float,
        result: Any = None,
    ) -> tuple[Plan, _waiting.WaitTicket | None] | None:
        """After failed attempt ``attempt`` (an error, or a result that
        ``retry_if_result`` rejected when ``error`` is None): the wait before
        the next one (with the breaker's wait ticket when it is a wait for
        an open breaker; release it when the next attempt ends), or None to
        stop. The rules are ``_backoff.plan``; this gathers their inputs
        and announces the outcome.

        Stopping on a retryable outcome notes the attempts on the error and
        emits ``RetriesExhausted``; the caller then re-raises or returns.
        """
        cfg = self.config
        if error is not None and not self._retryable(error):
            if attempt > 1:
                error.add_note(
                    f"resilient: gave up after {_plural(attempt)} "
                    f"({type(error).__name__} is not retried)"
                )
            return None
        if cfg.max_attempts == 1:
            return None  # nothing to give up: a pass-through
        deadline = self._deadline
        elapsed = _clock.monotonic() - start if deadline is not None else 0.0
        circuit = ticket = None
        if isinstance(error, CircuitOpenError):
            circuit, ticket = self._circuit(error, attempt, elapsed)
        chosen = None
        if cfg.wait is not None and circuit is None and attempt < cfg.max_attempts:
            chosen = self._chosen_wait(attempt, error, result)
        next_wait = plan(
            self._backoff,
            cfg.rng if cfg.rng is not None else DEFAULT_RANDOM,
            attempt=attempt,
            max_attempts=cfg.max_attempts,
            previous=previous,
            elapsed=elapsed,
            deadline=deadline,
            retry_after=retry_after_of(error) if cfg.respect_retry_after else None,
            circuit=circuit,
            chosen=chosen,
        )
        if next_wait.stop is not None:
            if ticket is not None:
                ticket.release()
            self._give_up(name, attempt, error, next_wait.stop)
            return None
        budget = cfg.budget
        if budget is not None and not budget.try_retry():
            if ticket is not None:
                ticket.release()
            self._stats_for(name).refused += 1
            self._give_up(name, attempt, error, "the retry budget is spent")
            return None
        try:
            self._announce_retry(name, attempt, error, next_wait.delay, next_wait.retry_after)
        except BaseException:
            if ticket is not None:
                ticket.release()
            raise
        return next_wait, ticket

    def _chosen_wait(self, attempt: int, error: BaseException | None, result: Any) -> float | None:
        """What ``wait`` picks (None: the backoff); a bad answer is a ValueError."""
        assert self.config.wait is not None
        chosen = self.config.wait(attempt, error, result)
        if chosen is None:
            return None
        if isinstance(chosen, bool) or not isinstance(chosen, (int, float)) or not chosen >= 0:
            raise ValueError(
                f"{_OWNER}.wait must return a number of seconds >= 0 or None, got {chosen!r}"
            )
        return float(chosen)

    def _circuit(
        self, error: CircuitOpenError, attempt: int, elapsed: float
    ) -> tuple[Circuit, _waiting.WaitTicket | None]:
        """A breaker's rejection: take one of its waiter slots when this retry
        would wait for it (none left: give up at once)."""
        cfg = self.config
        breaker = error.breaker
        state, left = error.state, error.remaining
        if breaker is None or not may_wait_for_circuit(
            state=state,
            remaining=left,
            attempt=attempt,
            max_attempts=cfg.max_attempts,
            max_delay=cfg.max_delay,
            elapsed=elapsed,
            deadline=self._deadline,
        ):
            # Built elsewhere: nobody hands out slots, the wait is its remaining.
            return Circuit(state, left, True), None
        ticket = _waiting.ticket_for(breaker)
        if ticket is None:
            return Circuit(state, left, False), None
        left = ticket.due - _clock.monotonic()
        return Circuit(state, left if left > 0.0 else 0.0, True), ticket

    def _announce_retry(
        self,
        name: str,
        attempt: int,
        error: BaseException | None,
        delay: float,
        retry_after: float | None,
    ) -> None:
        log.info(
            "retry %r: attempt %d failed (%s); retrying in %.3fs",
            name,
            attempt,
            "result rejected" if error is None else repr(error),
            delay,
            extra={
                "retry": name,
                "attempt": attempt,
                "delay": delay,
                "error_type": None if error is None else type(error).__name__,
            },
        )
        stats = self._stats_for(name)
        stats.retries += 1
        if retry_after is not None:
            stats.rate_limited += 1
        listeners = self._listeners
        if listeners.events:
            if retry_after is not None:
                listeners.new(events.RateLimited, name, self._kind, retry_after)
            listeners.new(events.RetryAttempted, name, self._kind, attempt, delay, error)
        hook = self.config.on_retry
        if hook is not None:
            hook(attempt, error, delay)

    def _give_up(self, name: str, attempt: int, error: BaseException | None, why: str) -> None:
        why = f" ({why})" if why else ""
        if error is not None:
            error.add_note(f"resilient: gave up after {_plural(attempt)}{why}")
        log.warning(
            "retry %r: gave up after %s%s",
            name,
            _plural(attempt),
            why,
            extra={
                "retry": name,
                "attempts": attempt,
                "error_type": None if error is None else type(error).__name__,
            },
        )
        self._stats_for(name).exhausted += 1
        if self._listeners.events:
            self._listeners.new(events.RetriesExhausted, name, self._kind, attempt, error)

    # -- execution -----------------------------------------------------------

    # The fast path, written once (its sync twin is generated from the async
    # one by scripts/unasync.py): the first attempt costs a try and two
    # reads; everything else happens in ``_retry`` / ``_aretry`` once it has
    # failed (and outside its except block, so later errors do not chain
    # onto earlier ones).

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        retry = self._retry
        check = self._check_result
        deadline = self._deadline
        first_attempt = self._first_attempt
        gate, detour, meter = watching(self, fn, name, entry)

        def retrying(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[misc,no-any-return]
                begun = _clock.now()
            start = _clock.monotonic() if deadline is not None else 0.0
            if first_attempt is not None:
                first_attempt()
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except Exception as exc:
                error: Exception | None = exc
            except BaseException as exc:
                if level:
                    meter.failed(exc, begun, False)  # type: ignore[union-attr]
                raise
            else:
                if check is None or not check(result):
                    if level:
                        meter.ok(begun)  # type: ignore[union-attr]
                    return result
                error = None
            last = result if error is None else None
            if level:
                return meter.timed(  # type: ignore[union-attr,no-any-return]
                    begun, retry, fn, name, args, kwargs, error, last, start
                )
            return retry(fn, name, args, kwargs, error, last, start)

        return retrying

    # --- end generated ---

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        aretry = self._aretry
        check = self._check_result
        deadline = self._deadline
        first_attempt = self._first_attempt
        gate, detour, meter = watching(self, fn, name, entry, is_async=True)

        async def retrying(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[misc,no-any-return]
                begun = _clock.now()
            start = _clock.monotonic() if deadline is not None else 0.0
            if first_attempt is not None:
                first_attempt()
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except Exception as exc:
                error: Exception | None = exc
            except BaseException as exc:
                if level:
                    meter.failed(exc, begun, False)  # type: ignore[union-attr]
                raise
            else:
                if check is None or not check(result):
                    if level:
                        meter.ok(begun)  # type: ignore[union-attr]
                    return result
                error = None
            last = result if error is None else None
            if level:
                return await meter.atimed(  # type: ignore[union-attr]
                    begun, aretry, fn, name, args, kwargs, error, last, start
                )
            return await aretry(fn, name, args, kwargs, error, last, start)

        return retrying

    # --- generated from _aretry by scripts/unasync.py; do not edit ---
    def _retry(
        self,
        fn: SyncFn[R],
        name: str,
        args: Args,
        kwargs: Kwargs,
        error: Exception | None,
        result: Any,
        start: float,
    ) -> R:
        attempt = 1
        previous = 0.0
        check = self._check_result
        while True:
            planned = (
                self._plan(name, attempt, error, start, previous, result) if switch.on else None
            )
            if planned is None:
                if error is None:
                    return result  # type: ignore[no-any-return]
                try:
                    raise error
                finally:
                    error = None
            next_wait, ticket = planned
            previous = next_wait.previous
            attempt += 1
            try:
                # A cancellation (or KeyboardInterrupt) here ends the whole
                # call: no further attempt.
                if ticket is None:
                    _clock.sleep(next_wait.delay)
                    result = fn(*args, **kwargs) if kwargs else fn(*args)
                else:
                    result = _attempt_with(ticket, next_wait.delay, fn, args, kwargs)
            except Exception as exc:
                error = exc
                continue
            if check is None or not check(result):
                return cast(R, result)
            error = None

    # --- end generated ---

    async def _aretry(
        self,
        fn: AsyncFn[R],
        name: str,
        args: Args,
        kwargs: Kwargs,
        error: Exception | None,
        result: Any,
        start: float,
    ) -> R:
        attempt = 1
        previous = 0.0
        check = self._check_result
        while True:
            planned = (
                self._plan(name, attempt, error, start, previous, result) if switch.on else None
            )
            if planned is None:
                if error is None:
                    return result  # type: ignore[no-any-return]
                try:
                    raise error
                finally:
                    error = None
            next_wait, ticket = planned
            previous = next_wait.previous
            attempt += 1
            try:
                # A cancellation (or KeyboardInterrupt) here ends the whole
                # call: no further attempt.
                if ticket is None:
                    await _clock.sleep_async(next_wait.delay)
                    result = await (fn(*args, **kwargs) if kwargs else fn(*args))
                else:
                    result = await _aattempt_with(ticket, next_wait.delay, fn, args, kwargs)
            except Exception as exc:
                error = exc
                continue
            if check is None or not check(result):
                return cast(R, result)
            error = None

    # Streams: a failure before the first item opens the same stream again,
    # after the planned wait; after it, the error is the consumer's. A wait
    # ticket (an open breaker) is waited for, then given back: the next
    # stream asks the breaker as any other call does.

    # --- generated from _aopen_stream by scripts/unasync.py; do not edit ---
    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str) -> Opened:
        start = _clock.monotonic() if self._deadline is not None else 0.0
        first_attempt = self._first_attempt
        if first_attempt is not None:
            first_attempt()
        try:
            return open(args, kwargs, name)
        except Exception as exc:
            error = exc
        previous = 0.0

        def recover(error: Exception, attempt: int) -> Open | None:
            nonlocal previous
            planned = self._plan(name, attempt, error, start, previous) if switch.on else None
            if planned is None:
                return None
            next_wait, ticket = planned
            previous = next_wait.previous
            _clock.sleep(_ticket_wait(next_wait.delay, ticket))
            return open

        return _streams.reopen(args, kwargs, name, error, recover)

    # --- end generated ---

    async def _aopen_stream(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened:
        start = _clock.monotonic() if self._deadline is not None else 0.0
        first_attempt = self._first_attempt
        if first_attempt is not None:
            first_attempt()
        try:
            return await open(args, kwargs, name)
        except Exception as exc:
            error = exc
        previous = 0.0

        async def recover(error: Exception, attempt: int) -> AOpen | None:
            nonlocal previous
            planned = self._plan(name, attempt, error, start, previous) if switch.on else None
            if planned is None:
                return None
            next_wait, ticket = planned
            previous = next_wait.previous
            await _clock.sleep_async(_ticket_wait(next_wait.delay, ticket))
            return open

        return await _streams.areopen(args, kwargs, name, error, recover)


def _ticket_wait(delay: float, ticket: _waiting.WaitTicket | None) -> float:
    """The wait before a stream's next attempt: the planned delay, or until
    a wait ticket is due (the ticket goes back: a stream's attempt does
    not hold it)."""
    if ticket is None:
        return delay
    ticket.release()
    return max(delay, ticket.due - _clock.monotonic())


# An attempt made on a wait ticket: sleep until the breaker lets it probe
# (again, if the sleep woke early), make it with the ticket current, and give
# the ticket back however it ends (a cancelled sleep included).


# --- generated from _aattempt_with by scripts/unasync.py; do not edit ---
def _attempt_with(
    ticket: _waiting.WaitTicket,
    delay: float,
    fn: SyncFn[R],
    args: Args,
    kwargs: Kwargs,
) -> R:
    try:
        _clock.sleep(delay)
        while (left := ticket.due - _clock.monotonic()) > 0.0:
            _clock.sleep(left)
        token = _waiting.holding.set(ticket)
        try:
            return fn(*args, **kwargs) if kwargs else fn(*args)
        finally:
            _waiting.holding.reset(token)
    finally:
        ticket.release()


# --- end generated ---


async def _aattempt_with(
    ticket: _waiting.WaitTicket,
    delay: float,
    fn: AsyncFn[R],
    args: Args,
    kwargs: Kwargs,
) -> R:
    try:
        await _clock.sleep_async(delay)
        while (left := ticket.due - _clock.monotonic()) > 0.0:
            await _clock.sleep_async(left)
        token = _waiting.holding.set(ticket)
        try:
            return await (fn(*args, **kwargs) if kwargs else fn(*args))
        finally:
            _waiting.holding.reset(token)
    finally:
        ticket.release()


def retry_of(owner: str, config: RetryConfig | Retry | None, fields: Mapping[str, Any]) -> Retry:
    """What ``with_retry`` and ``retrying`` (``owner``, named in errors) run:
    a ready ``Retry`` as is, or a new one of ``config`` (default
    ``RetryConfig()``) with ``fields`` replacing its own."""
    if isinstance(config, Retry):
        if fields:
            raise TypeError(
                f"{owner}: pass either a Retry or a config with fields, "
                f"not both (got fields={sorted(fields)})"
            )
        return config
    if config is not None and not isinstance(config, RetryConfig):
        raise TypeError(f"{owner}: config must be a RetryConfig or a Retry, got {config!r}")
    base = config if config is not None else RetryConfig()
    return Retry(replace(base, **fields) if fields else base)
