"""The circuit breaker's rules as a pure state object: no clock, no lock, no I/O.

The caller passes ``now`` in, holds the lock around every method, and drains
``changes`` afterwards to emit one event per transition.

Recovery (the k-th opening in a row stays open longer, while one call at a
time still probes every ``recovery_timeout``; a half-open period has a time
limit, probe permits outlive ordinary reopenings, and a bounded number of
callers may reserve a probe of the next half-open period) lives here too;
``docs/circuit_breaker.md`` states the rules.

A core can be a *follower*: it still counts every outcome, but leaves the
decisions that belong to a fleet (tripping, and ending a half-open period) to
a shared store, whose verdicts it mirrors with ``BreakerCore.adopt``.
"""

from __future__ import annotations

import enum
import itertools
import math
from typing import Protocol

from .merge import FAILURE, SLOW, OutcomeLog
from .windows import CountWindow, TimeWindow

# Every core's reservations until its first one: shared, never written.
_NO_RESERVATIONS: dict[int, bool] = {}

__all__ = [
    "NO_PROBE",
    "REJECT",
    "UNTRACKED",
    "BreakerCore",
    "CircuitState",
    "Rules",
    "open_duration",
]


class Rules(Protocol):
    """The settings the rules read (a ``CircuitBreakerConfig`` is one).

    Declared here so that the rules, the lowest module of a breaker, import
    nothing above them: the config holds a storage, whose protocol speaks of
    cores and of these settings."""

    @property
    def failure_threshold(self) -> int: ...
    @property
    def failure_rate_threshold(self) -> float | None: ...
    @property
    def minimum_calls(self) -> int: ...
    @property
    def window_size(self) -> int: ...
    @property
    def window_duration(self) -> float | None: ...
    @property
    def slow_call_duration(self) -> float | None: ...
    @property
    def slow_call_rate_threshold(self) -> float | None: ...
    @property
    def recovery_timeout(self) -> float: ...
    @property
    def recovery_backoff(self) -> float: ...
    @property
    def max_recovery_timeout(self) -> float | None: ...
    @property
    def max_half_open_duration(self) -> float | None: ...
    @property
    def half_open_max_calls(self) -> int: ...
    @property
    def success_threshold(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def result_predicate(self) -> object: ...  # read only as "is there one"
    @property
    def health_check(self) -> object: ...  # read only as "is there one"
    @property
    def health_check_interval(self) -> float: ...
    @property
    def shadow(self) -> bool: ...


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
FORCED_CLOSED = CircuitState.FORCED_CLOSED

# What acquire() grants: REJECT, or the generation the call was admitted in.
# Every transition and every reset starts a new generation, so a call that
# finishes in a later one is stale and its outcome is dropped: its window is
# gone (cleared, or no longer recording), or its probe permit was taken back.
REJECT = -1
# A token no generation matches: for a call admitted on someone else's say-so.
UNTRACKED = -2
# The probe epoch of a call that holds no probe permit.
NO_PROBE = -1
# A time before any other (one object, shared by every core).
_NEVER = -math.inf


def open_duration(config: Rules, openings: int) -> float:
    """How long the ``openings``-th opening in a row stays open:
    ``min(recovery_timeout * recovery_backoff ** (openings - 1), max_recovery_timeout)``."""
    base = config.recovery_timeout
    backoff = config.recovery_backoff
    if openings > 1 and backoff != 1.0 and base:
        try:
            base = base * backoff ** (openings - 1)
        except OverflowError:
            base = math.inf
    cap = config.max_recovery_timeout
    return base if cap is None or base < cap else cap


class BreakerCore:
    __slots__ = (
        "_flushed",
        "_reads",
        "base_probing",
        "changes",
        "config",
        "consecutive_failures",
        "exact",
        "failed_total",
        "fast",
        "flushed_at",
        "follower",
        "generation",
        "half_open_successes",
        "half_opened_at",
        "health_checked_at",
        "last_ok_at",
        "log",
        "next_reservation",
        "ok_total",
        "open_for",
        "opened_at",
        "openings",
        "probe_at",
        "probe_epoch",
        "probes_running",
        "reject_until",
        "reserved",
        "run_times",
        "state",
        "tick_at",
        "tick_until",
        "ticked",
        "ticking",
        "ticks",
        "window",
    )

    def __init__(self, config: Rules) -> None:
        self.config = config
        self.state = CLOSED
        self.opened_at = 0.0
        # Until when a call may be rejected on sight: no lock, no health
        # check to ask (callers read it without the lock). 0.0 unless OPEN
        # with no health check.
        self.reject_until = 0.0
        self.health_checked_at = 0.0
        self.consecutive_failures = 0
        # Openings in a row (no close between) and how long the current one
        # lasts (open_duration of it).
        self.openings = 0
        self.open_for = config.recovery_timeout
        # An opening longer than recovery_timeout (backed off) still lets one
        # call through as a probe every recovery_timeout, from ``probe_at``
        # on (inf: no such probe this opening); ``base_probing`` while that
        # call runs. It succeeds: HALF_OPEN, that success counted. It fails:
        # still OPEN, the next one a recovery_timeout after it started.
        self.probe_at = math.inf
        self.base_probing = False
        self.half_opened_at = 0.0
        # Probe permits held by calls still running: they outlive an ordinary
        # reopening; only the end of a half-open period by its time limit (or
        # manual control) frees them, which starts a new probe epoch.
        self.probes_running = 0
        self.probe_epoch = 0
        # Probe permits kept for callers waiting to probe (wait tickets):
        # taken while OPEN for the next half-open period, or while HALF_OPEN
        # for this one; a kept permit counts until its holder uses it or
        # gives it back (which it always does, cancelled or not), so at
        # most half_open_max_calls callers wait at any time.
        # A dict as a set: an empty one is a third of an empty set's size,
        # and every breaker has one.
        # Shared and empty until the first reservation (most breakers never make one).
        self.reserved: dict[int, bool] = _NO_RESERVATIONS
        self.next_reservation = 0
        self.half_open_successes = 0
        self.generation = 0
        self.follower = False
        # Outcomes recorded in CLOSED / FORCED_CLOSED since creation; a shared
        # store sends the differences, so nothing is lost between two syncs.
        self.ok_total = 0
        self.failed_total = 0
        # When those outcomes happened, for a store that merges a fleet's
        # outcomes in time order: the latest success (successes counted
        # without the lock are placed at the flush before them, a time no
        # later than theirs), and the times of the current run of
        # consecutive failures (the newest ``failure_threshold``).
        # ``exact``: a store needs exact success times now (every success
        # takes the lock).
        self.last_ok_at = _NEVER
        self.flushed_at = _NEVER
        self.run_times: list[float] | tuple[()] = ()  # a list once a failure is timed
        self.exact = False
        # Every outcome counted in CLOSED / FORCED_CLOSED, with when it
        # happened, for a store that merges the fleet's failure-rate window
        # (it installs the log and takes its segments).
        self.log: OutcomeLog | None = None
        # Transitions not announced yet: a list from the first one on (most
        # breakers, one per key say, never have one).
        self.changes: list[tuple[CircuitState, CircuitState]] | tuple[()] = ()
        self.window: CountWindow | TimeWindow = (
            TimeWindow(config.window_duration)
            if config.window_duration is not None
            else CountWindow(config.window_size)
        )
        # Fast successes in CLOSED are counted without the lock by
        # ``next(core.ticks)`` (itertools.count.__next__ is atomic under the
        # GIL; the builtin ``next`` is the cheapest way to call it) and folded
        # into the window by ``flush`` before anything reads it.
        self.ticks = itertools.count(1)
        self._flushed = 0
        self._reads = 0
        # Every success counted by ``ticks`` and folded in, whatever the state
        # (what the breaker's counters report).
        self.ticked = 0
        # A caller may count a success without the lock while CLOSED, when
        # no success can trip the breaker: a success resets the consecutive
        # failures and lowers the rates, so only one that brings the window
        # to minimum_calls can trip it (see _success_may_trip).
        # ``fast``: and there is nothing to time, check on the result or run
        # under a timeout (a plain config). ``ticking``: otherwise, for a
        # success that is not slow, whose result the predicate passes, ending
        # before ``tick_until``. Ticks are folded into the window as made at
        # ``tick_at``: a time window's bucket ends at ``tick_until``, so the
        # first success after it takes the lock, folds the ticks into their
        # bucket and starts the next one (at most once per bucket).
        self.fast = False
        self.ticking = False
        self.tick_at = 0.0
        # A time window's first success takes the lock (it sets the bucket).
        self.tick_until = 0.0 if config.window_duration is not None else math.inf
        self._update_fast(None)

    def _update_fast(self, now: float | None) -> None:
        """Decide whether the next successes may skip the lock (see __init__).
        ``now``: the time of the call that leaves the breaker as it is, or
        None when nothing is recorded (its ticks keep their bucket)."""
        cfg = self.config
        window = self.window
        allowed = self.state is CLOSED and not self.exact and not self._success_may_trip()
        plain = (
            cfg.slow_call_duration is None
            and cfg.window_duration is None
            and cfg.result_predicate is None
            and cfg.timeout is None
        )
        self.fast = allowed and plain
        self.ticking = allowed and not plain
        if now is not None and self.ticking:
            self.tick_at = now
            self.tick_until = window.bucket_end(now)

    def _success_may_trip(self) -> bool:
        """Whether successes alone could still trip a rate: they add calls,
        never failures nor slow calls, so the highest rate they can reach
        is at the first count that is checked (``minimum_calls``, or now)."""
        cfg = self.config
        window = self.window
        calls = max(window.calls, cfg.minimum_calls, 1)
        rate = cfg.failure_rate_threshold
        if rate is not None and window.failures / calls >= rate:
            return True
        slow_rate = cfg.slow_call_rate_threshold
        return slow_rate is not None and window.slow / calls >= slow_rate

    # -- transitions ---------------------------------------------------------

    def flush(self, now: float) -> None:
        """Fold the successes counted in ``ticks`` into the window (as made
        at ``tick_at``, in the bucket they were counted for)."""
        seen = self._seen()
        pending = seen - self._flushed
        if pending:
            self._flushed = seen
            self.ticked += pending
            if self.state is CLOSED or self.state is FORCED_CLOSED:
                self.ok_total += pending
                self.consecutive_failures = 0
                self.last_ok_at = self.flushed_at
                self.run_times = ()
                self.window.add_successes(pending, self.tick_at if self.ticking else now)
                log = self.log
                if log is not None:
                    # No later than they happened: at the flush before them
                    # (a shared store flushes at every sync, so they are at
                    # most its refresh interval early).
                    at = self.flushed_at
                    log.add(at if at > _NEVER else now, 0, pending)
        self.flushed_at = now

    def _seen(self) -> int:
        """How many successes ``ticks`` has counted, by reading the counter
        through itself (each read consumes one value, tracked in _reads)."""
        self._reads += 1
        return next(self.ticks) - self._reads

    def _fresh_ticks(self) -> None:
        """A counter per generation: a caller takes ``ticks`` when its call is
        admitted, so a call admitted in an earlier generation counts on a
        counter nobody reads any more (its success is dropped, as any stale
        outcome)."""
        self.ticks = itertools.count(1)
        self._flushed = 0
        self._reads = 0

    def _next_generation(self) -> None:
        self.generation += 1
        self._fresh_ticks()

    def _move(self, new: CircuitState, now: float) -> None:
        old = self.state
        if old is new:
            return
        self.flush(now)
        self.state = new
        self._next_generation()
        self.half_open_successes = 0
        self.base_probing = False
        self.probe_at = math.inf
        if new is OPEN:
            self.opened_at = now
            self.health_checked_at = now
            self.openings += 1
            self.open_for = open_for = open_duration(self.config, self.openings)
            base = self.config.recovery_timeout
            # A follower's openings are the fleet's: it probes on the fleet's
            # schedule (the store's open time), not on the base one.
            if base < open_for and not self.follower:
                self.probe_at = now + base
        elif new is HALF_OPEN:
            self.half_opened_at = now
        elif new is CLOSED:
            self.window.clear()
            self.consecutive_failures = 0
            self.run_times = ()
            self.openings = 0
        self._update_fast(now)
        self._update_reject_until()
        self.changed(old, new)

    def changed(self, old: CircuitState, new: CircuitState) -> None:
        """A transition from ``old`` to ``new``, to announce."""
        changes = self.changes
        if isinstance(changes, list):
            changes.append((old, new))
        else:
            self.changes = [(old, new)]

    def _update_reject_until(self) -> None:
        cfg = self.config
        if self.state is OPEN and cfg.health_check is None and not cfg.shadow:
            until = self.opened_at + self.open_for
            probe_at = self.probe_at
            self.reject_until = probe_at if probe_at < until else until
        else:
            self.reject_until = 0.0

    def _free_probes(self) -> None:
        """Take back every probe permit: the calls holding them are hung."""
        self.probes_running = 0
        self.probe_epoch += 1

    def current(self, now: float) -> CircuitState:
        """The state at ``now``: an OPEN breaker whose timer ran out is
        HALF_OPEN; a HALF_OPEN one past ``max_half_open_duration`` reopened
        when that time ran out (freeing its probe permits), and may be
        HALF_OPEN again.

        A clock that went back (a test's time travel, a stepped clock) never
        keeps the breaker OPEN (or HALF_OPEN, or its health check waiting)
        longer than its own time measured from ``now``: times recorded
        after ``now`` are taken as ``now``."""
        if now < self.opened_at or now < self.half_opened_at or now < self.health_checked_at:
            self._clock_went_back(now)
        if self.state is HALF_OPEN and not self.follower:
            # (A follower's half-open period is the fleet's to end.)
            limit = self.config.max_half_open_duration
            if limit is not None and now >= self.half_opened_at + limit:
                self._free_probes()
                self._move(OPEN, self.half_opened_at + limit)
        # As ``remaining`` and ``reject_until`` compute it, to the last bit:
        # a caller that waited until then finds it HALF_OPEN.
        if self.state is OPEN and now >= self.opened_at + self.open_for:
            self._move(HALF_OPEN, now)
        return self.state

    def _clock_went_back(self, now: float) -> None:
        if self.opened_at > now:
            self.opened_at = now
        if self.half_opened_at > now:
            self.half_opened_at = now
        if self.health_checked_at > now:
            self.health_checked_at = now
        base = self.config.recovery_timeout
        if self.probe_at != math.inf and self.probe_at > now + base:
            self.probe_at = now + base
        self._update_reject_until()

    def remaining(self, now: float) -> float:
        state = self.state
        if state is FORCED_OPEN:
            return math.inf
        if state is OPEN:
            left = self.opened_at + self.open_for - now
            return left if left > 0.0 else 0.0
        return 0.0

    def retry_in(self, now: float) -> float:
        """Seconds until a call may go through (what a rejection tells its
        caller): ``remaining``, or less when a probe on the
        ``recovery_timeout`` schedule comes sooner."""
        state = self.state
        if state is FORCED_OPEN:
            return math.inf
        if state is OPEN:
            # Not max(): this runs on every rejected call, and max() costs
            # more than the rest of it.
            until = self.opened_at + self.open_for
            probe_at = self.probe_at
            left = (probe_at if probe_at < until else until) - now
            return left if left > 0.0 else 0.0
        return 0.0

    def probes_free(self) -> int:
        """Probe permits a caller without a reservation may take now (HALF_OPEN)."""
        free = self.config.half_open_max_calls - self.probes_running - len(self.reserved)
        return free if free > 0 else 0

    # -- health check ----------------------------------------------------------

    def health_due(self, now: float) -> bool:
        """Whether an OPEN breaker should ask its health check now; answering
        True claims the check, so concurrent callers do not all run it."""
        if self.current(now) is not OPEN:
            return False
        if now - self.health_checked_at < self.config.health_check_interval:
            return False
        self.health_checked_at = now
        return True

    def recover_early(self, now: float) -> None:
        """The health check says the dependency is back: probe it now."""
        if self.state is OPEN:
            self._move(HALF_OPEN, now)

    # -- calls ---------------------------------------------------------------

    def acquire(self, now: float, reservation: int | None = None) -> int:
        """REJECT, or the generation to hand back to ``on_*`` when the call
        ends. A call admitted HALF_OPEN holds a probe permit of the current
        ``probe_epoch`` (hand that back too). ``reservation``: the caller's
        wait ticket, whose reserved permit it takes."""
        state = self.current(now)
        if state is CLOSED or state is FORCED_CLOSED:
            return self.generation
        if state is HALF_OPEN:
            reserved = self.reserved
            if reservation is not None and reservation in reserved:
                # A ticket whose permit a backed-off opening's probe took
                # (True) is an ordinary caller now.
                if reserved.pop(reservation) and self.probes_free() <= 0:
                    return REJECT
            elif self.probes_free() <= 0:
                return REJECT
            self.probes_running += 1
            return self.generation
        if state is OPEN and now >= self.probe_at:
            return self._base_probe(now)
        return REJECT

    def _base_probe(self, now: float) -> int:
        """OPEN past ``probe_at``: one call goes through as a probe, if no
        such probe runs and a probe permit is free or kept for a wait ticket
        (else the next chance is a ``recovery_timeout`` later)."""
        self.probe_at = now + self.config.recovery_timeout
        self._update_reject_until()
        if self.base_probing:
            return REJECT
        if self.probes_free() <= 0:
            # Every free permit is kept for a waiting caller: the newest
            # ticket's goes to this probe (its holder, when it wakes, finds
            # the breaker as this probe left it, holding no permit; its
            # ticket still counts, so no more callers wait than permits).
            # Waiting callers must not hold recovery back until the opening
            # ends.
            reserved = self.reserved
            if self.probes_running >= self.config.half_open_max_calls:
                return REJECT
            for kept in reversed(reserved):
                if not reserved[kept]:
                    reserved[kept] = True
                    break
            else:
                return REJECT
        self.base_probing = True
        self.probes_running += 1
        return self.generation

    # -- waiting for a probe -----------------------------------------------------

    def reserve(self, now: float) -> tuple[int, float] | None:
        """A wait ticket: ``(reservation, due)``, a probe permit kept for the
        caller from ``due`` on (the end of the OPEN period, or now when
        HALF_OPEN with a permit free), or None when none is left to keep.
        While CLOSED, ``(-1, now)``: nothing to wait for, nothing kept.
        Give it back with ``unreserve``, or use it in ``acquire``."""
        state = self.current(now)
        if state is CLOSED or state is FORCED_CLOSED:
            return -1, now
        if state is OPEN:
            due = self.opened_at + self.open_for
        elif state is HALF_OPEN:
            due = now
        else:
            return None
        if self.probes_free() <= 0:
            return None
        self.next_reservation += 1
        if self.reserved is _NO_RESERVATIONS:
            self.reserved = {}
        self.reserved[self.next_reservation] = False
        return self.next_reservation, due

    def unreserve(self, reservation: int) -> None:
        self.reserved.pop(reservation, None)

    def _end_probe(self, probe: int, now: float) -> None:
        """A call holding a probe permit ended: the permit goes back, unless
        the half-open time limit freed it meanwhile (read first)."""
        if probe != NO_PROBE:
            self.current(now)
            if probe == self.probe_epoch:
                self.probes_running -= 1

    def on_success(self, token: int, slow: bool, now: float, probe: int = NO_PROBE) -> None:
        self.flush(now)
        self._end_probe(probe, now)
        if token != self.generation:
            return
        state = self.state
        if state is OPEN:  # the probe of a backed-off opening answered
            self.base_probing = False
            if not self.follower:
                self._move(HALF_OPEN, now)
                state = HALF_OPEN
        if state is HALF_OPEN:
            # A probe's success counts even when slow: it answered.
            if not self.follower:
                self.half_open_successes += 1
                if self.half_open_successes >= self.config.success_threshold:
                    self._move(CLOSED, now)
            return
        # Admitted in this generation, so CLOSED or FORCED_CLOSED.
        self.ok_total += 1
        self.consecutive_failures = 0
        self.last_ok_at = now
        self.run_times = ()
        self.window.record(False, slow, now)
        if self.log is not None:
            self.log.add(now, SLOW if slow else 0)
        if state is CLOSED:
            if not self.follower:
                self._check_rates(now)
            self._update_fast(now)

    def on_failure(self, token: int, slow: bool, now: float, probe: int = NO_PROBE) -> None:
        self.flush(now)
        self._end_probe(probe, now)
        if token != self.generation:
            return
        state = self.state
        if state is OPEN:
            # The probe of a backed-off opening failed: the opening goes on,
            # and the next probe keeps the schedule (a recovery_timeout after
            # this one started; at once if this one ran longer).
            self.base_probing = False
            return
        if state is HALF_OPEN:
            # An ordinary reopening: the other probes keep their permits.
            if not self.follower:
                self._move(OPEN, now)
            return
        self.failed_total += 1
        self.consecutive_failures += 1
        times = self.run_times
        if times:
            assert isinstance(times, list)
            times.append(now)
            if len(times) > self.config.failure_threshold:
                del times[0]
        else:
            self.run_times = [now]
        self.window.record(True, slow, now)
        if self.log is not None:
            self.log.add(now, FAILURE | SLOW if slow else FAILURE)
        if state is CLOSED and not self.follower:
            if self.consecutive_failures >= self.config.failure_threshold:
                self._move(OPEN, now)
            else:
                self._check_rates(now)
        self._update_fast(now)

    def on_ignored(self, token: int, now: float, probe: int = NO_PROBE) -> None:
        """A call that is neither success nor failure (ignored error, cancellation)."""
        self._end_probe(probe, now)
        if token == self.generation and self.state is OPEN and self.base_probing:
            # A probe of a backed-off opening that told nothing: the next
            # call may probe.
            self.base_probing = False
            self.probe_at = now
            self._update_reject_until()

    def _check_rates(self, now: float) -> None:
        if self.rates_trip():
            self._move(OPEN, now)

    def rates_trip(self) -> bool:
        """Whether the window's failure or slow-call rate calls for opening."""
        cfg = self.config
        window = self.window
        calls = window.calls
        if calls < cfg.minimum_calls or calls == 0:
            return False
        rate = cfg.failure_rate_threshold
        if rate is not None and window.failures / calls >= rate:
            return True
        slow_rate = cfg.slow_call_rate_threshold
        return slow_rate is not None and window.slow / calls >= slow_rate

    # -- new settings ------------------------------------------------------------

    def retune(self, config: Rules, now: float) -> None:
        """Adopt ``config`` in place: the state, its timer, the counts and
        the calls in flight (their generation) are kept. A window that
        shrinks keeps its newest outcomes; one that changes kind (a count
        for a time window, or back) starts empty. The new thresholds apply
        from the next outcome on."""
        self.flush(now)
        old = self.config
        self.config = config
        window = self.window
        if config.window_duration is not None:
            if isinstance(window, TimeWindow):
                if config.window_duration != old.window_duration:
                    window.expire(now)
                    self.window = window.resized(config.window_duration)
            else:
                self.window = TimeWindow(config.window_duration)
            self.tick_until = 0.0  # the next success sets its bucket
        elif isinstance(window, CountWindow):
            if config.window_size != old.window_size:
                self.window = window.resized(config.window_size)
        else:
            self.window = CountWindow(config.window_size)
            self.tick_until = math.inf
        if self.openings:
            self.open_for = open_duration(config, self.openings)
        self._update_reject_until()
        self._update_fast(None)

    # -- a state decided elsewhere -------------------------------------------

    def time_successes(self, exact: bool, now: float) -> None:
        """Whether every success must take the lock and be timed exactly
        (a shared store asks while the fleet has a run of failures that a
        success would end)."""
        self.flush(now)
        if exact is not self.exact:
            self.exact = exact
            self._update_fast(now)

    def lead(self, now: float) -> None:
        """Decide alone again (the shared store is out of reach): the
        outcomes counted while following are judged by the breaker's own
        rules now, not at the next failure."""
        self.flush(now)
        self.follower = False
        self.time_successes(False, now)
        if self.state is CLOSED:
            if self.consecutive_failures >= self.config.failure_threshold:
                self._move(OPEN, now)
            else:
                self._check_rates(now)

    def adopt(self, state: CircuitState, remaining: float, now: float) -> None:
        """Mirror ``state`` (with ``remaining`` seconds of OPEN left), as decided
        by a shared store."""
        if state is OPEN:
            if self.state is HALF_OPEN and remaining <= 0:
                # Our own timer ran out first; the next probe asks the store.
                return
            if self.state is not OPEN:
                self._move(OPEN, now)
            if remaining > self.open_for:
                # The fleet's opening lasts longer than our own count says
                # (it has opened more often in a row than we saw).
                self.open_for = remaining
            self.opened_at = now - (self.open_for - remaining)
            self._update_reject_until()
        elif state is not self.state:
            self._move(state, now)

    # -- manual control ------------------------------------------------------

    def _start_over(self) -> None:
        self._free_probes()
        self.reserved.clear()

    def force_open(self, now: float) -> None:
        if self.state is not FORCED_OPEN:
            self._start_over()
        self._move(FORCED_OPEN, now)

    def force_closed(self, now: float) -> None:
        if self.state is not FORCED_CLOSED:
            self._start_over()
        self._move(FORCED_CLOSED, now)

    def reset(self, now: float) -> None:
        """CLOSED with a cleared window, whatever the state was (probes still
        running give their permits up: manual control starts over)."""
        self._start_over()
        self._move(CLOSED, now)
        self.window.clear()
        self.consecutive_failures = 0
        self.run_times = ()
        # Calls in flight belong to the window just cleared.
        self._next_generation()
        self._update_fast(now)

    def release(self, now: float) -> None:
        """Undo a force; a breaker that is not forced is left alone."""
        if self.state is FORCED_OPEN or self.state is FORCED_CLOSED:
            self.reset(now)

    def take_changes(self) -> list[tuple[CircuitState, CircuitState]] | tuple[()]:
        changes = self.changes
        self.changes = ()
        return changes
