"""``with_chaos``: inject faults, results and latency, for staging and tests.

Each call draws its fate from the policy's own random source: first whether
it is delayed (``latency_rate``), then whether it is replaced by a fault
(``fault_rate``): the ``exception`` raised, or ``result`` returned, without
running the function. With a ``seed`` the n-th call's fate is the same on
every run. Latency sleeps through ``resilient._runtime.clock``, so under
``resilient.testing.fake_clock()`` it advances the clock instead.

Put it innermost (closest to the function) to play a failing dependency to
the policies around it.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import events
from ._execution.policy_base import ForwardingPolicy
from ._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from ._runtime import clock as _clock
from ._runtime import fork as _fork
from ._runtime import validation as _validate
from ._runtime.switch import switch
from .errors import ChaosError

if TYPE_CHECKING:
    from ._execution.compose import Decoratable

__all__ = ["Chaos", "with_chaos"]

R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

log = logging.getLogger("resilient")

_OWNER = "Chaos"
_NOTE = "resilient: injected by with_chaos"

ExceptionSpec = type[BaseException] | BaseException | Callable[[], BaseException]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def _latency(value: object) -> tuple[float, float]:
    """``seconds`` or ``(low, high)`` seconds, as a range."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise TypeError(
                f"{_OWNER}.latency must be seconds or a (low, high) pair of them, got {value!r}"
            )
        try:
            low = _validate.seconds(_OWNER, "latency", value[0])
            high = _validate.seconds(_OWNER, "latency", value[1])
        except (TypeError, ValueError):
            raise ValueError(
                f"{_OWNER}.latency must be a (low, high) pair of finite seconds >= 0, got {value!r}"
            ) from None
        if high < low:
            raise ValueError(f"{_OWNER}.latency must be a range with low <= high, got {value!r}")
        return low, high
    seconds = _validate.seconds(_OWNER, "latency", value)
    return seconds, seconds


def _exception_factory(value: object) -> Callable[[], BaseException]:
    if isinstance(value, type):
        if issubclass(value, BaseException):
            return value
    elif isinstance(value, BaseException):
        template = value

        def copied() -> BaseException:
            # A fresh exception per fault: one instance raised again and
            # again would pile its tracebacks (and notes) onto itself.
            error = copy.copy(template)
            error.__notes__ = list(getattr(template, "__notes__", ()))
            return error

        return copied
    elif callable(value):
        return value
    raise TypeError(
        f"{_OWNER}.exception must be an exception type, an exception, or a callable "
        f"returning one, got {value!r}"
    )


