"""The circuit breaker against a reference model written from docs/circuit_breaker.md alone.

Hypothesis drives random sequences of calls (fast, slow, failing, ignored,
not recorded, cancelled, in flight across transitions), clock advances,
forcing, release, reset, reads, and listeners coming and going, through the
real ``CircuitBreaker`` and through :class:`ModelBreaker`, and checks that
every observable agrees: admission and rejection (with ``state`` and
``remaining``), results and errors passed through, ``state``,
``metrics()``, exactly one transition event per transition, and one
policy-level and one request-level event per call.

Recovery is modelled too: the k-th opening in a row stays open longer
(``recovery_backoff``, ``max_recovery_timeout``), a half-open period has a
time limit (``max_half_open_duration``) after which it reopens and frees the
permits of probes still running (taken as hung), probe permits outlive an
ordinary reopening (at any instant at most ``half_open_max_calls`` calls
admitted as probes are running), and wait tickets keep a probe permit of
the coming half-open period for the caller holding one.

Each call picks its way in, as users write it: ``breaker.call(fn)`` (the
same function, or a new one each time), a decorated function, ``with
breaker:`` (within a step, or held open across steps); and, in an event
loop, ``await breaker.call_async(fn)``, a decorated coroutine function,
``async with breaker:``. A CLOSED breaker that nobody listens to counts a
success without its lock whatever its config; plain configs and those with
options (a time window, slow calls, a result predicate, a timeout) take
different lock-free paths: each has its own machine.

The same machines run once more through per-key breakers
(``with_circuit_breaker(name, key=...)``): the breaker under test is then the
breaker of key ``"a"``, reached by the per-key layer (its ``call``, its
decorated functions) as well as directly (blocks, wait tickets, control),
and calls with key ``"b"`` run meanwhile against a model of their own, so any
way the per-key path differs from a plain breaker, or lets one key's calls
reach another's breaker, fails them.

The model follows the text of docs/circuit_breaker.md. Where it is silent,
the model states the rule it picked (marked "open:" below); docs/guarantees.md lists
them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    Registry,
    events,
    with_circuit_breaker,
)
from resilient.circuit_breaker.keyed import KeyedBreakers
from resilient.circuit_breaker.waiting import WaitTicket, holding
from resilient.testing import FakeClock, fake_clock

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FORCED_OPEN, FORCED_CLOSED = "forced_open", "forced_closed"
SUCCESS, FAILURE, IGNORED = "success", "failure", "ignored"


class Boom(Exception):
    """A failure the breaker records."""


class Benign(Boom):
    """Recorded by type, but the failure predicate of some configs clears it."""


class Other(Exception):
    """Recorded only by configs whose ``record_on`` is ``(Exception,)``."""


class Skipped(Exception):
    """Always in ``ignore_on``."""


BAD = "bad result"  # what the result predicate of some configs rejects


# -- the reference model -------------------------------------------------------


@dataclass(frozen=True)
class Rejected(Exception):
    state: str
    remaining: float


NO_PROBE = -1


@dataclass(frozen=True)
class Ticket:
    """What the model hands an admitted call: the epoch it was admitted in,
    and the probe epoch of its permit when it holds one."""

    epoch: int
    probe: int = NO_PROBE


@dataclass(frozen=True)
class Record:
    second: int
    failure: bool
    slow: bool


class ModelBreaker:
    """docs/circuit_breaker.md's breaker, written for clarity, not speed: the window is a
    plain list of every recorded outcome, filtered on every read."""

    def __init__(self, cfg: CircuitBreakerConfig) -> None:
        self.cfg = cfg
        self.state = CLOSED
        # Every transition or reset starts a new epoch. An admitted call is
        # stamped with the epoch it was admitted in. open: a call whose epoch
        # is over when it finishes is dropped, whatever its outcome (the
        # window it belonged to is gone, or it was a probe of an episode
        # that has ended).
        self.epoch = 0
        self.opened_at = 0.0
        self.records: list[Record] = []
        self.consecutive = 0
        self.probe_successes = 0
        self.transitions: list[tuple[str, str]] = []
        # "the k-th opening in a row (no close between) stays open
        # min(recovery_timeout * recovery_backoff ** (k - 1), max_recovery_timeout)"
        self.openings = 0
        self.open_for = cfg.recovery_timeout
        self.half_opened_at = 0.0
        # Probe permits held by calls still running, whatever the state
        # ("counting probes admitted before an ordinary reopening"); only
        # the half-open time limit (and manual control) frees them: a new
        # probe epoch.
        self.running = 0
        self.probe_epoch = 0
        # Wait tickets: probe permits kept for their holders.
        self.reserved: set[int] = set()
        # Tickets whose permit a backed-off opening's probe took: "that
        # caller, when it wakes, finds the breaker as the probe left it".
        self.stolen: set[int] = set()
        self.next_reservation = 0
        # "While an opening lasts longer than recovery_timeout (it backed
        # off), one call still goes through as a probe every
        # recovery_timeout (counted from the opening, then from the start of
        # the previous such probe)."
        self.probe_at = math.inf
        self.base_probing = False

    # states and the window

    def _go(self, new: str, now: float) -> None:
        if new == self.state:
            return
        self.transitions.append((self.state, new))
        self.state = new
        self.epoch += 1
        self.probe_successes = 0
        self.base_probing = False
        self.probe_at = math.inf
        if new == OPEN:
            self.opened_at = now
            self.openings += 1
            cfg = self.cfg
            grown = cfg.recovery_timeout * cfg.recovery_backoff ** (self.openings - 1)
            cap = cfg.max_recovery_timeout
            self.open_for = grown if cap is None else min(grown, cap)
            if cfg.recovery_timeout < self.open_for:
                self.probe_at = now + cfg.recovery_timeout
        elif new == HALF_OPEN:
            self.half_opened_at = now
        elif new == CLOSED:
            self.openings = 0
            # "success_threshold successes close it and clear the window";
            # release and reset also leave it "CLOSED with a cleared window".
            self.records.clear()
            self.consecutive = 0

    def _free(self) -> None:
        self.running = 0
        self.probe_epoch += 1

    def _start_over(self) -> None:
        # open: a kept permit counts until its holder uses or returns it
        # ("at most half_open_max_calls retries wait"); only manual control
        # drops them.
        self._free()
        self.reserved.clear()
        self.stolen.clear()

    def _timer(self, now: float) -> None:
        """ "after recovery_timeout the next call (or a read of .state) moves it
        to HALF_OPEN"; "a breaker half-open that long [max_half_open_duration]
        without closing or reopening reopens (counted as an opening) and its
        probe permits are freed". open: the half-open period starts when it
        is seen (a call or a read), and reopens at its end exactly."""
        limit = self.cfg.max_half_open_duration
        if self.state == HALF_OPEN and limit is not None and now >= self.half_opened_at + limit:
            self._free()
            self._go(OPEN, self.half_opened_at + limit)
        if self.state == OPEN and now >= self.opened_at + self.open_for:
            self._go(HALF_OPEN, now)

    def window(self, now: float) -> list[Record]:
        if self.cfg.window_duration is None:
            return self.records[-self.cfg.window_size :]
        # Per-second buckets: the window is the last ceil(duration) whole
        # seconds, the current one included.
        seconds = math.ceil(self.cfg.window_duration)
        return [r for r in self.records if int(now) - r.second < seconds]

    def remaining(self, now: float) -> float:
        if self.state == FORCED_OPEN:
            return math.inf
        if self.state == OPEN:
            return max(0.0, self.opened_at + self.open_for - now)
        return 0.0

    def retry_in(self, now: float) -> float:
        """ "CircuitOpenError.remaining is the time until the next call may go
        through: the next such probe, or the end of the opening." """
        if self.state == OPEN:
            return max(0.0, min(self.opened_at + self.open_for, self.probe_at) - now)
        return self.remaining(now)

    def free_probes(self) -> int:
        return max(0, self.cfg.half_open_max_calls - self.running - len(self.reserved))

    # calls

    def admit(self, now: float, reservation: int | None = None) -> Ticket:
        self._timer(now)
        if self.state in (CLOSED, FORCED_CLOSED):
            return Ticket(self.epoch)
        if self.state == HALF_OPEN:
            if reservation is not None and reservation in self.reserved:
                self.reserved.discard(reservation)
                if reservation in self.stolen:
                    self.stolen.discard(reservation)
                    if self.free_probes() == 0:
                        raise Rejected(self.state, self.remaining(now))
            elif self.free_probes() == 0:
                raise Rejected(self.state, self.remaining(now))
            self.running += 1
            return Ticket(self.epoch, self.probe_epoch)
        if self.state == OPEN and now >= self.probe_at:
            # open: a call that finds no probe to take still moves the next
            # chance a recovery_timeout on.
            self.probe_at = now + self.cfg.recovery_timeout
            if not self.base_probing:
                free = self.free_probes() > 0
                kept = self.reserved - self.stolen
                if not free and kept and self.running < self.cfg.half_open_max_calls:
                    # "When every free permit is kept for callers with a wait
                    # ticket, it takes the newest ticket's."
                    self.stolen.add(max(kept))
                    free = True
                if free:
                    self.base_probing = True
                    self.running += 1
                    return Ticket(self.epoch, self.probe_epoch)
        raise Rejected(self.state, self.retry_in(now))

    def reserve(self, now: float) -> tuple[int, float] | None:
        """A wait ticket: at most the free probe permits of the coming (or
        current) half-open period are kept; while closed, nothing to keep."""
        self._timer(now)
        if self.state in (CLOSED, FORCED_CLOSED):
            return -1, now
        if self.state == FORCED_OPEN or self.free_probes() == 0:
            return None
        due = self.opened_at + self.open_for if self.state == OPEN else now
        self.next_reservation += 1
        self.reserved.add(self.next_reservation)
        return self.next_reservation, due

    def unreserve(self, reservation: int) -> None:
        self.reserved.discard(reservation)
        self.stolen.discard(reservation)

    def classify(self, error: BaseException | None, result: object = None) -> str:
        cfg = self.cfg
        if error is None:
            if cfg.result_predicate is not None and cfg.result_predicate(result):
                return FAILURE
            return SUCCESS
        if not isinstance(error, Exception) or isinstance(error, cfg.ignore_on):
            return IGNORED
        # open: an exception outside record_on, or one the failure predicate
        # clears, is a success (resilience4j), not an ignored call.
        if not isinstance(error, cfg.record_on):
            return SUCCESS
        if cfg.failure_predicate is not None and not cfg.failure_predicate(error):
            return SUCCESS
        return FAILURE

    def finish(self, ticket: Ticket, outcome: str, slow: bool, now: float) -> None:
        if ticket.probe != NO_PROBE:
            # open: a probe's end reads the timers (did the time limit free
            # its permit?), as a read does.
            self._timer(now)
            if ticket.probe == self.probe_epoch:
                self.running -= 1
        if ticket.epoch != self.epoch:
            return
        if self.state == OPEN:
            # The probe of a backed-off opening: "when it succeeds the breaker
            # is HALF_OPEN with that success counted; when it fails the opening
            # goes on unchanged; when it ends counting as nothing the next
            # call may probe."
            self.base_probing = False
            if outcome == IGNORED:
                self.probe_at = now
                return
            if outcome == FAILURE:
                return
            self._go(HALF_OPEN, now)
        if self.state == HALF_OPEN:
            # open: a probe's success counts even when slow.
            if outcome == SUCCESS:
                self.probe_successes += 1
                if self.probe_successes >= self.cfg.success_threshold:
                    self._go(CLOSED, now)
            elif outcome == FAILURE:
                self._go(OPEN, now)
            return
        if outcome == IGNORED:
            # "neither counted nor breaks a run of consecutive failures"
            return
        failure = outcome == FAILURE
        self.records.append(Record(int(now), failure, slow))
        self.consecutive = self.consecutive + 1 if failure else 0
        if self.state == CLOSED and self._should_open(now):
            self._go(OPEN, now)

    def _should_open(self, now: float) -> bool:
        cfg = self.cfg
        if self.consecutive >= cfg.failure_threshold:
            return True
        window = self.window(now)
        calls = len(window)
        if calls == 0 or calls < cfg.minimum_calls:
            return False
        failures = sum(r.failure for r in window)
        slow = sum(r.slow for r in window)
        if (
            cfg.failure_rate_threshold is not None
            and failures / calls >= cfg.failure_rate_threshold
        ):
            return True
        threshold = cfg.slow_call_rate_threshold
        return threshold is not None and slow / calls >= threshold

    # control and reads

    # open: manual control starts over: probes still running lose their permits.

    def force_open(self, now: float) -> None:
        if self.state != FORCED_OPEN:
            self._start_over()
        self._go(FORCED_OPEN, now)

    def force_closed(self, now: float) -> None:
        # open: forcing keeps the window; FORCED_CLOSED goes on recording into it.
        if self.state != FORCED_CLOSED:
            self._start_over()
        self._go(FORCED_CLOSED, now)

    def reset(self, now: float) -> None:
        self._start_over()
        self._go(CLOSED, now)
        self.records.clear()
        self.consecutive = 0
        self.epoch += 1

    def release(self, now: float) -> None:
        if self.state in (FORCED_OPEN, FORCED_CLOSED):
            self.reset(now)

    def read_state(self, now: float) -> str:
        self._timer(now)
        return self.state

    def metrics(self, now: float) -> dict[str, Any]:
        self._timer(now)
        window = self.window(now)
        calls = len(window)
        failures = sum(r.failure for r in window)
        slow = sum(r.slow for r in window)
        return {
            "state": self.state,
            "calls": calls,
            "failures": failures,
            "slow_calls": slow,
            "failure_rate": failures / calls if calls else 0.0,
            "slow_rate": slow / calls if calls else 0.0,
            "consecutive_failures": self.consecutive,
            "remaining": self.remaining(now),
        }


