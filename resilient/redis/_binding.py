"""One breaker's link to a ``RedisStorage``.

The breaker's local core keeps counting on the hot path with no I/O. The
storage's flusher thread calls ``Binding.prepare`` / ``Binding.done``
around one pipelined round trip: the counts made since the last
acknowledged sync go up, the fleet's state comes back and the core mirrors it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import logging
import math
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from .._runtime import async_backend as _async_backend
from .._runtime import clock as _clock
from ..circuit_breaker.merge import OutcomeLog, Segment
from ..circuit_breaker.state import (
    CLOSED,
    HALF_OPEN,
    BreakerCore,
    CircuitState,
    Rules,
    open_duration,
)
from ..circuit_breaker.storage import Action, Outcome, Verdict
from ..circuit_breaker.windows import time_buckets
from ._keys import identity_bytes
from ._script import keys

if TYPE_CHECKING:
    from ..circuit_breaker.storage import StoredBreaker

__all__ = ["Binding", "Hub", "Op"]

T = TypeVar("T")


class Hub(Protocol):
    """What a link to the fleet (a breaker's ``Binding``, a limiter's
    ``SharedLimiter``) uses of the ``RedisStorage`` it belongs to. Declared
    here, below the storage, which makes the links: they never import it."""

    @property
    def instance(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def quorum(self) -> int: ...
    @property
    def refresh_interval(self) -> float: ...
    @property
    def probe_wait(self) -> float: ...
    @property
    def clock_offset(self) -> float | None: ...
    @property
    def unavailable(self) -> tuple[type[BaseException], ...]: ...
    @property
    def up(self) -> bool: ...
    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]: ...
    def execute(self, calls: Sequence[tuple[list[str], list[str | bytes]]]) -> list[Any]: ...
    def wake(self) -> None: ...
    def forget(self, binding: Binding) -> None: ...
    def failed(self, what: str, name: str, error: BaseException) -> None: ...
    def down(self, error: BaseException) -> None: ...


log = logging.getLogger("resilient")

# A probe granted by Redis: its id, and the epoch of the half-open period.
_Probe = tuple[str, str]


class Op(NamedTuple):
    """One script call of a sync, and what to do with its reply."""

    binding: Binding
    kind: str
    args: list[str | bytes]
    context: Any


class _Snapshot(NamedTuple):
    ok_total: int
    failed_total: int
    last_ok_at: float
    run_times: list[float]
    run_length: int
    bad: bool  # failures or slow calls in the outcome log
    state: CircuitState
    remaining: float
    now: float


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Binding:
    def __init__(self, storage: Hub, breaker: StoredBreaker) -> None:
        self._storage = storage
        self._breaker = weakref.ref(breaker)
        self.name = breaker.name
        # Names are data, sent as bytes; a per-key breaker's are its pair's.
        self.name_bytes = identity_bytes(breaker.identity)
        self.keys = keys(storage.namespace, self.name_bytes)
        self._config: list[str] = []
        self.retune()
        self._sent_ok = 0
        self._sent_failed = 0
        # The shared state last mirrored: which Redis data set, which transition.
        self._incarnation = ""
        self._epoch = 0
        self._finished: collections.deque[tuple[_Probe, Outcome]] = collections.deque()
        self._pending_control: Action | None = None
        self._probe_ids = itertools.count(1)
        # Until then, every fleet probe slot is taken: reject without asking.
        self._busy_until = 0.0
        # What decides whether a sync has anything to say (an idle breaker
        # sends nothing): a publish about it arrived, the fleet's run as last
        # seen (a success ends it), the failures and slow calls in the
        # fleet's window as last seen (successes lower its rates).
        self.stale = True
        self._fleet_run = 0
        self._fleet_bad = 0
        # Whether the core times every success exactly (while the fleet has
        # a run of failures that a success of ours would end).
        self._exact = False

    def retune(self) -> None:
        """Send the breaker's settings as they are now (it was reconfigured:
        this process's own choice, no other instance's)."""
        breaker = self._breaker()
        if breaker is None:
            return
        cfg = breaker.config
        storage = self._storage
        self._config = [
            _open_times(cfg),
            str(cfg.failure_threshold),
            str(cfg.half_open_max_calls),
            str(cfg.success_threshold),
            str(storage.quorum),
            _window_spec(cfg),
            # A probe's permit outlives any sane probe, not a crashed instance.
            repr(max(30.0, cfg.recovery_timeout)),
        ]

    def _args(self, op: str, *extra: str) -> list[str | bytes]:
        storage = self._storage
        return [op, self.name_bytes, storage.instance, storage.channel, *self._config, *extra]

    # -- what the breaker calls (SharedBreaker) --------------------------------

    def poke(self) -> None:
        self._storage.wake()

    def finished(self, probe: object, outcome: Outcome) -> None:
        self._finished.append((probe, outcome))  # type: ignore[arg-type]
        self._storage.wake()

    def detach(self) -> None:
        self._storage.forget(self)

    def control(self, action: Action) -> None:
        # Applied fleet-wide now when Redis answers; otherwise replayed by the
        # next sync that gets through.
        storage = self._storage
        if storage.up:
            self._pending_control = None  # superseded
            try:
                (reply,) = storage.execute([(self.keys, self._args("control", action))])
            except storage.unavailable as exc:
                storage.down(exc)
            else:
                if not isinstance(reply, Exception):
                    self._mirror(reply)
                    return
                storage.failed("control", self.name, reply)
        self._pending_control = action

    def acquire(self) -> Verdict | None:
        """The fleet's answer, waited for at most the storage's probe bound
        (``socket_timeout``): after that the local probe stands, and a probe
        Redis grants later is given back."""
        if not self._worth_asking():
            return self._without_asking()
        future = self._storage.submit(self._ask)
        try:
            return future.result(timeout=self._storage.probe_wait)
        except concurrent.futures.TimeoutError:
            future.add_done_callback(self._abandon)
            return None
        except BaseException:
            future.add_done_callback(self._abandon)
            raise

    async def acquire_async(self) -> Verdict | None:
        """``acquire`` on the storage's own threads, never the event loop's
        (nor its default executor, which the application may keep busy)."""
        if not self._worth_asking():
            return self._without_asking()
        loop = _async_backend.running_loop()
        if loop is None:  # trio, say: acquire is bounded, on a thread of its own
            return await _async_backend.in_thread(self.acquire, self._abandon_verdict)
        future = self._storage.submit(self._ask)
        try:
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), self._storage.probe_wait
            )
        except TimeoutError:
            future.add_done_callback(self._abandon)
            return None
        except BaseException:
            # Cancelled: the caller is gone but the request may still be granted.
            future.add_done_callback(self._abandon)
            raise

    def _ask(self) -> Verdict | None:
        storage = self._storage
        probe_id = f"{storage.instance}:{next(self._probe_ids)}"
        try:
            (reply,) = storage.execute([(self.keys, self._args("acquire", probe_id))])
        except storage.unavailable as exc:
            storage.down(exc)
            return None
        if isinstance(reply, Exception):
            storage.failed("acquire", self.name, reply)
            self.go_local()
            return None
        kind = _text(reply[0])
        if kind == "missing":
            storage.wake()  # the next sync seeds it; this probe is local
            return None
        state, remaining, epoch, incarnation = _parse(reply)
        kind = _text(reply[4])
        if kind == "probe":
            return Verdict("probe", HALF_OPEN, 0.0, (probe_id, str(epoch)))
        if kind == "reject" and state is HALF_OPEN:
            self._busy_until = _clock.monotonic() + storage.refresh_interval
        self._seen(incarnation, epoch)
        return Verdict("reject" if kind == "reject" else "admit", state, remaining)

    def _worth_asking(self) -> bool:
        return self._storage.up and _clock.monotonic() >= self._busy_until

    def _without_asking(self) -> Verdict | None:
        # Redis down: the local probe stands. Every fleet slot taken: reject.
        return Verdict("reject", HALF_OPEN, 0.0) if self._storage.up else None

    def _abandon(self, future: concurrent.futures.Future[Verdict | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        self._abandon_verdict(future.result())

    def _abandon_verdict(self, verdict: Verdict | None) -> None:
        if verdict is not None and verdict.kind == "probe":
            self.finished(verdict.probe, "ignored")

    # -- what the storage's sync calls ---------------------------------------------

    def prepare(self, full: bool = True) -> list[Op] | None:
        """This breaker's part of the next sync; ``None`` once it is gone.

        Unless ``full``, a breaker with nothing new sends nothing: no
        failure, no vote to renew or withdraw, no publish about it since its
        last sync. Successes alone go up only to end a fleet run of failures
        (a run that starts is published); else they travel with the next sync.
        """
        breaker = self._breaker()
        if breaker is None:
            return None
        ops = []
        action = self._pending_control
        if action is not None:
            ops.append(Op(self, "control", self._args("control", action), action))
        finished = self._finished
        while finished:
            (probe_id, epoch), outcome = finished.popleft()
            ops.append(
                Op(
                    self,
                    "finish",
                    self._args("finish", probe_id, outcome, epoch),
                    (probe_id, epoch),
                )
            )
        snap = breaker.with_core(self._snapshot)
        if not (full or ops or self._worth_syncing(snap)):
            if self.stale:
                # Only a published transition to learn of: a read-only fetch,
                # a third of a sync's commands.
                self.stale = False
                ops.append(Op(self, "peek", self._args("peek"), None))
            return ops
        self.stale = False
        segments = breaker.with_core(_take_log)
        ops.append(
            Op(self, "sync", self._args("sync", *self._counts(snap, segments)), (snap, segments))
        )
        return ops

    def _counts(self, snap: _Snapshot, segments: list[Segment]) -> list[str]:
        """A sync's arguments: the counts since the last acknowledged sync,
        with when they happened (the fleet merges them in that order)."""
        new_failures = snap.failed_total - self._sent_failed
        run = snap.run_times[len(snap.run_times) - min(new_failures, len(snap.run_times)) :]
        first = snap.failed_total - len(run) + 1  # failures are numbered: a resend counts once
        last_ok = snap.last_ok_at
        offset = self._storage.clock_offset
        args = [
            str(snap.ok_total - self._sent_ok),
            str(new_failures),
            "" if offset is None else repr(offset),
            str(len(segments)),
            self._incarnation,
            str(self._epoch),
            snap.state.value,
            repr(snap.remaining),
            repr(snap.now),
            repr(last_ok) if snap.ok_total != self._sent_ok and math.isfinite(last_ok) else "",
            str(min(new_failures, snap.run_length) - len(run)),
        ]
        for number, at, kind, count in segments:
            args += (str(int(number)), repr(at), str(int(kind)), str(int(count)))
        for i, at in enumerate(run):
            args += (str(first + i), repr(at))
        return args

    def _worth_syncing(self, snap: _Snapshot) -> bool:
        if not self._incarnation:
            return True  # never synced (or Redis lost it): seed
        if snap.failed_total != self._sent_failed or snap.bad:
            return True
        # Successes end a fleet run of failures, and lower the window's rates.
        return snap.ok_total != self._sent_ok and (self._fleet_run > 0 or self._fleet_bad > 0)

    def undo(self, ops: list[Op]) -> None:
        """The round trip failed: keep the probe outcomes for the next one."""
        self.stale = True
        for op in reversed(ops):
            if op.kind == "finish":
                self._finished.appendleft((op.context, op.args[-2]))
            elif op.kind == "sync":
                self._give_back(op.context[1])

    def _give_back(self, segments: list[Segment]) -> None:
        breaker = self._breaker()
        if breaker is not None and segments:

            def give_back(core: BreakerCore, now: float) -> None:
                if core.log is not None:
                    core.log.give_back(segments)

            breaker.with_core(give_back)

    def done(self, op: Op, reply: Any) -> None:
        if op.kind == "peek":
            if _text(reply[0]) == "missing":
                self._incarnation = ""  # Redis lost it: the next sync seeds it
                self._storage.wake()
                return
            self._fleet_run = int(reply[5])
            self._fleet_bad = int(reply[7]) if len(reply) > 7 else 0
            if self._fleet_run or self._fleet_bad:
                self._storage.wake()  # successes of ours may end that run
            self._time_successes()
        elif op.kind == "control" and self._pending_control == op.context:
            self._pending_control = None
        elif op.kind == "sync":
            # Our first sync (or the first since Redis lost the state) went
            # up as epoch 0: the fleet took its counts into the period it is
            # in, and the counts made since belong to that period too.
            joined = not self._incarnation
            snap: _Snapshot = op.context[0]
            self._sent_ok = snap.ok_total
            self._sent_failed = snap.failed_total
            self._fleet_run = int(reply[5]) if len(reply) > 5 else 0
            self._fleet_bad = int(reply[7]) if len(reply) > 7 else 0
            self._time_successes()
            self._busy_until = 0.0
            if len(reply) > 4 and int(reply[4]) and self._incarnation:
                log.info("resilient: shared state of %r was missing in Redis; re-seeded", self.name)
            self._mirror(reply, joined)
            return
        self._mirror(reply)

    def forked(self) -> None:
        """In a forked child: what the parent counted is the parent's to
        send, and so are its probes' outcomes and a control it had not sent;
        the child's own counts start from here."""
        self._finished.clear()
        self._pending_control = None
        self._fleet_bad = 0
        self._busy_until = 0.0
        self.stale = True
        breaker = self._breaker()
        if breaker is not None:
            breaker.with_core(self._rebase)

    def _rebase(self, core: BreakerCore, now: float) -> None:
        core.flush(now)
        self._sent_ok, self._sent_failed = core.ok_total, core.failed_total
        if core.log is not None:
            core.log.clear()

    def refused(self, op: Op, error: Exception) -> None:
        """Redis answered, but the script failed this op (another program's
        key in the way, say): this breaker decides locally until an op of
        it succeeds again. Its counts stay unsent; a control is retried;
        a probe's outcome is dropped (its lease expires)."""
        self._storage.failed(op.kind, self.name, error)
        self.stale = True
        if op.kind == "sync":
            self._give_back(op.context[1])
        self.go_local()

    def go_local(self) -> None:
        self._exact = False
        breaker = self._breaker()
        if breaker is not None:
            breaker.with_core(BreakerCore.lead)

    def _time_successes(self) -> None:
        """While the fleet has a run of failures, our successes are timed
        exactly (they take the breaker's lock): one of them ends the run
        only if it happened after the run's failures."""
        exact = self._fleet_run > 0
        if exact is self._exact:
            return
        self._exact = exact
        breaker = self._breaker()
        if breaker is not None:
            breaker.with_core(lambda core, now: core.time_successes(exact, now))

    # -- mirroring ---------------------------------------------------------------

    @staticmethod
    def _snapshot(core: BreakerCore, now: float) -> _Snapshot:
        _shape_log(core)
        core.flush(now)
        core.window.expire(now)
        log = core.log
        return _Snapshot(
            core.ok_total,
            core.failed_total,
            core.last_ok_at,
            list(core.run_times),
            core.consecutive_failures,
            log is not None and log.bad > 0,
            core.state,
            core.remaining(now),
            now,
        )

    def _seen(self, incarnation: str, epoch: int) -> bool:
        """Record a shared state; False when it is older than the one mirrored."""
        if incarnation == self._incarnation and epoch < self._epoch:
            return False
        self._incarnation = incarnation
        self._epoch = epoch
        return True

    def _mirror(self, reply: Any, joined: bool = False) -> None:
        """Mirror the fleet's state. ``joined``: the reply to a sync sent
        before any state was mirrored (its counts were taken as ours)."""
        state, remaining, epoch, incarnation = _parse(reply)
        fresh = (incarnation, epoch) != (self._incarnation, self._epoch)
        if not self._seen(incarnation, epoch):
            return
        breaker = self._breaker()
        if breaker is None:
            return

        def adopt(core: BreakerCore, now: float) -> None:
            core.follower = self._storage.up
            if fresh and not joined:
                # Counts made before belong to a period that is over: they
                # must not go up under the new one (a peek learns of it
                # before the next sync would have told us).
                core.flush(now)
                self._sent_ok, self._sent_failed = core.ok_total, core.failed_total
                if core.log is not None:
                    core.log.clear()
                if state is CLOSED and core.state is CLOSED:
                    # A new closed period for the fleet (a reset): so for us too.
                    core.reset(now)
            core.adopt(state, remaining, now)

        breaker.with_core(adopt)


