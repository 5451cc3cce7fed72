"""What every policy offers around its own ``_call`` / ``_acall``: running a
function through it, use as a decorator, and listeners of its events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar, cast

from . import events

if TYPE_CHECKING:
    from ._decorate import Decoratable

__all__ = ["PolicyBase"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
F = TypeVar("F", bound="Decoratable")


def fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class PolicyBase:
    _listeners: events.ListenerSet
    #: What the policy's events say it is ("retry", "circuit_breaker", ...).
    _kind: ClassVar[str]

    # -- the request a call opens when it is the outermost layer (see events) --

    def _event_name(self, fn: Callable[..., Any]) -> str:
        """The policy's name, or else the function's (an unnamed policy)."""
        name: str | None = getattr(self, "name", None)
        return name or fn_name(fn)

    def _request(
        self,
        run: Callable[[Callable[..., R], tuple[Any, ...], dict[str, Any]], R],
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        report: bool = False,
    ) -> R:
        return events.run_request(
            self._listeners,
            self._event_name(fn),
            self._kind,
            run,
            fn,
            args,
            kwargs,
            owner=self,
            report=report,
        )

    def _arequest(
        self,
        run: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Awaitable[R]],
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        report: bool = False,
    ) -> Awaitable[R]:
        return events.arun_request(
            self._listeners,
            self._event_name(fn),
            self._kind,
            run,
            fn,
            args,
            kwargs,
            owner=self,
            report=report,
        )

    def _stream_request(
        self,
        run: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], AsyncIterator[T]],
        fn: Callable[..., AsyncIterator[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> AsyncIterator[T]:
        return events.astream_request(
            self._listeners, self._event_name(fn), self._kind, run, fn, args, kwargs, owner=self
        )

    # -- running and decorating ------------------------------------------------

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _acall(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        raise NotImplementedError

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through this policy."""
        return cast(R, self._call(fn, args, kwargs))

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through this policy."""
        return cast(R, await self._acall(fn, args, kwargs))

    def subscribe(self, listener: events.Listener) -> Callable[[], None]:
        """Call ``listener`` with every event of this policy; returns the unsubscriber."""
        return self._listeners.subscribe(listener)

    def __call__(self, fn: F) -> F:
        """Use the policy itself as a decorator."""
        from ._decorate import decorate

        return decorate(self, fn)
