"""``Fallback``: answer with a value, or a handler's answer, when a call fails.

The handler is called with the call's own arguments (a method's instance
first, as the method receives it). A handler that declares a keyword-only
parameter named ``error`` also receives the exception: ``def h(x, *, error)``.
Async functions may have async handlers. A handler that raises does so with
the original error as its context (``__context__``), as any exception raised
while handling another.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import events
from ._execution import streams as _streams
from ._execution.compose import is_async_callable, is_async_gen, watching
from ._execution.counters import FOLD_AT
from ._execution.policy_base import PolicyBase
from ._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from ._runtime import clock as _clock
from ._runtime import mapping as _mapping
from ._runtime import validation as _validate
from ._runtime.switch import switch
from .events import METERED

if TYPE_CHECKING:
    from ._execution.compose import Decoratable
    from ._execution.request import Request
    from ._runtime.mapping import Exceptions

__all__ = ["Fallback"]

R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

log = logging.getLogger("resilient")

_OWNER = "Fallback"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _takes_error(handler: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(handler).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    param = parameters.get("error")
    return param is not None and param.kind is inspect.Parameter.KEYWORD_ONLY


class Fallback(PolicyBase):
    """``Fallback(value=...)`` or ``Fallback(handler=...)``, for the exceptions
    of ``on`` (``Exception`` subclasses; others are never caught).

    Args:
        value: the answer when the call fails.
        handler: called instead with the call's own arguments (and
            ``error=`` when it declares that keyword-only parameter).
        on: the exception types that are answered.
        name: names its events (default: the name of the function called)."""

    _kind = "fallback"

    def __init__(
        self,
        value: Any = MISSING,
        *,
        handler: Callable[..., Any] | None = None,
        on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        name: str | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        if (value is MISSING) == (handler is None):
            raise TypeError(
                f"{_OWNER} needs exactly one of value= or handler=, "
                f"got value={value!r}, handler={handler!r}"
            )
        _validate.callable_or_none(_OWNER, "handler", handler)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{_OWNER} name must be a non-empty str or None, got {name!r}")
        self.value = None if value is MISSING else value
        self.handler = handler
        self.on = _validate.catchable_types(_OWNER, "on", on)
        self.name = name
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._takes_error = handler is not None and _takes_error(handler)
        #: Whether the handler is a coroutine function (it then answers for
        #: coroutine functions only).
        self.async_handler = handler is not None and is_async_callable(handler)

    @classmethod
    def from_dict(
        cls, mapping: Mapping[str, Any], *, exceptions: Exceptions | None = None
    ) -> Fallback:
        """A fallback from a table: ``value`` (or ``handler``, a callable,
        when the mapping is built in Python) and ``on`` (exception names, as
        ``CircuitBreakerConfig.from_dict`` reads them)."""
        return cls.from_table(mapping, exceptions, "")

    @classmethod
    def from_table(
        cls, mapping: Mapping[str, Any], exceptions: Exceptions | None, path: str
    ) -> Fallback:
        """``from_dict``, naming ``path`` (the table's key in its document) in errors."""
        owner = path or _OWNER
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{_OWNER}.from_dict needs a mapping, got {mapping!r}")
        unknown = sorted(str(key) for key in mapping if key not in ("value", "handler", "on"))
        if unknown:
            raise ValueError(
                f"{owner} has no field {', '.join(map(repr, unknown))}; "
                "the fields are value, handler, on"
            )
        if ("value" in mapping) == ("handler" in mapping):
            raise ValueError(f"{owner} needs exactly one of 'value' or 'handler'")
        on = _mapping.exception_types(owner, "on", mapping.get("on", (Exception,)), exceptions)
        try:
            if "handler" in mapping:
                return cls(handler=mapping["handler"], on=on)  # type: ignore[arg-type]
            return cls(mapping["value"], on=on)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            if not path:
                raise
            raise type(error)(f"{path}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        """``value`` (or ``handler``) and ``on``, as ``from_dict`` reads them."""
        out: dict[str, Any] = (
            {"handler": self.handler} if self.handler is not None else {"value": self.value}
        )
        out["on"] = [_mapping.exception_name(kind) for kind in self.on]
        return out

    def for_stack(self, name: str, listeners: events.ListenerSet | None) -> Fallback:
        """This fallback as a layer of the composed policy ``name``: its
        events carry that name and reach that policy's listeners."""
        if self.handler is not None:
            return Fallback(handler=self.handler, on=self.on, name=name, listeners=listeners)
        return Fallback(self.value, on=self.on, name=name, listeners=listeners)

    def __repr__(self) -> str:
        what = f"handler={self.handler!r}" if self.handler is not None else f"value={self.value!r}"
        return f"<Fallback {what}>"

    def _used(self, name: str, error: Exception) -> None:
        log.info(
            "fallback %r used after %r",
            name,
            error,
            extra={"fallback": name, "error_type": type(error).__name__},
        )
        self._stats_for(name).fallbacks += 1
        if self._listeners.events:
            self._listeners.new(events.FallbackUsed, name, self._kind, error)

    def _answer(self, name: str, args: Args, kwargs: Kwargs, error: Exception) -> Any:
        """What the failed call returns instead (for an async handler, an awaitable)."""
        self._used(name, error)
        handler = self.handler
        if handler is None:
            return self.value
        if self._takes_error:
            return handler(*args, **kwargs, error=error)
        return handler(*args, **kwargs)

    # -- execution -----------------------------------------------------------

    # The fast path, written once per flavour: a ``try`` until something fails.

    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        gate, detour, meter = watching(self, fn, name, entry)
        on = self.on
        # Request.ok, inlined below (the outermost layer of a full stack:
        # a frame is a tenth of what metering adds to its call).
        pending, fold = (meter.stats.pending, meter.stats.fold) if meter is not None else ([], None)
        clock, fold_at = _clock, FOLD_AT

        def falling_back(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[misc,no-any-return]
                start = _clock.now()
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except Exception as exc:
                if not isinstance(exc, on) or not switch.on:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
                if self.async_handler:
                    raise TypeError(
                        f"{self!r}: an async handler cannot answer for the sync function {fn!r}"
                    ) from exc
                if level:
                    return meter.timed(start, self._answer, name, args, kwargs, exc)  # type: ignore[union-attr,no-any-return]
                return self._answer(name, args, kwargs, exc)  # type: ignore[no-any-return]
            if level:
                pending.append(clock.now() - start)
                if len(pending) >= fold_at:
                    fold()  # type: ignore[misc]
            return result

        return falling_back

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        gate, detour, meter = watching(self, fn, name, entry, is_async=True)
        on = self.on
        # Request.ok, inlined below (as in _wrap_sync).
        pending, fold = (meter.stats.pending, meter.stats.fold) if meter is not None else ([], None)
        clock, fold_at = _clock, FOLD_AT

        async def falling_back(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[misc,no-any-return]
                start = _clock.now()
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except Exception as exc:
                if not isinstance(exc, on) or not switch.on:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
                if level:
                    return await meter.atimed(start, self._aanswer, name, args, kwargs, exc)  # type: ignore[union-attr]
                return await self._aanswer(name, args, kwargs, exc)  # type: ignore[no-any-return]
            if level:
                pending.append(clock.now() - start)
                if len(pending) >= fold_at:
                    fold()  # type: ignore[misc]
            return result

        return falling_back

    async def _aanswer(self, name: str, args: Args, kwargs: Kwargs, error: Exception) -> Any:
        answer = self._answer(name, args, kwargs, error)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    # Streams: a failure before the first item is answered by the handler's
    # items (an iterable, an async iterable, or one value); after it, the
    # error is the consumer's.

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str) -> Opened:
        try:
            return open(args, kwargs, name)
        except Exception as exc:
            error = exc
        on = self.on

        def recover(error: Exception, attempt: int) -> Open | None:
            if attempt > 1 or not isinstance(error, on) or not switch.on:
                return None
            if self.async_handler:
                raise TypeError(
                    f"{self!r}: an async handler cannot answer for a generator function"
                ) from error
            answer = self._answer(name, args, kwargs, error)
            return lambda args, kwargs, name: _streams.open_first(
                _streams.one_stream, (answer,), {}, name
            )

        return _streams.reopen(args, kwargs, name, error, recover)

    async def _aopen_stream(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened:
        try:
            return await open(args, kwargs, name)
        except Exception as exc:
            error = exc
        on = self.on

        async def recover(error: Exception, attempt: int) -> AOpen | None:
            if attempt > 1 or not isinstance(error, on) or not switch.on:
                return None
            answer = self._answer(name, args, kwargs, error)
            return lambda args, kwargs, name: _streams.aopen_first(
                _streams.aone_stream, (answer,), {}, name
            )

        return await _streams.areopen(args, kwargs, name, error, recover)

    def __call__(self, fn: F) -> F:
        """Use the fallback itself as a decorator."""
        if self.async_handler and not is_async_callable(fn) and not is_async_gen(fn):
            raise TypeError(
                f"{self!r}: an async handler cannot answer for the sync function {fn!r}"
            )
        return super().__call__(fn)