# -- configurations --------------------------------------------------------------

# Times are multiples of 1/4 s, so float arithmetic on them is exact and the
# model and the breaker cannot disagree by rounding.
DURATIONS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5])
ADVANCES = st.sampled_from([0.25, 0.5, 1.0, 1.75, 2.5, 5.0, 30.0])
RATES = st.sampled_from([0.25, 0.5, 0.75, 1.0])


@st.composite
def configs(draw: st.DrawFn, *, plain: bool) -> dict[str, Any]:
    """A config's fields. A CLOSED breaker nobody listens to counts a
    success without its lock either way; with nothing to time and no result
    to check (``plain``) it does nothing else, with a time window, slow
    calls, a result predicate or a timeout it checks the call first, and a
    slow or rejected one (and a time window's first success in each
    second) takes the lock."""
    fields: dict[str, Any] = {
        "failure_threshold": draw(st.integers(1, 6)),
        "failure_rate_threshold": draw(st.none() | RATES),
        "minimum_calls": draw(st.integers(1, 6)),
        "recovery_timeout": draw(st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0])),
        "half_open_max_calls": draw(st.integers(1, 3)),
        "success_threshold": draw(st.integers(1, 3)),
        "recovery_backoff": draw(st.sampled_from([1.0, 1.5, 2.0])),
        "max_half_open_duration": draw(st.none() | st.sampled_from([0.5, 1.0, 2.5])),
    }
    if draw(st.booleans()):
        low = fields["recovery_timeout"]
        fields["max_recovery_timeout"] = low + draw(
            st.sampled_from([0.0, 1.0, 5.0] if low else [1.0, 5.0])
        )
    timed: set[str] = set()
    if not plain:
        options = ["window", "slow", "result", "timeout"]
        timed = draw(st.sets(st.sampled_from(options), min_size=1, max_size=4))
    if "window" in timed:
        fields["window_duration"] = draw(st.sampled_from([0.5, 1.0, 2.0, 2.5, 4.0]))
    else:
        fields["window_size"] = draw(st.integers(fields["minimum_calls"], 8))
    if "slow" in timed:
        fields["slow_call_duration"] = draw(st.sampled_from([0.25, 0.5, 1.0]))
        fields["slow_call_rate_threshold"] = draw(st.none() | RATES)
    if draw(st.booleans()):
        fields["record_on"] = (Boom,)
    fields["ignore_on"] = (Skipped,)
    if draw(st.booleans()):
        fields["failure_predicate"] = lambda e: not isinstance(e, Benign)
    if "result" in timed:
        fields["result_predicate"] = lambda r: r == BAD
    if "timeout" in timed:
        # Never reached: the calls run in a worker thread (sync) or under
        # asyncio.timeout, and every outcome passes through.
        fields["timeout"] = 1e6
    return fields