class Chaos(ForwardingPolicy):
    """Fault and latency injection for one function or many.

    ``fault_rate`` (0..1): the share of calls replaced by a fault: raising
    ``exception`` (a type, an instance copied per fault, or a callable
    returning one; default ``ChaosError``), or, when ``result`` is
    given, returning it. ``latency`` (seconds, or a ``(low, high)`` range
    drawn uniformly) is added before a ``latency_rate`` share of calls.
    ``enabled`` is a bool or a callable asked on every call (a feature flag).
    ``seed`` makes the sequence of fates reproducible. ``name`` names its
    events (default: the name of the function called).
    """

    _kind = "chaos"

    def __init__(
        self,
        *,
        fault_rate: float = 0.0,
        exception: ExceptionSpec = ChaosError,
        latency: float | tuple[float, float] = 0.0,
        latency_rate: float = 1.0,
        result: Any = UNSET,
        enabled: bool | Callable[[], bool] = True,
        seed: int | None = None,
        name: str | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        self.fault_rate = _validate.probability(_OWNER, "fault_rate", fault_rate)
        self.latency = _latency(latency)
        self.latency_rate = _validate.probability(_OWNER, "latency_rate", latency_rate)
        self._make_error = _exception_factory(exception)
        self.exception = exception
        if result is not UNSET and exception is not ChaosError:
            raise TypeError(
                f"{_OWNER} injects either a result or an exception, "
                f"got result={result!r} and exception={exception!r}"
            )
        self.result = result
        if not isinstance(enabled, bool) and not callable(enabled):
            raise TypeError(f"{_OWNER}.enabled must be a bool or a callable, got {enabled!r}")
        self.enabled = enabled
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{_OWNER}.seed must be an int or None, got {seed!r}")
        self.seed = seed
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{_OWNER} name must be a non-empty str or None, got {name!r}")
        self.name = name
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # one call's draws stay together
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)

    def __repr__(self) -> str:
        low, high = self.latency
        latency = f"{low:g}" if low == high else f"{low:g}..{high:g}"
        return (
            f"<Chaos fault_rate={self.fault_rate:g} latency={latency}s "
            f"latency_rate={self.latency_rate:g}>"
        )

    # -- the rules, shared by both paths ---------------------------------------

    def _active(self) -> bool:
        if not switch.on:
            return False
        enabled = self.enabled
        return enabled if isinstance(enabled, bool) else bool(enabled())

    def _fate(self) -> tuple[float, bool]:
        """This call's added latency and whether a fault replaces it."""
        low, high = self.latency
        with self._lock:
            rng = self._rng
            delay = 0.0
            if high > 0 and rng.random() < self.latency_rate:
                delay = low if low == high else rng.uniform(low, high)
            fault = self.fault_rate > 0 and rng.random() < self.fault_rate
        return delay, fault

    def _announce(self, name: str, kind: str, delay: float, error: BaseException | None) -> None:
        log.debug(
            "chaos %r: injected %s",
            name,
            f"{delay:g}s of latency" if kind == "latency" else kind,
            extra={"chaos": name, "kind": kind},
        )
        if self._listeners.events:
            self._listeners.new(events.ChaosInjected, name, self._kind, kind, delay, error)

    def _delay(self, name: str, delay: float) -> float:
        self._announce(name, "latency", delay, None)
        return delay

    def _fault(self, name: str) -> Any:
        """The injected outcome: a result to return, or an error raised."""
        if self.result is not UNSET:
            self._announce(name, "result", 0.0, None)
            return self.result
        error = self._make_error()
        if not isinstance(error, BaseException):
            raise TypeError(f"{_OWNER}.exception factory must return an exception, got {error!r}")
        error.add_note(_NOTE)
        self._announce(name, "fault", 0.0, error)
        raise error

    # -- execution -------------------------------------------------------------

    # --- generated from _arun by scripts/unasync.py; do not edit ---
    def _run(self, fn: SyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        if not self._active():
            return fn(*args, **kwargs)
        delay, fault = self._fate()
        if delay:
            _clock.sleep(self._delay(name, delay))
        if fault:
            return self._fault(name)  # type: ignore[no-any-return]
        return fn(*args, **kwargs)

    # --- end generated ---

    async def _arun(self, fn: AsyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        if not self._active():
            return await fn(*args, **kwargs)
        delay, fault = self._fate()
        if delay:
            await _clock.sleep_async(self._delay(name, delay))
        if fault:
            return self._fault(name)  # type: ignore[no-any-return]
        return await fn(*args, **kwargs)

    # A stream's fate is drawn when it starts: latency before its first
    # item, a fault instead of its items (an injected result is its one item).

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str) -> Opened:
        if self._active():
            delay, fault = self._fate()
            if delay:
                _clock.sleep(self._delay(name, delay))
            if fault:
                return Opened(iter(()), self._fault(name))
        return open(args, kwargs, name)

    async def _aopen_stream(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened:
        if self._active():
            delay, fault = self._fate()
            if delay:
                await _clock.sleep_async(self._delay(name, delay))
            if fault:
                return Opened(_nothing(), self._fault(name))
        return await open(args, kwargs, name)


async def _nothing() -> AsyncIterator[Any]:
    """The rest of a stream whose one item is an injected result."""
    nothing: tuple[Any, ...] = ()
    for item in nothing:
        yield item  # pragma: no cover


def with_chaos(
    chaos: Chaos | None = None,
    /,
    *,
    fault_rate: float = 0.0,
    exception: ExceptionSpec = ChaosError,
    latency: float | tuple[float, float] = 0.0,
    latency_rate: float = 1.0,
    result: Any = UNSET,
    enabled: bool | Callable[[], bool] = True,
    seed: int | None = None,
    name: str | None = None,
) -> Callable[[F], F]:
    """Inject faults (``fault_rate`` of the calls raise ``exception``, or
    return ``result``) and latency (``latency`` seconds before a
    ``latency_rate`` share of them) into a function, coroutine function or
    method.

    Args:
        chaos: a ready ``Chaos``, instead of the keywords.
        fault_rate: the share of calls (0..1) replaced by a fault.
        exception: what a fault raises: a type, an instance (copied per
            fault) or a callable returning one.
        latency: seconds added, or a ``(low, high)`` range drawn uniformly.
        latency_rate: the share of calls that get the latency.
        result: when given, a fault returns it instead of raising.
        enabled: a bool, or a callable asked on every call (a feature flag).
        seed: makes the sequence of fates reproducible.
        name: names its events (default: the name of the function called).
    """
    if chaos is not None:
        if not isinstance(chaos, Chaos):
            raise TypeError(f"with_chaos: expected a Chaos or keywords, got {chaos!r}")
        given = (fault_rate, latency, latency_rate, enabled, seed, name)
        if (
            given != (0.0, 0.0, 1.0, True, None, None)
            or result is not UNSET
            or (exception is not ChaosError)
        ):
            raise TypeError("with_chaos: pass either a Chaos or keywords, not both")
        return chaos.__call__
    return Chaos(
        fault_rate=fault_rate,
        exception=exception,
        latency=latency,
        latency_rate=latency_rate,
        result=result,
        enabled=enabled,
        seed=seed,
        name=name,
    ).__call__
