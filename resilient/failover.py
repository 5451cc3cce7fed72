"""``Failover``: try the function, then each alternate in turn, at once.

The decorated function is the first target; the alternates (callables of
the same signature, usually each with its own breaker and rate limit) come
after it, in order. A target is left, with no wait, when it raises an error
``on`` accepts (by default a ``ResilienceError``: an open breaker, a spent
rate limit, a full bulkhead, a timeout; or an error whose ``is_retryable``
is true); the first answer is returned. When every target failed, the
last error is raised with a note naming the targets tried. An error ``on``
does not accept is raised at once.

A target whose breaker is open or whose limit is spent refuses at once, so
it costs the rejection only. Each switch emits ``FailoverUsed``; the
policy counts its calls by the target that answered (``metrics()``): the
decorated function is ``"primary"``, an alternate is its ``__name__``
(with its position, ``name[2]``, when two share one).

The walk over the targets is written once per flavour (``_run``,
``_arun``, ``_astream``): each asks ``_next`` what to do with a target's
error, so a stream fails over by the same rules, before its first item.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import events
from ._execution import streams as _streams
from ._execution.compose import Refused, aforwarding, decorate, handing_back, watching
from ._execution.policy_base import PolicyBase
from ._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from ._runtime import clock as _clock
from ._runtime.switch import switch
from .errors import ResilienceError
from .events import METERED

if TYPE_CHECKING:
    from ._execution.compose import Decoratable
    from ._execution.counters import Stats
    from ._execution.request import Request

__all__ = ["Failover", "FailoverMetrics", "with_failover"]

R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

_OWNER = "Failover"

FailoverOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def _default_on(error: BaseException) -> bool:
    return isinstance(error, ResilienceError) or getattr(error, "is_retryable", False) is True


#: What the decorated function is called among the targets.
PRIMARY = "primary"
ANSWERED = "answered"


def _target_names(alternates: tuple[Callable[..., Any], ...]) -> tuple[str, ...]:
    """Each alternate's ``__name__`` (``repr`` without one), made unique by
    its position when two share one, and never ``"primary"``."""
    names = [getattr(alt, "__name__", None) or repr(alt) for alt in alternates]
    taken = {PRIMARY}
    unique = []
    for index, name in enumerate(names, 1):
        if name in taken:
            name = f"{name}[{index}]"
        taken.add(name)
        unique.append(name)
    return tuple(unique)


class FailoverMetrics(NamedTuple):
    """A snapshot of a failover: ``answered`` counts calls by the target that
    answered; ``switches`` the times a target was left for the next;
    ``exhausted`` the calls every target failed."""

    answered: Mapping[str, int]
    switches: int
    exhausted: int


class Failover(PolicyBase):
    """Try the function, then each of ``alternates``, leaving a target at once
    when it fails with an error ``on`` accepts.

    Args:
        name: what its events and counters are called.
        alternates: callables with the decorated function's signature, tried
            in order after it.
        on: exception types, or a predicate on the error (default: a
            ``ResilienceError``, or an error whose ``is_retryable`` is true).
    """

    _kind = "failover"

    def __init__(
        self,
        name: str,
        alternates: Sequence[Callable[..., Any]],
        on: FailoverOn | None = None,
        *,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{_OWNER} name must be a non-empty str, got {name!r}")
        given: Any = alternates
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise TypeError(
                f"{_OWNER}.alternates must be a sequence of callables, got {alternates!r}"
            )
        for alternate in alternates:
            if not callable(alternate):
                raise TypeError(f"{_OWNER}.alternates must hold callables, got {alternate!r}")
        self.name = name
        self.alternates = tuple(alternates)
        self.on = on
        if on is None:
            self._accepts: Callable[[BaseException], bool] = _default_on
        elif isinstance(on, (type, tuple)):
            from ._runtime import validation as _validate

            kinds = _validate.exception_types(_OWNER, "on", on)
            self.on = kinds
            self._accepts = lambda error: isinstance(error, kinds)
        elif callable(on):
            self._accepts = on
        else:
            raise TypeError(f"{_OWNER}.on must be exception types, a predicate or None, got {on!r}")
        self._names = _target_names(self.alternates)
        self._targets = tuple(zip(self.alternates, self._names, strict=True))
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._stats_for(name)  # readers see it from the start
        self._switches = 0
        self._exhausted = 0

    def for_stack(self, name: str, listeners: events.ListenerSet | None) -> Failover:
        """This failover as a layer of the composed policy ``name``."""
        return Failover(name, self.alternates, self.on, listeners=listeners)

    def __repr__(self) -> str:
        return f"<Failover {self.name!r} alternates={list(self._names)!r}>"

    def metrics(self) -> FailoverMetrics:
        stats = self._stats_for(self.name)
        answered = dict.fromkeys((PRIMARY, *self._names), 0)
        answered[PRIMARY] = stats.succeeded
        for (target, _), count in dict(stats.changes).items():
            answered[target] = count
        return FailoverMetrics(answered, self._switches, self._exhausted)

    # -- the rules -----------------------------------------------------------------

    def _answered_by(self, name: str, target: str) -> None:
        """Count the call ``target`` answered, in place: the primary's in the
        counters' ``succeeded``, an alternate's in their table of changes as
        ``(target, "answered")``; the exporters read both as
        ``failover_calls_total{target}``."""
        stats = self._stats_for(name)
        if target == PRIMARY:
            stats.succeeded += 1
        else:
            stats.changed(target, ANSWERED)

    def _next(self, name: str, error: Exception, index: int) -> bool:
        """After target ``index`` (0: the primary) raised ``error``: True to
        try the next one, False to raise ``error`` (with a note naming the
        targets tried when every one failed)."""
        if not switch.on or not self._accepts(error):
            return False
        if index >= len(self.alternates):
            self._exhausted += 1
            tried = ", ".join((PRIMARY, *self._names))
            error.add_note(f"resilient: failover {name!r} tried {tried}; all failed")
            return False
        self._switches += 1
        if self._listeners.events:
            self._listeners.new(events.FailoverUsed, name, self._kind, self._names[index], error)
        return True

    # -- execution -----------------------------------------------------------------

    def _run(self, fn: SyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        try:
            # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
            # builds a dict per call (docs/architecture.md, calls without keywords).
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except Exception as exc:
            if not self._next(name, exc, 0):
                raise
        else:
            self._answered_by(name, PRIMARY)
            return result
        return self._alternate(self._stats_for(name), name, args, kwargs)  # type: ignore[no-any-return]

    def _alternate(
        self,
        stats: Stats,
        name: str,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        """The alternates in turn, once the primary was left (each called
        outside the except block of the one before: no error chains onto
        another)."""
        index = 0
        for alternate, target in self._targets:
            index += 1
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = alternate(*args, **kwargs) if kwargs else alternate(*args)
            except Exception as exc:
                if not self._next(name, exc, index):
                    raise
                continue
            stats.changed(target, ANSWERED)
            return result
        raise AssertionError("unreachable: the last target's error is raised")

    async def _arun(self, fn: AsyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        targets: tuple[Callable[..., Awaitable[Any]], ...] = (fn, *self.alternates)
        for index, target in enumerate(targets):
            try:
                result = await (target(*args, **kwargs) if kwargs else target(*args))
            except Exception as exc:
                if not self._next(name, exc, index):
                    raise
                continue
            self._answered_by(name, PRIMARY if index == 0 else self._names[index - 1])
            return result  # type: ignore[no-any-return]
        raise AssertionError("unreachable: the last target's error is raised")

    # Streams fail over before their first item only (the shared rule of
    # ``_execution/streams.py``); after it, errors are the stream's own.

    def _switching(
        self, args: Args, kwargs: Kwargs, name: str, first: Callable[..., Any]
    ) -> tuple[Callable[[Exception, int], Any], Callable[[], None]]:
        """A stream's ``recover`` (the open of the next target, by ``first``,
        while the rules allow one) and ``answered`` (counts the target that
        gave the first item)."""
        name = name or self.name
        tried = [PRIMARY]

        def recover(error: Exception, opened: int) -> Any:
            if not self._next(name, error, opened - 1):
                return None
            tried.append(self._names[opened - 1])
            return functools.partial(first, self.alternates[opened - 1])

        return recover, lambda: self._answered_by(name, tried[-1])

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str = "") -> Opened:
        recover, answered = self._switching(args, kwargs, name, _streams.open_first)
        try:
            opened = open(args, kwargs, name)
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        if error is not None:
            opened = _streams.reopen(args, kwargs, name, error, recover)
            error = None
        try:
            answered()
        except BaseException as exc:
            _streams.abandon(opened, exc)
            raise
        return opened

    async def _aopen_stream(
        self, open: AOpen, args: Args, kwargs: Kwargs, name: str = ""
    ) -> Opened:
        recover, answered = self._switching(args, kwargs, name, _streams.aopen_first)

        async def arecover(error: Exception, opened: int) -> AOpen | None:
            following: AOpen | None = recover(error, opened)
            return following

        try:
            opened = await open(args, kwargs, name)
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        if error is not None:
            opened = await _streams.areopen(args, kwargs, name, error, arecover)
            error = None
        try:
            answered()
        except BaseException as exc:
            await _streams.aabandon(opened, exc)
            raise
        return opened

    # The fast path, written once per flavour: a ``try`` around the first
    # target until it fails; the walk over the alternates after it. A first
    # target that offers to hand its refusals back (an open breaker, see
    # ``compose.offer_hand_back``) is run that way: its refusal is an error
    # returned, not raised and caught.

    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        gate, detour, meter = watching(self, fn, name, entry)
        run, rest, after = self._run, self._alternate, self._next
        stats = self._stats_for(name)
        first = handing_back(fn) or fn
        refused = Refused

        def failing_over(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[misc,no-any-return]
                return meter.timed(_clock.now(), run, fn, name, args, kwargs)  # type: ignore[union-attr,no-any-return]
            try:
                result = first(*args, **kwargs) if kwargs else first(*args)
            except Exception as exc:
                if not after(name, exc, 0):
                    raise
            else:
                if type(result) is not refused:
                    stats.succeeded += 1
                    return result
                error = result[0]
                if not after(name, error, 0):
                    try:
                        raise error
                    finally:
                        del error  # no cycle: error -> traceback -> this frame
            return rest(stats, name, args, kwargs)  # type: ignore[no-any-return]

        return failing_over

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        return aforwarding(self, fn, name, entry, self._arun)


def with_failover(
    name: str,
    alternates: Sequence[Callable[..., Any]],
    *,
    on: FailoverOn | None = None,
) -> Callable[[F], F]:
    """Try the decorated function, then each of ``alternates`` in order,
    leaving a target at once when it fails with an error ``on`` accepts
    (default: a ``ResilienceError``, or an error whose ``is_retryable`` is
    true).

    Args:
        name: what its events and counters are called.
        alternates: callables with the decorated function's signature.
        on: exception types, or a predicate on the error.

    Returns:
        A decorator that keeps the decorated callable's exact signature.
    """
    failover = Failover(name, alternates, on)

    def decorator(fn: F) -> F:
        return decorate(failover, fn)

    return decorator