# What a call does: return a result, or raise one of these.
ACTIONS = {
    "ok": lambda: None,
    "bad_result": lambda: None,
    "boom": Boom,
    "benign": Benign,
    "other": Other,
    "skipped": Skipped,
    "interrupt": KeyboardInterrupt,
}
# Half the calls succeed, so that a breaker often stays CLOSED for a while:
# that is where the lock-free path runs.
ACTION = st.just("ok") | st.sampled_from(sorted(ACTIONS))
# asyncio re-raises a KeyboardInterrupt out of the event loop; cancellation
# is the async BaseException case (cancel_async_call).
ASYNC_ACTION = st.just("ok") | st.sampled_from(sorted(set(ACTIONS) - {"interrupt"}))


def _error_for(action: str) -> BaseException | None:
    if action in ("ok", "bad_result"):
        return None
    error: BaseException = ACTIONS[action]()  # type: ignore[assignment]
    return error


def _result_for(action: str) -> object:
    return BAD if action == "bad_result" else "ok"


# The ways in, as users write them. A sync call runs within one step; an async
# one stays in flight until a later step finishes or cancels it; a held block
# is entered in one step and left in a later one, with calls made inside it.
SYNC_PATHS = ("call", "call_fresh", "decorated", "with")
ASYNC_PATHS = ("call_async", "decorated_async", "async_with")
# A block has no result for the result predicate to reject.
BLOCKS = frozenset({"with", "async_with", "held_with"})


