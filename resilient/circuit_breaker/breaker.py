"""``CircuitBreakerConfig`` and ``CircuitBreaker``: the lock, the clock and the
events around the pure rules of ``resilient.circuit_breaker.state``."""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast

from .. import events
from .._execution import counters as _counters
from .._execution import request_id as _request
from .._execution.blocks import BlockStack
from .._execution.compose import Refused, is_async_callable, offer_hand_back, watching
from .._execution.counters import FOLD_AT
from .._execution.policy_base import NamedPolicy
from .._execution.request import Request
from .._execution.streams import AOpen, Args, AsyncFn, Hold, Kwargs, Open, Opened, SyncFn
from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime.exc_info import ExcInfo
from .._runtime.settings import store_kept as _store_kept
from .._runtime.switch import switch
from .._runtime.workers import pool_for
from ..errors import BulkheadFullError, CircuitOpenError, RateLimitExceededError
from ..events import METERED
from ..timeout.timeout import Timeout
from . import waiting as _waiting
from .config import CircuitBreakerConfig
from .state import (
    CLOSED,
    FORCED_CLOSED,
    FORCED_OPEN,
    NO_PROBE,
    OPEN,
    REJECT,
    UNTRACKED,
    BreakerCore,
    CircuitState,
)

if TYPE_CHECKING:
    from .._execution.compose import Layer
    from .._execution.counters import Stats
    from .storage import Action, BreakerStorage, Outcome, SharedBreaker, Verdict

__all__ = ["BreakerMetrics", "CircuitBreaker", "CircuitBreakerConfig", "CircuitState"]

R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger("resilient")


class BreakerMetrics(NamedTuple):
    """A snapshot of a breaker's window and timer."""

    state: CircuitState
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_rate: float
    consecutive_failures: int
    remaining: float


# How an outcome counts.
_SUCCESS, _FAILURE, _IGNORED = 0, 1, 2


class _Saved(NamedTuple):
    config: CircuitBreakerConfig
    core: BreakerCore


class _Permit(NamedTuple):
    token: int  # the generation the call was admitted in (BreakerCore.acquire)
    start: float | None  # None: nothing needs this call's duration
    probe: object = None  # a half-open probe granted by the shared store
    epoch: int = NO_PROBE  # admitted as a local half-open probe: its permit's epoch
    shadowed: bool = False  # a shadow breaker would have rejected it: not counted


# The request id a rejection carries (CircuitOpenError has no __init__ to read it).
_request_id = _request.current.get
# The permit of a call admitted on the fast path (its ticks say the rest).
_FAST = _Permit(0, None)
_OUTCOMES: tuple[Outcome, Outcome, Outcome] = ("success", "failure", "ignored")


class _Entry(NamedTuple):
    """What ``with breaker:`` keeps between entering and leaving the block."""

    permit: _Permit
    opened: Any  # the block's request, when someone watched it open
    member: Member | None  # the member the block is counted in flight in


def _generation_of(core: BreakerCore, ticks: itertools.count[int]) -> int:
    """The generation a lock-free call was admitted in, from the counter it took."""
    return core.generation if ticks is core.ticks else UNTRACKED


# -- what a bound on breakers reads and sets (resilient._registry.membership) ----


class Member(Protocol):
    """A breaker's place under a bound (``resilient._registry.membership.Member``),
    as the breaker uses it: it counts the breaker's calls in flight."""

    def enter(self) -> None: ...

    def leave(self) -> None: ...

    def counting(self, run: Callable[..., R]) -> Callable[..., R]: ...

    def acounting(self, run: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]: ...


def is_closed(breaker: CircuitBreaker) -> bool:
    """Whether ``breaker`` is CLOSED as last recorded: a racy read, without
    its lock, that moves no timer and asks no health check (``state`` may do
    both). Anything else (open, half-open, forced) a bound never drops."""
    return breaker._core.state is CLOSED


def count_calls_into(breaker: CircuitBreaker, member: Member) -> None:
    """From now on, ``breaker``'s own chains and ``with`` blocks count each
    call in flight (and as a use) in ``member``, its place under a bound."""
    breaker._member = member


