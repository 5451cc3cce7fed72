"""Weighed and stacked rate limits: ``with_rate_limit(cost=..., actual=...)``.

A ``Limits`` layer holds one or more rate limiters, each with what a call
costs it: ``cost(*args, **kwargs)`` (default 1) before the call runs, and,
when given, ``actual(result)`` after it returns; the difference is charged
or refunded (``RateLimiter.adjust``). Limits decorated directly on top of
one another are one layer: a call takes a turn from each, outermost first,
and waits once, for the latest of them; when one refuses, every turn
already taken is given back, so a refused call costs no limit anything.

A ``cost`` or ``actual`` that raises takes no turn (``cost`` runs before
any is taken; ``actual`` after the call, whose turns were spent) and its
error reaches the caller as itself.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .. import events
from .._execution import streams as _streams
from .._execution.compose import watching
from .._execution.policy_base import PolicyBase
from .._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from .._runtime import clock as _clock
from .._runtime.switch import switch
from ..events import METERED
from .limiter import RateLimiter, await_turn, wait_for_turn

if TYPE_CHECKING:
    from .._execution.counters import Stats
    from .._execution.request import Request

__all__ = ["Limit", "Limits", "limit_of"]

R = TypeVar("R")

_INF = float("inf")


class Limit(NamedTuple):
    """One limiter of a ``Limits`` layer and what a call costs it."""

    limiter: RateLimiter
    cost: Callable[..., float] | None  # None: ``fixed``
    fixed: float
    actual: Callable[[Any], float] | None


def limit_of(
    limiter: RateLimiter,
    cost: Callable[..., float] | float | None,
    actual: Callable[[Any], float] | None,
) -> Limit:
    """A ``Limit``, or a TypeError/ValueError naming the bad field."""
    fixed = 1.0
    if cost is not None and not callable(cost):
        fixed = limiter._check_cost(cost)
        cost = None
    if actual is not None and not callable(actual):
        raise TypeError(f"with_rate_limit.actual must be a callable or None, got {actual!r}")
    return Limit(limiter, cost, fixed, actual)


class Limits(PolicyBase):
    """A layer of rate limits taken together (see the module)."""

    _kind = "rate_limiter"

    def __init__(self, limits: tuple[Limit, ...]) -> None:
        self.limits = limits
        first = limits[0].limiter
        self.name = first.name
        self._listeners = first._listeners
        self._own_gate = events.Gate(None, tuple(lim.limiter._listeners for lim in limits))
        self._settles = any(lim.actual is not None for lim in limits)
        #: The costs of a call before its callables are asked (shared when
        #: none is a callable, else copied per call), and the callables:
        #: ``(index, cost, burst, check)``.
        self._estimate = [lim.fixed for lim in limits]
        self._priced = tuple(
            (index, lim.cost, lim.limiter.config.burst or 1, lim.limiter._check_cost)
            for index, lim in enumerate(limits)
            if lim.cost is not None
        )
        self._settlers = tuple(
            (index, lim.limiter, lim.actual)
            for index, lim in enumerate(limits)
            if lim.actual is not None
        )

    def __repr__(self) -> str:
        return f"<Limits {[lim.limiter.name for lim in self.limits]!r}>"

    def _stats_for(self, name: str) -> Stats:
        return self.limits[0].limiter._stats_for(name)

    def then(self, inner: Limits | RateLimiter) -> Limits:
        """These limits, then ``inner``'s, as one layer."""
        more = inner.limits if isinstance(inner, Limits) else (limit_of(inner, None, None),)
        return Limits((*self.limits, *more))

    # -- admission ---------------------------------------------------------------

    def _costs(self, args: Args, kwargs: Kwargs) -> list[float]:
        """What the call costs each limit, before any turn is taken."""
        costs = self._estimate
        if self._priced:
            costs = costs[:]
            for index, cost, burst, check in self._priced:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                units = cost(*args, **kwargs) if kwargs else cost(*args)
                kind = type(units)
                # The usual answer checked inline; anything else by the limiter.
                if (kind is not float and kind is not int) or not 0 <= units <= burst:
                    units = check(units)
                costs[index] = units
        return costs

    def _plan(self) -> tuple[tuple[Any, ...], ...]:
        """Per limit, what the lock-free path reads: the core (``tat``,
        ``interval``), its holes, the limiter (``_within``: how far ahead
        ``tat`` may be for a turn to start now, ``-inf`` for never) and its
        counters. Read at each call, so a reconfigured limit is obeyed."""
        return tuple(
            (
                lim.limiter._core,
                lim.limiter._core.holes,
                lim.limiter,
                lim.limiter._stats_for(lim.limiter.name),
            )
            for lim in self.limits
        )

    def _undo(self, taken: int, costs: list[float]) -> None:
        """Refund the turns the lock-free path took from the first ``taken``
        limits, and their counts: one of the others must wait or refuses."""
        for index in range(taken - 1, -1, -1):
            limiter = self.limits[index].limiter
            limiter._stats_for(limiter.name).succeeded -= 1
            limiter.adjust(-costs[index])

    @staticmethod
    def _give_back(taken: list[tuple[RateLimiter, object, float]]) -> None:
        for limiter, token, cost in reversed(taken):
            limiter._give_back(token, cost)

    # --- generated from _aadmit by scripts/unasync.py; do not edit ---
    def _admit(self, costs: list[float]) -> None:
        taken, wait = self._turns(costs)
        if wait > 0.0:
            wait_for_turn(wait, self._give_back, taken)
        self._count()

    # --- end generated ---

    async def _aadmit(self, costs: list[float]) -> None:
        taken, wait = self._turns(costs)
        if wait > 0.0:
            await await_turn(wait, self._give_back, taken)
        self._count()

    def _turns(self, costs: list[float]) -> tuple[list[tuple[RateLimiter, object, float]], float]:
        taken: list[tuple[RateLimiter, object, float]] = []
        wait = 0.0
        try:
            for lim, cost in zip(self.limits, costs, strict=True):
                token, turn_wait = lim.limiter._take(cost)
                taken.append((lim.limiter, token, cost))
                if turn_wait > wait:
                    wait = turn_wait
        except BaseException:
            self._give_back(taken)
            raise
        return taken, wait

    def _count(self) -> None:
        for lim in self.limits:
            lim.limiter._stats_for(lim.limiter.name).succeeded += 1

    def _settle(self, costs: list[float], result: Any) -> None:
        """Charge or refund what each call really took; the first error of an
        ``actual`` is raised once every limit is settled."""
        error: BaseException | None = None
        for index, limiter, actual in self._settlers:
            try:
                units = actual(result)
                kind = type(units)
                if (kind is not float and kind is not int) or not 0 <= units < _INF:
                    units = limiter._check_units(units)
            except BaseException as exc:  # raised below, after the others
                if error is None:
                    error = exc
                continue
            delta = units - costs[index]
            if delta:
                limiter.adjust(delta)
        if error is not None:
            raise error

    # -- execution -----------------------------------------------------------------

    # --- generated from _arun by scripts/unasync.py; do not edit ---
    def _run(self, fn: SyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return fn(*args, **kwargs)
        costs = self._costs(args, kwargs)
        self._admit(costs)
        result = fn(*args, **kwargs) if kwargs else fn(*args)
        if self._settles:
            self._settle(costs, result)
        return result

    # --- end generated ---

    async def _arun(self, fn: AsyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return await fn(*args, **kwargs)
        costs = self._costs(args, kwargs)
        await self._aadmit(costs)
        result = await (fn(*args, **kwargs) if kwargs else fn(*args))
        if self._settles:
            self._settle(costs, result)
        return result

    # A stream takes its turns when it starts (at its first item's request).
    # ``actual`` reads the stream's last item once it is exhausted (where
    # LLM APIs put a stream's usage); a stream that raises or is closed
    # early keeps its estimate charged. With resilience switched off, the
    # stream is relayed and nothing is taken.

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str = "") -> Opened:
        costs = self._costs(args, kwargs) if switch.on else None
        if costs is not None:
            self._admit(costs)
        opened = open(args, kwargs, name)
        if costs is not None and self._settles and opened.stream is not None:
            last = _Last(opened.stream, opened.first)
            opened.stream = last
            opened.ends.append(functools.partial(self._stream_ended, costs, last))
        return opened

    async def _aopen_stream(
        self, open: AOpen, args: Args, kwargs: Kwargs, name: str = ""
    ) -> Opened:
        costs = self._costs(args, kwargs) if switch.on else None
        if costs is not None:
            await self._aadmit(costs)
        opened = await open(args, kwargs, name)
        if costs is not None and self._settles and opened.stream is not None:
            last = _ALast(opened.stream, opened.first)
            opened.stream = last
            opened.ends.append(functools.partial(self._stream_ended, costs, last))
        return opened

    def _stream_ended(
        self, costs: Any, last: _Last | _ALast, error: BaseException | None, closed: bool
    ) -> None:
        if error is None and not closed:
            self._settle(costs, last.last)

    # The fast path, written once: the sync twin is generated from the
    # async one (scripts/unasync.py). Everything a call of several
    # limits does is inline in one frame: the costs (the user's callbacks
    # are the only calls), a turn from each limit without the lock, the
    # call, and the settling; a frame of ours per step would cost as much
    # as a whole count limiter (a limit's turn here is a few attribute
    # reads). When one limit would make the call wait or refuses it, the
    # turns taken from the others are refunded and the call takes the
    # locked way (``_admit``): all or nothing. A cost is called without
    # ``**kwargs`` when there are none: no dict built and merged per call
    # (about 250 instructions of each weighed call's 5,500).

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        run = self._run
        gate, detour, meter = watching(
            self, fn, name, entry, lambda args, kwargs: run(fn, name, args, kwargs)
        )
        assert detour is not None
        if len(self.limits) == 1 and self.limits[0].actual is None:
            return self._one_sync(fn, name, gate, detour, meter)
        clock = _clock
        estimate, priced, settlers = self._estimate, self._priced, self._settlers
        plan = self._plan()
        undo, admit = self._undo, self._admit

        def through_limits(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[no-any-return]
                return meter.timed(clock.now(), run, fn, name, args, kwargs)  # type: ignore[union-attr,no-any-return]
            if not switch.on:
                return fn(*args, **kwargs)
            # Every cost before any turn: a raising cost takes none.
            costs = estimate
            if priced:
                costs = estimate[:]
                for index, cost, burst, check in priced:
                    units = cost(*args, **kwargs) if kwargs else cost(*args)
                    kind = type(units)
                    # The usual answer checked inline; anything else by the limiter.
                    if (kind is not float and kind is not int) or not 0 <= units <= burst:
                        units = check(units)
                    costs[index] = units
            now = clock.now()
            taken = 0
            for core, holes, limiter, stats in plan:
                units = costs[taken]
                # GCRA, inline: no call between reading core.tat and writing it.
                tat = core.tat
                if tat < now:
                    tat = now
                if tat + (units - 1.0) * core.interval - now > limiter._within or holes:
                    undo(taken, costs)  # one must wait or refuses: all the locked way
                    admit(costs)
                    break
                core.tat = tat + units * core.interval
                stats.succeeded += 1
                taken += 1  # noqa: SIM113 - cheaper than enumerate's tuple per limit
            result = fn(*args, **kwargs) if kwargs else fn(*args)
            if settlers:
                # ``_settle``, inline: the first error of an ``actual`` is
                # raised once every limit is settled.
                error = None
                for index, limiter, actual in settlers:
                    try:
                        units = actual(result)
                        kind = type(units)
                        if (kind is not float and kind is not int) or not 0 <= units < _INF:
                            units = limiter._check_units(units)
                    except BaseException as exc:  # raised below, after the others
                        if error is None:
                            error = exc
                        continue
                    if units != costs[index]:
                        limiter.adjust(units - costs[index])
                if error is not None:
                    raise error
            return result

        return through_limits

    # --- end generated ---

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        arun = self._arun
        gate, detour, meter = watching(
            self, fn, name, entry, lambda args, kwargs: arun(fn, name, args, kwargs), is_async=True
        )
        assert detour is not None
        if len(self.limits) == 1 and self.limits[0].actual is None:
            return self._one_async(fn, name, gate, detour, meter)
        clock = _clock
        estimate, priced, settlers = self._estimate, self._priced, self._settlers
        plan = self._plan()
        undo, aadmit = self._undo, self._aadmit

        async def through_limits(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[no-any-return]
                return await meter.atimed(clock.now(), arun, fn, name, args, kwargs)  # type: ignore[union-attr]
            if not switch.on:
                return await fn(*args, **kwargs)
            # Every cost before any turn: a raising cost takes none.
            costs = estimate
            if priced:
                costs = estimate[:]
                for index, cost, burst, check in priced:
                    units = cost(*args, **kwargs) if kwargs else cost(*args)
                    kind = type(units)
                    # The usual answer checked inline; anything else by the limiter.
                    if (kind is not float and kind is not int) or not 0 <= units <= burst:
                        units = check(units)
                    costs[index] = units
            now = clock.now()
            taken = 0
            for core, holes, limiter, stats in plan:
                units = costs[taken]
                # GCRA, inline: no call between reading core.tat and writing it.
                tat = core.tat
                if tat < now:
                    tat = now
                if tat + (units - 1.0) * core.interval - now > limiter._within or holes:
                    undo(taken, costs)  # one must wait or refuses: all the locked way
                    await aadmit(costs)
                    break
                core.tat = tat + units * core.interval
                stats.succeeded += 1
                taken += 1  # noqa: SIM113 - cheaper than enumerate's tuple per limit
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            if settlers:
                # ``_settle``, inline: the first error of an ``actual`` is
                # raised once every limit is settled.
                error = None
                for index, limiter, actual in settlers:
                    try:
                        units = actual(result)
                        kind = type(units)
                        if (kind is not float and kind is not int) or not 0 <= units < _INF:
                            units = limiter._check_units(units)
                    except BaseException as exc:  # raised below, after the others
                        if error is None:
                            error = exc
                        continue
                    if units != costs[index]:
                        limiter.adjust(units - costs[index])
                if error is not None:
                    raise error
            return result

        return through_limits

    # --- generated from _one_async by scripts/unasync.py; do not edit ---
    def _one_sync(self, fn: SyncFn[R], name: str, gate: Any, detour: Any, meter: Any) -> SyncFn[R]:
        """One limit with no ``actual``: the count limiter's fast path, with
        the cost called first (the only call added) and a turn that weighs
        ``cost`` intervals."""
        lim = self.limits[0]
        limiter = lim.limiter
        core = limiter._core
        holes = core.holes
        burst: float = limiter.config.burst or 1
        cost, fixed, check = lim.cost, lim.fixed, limiter._check_cost
        stats = limiter._stats_for(limiter.name)
        admit, run, clock = self._admit, self._run, _clock

        def through_limit(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[no-any-return]
                return meter.timed(clock.now(), run, fn, name, args, kwargs)  # type: ignore[no-any-return]
            if not switch.on:
                return fn(*args, **kwargs)
            units = fixed
            if cost is not None:
                units = cost(*args, **kwargs) if kwargs else cost(*args)
                kind = type(units)
                if (kind is not float and kind is not int) or not 0 <= units <= burst:
                    units = check(units)
            now = clock.now()
            # GCRA, inline: no call between reading core.tat and writing it.
            tat = core.tat
            if tat < now:
                tat = now
            if tat + (units - 1.0) * core.interval - now <= limiter._within and not holes:
                core.tat = tat + units * core.interval
                stats.succeeded += 1
            else:
                admit([units])
            return fn(*args, **kwargs) if kwargs else fn(*args)

        return through_limit

    # --- end generated ---

    def _one_async(
        self, fn: AsyncFn[R], name: str, gate: Any, detour: Any, meter: Any
    ) -> AsyncFn[R]:
        """One limit with no ``actual``: the count limiter's fast path, with
        the cost called first (the only call added) and a turn that weighs
        ``cost`` intervals."""
        lim = self.limits[0]
        limiter = lim.limiter
        core = limiter._core
        holes = core.holes
        burst: float = limiter.config.burst or 1
        cost, fixed, check = lim.cost, lim.fixed, limiter._check_cost
        stats = limiter._stats_for(limiter.name)
        aadmit, arun, clock = self._aadmit, self._arun, _clock

        async def through_limit(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[no-any-return]
                return await meter.atimed(clock.now(), arun, fn, name, args, kwargs)  # type: ignore[no-any-return]
            if not switch.on:
                return await fn(*args, **kwargs)
            units = fixed
            if cost is not None:
                units = cost(*args, **kwargs) if kwargs else cost(*args)
                kind = type(units)
                if (kind is not float and kind is not int) or not 0 <= units <= burst:
                    units = check(units)
            now = clock.now()
            # GCRA, inline: no call between reading core.tat and writing it.
            tat = core.tat
            if tat < now:
                tat = now
            if tat + (units - 1.0) * core.interval - now <= limiter._within and not holes:
                core.tat = tat + units * core.interval
                stats.succeeded += 1
            else:
                await aadmit([units])
            return await (fn(*args, **kwargs) if kwargs else fn(*args))

        return through_limit


# --- generated from _ALast by scripts/unasync.py; do not edit ---
class _Last:
    """A stream whose last item is kept (what ``actual`` reads)."""

    __slots__ = ("last", "stream")

    def __init__(self, stream: Iterator[Any], first: Any) -> None:
        self.stream = stream
        self.last = first

    def __iter__(self) -> _Last:
        return self

    def __next__(self) -> Any:
        self.last = item = next(self.stream)
        return item

    def close(self) -> None:
        _streams.close(self.stream)


# --- end generated ---


class _ALast:
    """A stream whose last item is kept (what ``actual`` reads)."""

    __slots__ = ("last", "stream")

    def __init__(self, stream: AsyncIterator[Any], first: Any) -> None:
        self.stream = stream
        self.last = first

    def __aiter__(self) -> _ALast:
        return self

    async def __anext__(self) -> Any:
        self.last = item = await anext(self.stream)
        return item

    async def aclose(self) -> None:
        await _streams.aclose(self.stream)
