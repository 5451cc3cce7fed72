"""``RateLimitConfig`` and ``RateLimiter``: at most ``rate`` calls per ``period``.

The rules are GCRA, in ``resilient.rate_limit.state`` (pure). A caller whose
turn is more than ``max_wait`` seconds away is refused at once with
``RateLimitExceededError``; one whose turn is closer
reserves it and sleeps until then (a thread through the one sleep, a task
through the one async sleep), and a waiter that is cancelled or
interrupted gives its turn back. With ``storage=`` (a
``resilient.redis.RedisStorage``) the limit holds for the whole fleet.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast

from .. import events
from .._execution.blocks import BlockStack
from .._execution.compose import watching
from .._execution.counters import weakly
from .._execution.policy_base import NamedPolicy
from .._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime import validation as _validate
from .._runtime.exc_info import ExcInfo
from .._runtime.gil import GIL
from .._runtime.mapping import FromDict
from .._runtime.settings import store_kept as _store_kept
from .._runtime.switch import switch
from ..errors import RateLimitExceededError
from ..events import METERED
from .state import GcraCore

if TYPE_CHECKING:
    from .._execution.counters import Stats
    from .._execution.request import Request

__all__ = [
    "RateLimitConfig",
    "RateLimitExceededError",
    "RateLimiter",
    "RateLimiterMetrics",
    "SharedLimit",
]

R = TypeVar("R")

_OWNER = "RateLimitConfig"
# Beyond this many calls a second, an interval is too short for the clock.
_MAX_CALLS_PER_SECOND = 1e9


class SharedLimit(Protocol):
    """What a storage's ``bind_rate_limit(limiter)`` returns: turns of a limit
    shared with other processes."""

    def acquire(self, max_wait: float, cost: float = 1.0) -> tuple[object, float]:
        """``(token, wait)`` for a turn of ``cost`` ``wait`` seconds away, or
        ``(None, retry_after)`` when none is within ``max_wait``."""
        ...

    async def acquire_async(self, max_wait: float) -> tuple[object, float]:
        """``acquire`` without blocking the event loop."""
        ...

    def give_back(self, token: object) -> None: ...

    def adjust(self, units: float) -> None:
        """Charge ``units`` (refund, when negative), atomically."""
        ...

    def detach(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RateLimitConfig(FromDict):
    """At most ``burst + rate * t / period`` calls start in any interval of
    length ``t`` (GCRA). ``burst`` defaults to ``max(1, ceil(rate))``;
    ``burst=1`` spaces calls evenly. A caller waits up to ``max_wait``
    seconds for its turn, else gets ``RateLimitExceededError``. With
    ``storage`` (a ``RedisStorage``) the limit is one for the whole fleet."""

    _durations = frozenset({"period", "max_wait"})

    rate: float
    period: float = 1.0
    _: KW_ONLY
    burst: int | None = None
    max_wait: float = 0.0
    storage: Any = None

    def __post_init__(self) -> None:
        rate = _validate.number(_OWNER, "rate", self.rate, 0)
        if rate == 0:
            raise ValueError(f"{_OWNER}.rate must be a finite number > 0, got {self.rate!r}")
        period = _validate.seconds(_OWNER, "period", self.period, allow_zero=False)
        if rate / period > _MAX_CALLS_PER_SECOND:
            raise ValueError(
                f"{_OWNER}.rate={rate!r} per period={period!r}s is more than "
                f"{_MAX_CALLS_PER_SECOND:g} calls a second, finer than the clock"
            )
        burst = self.burst
        if burst is None:
            burst = max(1, math.ceil(rate))
        _validate.int_at_least(_OWNER, "burst", burst, 1)
        if burst > 2**31:
            raise ValueError(f"{_OWNER}.burst must be <= 2**31, got {burst!r}")
        max_wait = _validate.seconds(_OWNER, "max_wait", self.max_wait)
        if max_wait > threading.TIMEOUT_MAX:
            raise ValueError(
                f"{_OWNER}.max_wait must be <= {threading.TIMEOUT_MAX:g}s "
                f"(the longest wait threads support), got {self.max_wait!r}"
            )
        if self.storage is not None and not callable(
            getattr(self.storage, "bind_rate_limit", None)
        ):
            raise TypeError(
                f"{_OWNER}.storage must be a rate limit storage (with a bind_rate_limit() "
                f"method, e.g. resilient.redis.RedisStorage), got {self.storage!r}"
            )
        object.__setattr__(self, "rate", float(rate))
        object.__setattr__(self, "period", period)
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "max_wait", max_wait)

    @property
    def interval(self) -> float:
        """Seconds between two turns at the steady rate."""
        return self.period / self.rate


class RateLimiterMetrics(NamedTuple):
    """A snapshot of a rate limiter. ``available``: calls that could start now."""

    available: int
    admitted: int
    rejected: int
    rate: float
    period: float
    burst: int


class RateLimiter(NamedPolicy):
    """A named rate limit. Thread-safe, task-safe; threads and tasks share it.

    Args:
        name: what its events, errors and registry entry are called.
        config: a ``RateLimitConfig``; or give its fields instead
            (``**fields``: ``rate``, ``period``, ``burst``, ``max_wait``, ``storage``).
    """

    _kind = "rate_limiter"

    def __init__(
        self,
        name: str,
        config: RateLimitConfig | None = None,
        *,
        listeners: events.ListenerSet | None = None,
        **fields: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"RateLimiter name must be a non-empty str, got {name!r}")
        if config is None:
            if "rate" not in fields:
                raise TypeError(f"RateLimiter {name!r} needs a config or rate=")
            config = RateLimitConfig(**fields)
        elif not isinstance(config, RateLimitConfig):
            raise TypeError(f"RateLimiter config must be a RateLimitConfig, got {config!r}")
        elif fields:
            raise TypeError(f"RateLimiter {name!r}: pass either a config or fields, not both")
        self.name = name
        self.config = config
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        assert config.burst is not None
        self._core = GcraCore(config.rate, config.period, config.burst)
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._last_rejected_at: float | None = None
        self._stats_for(name)  # readers see it from the start
        self._blocks: BlockStack[Any] = BlockStack("resilient_rl_", name)
        self._shared: SharedLimit | None = (
            config.storage.bind_rate_limit(self) if config.storage is not None else None
        )
        self._within = self._fast_within()

    def __repr__(self) -> str:
        cfg = self.config
        return f"<RateLimiter {self.name!r} {cfg.rate:g}/{cfg.period:g}s burst={cfg.burst}>"

    def metrics(self) -> RateLimiterMetrics:
        stats = self._stats_for(self.name)
        cfg = self.config
        assert cfg.burst is not None
        with self._lock:
            available = self._core.available(_clock.monotonic())
        return RateLimiterMetrics(
            available=available,
            admitted=stats.succeeded,
            rejected=stats.rejected,
            rate=cfg.rate,
            period=cfg.period,
            burst=cfg.burst,
        )

    def reset(self) -> None:
        """Every turn free again (a full burst)."""
        with self._lock:
            self._core.reset()

    def reconfigure(self, config: RateLimitConfig) -> None:
        """Adopt ``config`` in place: the turns taken and the callers waiting
        for theirs are kept (a backlog is the same number of turns at the
        new rate). The store (``storage``) cannot change: a different one is
        a ``ValueError``. With a shared store the settings are this
        process's own choice: no other process is reconfigured. Emits
        ``Reconfigured``."""
        changed = _store_kept("RateLimiter", "limiter", self.name, self.config, config)
        if not changed:
            return
        assert config.burst is not None
        with self._lock:
            self._core.retune(config.rate, config.period, config.burst, _clock.monotonic())
            self.config = config
            self._within = self._fast_within()
        if self._shared is not None and config.storage is not None:
            self._shared.detach()
            self._shared = config.storage.bind_rate_limit(self)
        events.announce_settings(self._kind, self.name, self._listeners, changed)

    def _swap_turns(
        self, saved: tuple[float, list[float]] | None = None
    ) -> tuple[float, list[float]]:
        """Install ``saved`` turns (``None``: a full burst) and return what
        they replaced. ``Registry.isolated()`` uses this."""
        core = self._core
        with self._lock:
            previous = (core.tat, list(core.holes))
            tat, holes = saved if saved is not None else (-math.inf, [])
            core.tat = tat
            core.holes[:] = holes
        return previous

    def rejected_since(self, since: float) -> bool:
        """Whether a call was refused at or after monotonic time ``since``."""
        last = self._last_rejected_at
        return last is not None and last >= since

    def _init_stats(self, stats: Stats) -> None:
        stats.gauges = weakly(self._gauges)

    def _gauges(self) -> dict[str, float | str]:
        with self._lock:
            available = self._core.available(_clock.monotonic())
        return {"available": available, "limit": self.config.rate / self.config.period}

    # -- turns -----------------------------------------------------------------

    def _refused(self, retry_after: float, now: float) -> RateLimitExceededError:
        """The error for a call with no turn in reach; counts it, emits its event."""
        stats = self._stats_for(self.name)
        stats.rejected += 1
        stats.rate_limited += 1
        self._last_rejected_at = now
        if self._listeners.events:
            self._listeners.new(
                events.CallRejected,
                self.name,
                self._kind,
                "rate_limited",
                retry_after,
                events.POLICY,
            )
        return RateLimitExceededError(self.name, retry_after)

    def adjust(self, units: float) -> None:
        """Charge ``units`` turns to the limit now (or, when negative, refund
        them): what a call really took, settled after it ran. Fleet-wide
        with a shared storage, atomically."""
        if isinstance(units, bool) or not isinstance(units, (int, float)) or units != units:
            raise TypeError(
                f"RateLimiter {self.name!r}.adjust(units) needs a number, got {units!r}"
            )
        if units == 0 or not switch.on:
            return
        shared = self._shared
        if shared is not None:
            shared.adjust(float(units))
            return
        with self._lock:
            self._core.adjust(_clock.now(), float(units))

    def _check_cost(self, cost: float) -> float:
        """``cost`` as a float, or a ValueError naming it (and ``burst``)."""
        burst = self.config.burst
        assert burst is not None
        if isinstance(cost, bool) or not isinstance(cost, (int, float)):
            raise TypeError(f"rate limit {self.name!r}: cost must be a number, got {cost!r}")
        if not 0 <= cost <= burst:
            if cost > burst:
                raise ValueError(
                    f"rate limit {self.name!r}: cost={cost!r} is larger than burst={burst!r}; "
                    "no call of that cost could ever start"
                )
            raise ValueError(f"rate limit {self.name!r}: cost must be >= 0, got {cost!r}")
        return float(cost)

    def _check_units(self, units: float) -> float:
        """What an ``actual`` callback said a call took, as a float."""
        if isinstance(units, bool) or not isinstance(units, (int, float)) or not units >= 0:
            raise ValueError(
                f"rate limit {self.name!r}: actual must return a number >= 0, got {units!r}"
            )
        if units == float("inf"):
            raise ValueError(f"rate limit {self.name!r}: actual must be finite, got {units!r}")
        return float(units)

    def _reserve(self, cost: float = 1.0) -> tuple[object, float]:
        """``(token, wait)`` of this caller's turn (of ``cost``); raises when
        none is in reach."""
        max_wait = self.config.max_wait
        shared = self._shared
        now = _clock.now()
        if shared is not None:
            token, wait = shared.acquire(max_wait, cost)
            if token is None:
                raise self._refused(wait, now)
            return token, wait
        core = self._core
        with self._lock:
            local = core.acquire(now, max_wait, cost)
            if local is None:
                retry_after = core.retry_after(now, cost)
        if local is None:
            raise self._refused(retry_after, now)
        return local, core.start_of(local, cost) - now

    def _take(self, cost: float) -> tuple[object, float]:
        """``_reserve``, trying first a turn free now without the lock (as
        the fast path does)."""
        if cost > 1.0 and cost > (self.config.burst or 1):
            # The fast paths check a cost against ``burst`` as it was when the
            # function was decorated; a reconfigure may have lowered it since.
            self._check_cost(cost)
        if self._shared is None and GIL and not self._core.holes:
            core = self._core
            need = cost * core.interval
            now = _clock.now()
            # No call between reading core.tat and writing it (see the fast path).
            tat = core.tat
            if tat < now:
                tat = now
            if tat + need - now <= core.tolerance + core.interval + core.slack:
                core.tat = tat + need
                return tat, 0.0
        return self._reserve(cost)

    def _give_back(self, token: object, cost: float = 1.0) -> None:
        shared = self._shared
        if shared is not None:
            shared.give_back(token)
            return
        with self._lock:
            self._core.give_back(token, cost)  # type: ignore[arg-type]

    async def _areserve(self) -> tuple[object, float]:
        """``_reserve`` for a task: a shared limit is asked off the event loop."""
        shared = self._shared
        if shared is None:
            return self._reserve()
        now = _clock.now()
        token, wait = await shared.acquire_async(self.config.max_wait)
        if token is None:
            raise self._refused(wait, now)
        return token, wait

    # --- generated from _aacquire by scripts/unasync.py; do not edit ---
    def _acquire(self) -> None:
        """Take a turn for this caller, sleeping until it comes if need be."""
        token, wait = self._reserve()
        if wait > 0.0:
            wait_for_turn(wait, self._give_back, token)
        self._stats_for(self.name).succeeded += 1

    # --- end generated ---

    async def _aacquire(self) -> None:
        """Take a turn for this caller, sleeping until it comes if need be."""
        token, wait = await self._areserve()
        if wait > 0.0:
            await await_turn(wait, self._give_back, token)
        self._stats_for(self.name).succeeded += 1

    # -- execution -------------------------------------------------------------

    # The fast path, written once (its sync twin is generated from the async
    # one by scripts/unasync.py): a turn free now costs the clock and GCRA's
    # compare, without the lock. Waiting, refusing and a shared limit go
    # through ``_acquire`` / ``_aacquire``.

    def _fast_within(self) -> float:
        """How far ahead ``tat`` may be for a call to start now on the fast
        path (``-inf``: never, every call takes the locked path: a shared
        limit, or no GIL; whatever a turn weighs)."""
        core = self._core
        if self._shared is not None or not GIL:  # see resilient._runtime.gil
            return -math.inf
        return core.tolerance + core.slack

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        gate, detour, meter = watching(self, fn, name, entry, functools.partial(self._run, fn))
        assert detour is not None
        acquire = self._acquire
        core = self._core
        holes = core.holes
        stats = self._stats_for(self.name)
        clock = _clock

        def through_limiter(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            if not switch.on:
                return fn(*args, **kwargs)
            now = clock.now()
            # GCRA, inline: no call between reading core.tat and writing it,
            # so under the GIL no other thread runs in between (the lock
            # guards the rest: holes, waits).
            tat = core.tat
            if tat < now:
                tat = now
            if tat - now <= self._within and not holes:
                core.tat = tat + core.interval
                stats.succeeded += 1
            else:
                try:
                    acquire()
                except BaseException as exc:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
            if not level:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                return fn(*args, **kwargs) if kwargs else fn(*args)
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                meter.failed(exc, start, False)  # type: ignore[union-attr]
                raise
            meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_limiter

    # --- end generated ---

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        gate, detour, meter = watching(
            self, fn, name, entry, functools.partial(self._arun, fn), is_async=True
        )
        assert detour is not None
        aacquire = self._aacquire
        core = self._core
        holes = core.holes
        stats = self._stats_for(self.name)
        clock = _clock

        async def through_limiter(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            if not switch.on:
                return await fn(*args, **kwargs)
            now = clock.now()
            # GCRA, inline: no call between reading core.tat and writing it,
            # so under the GIL no other thread runs in between (the lock
            # guards the rest: holes, waits).
            tat = core.tat
            if tat < now:
                tat = now
            if tat - now <= self._within and not holes:
                core.tat = tat + core.interval
                stats.succeeded += 1
            else:
                try:
                    await aacquire()
                except BaseException as exc:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
            if not level:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                return await (fn(*args, **kwargs) if kwargs else fn(*args))
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                meter.failed(exc, start, False)  # type: ignore[union-attr]
                raise
            meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_limiter

    # --- generated from _arun by scripts/unasync.py; do not edit ---
    def _run(self, fn: SyncFn[R], args: Args, kwargs: Kwargs) -> R:
        if switch.on:
            self._acquire()
        return fn(*args, **kwargs) if kwargs else fn(*args)

    # --- end generated ---

    async def _arun(self, fn: AsyncFn[R], args: Args, kwargs: Kwargs) -> R:
        if switch.on:
            await self._aacquire()
        return await (fn(*args, **kwargs) if kwargs else fn(*args))

    # A stream takes one turn when it starts (at its first item's request).

    # --- generated from _aopen_stream by scripts/unasync.py; do not edit ---
    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str = "") -> Opened:
        if switch.on:
            self._acquire()
        return open(args, kwargs, name)

    # --- end generated ---

    async def _aopen_stream(
        self, open: AOpen, args: Args, kwargs: Kwargs, name: str = ""
    ) -> Opened:
        if switch.on:
            await self._aacquire()
        return await open(args, kwargs, name)

    # -- context managers --------------------------------------------------------

    def _open_block(self) -> object:
        block = self._block_request()
        return block.begin() if block.gate.level else None

    def _end_block(self, opened: object, exc: BaseException | None) -> None:
        if opened is not None:
            self._block_request().end(opened, exc)  # type: ignore[arg-type]

    def __enter__(self) -> RateLimiter:
        opened = self._open_block()
        if switch.on:
            try:
                self._acquire()
            except BaseException as exc:
                self._end_block(opened, exc)
                raise
        self._blocks.push(opened)
        return self

    def __exit__(self, *exc_info: *ExcInfo) -> None:
        exc = exc_info[1]
        self._end_block(self._blocks.pop(), exc)

    async def __aenter__(self) -> RateLimiter:
        opened = self._open_block()
        if switch.on:
            try:
                await self._aacquire()
            except BaseException as exc:
                self._end_block(opened, exc)
                raise
        self._blocks.push(opened)
        return self

    async def __aexit__(self, *exc_info: *ExcInfo) -> None:
        exc = exc_info[1]
        self._end_block(self._blocks.pop(), exc)


def swap_turns(limiter: RateLimiter, saved: object | None = None) -> object:
    """Install ``saved`` turns (``None``: a full burst) in ``limiter`` and
    return what they replaced (``Registry.isolated()``)."""
    return limiter._swap_turns(cast("tuple[float, list[float]] | None", saved))


# Waiting for a turn taken ahead (a limiter's, or a stack's turns): an
# interrupt while waiting (a cancellation, KeyboardInterrupt) gives it back.


def wait_for_turn(wait: float, give_back: Callable[[Any], object], taken: object) -> None:
    """Sleep ``wait`` seconds for the turn ``taken``; give it back if interrupted."""
    try:
        _clock.sleep(wait)
    except BaseException:
        give_back(taken)
        raise


async def await_turn(wait: float, give_back: Callable[[Any], object], taken: object) -> None:
    """``wait_for_turn`` for a task."""
    try:
        await _clock.sleep_async(wait)
    except BaseException:
        give_back(taken)
        raise