class CircuitBreaker(NamedPolicy):
    """A named circuit breaker. Thread- and asyncio-safe; the lock is held only
    around bookkeeping, never across the protected call or an ``await``.

    Args:
        name: what its events, errors and registry entry are called; for a
            per-key breaker, the name of its group.
        config: a ``CircuitBreakerConfig`` (default: ``CircuitBreakerConfig()``).
        storage: a shared store of its state (e.g. ``RedisStorage``); default
            ``config.storage``, else in memory.
        key: the key of a per-key breaker (``with_circuit_breaker(name,
            key=fn)``) within the group ``name``. Its identity (registry,
            shared store) is the pair ``(name, key)``, which no other key,
            group or plain name can meet; ``breaker.name`` is then only its
            label.
        label: what a per-key breaker's events and errors call it (default
            ``f"{name}[{key}]"``)."""

    _kind = "circuit_breaker"
    # Its place under a bound (a bounded registry, a per-key group), once it
    # has one: see count_calls_into.
    _member: Member | None = None

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        listeners: events.ListenerSet | None = None,
        storage: BreakerStorage | None = None,
        key: str | None = None,
        label: str | None = None,
    ) -> None:
        self._setup(name, config, listeners, storage, key, label)
        _fork.renew_in_child(self, CircuitBreaker._forked)

    def _setup(
        self,
        name: str,
        config: CircuitBreakerConfig | None,
        listeners: events.ListenerSet | None,
        storage: BreakerStorage | None,
        key: str | None,
        label: str | None,
    ) -> None:
        """All of ``__init__`` but the fork hook (see ``held_by_owner``)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"CircuitBreaker name must be a non-empty str, got {name!r}")
        if config is not None and not isinstance(config, CircuitBreakerConfig):
            raise TypeError(f"CircuitBreaker config must be a CircuitBreakerConfig, got {config!r}")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"CircuitBreaker key must be a str or None, got {key!r}")
        if label is not None and (key is None or not isinstance(label, str) or not label):
            raise ValueError(
                "CircuitBreaker label must be a non-empty str, for a per-key breaker only, "
                f"got {label!r}"
            )
        #: The group of a per-key breaker (else ``None``) and its key there.
        self.group: str | None = None if key is None else name
        self.key: str | None = key
        #: What the registry and a shared store know it by: its name, or
        #: ``(group, key)`` for a per-key breaker.
        self.identity: str | tuple[str, str] = name if key is None else (name, key)
        # Its label: events, errors, logs, health and metrics show this.
        self.name = name if key is None else (label if label is not None else f"{name}[{key}]")
        self._lock = threading.Lock()
        # The last chain ``call`` / ``call_async`` built, set now so that the
        # instance dict keeps its shared keys (set later, it would be split
        # into a full dict: ~900 B a breaker).
        self._last = self._alast = None
        # True while a thread delivers state changes (see _announce).
        self._announcing = False
        # Its scope of listeners. A per-key breaker shares its parent's (its
        # registry's) until it is used on its own (see _own_scope): a group
        # may hold thousands, most never subscribed to one by one.
        parent = listeners if listeners is not None else events.GLOBAL
        self._shares_scope = key is not None
        self._listeners = parent if key is not None else events.ListenerSet(parent)
        # The per-call events of the breaker itself (the policy level).
        self._stats_for(self.name)  # readers see it (its state) from the start
        # The store to use when the config names none (a registry's default).
        self._default_storage = storage
        self._shared: SharedBreaker | None = None
        self._configure(config if config is not None else CircuitBreakerConfig())

    # -- its own scope of listeners ----------------------------------------------

    def _own_scope(self) -> None:
        """A per-key breaker used on its own (subscribed to, run through a
        chain or a ``with`` block of its own) gets its own scope now, inside
        the one it shared, and its counters move there. Until then its events
        went to the shared scope: all that a scope of its own, with no
        listener yet, would have passed them on to."""
        if not self._shares_scope:
            return
        shared = self._listeners
        with self._lock:
            if self._listeners is not shared:
                return  # another thread made it meanwhile
            scope = events.ListenerSet(shared)
            for stats in (self._own_stats, *(self._stats_table or {}).values()):
                if stats is not None and stats.scope is shared:
                    _counters.move(stats, scope)
            self._listeners = scope
            if self._timeout is not None:
                self._settings(self.config)  # a timeout whose scope is inside it
            self._shares_scope = False

    def subscribe(self, listener: events.Listener | events.Reader) -> Callable[[], None]:
        """Call ``listener`` with every event of this breaker; returns the unsubscriber."""
        self._own_scope()
        return super().subscribe(listener)

    @property
    def _own_gate(self) -> events.Gate:  # type: ignore[override]
        self._own_scope()
        return super()._own_gate

    def _layers(self) -> tuple[Layer, ...]:
        self._own_scope()
        return super()._layers()

    def _block_request(self) -> Request:
        self._own_scope()
        return super()._block_request()

    @property
    def _blocks(self) -> BlockStack[_Entry]:
        """The ``with`` blocks open on it, made on the first (most breakers
        never see one): ``setdefault`` is atomic, so racing threads share one."""
        stack = self.__dict__.get("_block_stack")
        if stack is None:
            stack = self.__dict__.setdefault("_block_stack", BlockStack("resilient_cb_", self.name))
        return stack  # type: ignore[no-any-return]

    def _forked(self) -> None:
        """In a forked child: a new lock (one its counters share), and no
        delivery of events in progress (the thread delivering stayed in the
        parent; what it had not taken yet is delivered by the next call)."""
        self._lock = self._ticks.lock = threading.Lock()
        self._announcing = False

    def _init_stats(self, stats: Stats) -> None:
        self._ticks = _Ticks(self._lock, stats)
        # One call does both (one object per breaker, not two).
        stats.refresh = stats.gauges = self._ticks

    def _configure(self, cfg: CircuitBreakerConfig) -> None:
        self._core = BreakerCore(cfg)
        self._ticks.core = self._core
        self._settings(cfg)
        self._attach(cfg.storage if cfg.storage is not None else self._default_storage)

    def _settings(self, cfg: CircuitBreakerConfig) -> None:
        """What the paths read of ``cfg``, outside the core."""
        self.config = cfg
        # The clock is read per call only when something needs a time: at
        # the end for a time window's bucket or a duration, at the start too
        # only for a duration.
        self._timed = cfg.slow_call_duration is not None or cfg.window_duration is not None
        self._slow_after = (
            cfg.slow_call_duration if cfg.slow_call_duration is not None else math.inf
        )
        # A spent rate limit says nothing about the dependency's health: never
        # counted. Nor does a full bulkhead, unless record_on names it.
        self._ignore_on = _never_counted(cfg.ignore_on, cfg.record_on)
        # Each admitted call runs under this; its CallTimeoutError is an
        # ordinary failure to classify.
        self._timeout = (
            Timeout(
                cfg.timeout,
                name=self.name,
                # A per-key breaker uses its group's pool: ``max_keys`` bounds
                # the threads as it bounds the breakers.
                pool=pool_for(self.name if self.group is None else self.group),
                listeners=self._listeners,
            )
            if cfg.timeout is not None
            else None
        )
        self._health_check = cfg.health_check
        self._shadow = cfg.shadow
        self._health_is_async = cfg.health_check is not None and is_async_callable(cfg.health_check)

    def _attach(self, storage: BreakerStorage | None) -> None:
        if self._shared is not None:
            self._shared.detach()
            self._shared = None
        if storage is not None:
            self._shared = storage.attach(self)

    def _use_default_storage(self, storage: BreakerStorage | None) -> None:
        """Share through ``storage`` unless the config names a store itself."""
        self._default_storage = storage
        if self.config.storage is None:
            self._attach(storage)

    def _reconfigure(self, cfg: CircuitBreakerConfig) -> None:
        """Adopt ``cfg`` (the registry does this when a first explicit config
        arrives for a breaker created with defaults). The state starts over."""
        with self._lock:
            state = self._core.state
            self._configure(cfg)
            if state is not CLOSED:
                self._core.changed(state, CLOSED)
        self._announce()

    def reconfigure(self, config: CircuitBreakerConfig) -> None:
        """Adopt ``config`` in place: the state (and its timer), the counts
        and the calls in flight are kept; a window that shrinks keeps its
        newest outcomes (one that changes kind starts empty); the new
        thresholds apply from the next outcome on. Emits ``Reconfigured``.
        The store (``storage``) cannot change: a different one is a
        ``ValueError``. With a shared store, the settings are this process's
        own: no other process is reconfigured."""
        changed = _store_kept("CircuitBreaker", "breaker", self.name, self.config, config)
        if not changed:
            return
        with self._lock:
            self._core.retune(config, _clock.monotonic())
            self._settings(config)
        shared = self._shared
        retune = getattr(shared, "retune", None)
        if retune is not None:
            retune()
        events.announce_settings(self._kind, self.name, self._listeners, changed)
        self._announce()

    def _swap_state(self, saved: _Saved | None = None) -> _Saved:
        """Install ``saved`` (``None``: a fresh CLOSED state) without events,
        and return what it replaced. ``Registry.isolated()`` uses this."""
        with self._lock:
            previous = _Saved(self.config, self._core)
            if saved is None:
                core = BreakerCore(self.config)
            else:
                if saved.config is not self.config:
                    self._configure(saved.config)
                core = saved.core
            # Only the core: a shared breaker stays attached to its storage.
            self._core = self._ticks.core = core
        return previous

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._core.state.value}>"

    # -- state and control ---------------------------------------------------

    @property
    def state(self) -> CircuitState:
        if self._health_check is not None and self._core.state is OPEN:
            self._poll_health()
        with self._lock:
            state = self._core.current(_clock.monotonic())
        self._announce()
        return state

    def metrics(self) -> BreakerMetrics:
        now = _clock.monotonic()
        with self._lock:
            core = self._core
            state = core.current(now)
            core.flush(now)
            window = core.window
            window.expire(now)
            calls = window.calls
            snapshot = BreakerMetrics(
                state=state,
                calls=calls,
                failures=window.failures,
                slow_calls=window.slow,
                failure_rate=window.failures / calls if calls else 0.0,
                slow_rate=window.slow / calls if calls else 0.0,
                consecutive_failures=core.consecutive_failures,
                remaining=core.remaining(now),
            )
        self._announce()
        return snapshot

    def with_core(self, fn: Callable[[BreakerCore, float], T]) -> T:
        """Run ``fn(core, now)`` under the lock and announce what it changed
        (how a shared store reads counts and applies verdicts)."""
        with self._lock:
            result = fn(self._core, _clock.monotonic())
        self._announce()
        return result

    def _control(self, action: Callable[[BreakerCore, float], None], name: Action) -> None:
        self.with_core(action)
        if self._shared is not None:
            # Fleet-wide too; the store mirrors the fleet's answer back here.
            self._shared.control(name)

    def reset(self) -> None:
        """CLOSED with a cleared window."""
        self._control(BreakerCore.reset, "reset")

    def force_open(self) -> None:
        """Reject every call (``remaining`` is infinite) until released or reset."""
        self._control(BreakerCore.force_open, "force_open")

    def force_closed(self) -> None:
        """Admit every call and keep recording, but never transition."""
        self._control(BreakerCore.force_closed, "force_closed")

    def release(self) -> None:
        """Undo a force: CLOSED with a cleared window. Does nothing if not forced."""
        self._control(BreakerCore.release, "release")

    # -- health check ----------------------------------------------------------

    def _health_due(self) -> bool:
        with self._lock:
            return self._core.health_due(_clock.monotonic())

    def _poll_health(self) -> None:
        """While OPEN, ask a sync health check (at most once per interval)
        whether the dependency is back. Async checks run from async calls."""
        check = self._health_check
        if check is None or self._health_is_async or not self._health_due():
            return
        try:
            result = check()
        except Exception:
            log.warning("circuit %r: health check raised", self.name, exc_info=True)
            return
        if inspect.isawaitable(result):
            # A sync callable that returns an awaitable: nothing here can wait for it.
            if inspect.iscoroutine(result):
                result.close()
            return
        if result:
            self._recover_early()

    async def _apoll_health(self) -> None:
        check = self._health_check
        if check is None or not self._health_due():
            return
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.warning("circuit %r: health check raised", self.name, exc_info=True)
            return
        if result:
            self._recover_early()

    # -- wait tickets (resilient.circuit_breaker.waiting) --------------------------------------

    def _wait_ticket(self) -> _waiting.WaitTicket | None:
        """A probe permit kept for a caller that will wait for it, or None
        when the coming half-open period has none left to keep."""
        now = _clock.monotonic()
        with self._lock:
            core = self._core
            kept = core.reserve(now)
        self._announce()
        if kept is None:
            return None
        return _waiting.WaitTicket(self, core, *kept)

    def _unreserve(self, ticket: _waiting.WaitTicket) -> None:
        with self._lock:
            ticket.core.unreserve(ticket.reservation)

    def _recover_early(self) -> None:
        # A local decision: with a shared store, the probe still asks the fleet.
        self.with_core(BreakerCore.recover_early)

    # -- events --------------------------------------------------------------

    def _announce(self) -> None:
        """Deliver the transitions the core has recorded: in order, one event
        (and one log line) each, outside the breaker's lock.

        Called after every release of the lock that may have left changes.
        One thread delivers at a time; a thread that finds another one
        delivering leaves its changes to it. The deliverer stops only when,
        under the lock, it finds nothing left, so no change is stranded; and
        a listener whose own call causes a transition does not deadlock:
        that change is delivered after the listener returns.
        """
        if not self._core.changes:
            return  # the common case, without the lock
        lock = self._lock
        with lock:
            if self._announcing or not self._core.changes:
                return
            self._announcing = True
        try:
            while True:
                with lock:
                    changes = self._core.take_changes()
                    if not changes:
                        # Let go as we see nothing left, under the lock: a
                        # change made after this delivers itself.
                        self._announcing = False
                        return
                for old, new in changes:
                    self._deliver(old, new)
        except BaseException:
            with lock:
                self._announcing = False
            raise

    def _deliver(self, old: CircuitState, new: CircuitState) -> None:
        shadow = self._shadow
        log.warning(
            "circuit %r%s: %s -> %s",
            self.name,
            " (shadow)" if shadow else "",
            old.value,
            new.value,
            extra={
                "breaker": self.name,
                "old_state": old.value,
                "new_state": new.value,
                "shadow": shadow,
            },
        )
        self._stats_for(self.name).changed(old.value, new.value)
        if self._listeners.events:
            self._listeners.new(
                events.StateChanged, self.name, self._kind, old.value, new.value, shadow
            )

    def _shadow_permit(self, state: str, remaining: float, now: float) -> _Permit:
        """A shadow breaker lets through a call it would have rejected: counted
        and announced as a rejection (``shadow=True``), its outcome not counted."""
        self._stats_for(self.name).rejected += 1
        if self._listeners.events:
            self._listeners.new(
                events.CallRejected,
                self.name,
                self._kind,
                state,
                remaining,
                events.POLICY,
                True,
            )
        return _Permit(UNTRACKED, now, None, NO_PROBE, True)

    def _emit_rejected(self, error: CircuitOpenError) -> None:
        self._listeners.new(
            events.CallRejected, self.name, self._kind, error.state, error.remaining, events.POLICY
        )

    # -- the protocol every execution path drives ------------------------------

    def _enter(self) -> _Permit:
        """Admit the call or raise ``CircuitOpenError``."""
        core = self._core
        if core.state is CLOSED:
            # A racy read is fine: admitting one call that raced a trip is the
            # same as that call arriving a moment earlier.
            start = _clock.monotonic() if (self._timed or self._listeners.events) else None
            return _Permit(core.generation, start)
        if self._health_check is not None and core.state is OPEN:
            self._poll_health()
        state = core.state
        if (
            (state is OPEN or state is FORCED_OPEN)
            and not self._listeners.events
            and switch.on
            and not self._shadow
        ):
            # Rejected without the lock. Racy reads are fine here too:
            # rejecting a call that raced a probe's success is the same as
            # that call arriving a moment earlier. When a probe is due, the
            # locked path below decides.
            left = core.retry_in(_clock.now())
            # More than its open time left: the clock went back; the locked
            # path puts the breaker's times right.
            if left and (left <= core.open_for or state is FORCED_OPEN):
                self._stats_for(self.name).rejected += 1
                raise CircuitOpenError(self.name, state, left, _request_id(), self)
        ticket = _waiting.holding.get()
        reservation = ticket.reservation if ticket is not None and ticket.core is core else None
        now = _clock.monotonic()
        with self._lock:
            token = core.acquire(now, reservation)
            state = core.state
            remaining = core.retry_in(now)
            epoch = core.probe_epoch
        try:
            self._announce()
        except BaseException:
            # A listener raised (an interrupt: others are logged): the call
            # is not made, so its permit or probe slot goes back.
            if token != REJECT:
                self.with_core(lambda core, now: core.on_ignored(token, now, epoch))
            raise
        if token == REJECT:
            if self._shadow:
                return self._shadow_permit(state.value, remaining, now)
            # Emitted outside the lock: a listener may read the breaker.
            error = CircuitOpenError(self.name, state, remaining, _request_id(), self)
            self._stats_for(self.name).rejected += 1
            if self._listeners.events:
                self._emit_rejected(error)
            try:
                raise error
            finally:
                del error  # no cycle through this frame (see through_breaker)
        if state is CLOSED or state is FORCED_CLOSED:
            return _Permit(token, now)
        return _Permit(token, now, None, epoch)

    # --- generated from _aadmit by scripts/unasync.py; do not edit ---
    def _admit(self) -> _Permit:
        """``_enter``, then, for a half-open probe of a shared breaker, the fleet's consent."""
        permit = self._enter()
        if permit.epoch != NO_PROBE and self._shared is not None:
            try:
                verdict = self._shared.acquire()
            except BaseException:  # interrupted while asking: the local permit goes back
                self.with_core(lambda core, now: core.on_ignored(permit.token, now, permit.epoch))
                raise
            return self._fleet_verdict(permit, verdict)
        return permit

    # --- end generated ---

    async def _aadmit(self) -> _Permit:
        """``_enter``, then, for a half-open probe of a shared breaker, the fleet's consent."""
        permit = self._enter()
        if permit.epoch != NO_PROBE and self._shared is not None:
            try:
                verdict = await self._shared.acquire_async()
            except BaseException:  # interrupted while asking: the local permit goes back
                self.with_core(lambda core, now: core.on_ignored(permit.token, now, permit.epoch))
                raise
            return self._fleet_verdict(permit, verdict)
        return permit

    def _fleet_verdict(self, permit: _Permit, verdict: Verdict | None) -> _Permit:
        if verdict is None:
            return permit  # the store is unreachable: the local probe stands
        if verdict.kind == "probe":
            return permit._replace(probe=verdict.probe)

        def settle(core: BreakerCore, now: float) -> CircuitOpenError | int:
            core.on_ignored(permit.token, now, permit.epoch)
            core.adopt(verdict.state, verdict.remaining, now)
            if verdict.kind == "reject":
                return CircuitOpenError(
                    self.name, verdict.state.value, verdict.remaining, _request_id(), self
                )
            if core.state is CLOSED or core.state is FORCED_CLOSED:
                return core.generation  # an ordinary call of the adopted state
            return UNTRACKED

        settled = self.with_core(settle)
        if isinstance(settled, CircuitOpenError) and self._shadow:
            return self._shadow_permit(settled.state, settled.remaining, _clock.monotonic())
        if isinstance(settled, CircuitOpenError):
            self._stats_for(self.name).rejected += 1
            if self._listeners.events:
                self._emit_rejected(settled)
            raise settled
        return _Permit(settled, permit.start)

    def _classify_error(self, exc: BaseException) -> int:
        if not isinstance(exc, Exception) or isinstance(exc, self._ignore_on):
            return _IGNORED
        cfg = self.config
        if not isinstance(exc, cfg.record_on):
            return _SUCCESS
        predicate = cfg.failure_predicate
        if predicate is not None and not predicate(exc):
            return _SUCCESS
        return _FAILURE

    def _exit(
        self,
        permit: _Permit,
        outcome: int,
        error: BaseException | None,
        first_item: float | None = None,
    ) -> None:
        """Record how an admitted call ended (for a stream that yielded,
        ``first_item`` is when its first item came: its duration is the
        time to it)."""
        core = self._core
        token, start, probe, epoch, shadowed = permit
        if shadowed:
            outcome = _IGNORED  # a rejection it would have made: counted as that
        # Off the fast path: the clock is cheap next to the lock, and any
        # outcome here may trip the breaker, when the time matters.
        now = _clock.monotonic()
        until = now if first_item is None else first_item
        duration = until - start if start is not None else 0.0
        slow = duration >= self._slow_after
        with self._lock:
            if outcome == _SUCCESS:
                core.on_success(token, slow, now, epoch)
            elif outcome == _FAILURE:
                core.on_failure(token, slow, now, epoch)
            else:
                core.on_ignored(token, now, epoch)
        shared = self._shared
        if shared is not None:
            # Before the listeners hear of it: one that raises must not keep
            # the fleet's probe.
            if probe is not None:
                shared.finished(probe, _OUTCOMES[outcome])
            elif outcome == _FAILURE:
                shared.poke()
        self._announce()
        if outcome == _IGNORED:
            return
        stats = self._stats_for(self.name)
        listeners = self._listeners
        if error is None and outcome == _SUCCESS:
            stats.succeeded += 1
            if listeners.events:
                listeners.new(events.CallSucceeded, self.name, self._kind, duration, events.POLICY)
        else:
            stats.failed += 1
            if listeners.events:
                listeners.new(
                    events.CallFailed,
                    self.name,
                    self._kind,
                    duration,
                    error if error is not None else _ResultCountedAsFailure(),
                    events.POLICY,
                )

    def _exit_result(self, permit: _Permit, result: object) -> None:
        predicate = self.config.result_predicate
        if predicate is None:
            self._exit(permit, _SUCCESS, None)
            return
        try:
            failed = predicate(result)
        except BaseException as exc:
            self._exit_raised(permit, exc)
            raise
        self._exit(permit, _FAILURE if failed else _SUCCESS, None)

    def _exit_error(
        self, permit: _Permit, exc: BaseException, first_item: float | None = None
    ) -> None:
        try:
            outcome = self._classify_error(exc)
        except BaseException as own:  # failure_predicate raised: its error goes on
            self._exit_raised(permit, own)
            raise
        self._exit(permit, outcome, exc, first_item)

    def _exit_raised(self, permit: _Permit, exc: BaseException) -> None:
        """A predicate of the user's raised ``exc`` while the call was being
        judged: the call counts as failed with that error (an interrupt is
        not counted), so its permit is never kept."""
        self._exit(permit, _FAILURE if isinstance(exc, Exception) else _IGNORED, exc)

    # -- execution -----------------------------------------------------------

    # The fast path, written once per flavour and installed by every chain
    # (decorator, ``call``, composition): a CLOSED breaker with nothing to
    # time counts a success without its lock, and an OPEN one rejects from
    # the closure itself. Everything else goes through ``_run`` / ``_arun``,
    # the locked path. While someone listens, the detour is ``_through`` /
    # ``_athrough``. A breaker under a bound (it has a member) has its
    # closures counted in flight there.

    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        return self._closure_sync(fn, name, entry, False)

    def _closure_sync(
        self, fn: SyncFn[R], name: str, entry: Request | None, hand_back: bool
    ) -> SyncFn[R]:
        """The sync closure; with ``hand_back``, one that returns
        ``Refused(error)`` where it would raise a rejection at once."""
        self._own_scope()
        run = self._run
        gate, detour, meter = watching(self, fn, name, entry, functools.partial(self._through, fn))
        assert detour is not None
        stats = self._stats_for(self.name)
        breaker = self.name
        scope = self._listeners
        clock, inf = _clock, math.inf
        observed = meter.stats if meter is not None else stats
        pending, fold, fold_at = observed.pending, observed.fold, FOLD_AT

        def through_breaker(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            core = self._core
            if core.fast and switch.on:
                ticks = core.ticks  # this generation's
                try:
                    # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                    # builds a dict per call (docs/architecture.md, calls without keywords).
                    result = fn(*args, **kwargs) if kwargs else fn(*args)
                except BaseException as exc:
                    self._exit_error(_Permit(_generation_of(core, ticks), None), exc)
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
                next(ticks)
                if level:
                    # Request.ok, inlined: the observed closed breaker is the
                    # hottest path production runs (a frame is a sixth of it).
                    pending.append(clock.now() - start)
                    if len(pending) >= fold_at:
                        fold()
                return result
            if not switch.on:
                return fn(*args, **kwargs)
            until = core.reject_until
            if until:
                # With the exception, this is the whole cost of a rejected
                # call. (Forced open, or a health check to ask: run.)
                left = until - clock.now()
                if 0.0 < left <= core.open_for:  # more: the clock went back
                    stats.rejected += 1
                    if not (level or scope.events or hand_back):
                        # Raised as built: no local holds it, so no cycle
                        # error -> traceback -> this frame -> error for the
                        # garbage collector (about half a rejection's cost),
                        # and no ``finally`` to run on the way out.
                        raise CircuitOpenError(breaker, OPEN, left, _request_id(), self)
                    error = CircuitOpenError(breaker, OPEN, left, _request_id(), self)
                    if scope.events:  # a listener of what policies do only (tracing)
                        self._emit_rejected(error)
                    if level:
                        meter.failed(error, start, False)  # type: ignore[union-attr]
                    if hand_back:  # under a failover (see compose.offer_hand_back)
                        return Refused((error,))  # type: ignore[return-value]
                    try:
                        raise error
                    finally:
                        del error  # (the cycle above)
            if core.ticking:
                # CLOSED with options: still no lock for a success that is
                # not slow and whose result passes (see BreakerCore).
                ticks = core.ticks
                began = clock.now() if self._slow_after < inf else None
                timeout = self._timeout
                try:
                    if timeout is None:
                        result = fn(*args, **kwargs) if kwargs else fn(*args)
                    else:
                        result = timeout._run(fn, None, args, kwargs)
                except BaseException as exc:
                    self._exit_error(_Permit(_generation_of(core, ticks), began), exc)
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
                predicate = self.config.result_predicate
                failed = False
                if predicate is not None:
                    try:
                        failed = predicate(result)
                    except BaseException as exc:  # the call counts as failed with it
                        self._exit_raised(_Permit(_generation_of(core, ticks), began), exc)
                        if level:
                            meter.failed(exc, start, False)  # type: ignore[union-attr]
                        raise
                if failed:
                    self._exit(_Permit(_generation_of(core, ticks), began), _FAILURE, None)
                elif self._timed:
                    ended = clock.now()
                    if ended < core.tick_until and (
                        began is None or ended - began < self._slow_after
                    ):
                        next(ticks)
                    else:
                        self._exit(_Permit(_generation_of(core, ticks), began), _SUCCESS, None)
                else:
                    next(ticks)
                if level:
                    pending.append(clock.now() - start)
                    if len(pending) >= fold_at:
                        fold()
                return result
            if level:
                return meter.timed(start, run, fn, args, kwargs)  # type: ignore[union-attr,no-any-return]
            return run(fn, args, kwargs)

        member = self._member
        if member is not None:
            return member.counting(through_breaker)
        if entry is None and not hand_back:
            offer_hand_back(
                through_breaker, functools.partial(self._closure_sync, fn, name, None, True)
            )
        return through_breaker

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        self._own_scope()
        arun = self._arun
        gate, detour, meter = watching(
            self, fn, name, entry, functools.partial(self._athrough, fn), is_async=True
        )
        assert detour is not None
        stats = self._stats_for(self.name)
        breaker = self.name
        scope = self._listeners
        clock, inf = _clock, math.inf
        observed = meter.stats if meter is not None else stats
        pending, fold, fold_at = observed.pending, observed.fold, FOLD_AT

        async def through_breaker(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[no-any-return]
                start = clock.now()
            core = self._core
            if core.fast and switch.on:
                ticks = core.ticks  # this generation's
                try:
                    result = await (fn(*args, **kwargs) if kwargs else fn(*args))
                except BaseException as exc:
                    self._exit_error(_Permit(_generation_of(core, ticks), None), exc)
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
                next(ticks)
                if level:
                    # Request.ok, inlined: the observed closed breaker is the
                    # hottest path production runs (a frame is a sixth of it).
                    pending.append(clock.now() - start)
                    if len(pending) >= fold_at:
                        fold()
                return result
            if not switch.on:
                return await fn(*args, **kwargs)
            until = core.reject_until
            if until:
                # With the exception, this is the whole cost of a rejected
                # call. (Forced open, or a health check to ask: arun.)
                left = until - clock.now()
                if 0.0 < left <= core.open_for:  # more: the clock went back
                    stats.rejected += 1
                    if not (level or scope.events):
                        # Raised as built: no local holds it (see the sync closure).
                        raise CircuitOpenError(breaker, OPEN, left, _request_id(), self)
                    error = CircuitOpenError(breaker, OPEN, left, _request_id(), self)
                    if scope.events:  # a listener of what policies do only (tracing)
                        self._emit_rejected(error)
                    if level:
                        meter.failed(error, start, False)  # type: ignore[union-attr]
                    try:
                        raise error
                    finally:
                        del error  # (the cycle the sync closure explains)
            if core.ticking:
                # CLOSED with options: still no lock for a success that is
                # not slow and whose result passes (see BreakerCore).
                ticks = core.ticks
                began = clock.now() if self._slow_after < inf else None
                timeout = self._timeout
                try:
                    if timeout is None:
                        result = await (fn(*args, **kwargs) if kwargs else fn(*args))
                    else:
                        result = await timeout._arun(fn, None, args, kwargs)
                except BaseException as exc:
                    self._exit_error(_Permit(_generation_of(core, ticks), began), exc)
                    if level:
                        meter.failed(exc, start, False)  # type: ignore[union-attr]
                    raise
                predicate = self.config.result_predicate
                failed = False
                if predicate is not None:
                    try:
                        failed = predicate(result)
                    except BaseException as exc:  # the call counts as failed with it
                        self._exit_raised(_Permit(_generation_of(core, ticks), began), exc)
                        if level:
                            meter.failed(exc, start, False)  # type: ignore[union-attr]
                        raise
                if failed:
                    self._exit(_Permit(_generation_of(core, ticks), began), _FAILURE, None)
                elif self._timed:
                    ended = clock.now()
                    if ended < core.tick_until and (
                        began is None or ended - began < self._slow_after
                    ):
                        next(ticks)
                    else:
                        self._exit(_Permit(_generation_of(core, ticks), began), _SUCCESS, None)
                else:
                    next(ticks)
                if level:
                    pending.append(clock.now() - start)
                    if len(pending) >= fold_at:
                        fold()
                return result
            if level:
                return await meter.atimed(start, arun, fn, args, kwargs)  # type: ignore[union-attr]
            return await arun(fn, args, kwargs)

        member = self._member
        return through_breaker if member is None else member.acounting(through_breaker)

    # One call through the breaker, for a caller that has picked it: the
    # per-key layer (keyed.py) runs each call through its key's breaker
    # here, and a breaker's own chains take this detour while someone listens
    # to it. CLOSED with a plain config, the fast path counts a success
    # without the lock (timed and with its event while listened to);
    # anything else is the locked path, ``_run`` / ``_arun``.

    # --- generated from _athrough by scripts/unasync.py; do not edit ---
    def _through(self, fn: SyncFn[R], args: Args, kwargs: Kwargs) -> R:
        # One exit, at the end: scripts/unasync.py inlines the lines above it
        # into the per-key closure (keyed.py).
        core = self._core
        if core.fast and switch.on:
            ticks = core.ticks  # this generation's
            start = _clock.now() if self._listeners.events else None
            try:
                # Without keywords, no copy of ``kwargs`` (a new dict per call).
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                self._exit_error(_Permit(_generation_of(core, ticks), start), exc)
                raise
            next(ticks)
            if start is not None:
                self._succeeded_listened(start)
        else:
            result = self._run(fn, args, kwargs)
        return result

    # --- end generated ---

    async def _athrough(self, fn: AsyncFn[R], args: Args, kwargs: Kwargs) -> R:
        # One exit, at the end: scripts/unasync.py inlines the lines above it
        # into the per-key closure (keyed.py).
        core = self._core
        if core.fast and switch.on:
            ticks = core.ticks  # this generation's
            start = _clock.now() if self._listeners.events else None
            try:
                # Without keywords, no copy of ``kwargs`` (a new dict per call).
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                self._exit_error(_Permit(_generation_of(core, ticks), start), exc)
                raise
            next(ticks)
            if start is not None:
                self._succeeded_listened(start)
        else:
            result = await self._arun(fn, args, kwargs)
        return result

    # A call whose outcome may still be pending when it returns (a response
    # whose body streams on): judged at its return by the result predicate
    # as any call; when that passes and ``hold(result)`` gives the end hooks
    # of what is still pending, the call is judged as a stream that yielded
    # (``_stream_ended``) when they run: a success once it ends well, a
    # failure when it raises. Its permit (a half-open probe's too) is held
    # until then.

    # --- generated from _athrough_held by scripts/unasync.py; do not edit ---
    def _through_held(self, fn: SyncFn[R], args: Args, kwargs: Kwargs, hold: Hold) -> R:
        if not switch.on:
            return fn(*args, **kwargs) if kwargs else fn(*args)
        member = self._member
        if member is not None:
            member.enter()
        core = self._core
        try:
            if core.fast and not self._listeners.events:
                permit, ticks = _FAST, core.ticks  # a success is a tick
            else:
                ticks = None
                permit = self._admit()
        except BaseException:
            if member is not None:
                member.leave()
            raise
        timeout = self._timeout
        try:
            result = (
                (fn(*args, **kwargs) if kwargs else fn(*args))
                if timeout is None
                else timeout._run(fn, None, args, kwargs)
            )
        except BaseException as exc:
            self._stream_ended(permit, ticks, None, member, exc)
            raise
        self._held(permit, ticks, member, result, hold)
        return result

    # --- end generated ---

    async def _athrough_held(self, fn: AsyncFn[R], args: Args, kwargs: Kwargs, hold: Hold) -> R:
        if not switch.on:
            return await (fn(*args, **kwargs) if kwargs else fn(*args))
        member = self._member
        if member is not None:
            member.enter()
        core = self._core
        try:
            if core.fast and not self._listeners.events:
                permit, ticks = _FAST, core.ticks  # a success is a tick
            else:
                ticks = None
                if self._health_is_async and core.state is OPEN:  # unasync: async only
                    await self._apoll_health()
                permit = await self._aadmit()
        except BaseException:
            if member is not None:
                member.leave()
            raise
        timeout = self._timeout
        try:
            result = (
                await (fn(*args, **kwargs) if kwargs else fn(*args))
                if timeout is None
                else await timeout._arun(fn, None, args, kwargs)
            )
        except BaseException as exc:
            self._stream_ended(permit, ticks, None, member, exc)
            raise
        self._held(permit, ticks, member, result, hold)
        return result

    def _held(
        self,
        permit: _Permit,
        ticks: itertools.count[int] | None,
        member: Member | None,
        result: object,
        hold: Hold,
    ) -> None:
        """Judge ``result`` now, or when what ``hold`` says is pending ends."""
        predicate = None if ticks is not None else self.config.result_predicate
        try:
            failed = predicate is not None and bool(predicate(result))
            ends = None if failed else hold(result)
        except BaseException as exc:
            if ticks is not None:
                permit = _Permit(_generation_of(self._core, ticks), None)
            try:
                self._exit_raised(permit, exc)
            finally:
                if member is not None:
                    member.leave()
            raise
        if ends is not None:
            # On the fast path nothing is timed: ``first`` only says it came.
            first = 0.0 if ticks is not None else _clock.monotonic()
            ends.append(functools.partial(self._stream_ended, permit, ticks, first, member))
            return
        try:
            if ticks is not None:
                next(ticks)
            else:
                self._exit(permit, _FAILURE if failed else _SUCCESS, None)
        finally:
            if member is not None:
                member.leave()

    def _succeeded_listened(self, start: float) -> None:
        listeners = self._listeners
        if listeners.events:
            took = _clock.now() - start
            listeners.new(events.CallSucceeded, self.name, self._kind, took, events.POLICY)

    # --- generated from _arun by scripts/unasync.py; do not edit ---
    def _run(self, fn: SyncFn[R], args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return fn(*args, **kwargs)
        permit = self._admit()
        timeout = self._timeout
        try:
            result = (
                fn(*args, **kwargs) if timeout is None else timeout._run(fn, None, args, kwargs)
            )
        except BaseException as exc:
            self._exit_error(permit, exc)
            raise
        self._exit_result(permit, result)
        return result

    # --- end generated ---

    async def _arun(self, fn: AsyncFn[R], args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return await fn(*args, **kwargs)
        if self._health_is_async and self._core.state is OPEN:  # unasync: async only
            await self._apoll_health()
        permit = await self._aadmit()
        timeout = self._timeout
        try:
            result = (
                await fn(*args, **kwargs)
                if timeout is None
                else await timeout._arun(fn, None, args, kwargs)
            )
        except BaseException as exc:
            self._exit_error(permit, exc)
            raise
        self._exit_result(permit, result)
        return result

    # -- streams ---------------------------------------------------------------

    # A stream is admitted at its first item's request and judged when it
    # ends: exhausted, or closed by its consumer after an item, it succeeded;
    # raised (or timed out), it failed as a call that raised does; closed
    # before its first item, it is not counted. Slow means a late first item.

    def _stream_permit(self) -> tuple[_Permit, itertools.count[int] | None]:
        """A stream's admission on the fast path (CLOSED, a plain config,
        nobody listening: its success is a tick, as a call's), or ``ticks``
        None for the locked path."""
        core = self._core
        if core.fast and not self._listeners.events:
            return _Permit(core.generation, None), core.ticks
        return _Permit(core.generation, None), None

    def _stream_ended(
        self,
        permit: _Permit,
        ticks: itertools.count[int] | None,
        first: float | None,
        member: Member | None,
        error: BaseException | None,
        closed: bool = False,
    ) -> None:
        """Judge a stream that ended (its end hook): raised (``error``),
        closed by its consumer (a success after an item, else not counted)
        or exhausted. ``first``: when its first item came."""
        try:
            if ticks is not None:
                if error is not None:
                    self._exit_error(_Permit(_generation_of(self._core, ticks), None), error)
                elif first is not None or not closed:
                    next(ticks)
            elif error is not None:
                self._exit_error(permit, error, first)
            else:
                self._exit(permit, _IGNORED if closed and first is None else _SUCCESS, None, first)
        finally:
            if member is not None:
                member.leave()

    # --- generated from _aopen_stream by scripts/unasync.py; do not edit ---
    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str = "") -> Opened:
        if not switch.on:
            return open(args, kwargs, name)
        member = self._member
        if member is not None:
            member.enter()
        try:
            permit, ticks = self._stream_permit()
            if ticks is None:
                permit = self._admit()
        except BaseException:
            if member is not None:
                member.leave()
            raise
        timeout = self._timeout
        try:
            if timeout is None:
                opened = open(args, kwargs, name)
            else:
                opened = timeout._open_stream(open, args, kwargs, self.name)
        except BaseException as exc:
            self._stream_ended(permit, ticks, None, member, exc)
            raise
        first = None if opened.stream is None else _clock.monotonic()
        opened.ends.append(functools.partial(self._stream_ended, permit, ticks, first, member))
        return opened

    # --- end generated ---

    async def _aopen_stream(
        self, open: AOpen, args: Args, kwargs: Kwargs, name: str = ""
    ) -> Opened:
        if not switch.on:
            return await open(args, kwargs, name)
        member = self._member
        if member is not None:
            member.enter()
        try:
            permit, ticks = self._stream_permit()
            if ticks is None:
                if self._health_is_async and self._core.state is OPEN:  # unasync: async only
                    await self._apoll_health()
                permit = await self._aadmit()
        except BaseException:
            if member is not None:
                member.leave()
            raise
        timeout = self._timeout
        try:
            if timeout is None:
                opened = await open(args, kwargs, name)
            else:
                opened = await timeout._aopen_stream(open, args, kwargs, self.name)
        except BaseException as exc:
            self._stream_ended(permit, ticks, None, member, exc)
            raise
        first = None if opened.stream is None else _clock.monotonic()
        opened.ends.append(functools.partial(self._stream_ended, permit, ticks, first, member))
        return opened

    # -- context managers ----------------------------------------------------

    def _open_block(self) -> object:
        block = self._block_request()
        if block.gate.level:
            return block.begin()
        return None

    def _close_block(self, opened: object, exc: BaseException | None) -> None:
        if opened is not None:
            self._block_request().end(opened, exc)  # type: ignore[arg-type]

    def __exit__(self, *exc_info: *ExcInfo) -> None:
        exc = exc_info[1]
        entry = self._blocks.pop()
        if entry is None:
            return
        permit, opened, member = entry
        try:
            if exc is None:
                self._exit(permit, _SUCCESS, None)
            else:
                self._exit_error(permit, exc)
        finally:
            if member is not None:
                member.leave()
            self._close_block(opened, exc)

    # --- generated from __aenter__ by scripts/unasync.py; do not edit ---
    def __enter__(self) -> CircuitBreaker:
        if not switch.on:
            self._blocks.push(None)
            return self
        member = self._member
        if member is not None:
            member.enter()
        opened = self._open_block()
        try:
            permit = self._admit()
        except BaseException as exc:
            if member is not None:
                member.leave()
            self._close_block(opened, exc)
            raise
        self._blocks.push(_Entry(permit, opened, member))
        return self

    # --- end generated ---

    async def __aenter__(self) -> CircuitBreaker:
        if not switch.on:
            self._blocks.push(None)
            return self
        member = self._member
        if member is not None:
            member.enter()
        opened = self._open_block()
        try:
            if self._health_is_async and self._core.state is OPEN:  # unasync: async only
                await self._apoll_health()
            permit = await self._aadmit()
        except BaseException as exc:
            if member is not None:
                member.leave()
            self._close_block(opened, exc)
            raise
        self._blocks.push(_Entry(permit, opened, member))
        return self

    async def __aexit__(self, *exc_info: *ExcInfo) -> None:
        self.__exit__(*exc_info)


# -- what a registry does to the breakers it holds ------------------------------
# Module functions rather than methods: they are for registries (and tests),
# not part of a breaker's API.


def adopt_config(breaker: CircuitBreaker, cfg: CircuitBreakerConfig) -> None:
    """``breaker`` takes ``cfg`` (a first explicit config for a breaker
    created with defaults). Its state starts over."""
    breaker._reconfigure(cfg)


def use_default_storage(breaker: CircuitBreaker, storage: BreakerStorage | None) -> None:
    """``breaker`` shares through ``storage`` unless its config names a store."""
    breaker._use_default_storage(storage)


def held_by_owner(
    name: str,
    config: CircuitBreakerConfig | None,
    *,
    listeners: events.ListenerSet | None,
    storage: BreakerStorage | None,
    key: str | None,
    label: str | None,
) -> CircuitBreaker:
    """A new ``CircuitBreaker(name, config, ...)`` whose owner (a registry)
    renews it after a fork, with ``renew_after_fork``, for as long as it
    holds it: no fork hook of its own (a weak dictionary entry per breaker,
    per key of a per-key group)."""
    breaker = CircuitBreaker.__new__(CircuitBreaker)
    breaker._setup(name, config, listeners, storage, key, label)
    return breaker


def renew_after_fork(breaker: CircuitBreaker) -> None:
    """In a forked child: what ``breaker`` renews (its owner calls this)."""
    breaker._forked()


def released_by_owner(breaker: CircuitBreaker) -> None:
    """``breaker`` leaves the owner that renewed it: it renews itself again
    after a fork, for as long as it lives."""
    _fork.renew_in_child(breaker, CircuitBreaker._forked)


def swap_state(breaker: CircuitBreaker, saved: object | None = None) -> object:
    """Install ``saved`` (``None``: a fresh CLOSED state) without events and
    return what it replaced (``Registry.isolated()``)."""
    return breaker._swap_state(cast(_Saved | None, saved))


@functools.lru_cache(maxsize=256)
def _never_counted(
    ignore_on: tuple[type[BaseException], ...], record_on: tuple[type[BaseException], ...]
) -> tuple[type[BaseException], ...]:
    """The errors a breaker never counts: ``ignore_on``, a spent rate limit
    (it says nothing about the dependency's health), and a full bulkhead
    unless ``record_on`` names it. One tuple per config shape, shared by
    every breaker of that shape (the breakers of every key, say)."""
    ignore = (*ignore_on, RateLimitExceededError)
    if not any(issubclass(BulkheadFullError, t) for t in record_on if t is not Exception):
        ignore = (*ignore, BulkheadFullError)
    return ignore


class _Ticks:
    """Adds a breaker's lock-free successes to its counters (its ``refresh``).

    Holds the breaker's lock and current core, not the breaker: a breaker
    dropped by everyone still has its last successes counted when its
    counters are handed to the readers that keep them.
    """

    __slots__ = ("core", "lock", "seen", "seen_core", "stats")

    def __init__(self, lock: threading.Lock, stats: Stats) -> None:
        self.lock = lock
        self.stats = stats
        self.core: BreakerCore | None = None
        self.seen_core: BreakerCore | None = None
        self.seen = 0

    def __call__(self) -> dict[str, float | str] | None:
        """The counters' ``refresh`` and ``gauges`` at once: folds the
        lock-free successes in, and returns the breaker's state now (a
        transition it implies is announced by the breaker's next call)."""
        with self.lock:
            core = self.core
            if core is None:
                return None
            now = _clock.monotonic()
            core.flush(now)
            if core is not self.seen_core:
                self.seen_core, self.seen = core, 0
            new = core.ticked - self.seen
            self.seen = core.ticked
            state = core.current(now).value
        self.stats.succeeded += new
        return {"state": state, "shadow": 1} if core.config.shadow else {"state": state}


class _ResultCountedAsFailure(Exception):
    """Stands in for the error of a result that ``result_predicate`` rejected."""
