"""What every policy offers around its own ``_call`` / ``_acall``: running a
function through it, use as a decorator, and listeners of its events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from . import events

if TYPE_CHECKING:
    from ._decorate import Decoratable

__all__ = ["PolicyBase"]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")


class PolicyBase:
    _listeners: events.ListenerSet

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
