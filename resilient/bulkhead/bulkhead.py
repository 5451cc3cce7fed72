"""``BulkheadConfig`` and ``Bulkhead``: a concurrency limit with a bounded queue.

One limiter serves threads and async tasks (asyncio or trio) together, on
any number of event loops. The rules live in ``resilient.bulkhead.state``:
free permits are taken and given back without a lock, the queue sits behind
one ``threading.Lock``. A queued thread waits on a lock of its own, a queued
task on a waiter of its own library (``resilient._runtime.async_backend``), woken
through its loop when the permit comes from another thread.

With ``BulkheadConfig(adaptive=AdaptiveLimit(...))`` the limit moves: each
admitted call is timed and handed to the algorithm (``resilient.adaptive``,
no lock), and only a change of the whole-number limit takes the lock, to add
or take away permits.
"""

from __future__ import annotations

import functools
import inspect
import threading
from _thread import LockType
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar, cast

from .. import events
from .._execution.blocks import BlockStack
from .._execution.compose import watching
from .._execution.counters import weakly
from .._execution.policy_base import NamedPolicy
from .._execution.request import Request
from .._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from .._runtime import async_backend as _async_backend
from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime import validation as _validate
from .._runtime.exc_info import ExcInfo
from .._runtime.mapping import FromDict
from .._runtime.settings import changes as _settings_changes
from .._runtime.switch import switch
from ..errors import BulkheadFullError
from ..events import METERED, POLICY
from .adaptive import TIMED, WINDOW, AdaptiveLimit, Estimator, estimator
from .state import LimiterCore, Waiter

if TYPE_CHECKING:
    from types import FrameType

    from .._execution.counters import Stats

__all__ = ["Bulkhead", "BulkheadConfig", "BulkheadMetrics"]

R = TypeVar("R")

_OWNER = "BulkheadConfig"


@dataclass(frozen=True, slots=True)
class BulkheadConfig(FromDict):
    """At most ``max_concurrent`` calls at once; up to ``max_queue`` more wait
    for a slot, each at most ``queue_timeout`` seconds (``None``: no limit).
    ``adaptive``: an ``AdaptiveLimit`` moves the limit within
    ``max_concurrent`` from the latencies and failures it observes."""

    _durations = frozenset({"queue_timeout"})

    max_concurrent: int
    _: KW_ONLY
    max_queue: int = 0
    queue_timeout: float | None = None
    adaptive: AdaptiveLimit | None = None

    def __post_init__(self) -> None:
        # One permit token each, allocated up front; a queued caller each.
        _validate.int_between(
            _OWNER, "max_concurrent", self.max_concurrent, 1, _validate.MAX_PERMITS
        )
        _validate.int_between(_OWNER, "max_queue", self.max_queue, 0, _validate.MAX_PERMITS)
        if self.adaptive is not None and not isinstance(self.adaptive, AdaptiveLimit):
            raise TypeError(
                f"{_OWNER}.adaptive must be an AdaptiveLimit or None, got {self.adaptive!r}"
            )
        _validate.seconds_or_none(_OWNER, "queue_timeout", self.queue_timeout)


class BulkheadMetrics(NamedTuple):
    """A snapshot of a bulkhead. ``limit`` is the current limit (``max_concurrent``
    unless adaptive); ``utilization`` is active / limit."""

    active: int
    queued: int
    completed: int
    rejected: int
    utilization: float
    max_concurrent: int
    max_queue: int
    limit: int


def _held_lock() -> threading.Lock:
    """What a queued thread blocks on: a lock already taken, released to wake it."""
    signal = threading.Lock()
    signal.acquire()
    return signal


# What ``with bulkhead:`` remembers per block (None: switched off, nothing
# held): when it started, and its request when someone watched it open.
_Held: TypeAlias = "tuple[float, Any]"