# Openings in a row the fleet is told the open time of (the last one holds
# for every later opening), and the longest open time it is told.
_MAX_OPENINGS = 32
_LONGEST = 1e15


def _open_times(config: Rules) -> str:
    """How long the 1st, 2nd, ... opening in a row stays open, by the
    breaker's own rule (``open_duration``), until it stops growing."""
    times: list[float] = []
    for openings in range(1, _MAX_OPENINGS + 1):
        seconds = min(open_duration(config, openings), _LONGEST)
        if times and seconds == times[-1]:
            break
        times.append(seconds)
    return ",".join(repr(t) for t in times)


def _window_spec(config: Rules) -> str:
    """The fleet window the instance asks for (``kind,size,n,minimum_calls,
    failure_rate,slow_rate``; empty when it has no rate to judge)."""
    failure_rate = config.failure_rate_threshold
    slow_rate = config.slow_call_rate_threshold
    if failure_rate is None and slow_rate is None:
        return ""
    duration = config.window_duration
    if duration is None:
        shape = f"count,{config.window_size},0"
    else:
        width, n = time_buckets(duration)
        shape = f"time,{width},{n}"
    rates = ["" if r is None else repr(float(r)) for r in (failure_rate, slow_rate)]
    return ",".join([shape, str(config.minimum_calls), *rates])


def _shape_log(core: BreakerCore) -> None:
    """Log the core's outcomes for the fleet's window, shaped like its own
    (none when it has no rate to judge)."""
    cfg = core.config
    if cfg.failure_rate_threshold is None and cfg.slow_call_rate_threshold is None:
        core.log = None
        return
    size, duration = (
        (cfg.window_size, None) if cfg.window_duration is None else (None, cfg.window_duration)
    )
    log = core.log
    if log is None:
        core.log = OutcomeLog(size, duration)
    elif not log.shaped_for(size, duration):
        core.log = log.reshaped(size, duration)


def _take_log(core: BreakerCore, now: float) -> list[Segment]:
    core.flush(now)
    return core.log.take() if core.log is not None else []


def _parse(reply: Any) -> tuple[CircuitState, float, int, str]:
    return (
        CircuitState(_text(reply[0])),
        float(_text(reply[1])),
        int(reply[2]),
        _text(reply[3]),
    )