def _work(clock: FakeClock, action: str, duration: float, ran: list[bool]) -> object:
    """The protected function: takes ``duration`` seconds, then does ``action``."""
    ran.append(True)
    clock.advance(duration)
    error = _error_for(action)
    if error is not None:
        raise error
    return _result_for(action)


async def _wait_for(future: asyncio.Future[Any]) -> Any:
    """The protected coroutine function: ends as the test ends ``future``."""
    return await future


# Per-key breakers: the key is the first argument.


def _key_of(key: str, *args: Any) -> str:
    return key


def _keyed_work(key: str, *args: Any) -> object:
    return _work(*args)


async def _keyed_wait_for(key: str, future: asyncio.Future[Any]) -> Any:
    return await future


async def _keyed_awork(key: str, *args: Any) -> object:
    return _work(*args)


KEYED = "model"  # the name of the per-key breakers; key "a" is under test
OTHER = "b"  # the other key


@dataclass
class InFlight:
    task: asyncio.Task[Any]
    future: asyncio.Future[Any]
    ticket: Ticket
    start: float
    path: str


@dataclass
class Held:
    ticket: Ticket
    start: float


@dataclass
class Waiting:
    """A wait ticket held: the breaker's, and the model's reservation."""

    ticket: WaitTicket
    reservation: int