@functools.cache
def _run_codes() -> frozenset[Any]:
    """The code of every function that holds a permit while it calls the
    protected function: the fast paths' closures and the slow paths."""
    closures = {
        const
        for wrap in (
            Bulkhead._wrap_sync,
            Bulkhead._wrap_async,
            Bulkhead._wrap_adaptive,
            Bulkhead._wrap_adaptive_async,
        )
        for const in wrap.__code__.co_consts
        if getattr(const, "co_name", None) == "through_bulkhead"
    }
    return frozenset(closures | _RUNS)


class Bulkhead(NamedPolicy):
    """A named concurrency limit. Thread-safe, task-safe (asyncio, trio), loop-agnostic.

    Args:
        name: what its events, errors and registry entry are called.
        config: a ``BulkheadConfig``; or give its fields instead:
        max_concurrent: calls running at once.
        max_queue: calls that may wait for a slot beyond those.
        queue_timeout: seconds a queued call waits at most (``None``: no limit).
    """

    _kind = "bulkhead"

    def __init__(
        self,
        name: str,
        config: BulkheadConfig | None = None,
        *,
        max_concurrent: int | None = None,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Bulkhead name must be a non-empty str, got {name!r}")
        if config is None:
            if max_concurrent is None:
                raise TypeError(f"Bulkhead {name!r} needs a config or max_concurrent")
            config = BulkheadConfig(
                max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout
            )
        elif not isinstance(config, BulkheadConfig):
            raise TypeError(f"Bulkhead config must be a BulkheadConfig, got {config!r}")
        elif max_concurrent is not None or max_queue or queue_timeout is not None:
            raise TypeError(f"Bulkhead {name!r}: pass either a config or limits, not both")
        self.name = name
        self.config = config
        adaptive = config.adaptive
        self._estimator: Estimator | None = (
            None if adaptive is None else estimator(adaptive, config.max_concurrent)
        )
        # The slow paths' samples not yet handed over: latency sum, count, failures.
        self._window: list[Any] = [0.0, 0, 0]
        self._core = LimiterCore(
            config.max_concurrent,
            config.max_queue,
            None if self._estimator is None else int(self._estimator.estimate),
        )
        self._lock = threading.Lock()
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._interrupted = 0  # calls that ended by cancellation or interrupt
        self._stats_for(name)  # readers see it (its state) from the start
        self._blocks: BlockStack[_Held] = BlockStack("resilient_bh_", name)
        _fork.renew_in_child(self, Bulkhead._forked)

    def reconfigure(self, config: BulkheadConfig) -> None:
        """Adopt ``config`` in place: the calls running and waiting keep their
        places. A smaller ``max_concurrent`` takes no permit from a running
        call: no one new is admitted until fewer than the new bound run; a
        smaller ``max_queue`` turns no waiter away. An adaptive limit keeps
        its estimate within the new bound; ``adaptive`` itself cannot change
        in place (a ``ValueError``). Emits ``Reconfigured``."""
        if not isinstance(config, BulkheadConfig):
            raise TypeError(f"Bulkhead config must be a BulkheadConfig, got {config!r}")
        if config.adaptive != self.config.adaptive:
            raise ValueError(
                f"Bulkhead {self.name!r}: adaptive cannot change in place "
                f"(got {config.adaptive!r}, the bulkhead has {self.config.adaptive!r})"
            )
        changed = _settings_changes(self.config, config)
        if not changed:
            return
        core = self._core
        with self._lock:
            core.max_concurrent = config.max_concurrent
            core.max_queue = config.max_queue
            self.config = config
            limit = config.max_concurrent
            estimator = self._estimator
            if estimator is not None and config.adaptive is not None:
                estimator.high = float(min(config.adaptive.max_limit, config.max_concurrent))
                estimator.estimate = min(max(estimator.estimate, estimator.low), estimator.high)
                limit = int(estimator.estimate)
            core.resize(limit)
        if core.queued:
            self._hand_over()
        events.announce_settings(self._kind, self.name, self._listeners, changed)

    def _forked(self) -> None:
        """In a forked child only the thread that forked exists: the
        permits it holds stay held (its calls give them back when they end
        there), every other permit is free, nobody waits, and the lock is
        new. The counts (completed, rejected, failed) are kept."""
        self._lock = threading.Lock()
        core = self._core
        held = self._held_here()
        # Permits a smaller limit still owed were held by threads that are
        # gone: only a debt beyond what this thread holds remains.
        core.owed = max(0, held - core.limit)
        core.queued = 0
        core._waiters.clear()
        # The same deque (the fast paths hold its methods), refilled.
        core.free.clear()
        core.free.extend([None] * (core.limit + core.owed - held))

    def _held_here(self) -> int:
        """Permits of this bulkhead the calling thread holds: its open
        ``with`` blocks, and the calls through it on its stack."""
        held = sum(1 for entry in self._blocks.entries() if entry is not None)
        runs = _run_codes()
        frame: FrameType | None = inspect.currentframe()
        callee: FrameType | None = None
        while frame is not None:
            code = frame.f_code
            if code in runs and callee is not None and callee.f_code not in _WAITS:
                owner = frame.f_locals.get("self") if code in _RUNS else frame.f_locals.get("core")
                # A fast path whose callee is its own slow path holds nothing.
                if owner is (self if code in _RUNS else self._core) and not (
                    code not in _RUNS and callee.f_code in _RUNS
                ):
                    held += 1
            callee, frame = frame, frame.f_back
        return held

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<Bulkhead {self.name!r} active={core.active}/{core.limit} "
            f"queued={core.queued}/{core.max_queue}>"
        )

    def metrics(self) -> BulkheadMetrics:
        with self._lock:
            core = self._core
            active = core.active
            return BulkheadMetrics(
                active=active,
                queued=core.queued,
                # Calls that ended, not those cancelled or interrupted.
                completed=core.completed() - self._interrupted,
                rejected=core.rejected,
                utilization=active / core.limit,
                max_concurrent=core.max_concurrent,
                max_queue=core.max_queue,
                limit=core.limit,
            )

    def _init_stats(self, stats: Stats) -> None:
        stats.refresh = weakly(self._fold_counts)
        stats.gauges = weakly(self._gauges)

    def _fold_counts(self) -> None:
        core = self._core
        stats = self._stats_for(self.name)
        stats.rejected = core.rejected
        stats.succeeded = core.completed() - stats.failed - self._interrupted

    def _gauges(self) -> dict[str, float | str]:
        core = self._core
        return {
            "active": core.active,
            "queued": core.queued,
            "limit": core.limit,
            "utilization": core.active / core.limit,
        }

    def rejected_since(self, since: float) -> bool:
        """Whether a call was rejected at or after monotonic time ``since``."""
        last = self._core.last_rejected_at
        return last is not None and last >= since

    # -- permits -------------------------------------------------------------

    def _full(self) -> BulkheadFullError:
        """The error for a rejection the core has counted; emits its event."""
        core = self._core
        if self._listeners.events:
            self._listeners.new(
                events.BulkheadRejected, self.name, self._kind, core.limit, core.max_queue
            )
        return BulkheadFullError(self.name, core.limit, core.max_queue)

    def _reject(self) -> BulkheadFullError:
        with self._lock:
            self._core.reject(_clock.monotonic())
        return self._full()

    def _release(self) -> None:
        """A call ends: its permit goes back, to a waiter if there is one."""
        self._core.finished()
        self._give_back()

    def _give_back(self) -> None:
        """A permit goes back (or pays what a smaller limit owes)."""
        core = self._core
        if core.owed:
            with self._lock:
                if core.settle():
                    return
        core.give()
        if core.queued:
            self._hand_over()

    # -- the adaptive limit ---------------------------------------------------

    def _ended(self, began: float, error: BaseException | None) -> None:
        """The slow paths' sample (calls with events, ``with`` blocks):
        cancellations and interrupts teach the algorithm nothing."""
        if self._estimator is not None and (error is None or isinstance(error, Exception)):
            self._observe(began, error is not None)

    def _observe(self, began: float, failed: bool) -> None:
        """An admitted call of a slow path (events, ``with`` blocks) that
        began at ``began`` ended: one timed sample into their shared window."""
        window = self._window
        window[0] += _clock.now() - began
        if failed:
            window[2] += 1
        window[1] += 1
        if window[1] >= WINDOW:
            total, samples, failures = window
            window[0], window[1], window[2] = 0.0, 0, 0
            self._flush(total, samples, samples, failures)

    def _flush(self, total: float, timed: int, samples: int, failures: int) -> None:
        """Hand a window of ``samples`` calls (``failures`` of them failed;
        ``timed`` of them timed, taking ``total`` seconds together) to the
        algorithm; move the limit if it says so.

        Each fast-path closure gathers its own window without a lock (two
        threads counting at once may lose a sample, or both hand the same
        window over: it costs the estimate nothing), and times half the
        calls it admits: the algorithms read a window's mean latency, which
        half its calls estimate as well as all of them, and the two clock
        reads around a call were most of what an adaptive limit added to a
        bulkhead. Which half follows ``TIMED``, so
        that calls alternating between two backends (or any short cycle)
        are sampled on each."""
        core = self._core
        estimate = self._estimator.update(  # type: ignore[union-attr]
            total / timed, core.active, failures, samples
        )
        new = int(estimate)
        if new != core.limit:
            with self._lock:
                core.resize(new)
            if core.queued:
                self._hand_over()

    def _hand_over(self) -> None:
        """Free permits go to waiters, first come first served."""
        core = self._core
        lock = self._lock
        while core.queued:
            with lock:
                waiter = core.hand_over()
            if waiter is None:
                return
            if not self._wake(waiter):
                with lock:
                    core.cancel(waiter)
                core.give()

    @staticmethod
    def _wake(waiter: Waiter) -> bool:
        wake = waiter.wake
        if isinstance(wake, LockType):
            wake.release()
            return True
        # A task's waiter: False when its loop is closed (it will never run again).
        return cast(_async_backend.Waiter, wake).wake()

    def _leave_queue(self, waiter: Waiter) -> bool:
        """``waiter`` stops waiting. True when a permit reached it first: it
        holds that permit now."""
        with self._lock:
            return self._core.cancel(waiter)

    def _join_queue(self, wake: Callable[[], object]) -> Waiter | None:
        """The new waiter, or None when a permit was taken after all; raises
        ``BulkheadFullError`` when the queue is full."""
        core = self._core
        with self._lock:
            try:
                core.take()  # freed since the lock-free try
                return None
            except IndexError:
                pass
            if core.can_queue():
                waiter = core.enqueue(wake())
                try:
                    core.take()  # freed by a release that saw no waiter yet
                except IndexError:
                    return waiter
                core.cancel(waiter)
                return None
            core.reject(_clock.monotonic())
        raise self._full()

    def _acquire(self) -> None:
        """Take a permit for this thread, waiting in the queue if need be."""
        try:
            self._core.take()
        except IndexError:
            self._wait_for_permit()

    def _wait_for_permit(self) -> None:
        waiter = self._join_queue(_held_lock)
        if waiter is None:
            return
        signal = cast(threading.Lock, waiter.wake)
        timeout = self.config.queue_timeout
        try:
            if timeout is None:
                signal.acquire()
            elif _clock.get_clock() is _clock.REAL:
                signal.acquire(timeout=timeout)
            elif not signal.acquire(blocking=False):
                # A test clock: the wait passes on that clock, not for real.
                _clock.sleep(timeout)
        except BaseException:
            if self._leave_queue(waiter):
                self._give_back()
            raise
        if not self._leave_queue(waiter):
            raise self._reject()

    async def _aacquire(self) -> None:
        """Take a permit for this task, waiting in the queue if need be."""
        try:
            self._core.take()
        except IndexError:
            await self._await_permit()

    async def _await_permit(self) -> None:
        waiter = self._join_queue(_async_backend.waiter)
        if waiter is None:
            return
        task: _async_backend.Waiter = waiter.wake  # type: ignore[assignment]
        timeout = self.config.queue_timeout
        try:
            if timeout is None:
                await task.wait()
            elif _clock.get_clock() is _clock.REAL:
                async with _async_backend.timeout(timeout):
                    await task.wait()
            elif not await _async_backend.wait_or_sleep(task, _clock.sleep_async, timeout):
                # A test clock: the wait passed on that clock, not for real.
                raise TimeoutError
        except TimeoutError:
            if self._leave_queue(waiter):
                return  # granted at the last moment: use it
            raise self._reject() from None
        except BaseException:
            # Cancelled or interrupted: a permit handed over meanwhile goes on
            # to the next waiter.
            if self._leave_queue(waiter):
                self._give_back()
            raise

    # -- execution -----------------------------------------------------------

    # The fast path, written once per flavour: a free permit is a token
    # popped from a deque and pushed back, without the lock. ``_run`` /
    # ``_arun`` are the same with the policy's own events, the detour while
    # someone listens to this bulkhead.

    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        if self._estimator is not None:
            return self._wrap_adaptive(fn, name, entry)
        gate, detour, meter = watching(self, fn, name, entry, functools.partial(self._run, fn))
        assert detour is not None
        core = self._core
        take, done, give = core.free.pop, core.done, core.free.append
        wait, hand_over, give_back = self._wait_for_permit, self._hand_over, self._give_back
        keep_until_finished = self._keep_until_finished
        stats = self._stats_for(self.name)
        clock = _clock

        def through_bulkhead(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            if not switch.on:
                return fn(*args, **kwargs)
            try:
                take()
            except IndexError:
                try:
                    wait()
                except BaseException as exc:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except Exception as exc:
                stats.failed += 1
                next(done)
                if level:
                    meter.failed(exc, start, False)  # type: ignore[union-attr]
                keep_until_finished(exc)
                raise
            except BaseException:
                self._interrupted += 1
                next(done)
                if core.owed:
                    give_back()
                else:
                    give(None)
                    if core.queued:
                        hand_over()
                raise
            next(done)
            if core.owed:
                give_back()
            else:
                give(None)
                if core.queued:
                    hand_over()
            if level:
                meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_bulkhead

    def _keep_until_finished(self, error: Exception) -> None:
        """A sync call failed: its permit goes back now, unless it timed out
        while its worker still runs it; then when that worker is done, so
        the bound holds at the dependency, not only at the caller."""
        when_finished = getattr(error, "_when_finished", None)
        if when_finished is None or not when_finished(self._give_back):
            self._give_back()

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        if self._estimator is not None:
            return self._wrap_adaptive_async(fn, name, entry)
        gate, detour, meter = watching(
            self, fn, name, entry, functools.partial(self._arun, fn), is_async=True
        )
        assert detour is not None
        core = self._core
        take, done, give = core.free.pop, core.done, core.free.append
        await_permit, hand_over, give_back = self._await_permit, self._hand_over, self._give_back
        stats = self._stats_for(self.name)
        clock = _clock

        async def through_bulkhead(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            if not switch.on:
                return await fn(*args, **kwargs)
            try:
                take()
            except IndexError:
                try:
                    await await_permit()
                except BaseException as exc:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except Exception as exc:
                stats.failed += 1
                if level:
                    meter.failed(exc, start, False)  # type: ignore[union-attr]
                raise
            except BaseException:
                self._interrupted += 1
                raise
            finally:
                next(done)
                if core.owed:
                    give_back()
                else:
                    give(None)
                    if core.queued:
                        hand_over()
            if level:
                meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_bulkhead

    # The adaptive limit's fast path: the same, with half the admitted calls
    # timed for the algorithm (see _flush), and the permit given back through
    # ``_give_back`` when a smaller limit may be owed it.

    def _wrap_adaptive(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        gate, detour, meter = watching(self, fn, name, entry, functools.partial(self._run, fn))
        assert detour is not None
        core = self._core
        take, done, give = core.free.pop, core.done, core.free.append
        wait, give_back = self._wait_for_permit, self._give_back
        keep_until_finished = self._keep_until_finished
        hand_over, flush, size = self._hand_over, self._flush, WINDOW
        # This closure's window: the latencies of its timed calls (every
        # other one: see _flush), how many, and the calls and failures in it.
        total, timed, count, failures, started = 0.0, 0, 0, 0, 0
        stats = self._stats_for(self.name)
        clock, timing = _clock, TIMED

        def through_bulkhead(*args: Any, **kwargs: Any) -> R:
            nonlocal total, timed, count, failures, started
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            if not switch.on:
                return fn(*args, **kwargs)
            try:
                take()
            except IndexError:
                try:
                    wait()
                except BaseException as exc:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
            started += 1
            began = clock.now() if timing[started & 63] else None
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except Exception as exc:
                stats.failed += 1
                if began is not None:
                    total += clock.now() - began
                    timed += 1
                failures += 1
                count += 1
                if count >= size and timed:
                    flush(total, timed, count, failures)
                    total, timed, count, failures = 0.0, 0, 0, 0
                next(done)
                if level:
                    meter.failed(exc, start, False)  # type: ignore[union-attr]
                keep_until_finished(exc)
                raise
            except BaseException:
                self._interrupted += 1
                next(done)
                give_back()
                raise
            if began is not None:
                total += clock.now() - began
                timed += 1
            count += 1
            if count >= size and timed:
                flush(total, timed, count, failures)
                total, timed, count, failures = 0.0, 0, 0, 0
            next(done)
            if core.owed:
                give_back()
            else:
                give(None)
                if core.queued:
                    hand_over()
            if level:
                meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_bulkhead

    def _wrap_adaptive_async(
        self, fn: AsyncFn[R], name: str, entry: Request | None = None
    ) -> Callable[..., Awaitable[R]]:
        gate, detour, meter = watching(
            self, fn, name, entry, functools.partial(self._arun, fn), is_async=True
        )
        assert detour is not None
        core = self._core
        take, done, give = core.free.pop, core.done, core.free.append
        await_permit, give_back = self._await_permit, self._give_back
        hand_over, flush, size = self._hand_over, self._flush, WINDOW
        # This closure's window, as the sync one's.
        total, timed, count, failures, started = 0.0, 0, 0, 0, 0
        stats = self._stats_for(self.name)
        clock, timing = _clock, TIMED

        async def through_bulkhead(*args: Any, **kwargs: Any) -> R:
            nonlocal total, timed, count, failures, started
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            if not switch.on:
                return await fn(*args, **kwargs)
            try:
                take()
            except IndexError:
                try:
                    await await_permit()
                except BaseException as exc:
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
            started += 1
            began = clock.now() if timing[started & 63] else None
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except Exception as exc:
                stats.failed += 1
                if began is not None:
                    total += clock.now() - began
                    timed += 1
                failures += 1
                count += 1
                if count >= size and timed:
                    flush(total, timed, count, failures)
                    total, timed, count, failures = 0.0, 0, 0, 0
                next(done)
                give_back()
                if level:
                    meter.failed(exc, start, False)  # type: ignore[union-attr]
                raise
            except BaseException:
                self._interrupted += 1
                next(done)
                give_back()
                raise
            if began is not None:
                total += clock.now() - began
                timed += 1
            count += 1
            if count >= size and timed:
                flush(total, timed, count, failures)
                total, timed, count, failures = 0.0, 0, 0, 0
            next(done)
            if core.owed:
                give_back()
            else:
                give(None)
                if core.queued:
                    hand_over()
            if level:
                meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_bulkhead

    def _report(self, start: float, error: BaseException | None, emit: bool = True) -> None:
        """An admitted call ended (or its block did): count it, and report it
        to this bulkhead's listeners."""
        if error is not None:
            if isinstance(error, Exception):
                self._stats_for(self.name).failed += 1
            else:
                self._interrupted += 1
        listeners = self._listeners
        if emit and listeners.events and (error is None or isinstance(error, Exception)):
            now = _clock.monotonic()
            if error is None:
                listeners.new(events.CallSucceeded, self.name, self._kind, now - start, POLICY)
            else:
                listeners.new(events.CallFailed, self.name, self._kind, now - start, error, POLICY)

    def _run(self, fn: SyncFn[R], args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return fn(*args, **kwargs)
        self._acquire()
        start = _clock.monotonic()
        try:
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except Exception as exc:
            self._core.finished()
            self._keep_until_finished(exc)
            self._report(start, exc)
            raise
        except BaseException as exc:
            self._ended(start, exc)
            self._release()
            self._report(start, exc)
            raise
        self._ended(start, None)
        self._release()
        self._report(start, None)
        return result

    async def _arun(self, fn: AsyncFn[R], args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return await fn(*args, **kwargs)
        await self._aacquire()
        start = _clock.monotonic()
        try:
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))
        except BaseException as exc:
            self._ended(start, exc)
            self._release()
            self._report(start, exc)
            raise
        self._ended(start, None)
        self._release()
        self._report(start, None)
        return result

    # A stream holds its permit from its first item's request until it ends:
    # exhausted, raised, or closed by its consumer (``close()``, ``break``
    # then garbage collection): the permit goes back in its end hook.

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str = "") -> Opened:
        if not switch.on:
            return open(args, kwargs, name)
        self._acquire()
        try:
            opened = open(args, kwargs, name)
        except BaseException:
            self._release()
            raise
        opened.ends.append(self._stream_ended)
        return opened

    async def _aopen_stream(
        self, open: AOpen, args: Args, kwargs: Kwargs, name: str = ""
    ) -> Opened:
        if not switch.on:
            return await open(args, kwargs, name)
        await self._aacquire()
        try:
            opened = await open(args, kwargs, name)
        except BaseException:
            self._release()
            raise
        opened.ends.append(self._stream_ended)
        return opened

    def _stream_ended(self, error: BaseException | None, closed: bool) -> None:
        self._release()

    # -- context managers ----------------------------------------------------

    def _open_block(self) -> _Held:
        block = self._block_request()
        start = _clock.monotonic()
        return (start, block.begin() if block.gate.level else None)

    def _pop(self, exc: BaseException | None) -> None:
        held = self._blocks.pop()
        if held is None:
            return
        start, opened = held
        try:
            self._ended(start, exc)
            self._release()
            self._report(start, exc, emit=False)  # a block is reported as a request
        finally:
            if opened is not None:
                self._block_request().end(opened, exc)

    def __enter__(self) -> Bulkhead:
        if not switch.on:
            self._blocks.push(None)
            return self
        held = self._open_block()
        try:
            self._acquire()
        except BaseException as exc:
            if held[1] is not None:
                self._block_request().end(held[1], exc)
            raise
        self._blocks.push(held)
        return self

    def __exit__(self, *exc_info: *ExcInfo) -> None:
        exc = exc_info[1]
        self._pop(exc)

    async def __aenter__(self) -> Bulkhead:
        if not switch.on:
            self._blocks.push(None)
            return self
        held = self._open_block()
        try:
            await self._aacquire()
        except BaseException as exc:
            if held[1] is not None:
                self._block_request().end(held[1], exc)
            raise
        self._blocks.push(held)
        return self

    async def __aexit__(self, *exc_info: *ExcInfo) -> None:
        exc = exc_info[1]
        self._pop(exc)


# The slow paths (their frames have ``self``), and where a caller waits for
# a permit it does not hold yet.
_RUNS = frozenset({Bulkhead._run.__code__, Bulkhead._arun.__code__})
_WAITS = frozenset(
    {
        Bulkhead._acquire.__code__,
        Bulkhead._wait_for_permit.__code__,
        Bulkhead._aacquire.__code__,
        Bulkhead._await_permit.__code__,
    }
)
