"""Turning a policy into a decorator: sync or async is decided once, here.

Plain functions (which includes methods, at the time a class body decorates
them) get a closure: it binds to instances as any function does, and skips
the per-call ``__self__`` look-up wrapt's ``FunctionWrapper`` makes on
unbound functions. Everything else that binds (``classmethod``,
``staticmethod``, bound methods, callable objects) gets a wrapt
``FunctionWrapper``, which binds it correctly and keeps introspection.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, cast

import wrapt

from .events import mark_layer

__all__ = [
    "Decoratable",
    "Listened",
    "Policy",
    "athrough",
    "decorate",
    "is_async_callable",
    "through",
]

if TYPE_CHECKING:
    Decoratable: TypeAlias = (
        Callable[..., Any] | classmethod[Any, Any, Any] | staticmethod[Any, Any]
    )
else:
    Decoratable = object
F = TypeVar("F", bound="Decoratable")

# While someone listens, a policy's closure hands each call to this,
# ``(args, kwargs) -> result``, rather than run it itself: by default its
# own ``_call`` (or ``_acall``), which accounts for the request; a
# composition passes its own to the outermost layer's closure.
Listened: TypeAlias = "Callable[[tuple[Any, ...], dict[str, Any]], Any] | None"


class Policy(Protocol):
    """What a policy offers the decorator: one sync and one async execution.

    A policy may also offer ``_wrap_sync(fn, listened=None)`` /
    ``_wrap_async(...)``, returning a closure that runs ``fn`` exactly as
    ``_call`` / ``_acall`` would: the decorator then installs it on plain
    functions, and composition nests them (see ``Listened``).
    """

    def _call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    def _acall(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]: ...


def is_async_callable(fn: object) -> bool:
    if isinstance(fn, (classmethod, staticmethod)):
        fn = fn.__func__
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def _is_async_gen(fn: object) -> bool:
    if isinstance(fn, (classmethod, staticmethod)):
        fn = fn.__func__
    return inspect.isasyncgenfunction(fn)


def _policy_name(policy: object) -> str:
    return type(policy).__name__


def decorate(policy: Any, target: F) -> F:
    """Wrap ``target`` so every call runs through ``policy``."""
    if not callable(target) and not isinstance(target, (classmethod, staticmethod)):
        raise TypeError(f"{_policy_name(policy)} can only decorate a callable, got {target!r}")
    if _is_async_gen(target):
        stream = getattr(policy, "_astream", None)
        if stream is None:
            raise TypeError(
                f"{_policy_name(policy)} cannot wrap the async generator function {target!r}: "
                "its calls return a stream at once; use with_timeout(inactivity=...) on it"
            )
        return cast(F, _wrap(target, stream, async_gen=True))
    if is_async_callable(target):
        specialize = getattr(policy, "_wrap_async", None)
        return cast(F, _wrap(target, policy._acall, specialize, is_async=True))
    return cast(F, _wrap(target, policy._call, getattr(policy, "_wrap_sync", None)))


def through(run: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called through ``run(fn, args, kwargs)`` (a policy's ``_call``)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(fn, args, kwargs)

    return wrapper


def athrough(run: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` awaited through ``run(fn, args, kwargs)`` (a policy's ``_acall``)."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await run(fn, args, kwargs)

    return wrapper


def _wrap(
    target: Any,
    run: Callable[..., Any],
    specialize: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    *,
    is_async: bool = False,
    async_gen: bool = False,
) -> Any:
    if inspect.isfunction(target):
        fn = target
        if async_gen:

            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                stream = run(fn, args, kwargs)
                try:
                    async for item in stream:
                        yield item
                finally:
                    # Closed with this wrapper, not whenever the collector
                    # gets to it: the policy's stream may hold a slot.
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()

            return mark_layer(functools.update_wrapper(agen_wrapper, fn))
        if specialize is not None:
            # The policy's own closure: the same behaviour as going through
            # ``run``, one call frame less on its hot path.
            return mark_layer(functools.update_wrapper(specialize(fn), fn))
        return mark_layer(
            functools.update_wrapper((athrough if is_async else through)(run, fn), fn)
        )

    # wrapt hands the bound callable to the wrapper; for a method reached
    # through its class, args already start with the instance.
    def via_wrapt(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        return run(wrapped, args, kwargs)

    return _Layer(target, via_wrapt)


# A policy handed one of these (bound or not) knows it is stacked on another
# layer of the same call; see ``events.is_layer``. Class attributes, because
# setting an attribute on a wrapt proxy would set it on the user's function.
class _BoundLayer(wrapt.BoundFunctionWrapper[..., Any]):
    __resilient_layer__ = True


class _Layer(wrapt.FunctionWrapper[..., Any]):
    __resilient_layer__ = True
    __bound_function_wrapper__ = _BoundLayer