class _TransitionLog(logging.Handler):
    """The transitions logged by the breaker called ``name``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.name = "model"
        self.seen: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        old = getattr(record, "old_state", None)
        if old is not None and getattr(record, "breaker", None) == self.name:
            self.seen.append((old, record.new_state))  # type: ignore[attr-defined]


# -- the machine -----------------------------------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self._clock_cm = fake_clock(start=100.0)
        self.clock: FakeClock = self._clock_cm.__enter__()
        self.in_flight: list[InFlight] = []
        self.held: list[Held] = []  # `with breaker:` blocks open, innermost last
        self.waiting: list[Waiting] = []  # wait tickets held, not used yet
        self.log = _TransitionLog()
        logging.getLogger("resilient").addHandler(self.log)
        self.listening = False
        self.unsubscribe: Any = None
        self.events: list[events.Event] = []
        # What the listener must have seen so far: the breaker's own view of
        # each call, each request (a call through any path, a block), and
        # each transition made while it listened.
        self.expected_events = {"succeeded": 0, "failed": 0, "rejected": 0}
        self.expected_requests = {"started": 0, "succeeded": 0, "failed": 0, "rejected": 0}
        self.expected_changes: list[tuple[str, str]] = []
        self.transitions_seen = 0

    def _build(self, fields: dict[str, Any], listen: bool, decorator: str) -> None:
        # Drawn as a dict: the config's repr would drag its presets along.
        self.cfg = cfg = CircuitBreakerConfig(**fields)
        self.model = ModelBreaker(cfg)
        self.keyed: KeyedBreakers | None = None
        if decorator == "keyed":
            self._build_keyed(cfg)
        else:
            self.breaker = CircuitBreaker("model", cfg, listeners=events.ListenerSet())
            # Decorated once, as at import time, before anyone listens: a
            # listener that comes later must reach the chains already built.
            decorate: Any = (
                with_circuit_breaker(self.breaker)
                if decorator == "with_circuit_breaker"
                else self.breaker
            )
            self.decorated = decorate(_work)
            self.adecorated = decorate(_wait_for)
        self.log.name = self.breaker.name
        # Listening turns off the breaker's lock-free path for closed calls:
        # half the runs start with each, and toggle_listener switches.
        if listen:
            self._listen()

    def _build_keyed(self, cfg: CircuitBreakerConfig) -> None:
        """Per-key breakers of one name in a registry of their own: a keyed
        policy (its ``call`` and ``call_async``), and functions decorated
        with ``with_circuit_breaker(name, key=...)`` (another group of the
        same breakers, as two decorators of one name are)."""
        self.registry = Registry()
        self.keyed = KeyedBreakers(KEYED, _key_of, config=cfg, max_keys=2, registry=self.registry)
        self.breaker = self.keyed.breaker("a")
        per_key = with_circuit_breaker(KEYED, key=_key_of, config=cfg, registry=self.registry)
        self.keyed_work = per_key(_keyed_work)
        self.keyed_wait_for = per_key(_keyed_wait_for)
        self.keyed_awork = per_key(_keyed_awork)
        self.decorated = functools.partial(self.keyed_work, "a")
        self.adecorated = functools.partial(self.keyed_wait_for, "a")
        # Key "b": a breaker and a model of its own.
        self.other_model = ModelBreaker(cfg)

    def teardown(self) -> None:
        for call in self.in_flight:
            call.task.cancel()
        if self.in_flight:
            self._settle()
        self.loop.close()
        for _ in self.held:
            self.breaker.__exit__(None, None, None)
        if self.unsubscribe is not None:
            self.unsubscribe()
        logging.getLogger("resilient").removeHandler(self.log)
        self._clock_cm.__exit__(None, None, None)

    # helpers

    def _listen(self) -> None:
        # Per-key: the registry's listeners hear the breakers and the
        # requests of the per-key layer (counted under the layer's name).
        source: Any = self.breaker if self.keyed is None else self.registry
        self.unsubscribe = source.subscribe(self.events.append)
        self.listening = True

    def _note_transitions(self) -> None:
        """The model's transitions since the last look are announced to the
        listener if one listens now."""
        transitions = self.model.transitions
        if self.listening:
            self.expected_changes.extend(transitions[self.transitions_seen :])
        self.transitions_seen = len(transitions)

    def _settle(self) -> None:
        for _ in range(3):
            self.loop.run_until_complete(asyncio.sleep(0))

    def _admit(self, waiting: Waiting | None = None) -> Ticket | None:
        """The model's admission decision at the current time."""
        try:
            reservation = waiting.reservation if waiting is not None else None
            return self.model.admit(self.clock.now(), reservation)
        except Rejected:
            return None

    def _pick_ticket(self, index: int) -> Waiting | None:
        """A held wait ticket (taken from the list: used once), or None."""
        if index < 0 or not self.waiting:
            return None
        return self.waiting.pop(index % len(self.waiting))

    def _done_with(self, waiting: Waiting | None) -> None:
        """The attempt made on ``waiting`` ended: its ticket goes back, as
        retry gives it back."""
        if waiting is not None:
            waiting.ticket.release()
            self.model.unreserve(waiting.reservation)

    def _check_rejection(self, error: CircuitOpenError, now: float) -> None:
        assert error.state == self.model.state
        assert error.remaining == self.model.retry_in(now)
        if self.listening:
            self.expected_events["rejected"] += 1

    def _request_started(self) -> None:
        if self.listening:
            self.expected_requests["started"] += 1

    def _request_ended(self, raised: BaseException | None) -> None:
        """A request ends as its caller saw it; an interrupt or a
        cancellation ends it without an event."""
        if not self.listening:
            return
        if raised is None:
            self.expected_requests["succeeded"] += 1
        elif isinstance(raised, CircuitOpenError):
            self.expected_requests["rejected"] += 1
        elif isinstance(raised, Exception):
            self.expected_requests["failed"] += 1

    def _finish_model(self, ticket: Ticket, action: str, start: float, path: str) -> None:
        if path in BLOCKS and action == "bad_result":
            action = "ok"
        now = self.clock.now()
        error = _error_for(action)
        outcome = self.model.classify(error, _result_for(action))
        threshold = self.cfg.slow_call_duration
        slow = threshold is not None and now - start >= threshold
        self.model.finish(ticket, outcome, slow, now)
        # open: the event describes the call as its caller saw it, so an
        # exception the window counts as a success is still a CallFailed
        # (it carries the error); ignored calls emit neither.
        if outcome == IGNORED or not self.listening:
            return
        if error is None and outcome == SUCCESS:
            self.expected_events["succeeded"] += 1
        else:
            self.expected_events["failed"] += 1

    def _call_sync(self, path: str, action: str, duration: float, ran: list[bool]) -> object:
        clock, breaker, keyed = self.clock, self.breaker, self.keyed
        if keyed is not None and path == "call":
            return keyed.call(_keyed_work, "a", clock, action, duration, ran)
        if keyed is not None and path == "call_fresh":
            return keyed.call(lambda key: _work(clock, action, duration, ran), "a")
        if path == "call":  # the same function every time: one chain, reused
            return breaker.call(_work, clock, action, duration, ran)
        if path == "call_fresh":  # a new function every time: a new chain
            return breaker.call(lambda: _work(clock, action, duration, ran))
        if path == "decorated":
            return self.decorated(clock, action, duration, ran)
        assert path == "with"
        with breaker:
            return _work(clock, action, duration, ran)

    def _call_async(self, path: str, future: asyncio.Future[Any]) -> Coroutine[Any, Any, Any]:
        if path == "call_async" and self.keyed is not None:
            return self.keyed.call_async(_keyed_wait_for, "a", future)
        if path == "call_async":
            return self.breaker.call_async(_wait_for, future)
        if path == "decorated_async":
            return self.adecorated(future)  # type: ignore[no-any-return]
        assert path == "async_with"
        return self._in_async_block(future)

    async def _in_async_block(self, future: asyncio.Future[Any]) -> Any:
        async with self.breaker:
            return await future

    # rules: calls

    @rule(
        path=st.sampled_from(SYNC_PATHS),
        action=ACTION,
        duration=DURATIONS,
        use=st.integers(-1, 3),
    )
    def call(self, path: str, action: str, duration: float, use: int) -> None:
        start = self.clock.now()
        waiting = self._pick_ticket(use)
        ticket = self._admit(waiting)
        ran: list[bool] = []
        raised: BaseException | None = None
        result: object = None
        self._request_started()
        token = holding.set(waiting.ticket if waiting is not None else None)
        try:
            result = self._call_sync(path, action, duration, ran)
        except BaseException as error:  # KeyboardInterrupt is one of the outcomes
            raised = error
        finally:
            holding.reset(token)
        self._request_ended(raised)
        if isinstance(raised, CircuitOpenError):
            assert ticket is None, f"{path}: the breaker rejected a call the model admits"
            assert not ran
            self._check_rejection(raised, start)
            self._done_with(waiting)
            return
        assert ticket is not None, f"{path}: the model rejects, the breaker ran it: {raised!r}"
        assert ran
        expected = _error_for(action)
        assert type(raised) is type(expected), "the call's own error passes through"
        if expected is None:
            assert result == _result_for(action), "results pass through, rejected ones too"
        self._finish_model(ticket, action, start, path)
        self._done_with(waiting)

    @rule()
    def enter_block(self) -> None:
        """``with breaker:`` entered now, left by a later step (calls made
        meanwhile run inside it)."""
        start = self.clock.now()
        ticket = self._admit()
        self._request_started()
        try:
            self.breaker.__enter__()
        except CircuitOpenError as error:
            self._request_ended(error)
            assert ticket is None, "the breaker rejected a block the model admits"
            self._check_rejection(error, start)
            return
        assert ticket is not None, "the model rejects, the breaker let the block in"
        self.held.append(Held(ticket, start))

    @rule(action=ACTION)
    def leave_block(self, action: str) -> None:
        """The innermost open block ends: normally, or by ``action``'s error."""
        if not self.held:
            return
        held = self.held.pop()
        error = _error_for(action)
        self.breaker.__exit__(type(error) if error is not None else None, error, None)
        self._request_ended(error)
        self._finish_model(held.ticket, action, held.start, "held_with")

    @rule(path=st.sampled_from(ASYNC_PATHS), use=st.integers(-1, 3))
    def start_async_call(self, path: str, use: int) -> None:
        future: asyncio.Future[Any] = self.loop.create_future()
        start = self.clock.now()
        waiting = self._pick_ticket(use)
        ticket = self._admit(waiting)
        self._request_started()
        token = holding.set(waiting.ticket if waiting is not None else None)
        try:
            task = self.loop.create_task(self._call_async(path, future))
        finally:
            holding.reset(token)
        self._settle()
        # Admitted (or not) by now: the ticket has done its work.
        self._done_with(waiting)
        if ticket is None:
            assert task.done(), f"{path}: the model rejects, the breaker admitted"
            error = task.exception()
            assert isinstance(error, CircuitOpenError), f"expected a rejection, got {error!r}"
            self._request_ended(error)
            self._check_rejection(error, start)
            return
        assert not task.done(), f"{path}: the model admits, the breaker ended the call: {task!r}"
        self.in_flight.append(InFlight(task, future, ticket, start, path))

    @rule(index=st.integers(0, 100), action=ASYNC_ACTION)
    def finish_async_call(self, index: int, action: str) -> None:
        if not self.in_flight:
            return
        call = self.in_flight.pop(index % len(self.in_flight))
        error = _error_for(action)
        if error is None:
            call.future.set_result(_result_for(action))
        else:
            call.future.set_exception(error)
        self._settle()
        assert call.task.done()
        if error is None:
            assert call.task.result() == _result_for(action)
        else:
            assert type(call.task.exception()) is type(error)
        self._request_ended(error)
        self._finish_model(call.ticket, action, call.start, call.path)

    @rule(index=st.integers(0, 100))
    def cancel_async_call(self, index: int) -> None:
        if not self.in_flight:
            return
        call = self.in_flight.pop(index % len(self.in_flight))
        call.task.cancel()
        self._settle()
        assert call.task.cancelled()
        self.model.finish(call.ticket, IGNORED, False, self.clock.now())

    # rules: wait tickets (what a retry takes when it meets the breaker open)

    @rule()
    def take_ticket(self) -> None:
        now = self.clock.now()
        ticket = self.breaker._wait_ticket()
        kept = self.model.reserve(now)
        assert (ticket is None) == (kept is None), f"breaker {ticket}, model {kept}"
        if ticket is None or kept is None:
            return
        reservation, due = kept
        assert ticket.due == due
        if reservation < 0:
            ticket.release()  # closed: nothing kept
            return
        self.waiting.append(Waiting(ticket, reservation))

    @rule(index=st.integers(0, 100))
    def release_ticket(self, index: int) -> None:
        """A waiting retry is cancelled: its ticket goes back unused."""
        self._done_with(self._pick_ticket(index))

    # rules: listening, time, control, reads

    @rule(action=ASYNC_ACTION)
    def toggle_listener(self, action: str) -> None:
        """A listener comes or goes at a quiet moment: calls in flight and
        open blocks end first (by ``action``), so that each call is watched
        throughout or not at all."""
        while self.in_flight:
            self.finish_async_call(0, action)
        while self.held:
            self.leave_block(action)
        self._note_transitions()
        if self.listening:
            self.unsubscribe()
            self.unsubscribe = None
            self.listening = False
        else:
            self._listen()

    @rule(seconds=ADVANCES)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(path=st.sampled_from(SYNC_PATHS))
    def trip(self, path: str) -> None:
        """Failures until the breaker opens (a shortcut through ``call``:
        recovery is where the rules of this release live)."""
        for _ in range(self.cfg.failure_threshold):
            if self.model.state != CLOSED:
                return
            self.call(path, "boom", 0.0, -1)

    @rule(extra=st.sampled_from([0.0, 0.25]))
    def to_half_open(self, extra: float) -> None:
        """Straight to where recovery happens: past the end of the current
        OPEN period (a shortcut through ``advance``, which rarely lands there)."""
        left = self.model.remaining(self.clock.now())
        if 0 < left < math.inf:
            self.clock.advance(left + extra)

    @rule(op=st.sampled_from(["force_open", "force_closed", "release", "reset"]))
    def control(self, op: str) -> None:
        getattr(self.breaker, op)()
        getattr(self.model, op)(self.clock.now())

    @rule(metrics=st.booleans())
    def read(self, metrics: bool) -> None:
        now = self.clock.now()
        if self.keyed is not None:
            other = self.registry.get(f"{KEYED}[{OTHER}]")
            if other is not None:
                assert other.state.value == self.other_model.read_state(now)
        if not metrics:
            assert self.breaker.state.value == self.model.read_state(now)
            return
        expected = self.model.metrics(now)
        actual = self.breaker.metrics()._asdict()
        actual["state"] = actual["state"].value
        assert actual == expected

    # invariants: checked after every step

    @invariant()
    def probes_running_within_the_limit(self) -> None:
        """At any instant at most half_open_max_calls calls admitted as
        probes are still running (those whose permit was not freed)."""
        if not hasattr(self, "model"):
            return
        model = self.model
        running = [c.ticket for c in self.in_flight] + [h.ticket for h in self.held]
        holding_permits = sum(t.probe == model.probe_epoch for t in running)
        assert holding_permits == model.running <= self.cfg.half_open_max_calls
        kept = len(model.reserved - model.stolen)
        assert kept + model.running <= self.cfg.half_open_max_calls
        assert self.breaker._core.probes_running == model.running

    @invariant()
    def one_event_per_transition(self) -> None:
        if not hasattr(self, "model"):
            return
        self._note_transitions()
        assert self.log.seen == self.model.transitions
        changes = [
            (e.old_state, e.new_state)
            for e in self.events
            if isinstance(e, events.StateChanged) and e.name == self.breaker.name
        ]
        assert changes == self.expected_changes

    @invariant()
    def one_event_per_call(self) -> None:
        if not hasattr(self, "model"):
            return
        name = self.breaker.name
        # The breaker's own view, and each request as a whole (key b's too:
        # requests are counted under the per-key layer's name).
        mine = [
            e for e in self.events if getattr(e, "level", None) == events.REQUEST or e.name == name
        ]

        def count(level: str) -> dict[str, int]:
            of_level = [e for e in mine if getattr(e, "level", None) == level]
            return {
                "started": sum(isinstance(e, events.CallStarted) for e in of_level),
                "succeeded": sum(isinstance(e, events.CallSucceeded) for e in of_level),
                "failed": sum(isinstance(e, events.CallFailed) for e in of_level),
                "rejected": sum(isinstance(e, events.CallRejected) for e in of_level),
            }

        # The breaker's own view of each call, and each request as a whole.
        assert count(events.POLICY) == {"started": 0, **self.expected_events}
        assert count(events.REQUEST) == self.expected_requests
        allowed = {(name, "circuit_breaker")}
        if self.keyed is not None:
            allowed |= {(KEYED, "keyed_circuit_breaker"), (f"{KEYED}[{OTHER}]", "circuit_breaker")}
        assert {(e.name, e.policy) for e in self.events} <= allowed


DECORATORS = st.sampled_from(["with_circuit_breaker", "breaker"])


class PlainBreakerMachine(BreakerMachine):
    """Plain configs: calls take the lock-free path while CLOSED and nobody
    listens, the locked path otherwise."""

    @initialize(fields=configs(plain=True), listen=st.booleans(), decorator=DECORATORS)
    def build(self, fields: dict[str, Any], listen: bool, decorator: str) -> None:
        self._build(fields, listen, decorator)


class TimedBreakerMachine(BreakerMachine):
    """Time windows, slow calls, result predicates, timeouts: checked on the
    lock-free path, the lock for what may trip."""

    @initialize(fields=configs(plain=False), listen=st.booleans(), decorator=DECORATORS)
    def build(self, fields: dict[str, Any], listen: bool, decorator: str) -> None:
        self._build(fields, listen, decorator)


class KeyedMachine(BreakerMachine):
    """The machine through per-key breakers: key "a"'s breaker is the one
    under test; key "b"'s calls run meanwhile."""

    @rule(action=ASYNC_ACTION, duration=DURATIONS, is_async=st.booleans())
    def call_other_key(self, action: str, duration: float, is_async: bool) -> None:
        """A call with key "b", sync or async, against a model of its own:
        nothing of it may reach key "a"'s breaker."""
        model, start = self.other_model, self.clock.now()
        try:
            ticket: Ticket | None = model.admit(start)
        except Rejected:
            ticket = None
        ran: list[bool] = []
        raised: BaseException | None = None
        result: object = None
        self._request_started()
        try:
            if is_async:
                coroutine = self.keyed_awork(OTHER, self.clock, action, duration, ran)
                result = self.loop.run_until_complete(coroutine)
            else:
                result = self.keyed_work(OTHER, self.clock, action, duration, ran)
        except BaseException as error:
            raised = error
        self._request_ended(raised)
        if isinstance(raised, CircuitOpenError):
            assert ticket is None, "key b: the breaker rejected a call the model admits"
            assert not ran
            assert raised.name == f"{KEYED}[{OTHER}]"
            assert raised.state == model.state
            assert raised.remaining == model.retry_in(start)
            return
        assert ticket is not None, f"key b: the model rejects, the breaker ran it: {raised!r}"
        assert ran
        expected = _error_for(action)
        assert type(raised) is type(expected), "the call's own error passes through"
        if expected is None:
            assert result == _result_for(action)
        now = self.clock.now()
        threshold = self.cfg.slow_call_duration
        slow = threshold is not None and now - start >= threshold
        model.finish(ticket, model.classify(expected, _result_for(action)), slow, now)

    @invariant()
    def calls_in_flight_are_counted(self) -> None:
        """Key "a"'s member counts every call in flight through the per-key
        layer and every open block (what keeps it from being dropped)."""
        if not hasattr(self, "model"):
            return
        assert self.keyed is not None
        member = self.keyed._group.members["a"]
        assert member.breaker is self.breaker
        assert member.inflight == len(self.in_flight) + len(self.held)


class PlainKeyedMachine(KeyedMachine):
    """:class:`PlainBreakerMachine` through per-key breakers."""

    @initialize(fields=configs(plain=True), listen=st.booleans())
    def build(self, fields: dict[str, Any], listen: bool) -> None:
        self._build(fields, listen, "keyed")


class TimedKeyedMachine(KeyedMachine):
    """:class:`TimedBreakerMachine` through per-key breakers."""

    @initialize(fields=configs(plain=False), listen=st.booleans())
    def build(self, fields: dict[str, Any], listen: bool) -> None:
        self._build(fields, listen, "keyed")


# RESILIENT_MODEL_EXAMPLES=5000 for a long hunt; the default keeps the suite quick.
EXAMPLES = int(os.environ.get("RESILIENT_MODEL_EXAMPLES", "75"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PlainBreakerMachine.TestCase.settings = SETTINGS
TimedBreakerMachine.TestCase.settings = SETTINGS
PlainKeyedMachine.TestCase.settings = SETTINGS
TimedKeyedMachine.TestCase.settings = SETTINGS
TestPlainBreakerModel = PlainBreakerMachine.TestCase
TestTimedBreakerModel = TimedBreakerMachine.TestCase
TestPlainKeyedBreakerModel = PlainKeyedMachine.TestCase
TestTimedKeyedBreakerModel = TimedKeyedMachine.TestCase


# -- the model's open choices, pinned one by one on the real breaker ---------------


def _probe_ready(**fields: Any) -> tuple[CircuitBreaker, FakeClock, Any]:
    cm = fake_clock()
    clock = cm.__enter__()
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0, **fields)
    breaker = CircuitBreaker("pinned", cfg, listeners=events.ListenerSet())
    return breaker, clock, cm


def _boom() -> None:
    raise Boom


@pytest.mark.parametrize("fields", [{}, {"slow_call_duration": 0.5}])
def test_rate_trips_when_a_success_brings_the_window_to_minimum_calls(
    fields: dict[str, Any],
) -> None:
    # F, F, then a success makes 3 calls at a failure rate of 2/3 >= 0.5:
    # "the window holds at least minimum_calls" and the rate is over, so the
    # breaker opens on that success, and the next call is rejected.
    with fake_clock():
        cfg = CircuitBreakerConfig(
            failure_threshold=10, failure_rate_threshold=0.5, minimum_calls=3, **fields
        )
        breaker = CircuitBreaker("rate", cfg, listeners=events.ListenerSet())
        for _ in range(2):
            with pytest.raises(Boom):
                breaker.call(_boom)
        assert breaker.call(lambda: 1) == 1
        assert breaker.state.value == OPEN
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: 1)


def test_rate_trips_on_a_success_after_old_successes_expire() -> None:
    # In a time window, successes sliding out raise the failure rate; the
    # next recorded call (a success here) sees it.
    with fake_clock() as clock:
        cfg = CircuitBreakerConfig(
            failure_threshold=10, failure_rate_threshold=0.5, minimum_calls=2, window_duration=2
        )
        breaker = CircuitBreaker("expiry", cfg, listeners=events.ListenerSet())
        for _ in range(3):
            breaker.call(lambda: None)
        clock.advance(1.0)
        with pytest.raises(Boom):
            breaker.call(_boom)
        assert breaker.state.value == CLOSED  # 1 failure in 4 calls
        clock.advance(1.0)  # the three successes slide out
        breaker.call(lambda: None)  # 1 failure in 2 calls
        assert breaker.state.value == OPEN


async def test_failure_admitted_before_a_close_does_not_count_after_it() -> None:
    # A call admitted while CLOSED that fails after the breaker opened,
    # probed and closed again belongs to a window that is gone: counting it
    # would reopen a breaker that just recovered.
    with fake_clock() as clock:
        cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0, success_threshold=1)
        breaker = CircuitBreaker("stale", cfg, listeners=events.ListenerSet())
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def slow_failure() -> None:
            await gate
            raise Boom

        straggler = asyncio.ensure_future(breaker.call_async(slow_failure))
        await asyncio.sleep(0)
        with pytest.raises(Boom):
            breaker.call(_boom)  # opens
        clock.advance(1.0)
        breaker.call(lambda: None)  # the probe closes it
        assert breaker.state.value == CLOSED
        gate.set_result(None)
        with pytest.raises(Boom):
            await straggler
        assert breaker.state.value == CLOSED
        assert breaker.metrics().calls == 0


async def test_success_admitted_before_a_reset_does_not_count_after_it() -> None:
    with fake_clock():
        breaker = CircuitBreaker("stale-ok", listeners=events.ListenerSet())
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def wait() -> None:
            await gate

        straggler = asyncio.ensure_future(breaker.call_async(wait))
        await asyncio.sleep(0)
        breaker.reset()
        gate.set_result(None)
        await straggler
        assert breaker.metrics().calls == 0


def test_slow_success_in_half_open_is_a_success() -> None:
    breaker, clock, cm = _probe_ready(slow_call_duration=0.5, success_threshold=1)
    try:
        with pytest.raises(Boom):
            breaker.call(_boom)
        clock.advance(1.0)
        breaker.call(lambda: clock.advance(5.0))
        assert breaker.state.value == CLOSED
    finally:
        cm.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"record_on": (Boom,)}, Other()),
        ({"failure_predicate": lambda e: not isinstance(e, Benign)}, Benign()),
    ],
)
def test_unrecorded_exceptions_count_as_successes(fields: dict[str, Any], error: Exception) -> None:
    with fake_clock():
        cfg = CircuitBreakerConfig(failure_threshold=2, **fields)
        breaker = CircuitBreaker("unrecorded", cfg, listeners=events.ListenerSet())

        def raise_it() -> None:
            raise error

        with pytest.raises(Boom):
            breaker.call(_boom)
        with pytest.raises(type(error)):
            breaker.call(raise_it)
        # The success broke the run: one more failure does not open it.
        with pytest.raises(Boom):
            breaker.call(_boom)
        assert breaker.state.value == CLOSED
        assert breaker.metrics().calls == 3
