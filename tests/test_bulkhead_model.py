"""The bulkhead against a reference model written from docs/bulkhead.md alone.

Hypothesis drives random sequences of calls (started, finished, failed,
cancelled while running or while queued), queue timeouts, sync calls,
listeners coming and going, and metric reads through the real ``Bulkhead``
and through :class:`ModelBulkhead`, and checks that they agree on who runs,
who waits, who is rejected, on every metric and on the events a listener
gets, and that no permit is ever left behind.

Each call picks its way in, as users write it: in an event loop, ``await
bulkhead.call_async(fn)``, a decorated coroutine function, ``async with
bulkhead:``; in a thread of its own (which may wait for a slot) or in the
test's thread, ``bulkhead.call(fn)``, a decorated function, ``with
bulkhead:``; and ``with bulkhead:`` held open across steps.

Time is a stepped clock: a wait lasts until the test advances the clock past
its end (``fake_clock()`` would end every wait at once).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from resilient import (
    Bulkhead,
    BulkheadConfig,
    BulkheadFullError,
    events,
    with_bulkhead,
)
from resilient._runtime import clock as _clock

# -- a clock whose waits end when the test says so ---------------------------------


class SteppedClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def _sleep(self, seconds: float) -> None:
        raise AssertionError("the model only queues async callers")

    def _sleep_async(self, seconds: float) -> Awaitable[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), fut))
        return fut

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def as_clock(self) -> _clock.Clock:
        return _clock.Clock(
            monotonic=lambda: self.now,
            wall=lambda: self.now,
            sleep=self._sleep,
            sleep_async=self._sleep_async,
        )


# -- the reference model -------------------------------------------------------------


@dataclass
class ModelBulkhead:
    """At most ``max_concurrent`` calls run; up to ``max_queue`` more wait, in
    arrival order, each at most ``queue_timeout``; the rest are rejected. A
    finished call hands its slot to the first waiter. A waiter that is
    cancelled or times out leaves the queue and holds nothing."""

    max_concurrent: int
    max_queue: int
    queue_timeout: float | None
    running: set[int] = field(default_factory=set)
    queue: list[tuple[int, float]] = field(default_factory=list)  # (call, since)
    completed: int = 0
    rejected: int = 0

    def arrive(self, call: int, now: float) -> str:
        if len(self.running) < self.max_concurrent:
            # A free slot exists only when nobody waits: no overtaking.
            assert not self.queue
            self.running.add(call)
            return "running"
        if len(self.queue) < self.max_queue:
            self.queue.append((call, now))
            return "queued"
        self.rejected += 1
        return "rejected"

    def leave(self, call: int, finished: bool = True) -> int | None:
        """A running call ended: the waiter it lets in, if any. Only a call
        that finished (returned or raised an ``Exception``) is completed; one
        cancelled or interrupted while running is not."""
        self.running.remove(call)
        if finished:
            self.completed += 1
        if self.queue:
            nxt, _ = self.queue.pop(0)
            self.running.add(nxt)
            return nxt
        return None

    def drop(self, call: int) -> int | None:
        """``call`` was handed a slot but gave up before using it: the slot
        goes on to the next waiter (nothing was completed)."""
        self.running.remove(call)
        if self.queue:
            nxt, _ = self.queue.pop(0)
            self.running.add(nxt)
            return nxt
        return None

    def give_up(self, call: int) -> None:
        self.queue = [(c, t) for c, t in self.queue if c != call]

    def expire(self, now: float) -> list[int]:
        if self.queue_timeout is None:
            return []
        timeout = self.queue_timeout
        gone = [c for c, since in self.queue if since + timeout <= now]
        self.queue = [(c, t) for c, t in self.queue if c not in gone]
        self.rejected += len(gone)
        return gone


def _in_thread(fn: Any) -> object:
    """What ``fn()`` returns or raises, run in a thread so that a call that
    wrongly blocks fails the test instead of hanging it."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert box, "the call blocked"
    return box[0]


def _until(done: Any, what: str) -> None:
    """Wait (for real, briefly) until another thread has got where ``done``
    says; a thread that never gets there fails the test."""
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.0002)


SYNC = 10**9  # a sync call's id: it never outlives its step

# The ways in, as users write them. An async call (a task) stays in flight,
# running or queued, until a later step ends it; so does a thread's call,
# which blocks its thread while it waits for a slot; the main thread's sync
# call runs within its step; a held block is entered in one step and left
# in a later one.
ASYNC_PATHS = ("call_async", "decorated_async", "async_with")
SYNC_PATHS = ("call", "decorated", "with")
# A block is reported as a request only: no policy-level call event.
BLOCKS = frozenset({"async_with", "with"})


async def _body(started: list[bool], gate: asyncio.Future[str]) -> str:
    """The protected coroutine function: runs until the test ends ``gate``."""
    started.append(True)
    return await gate


def _sync_body(ran: list[bool], outcome: str) -> str:
    """The protected function: returns, fails or is interrupted at once."""
    ran.append(True)
    if outcome == "interrupt":
        raise KeyboardInterrupt
    if outcome == "fail":
        raise ValueError("boom")
    return "sync"


def _blocking_body(started: threading.Event, go: threading.Event, fail: list[bool]) -> str:
    """The protected function of a thread: runs until the test sets ``go``."""
    started.set()
    assert go.wait(10), "never told to finish"
    if fail:
        raise ValueError("boom")
    return "done"


# -- the machine -----------------------------------------------------------------------


@dataclass
class Call:
    """An async call: a task on the machine's loop."""

    task: asyncio.Task[Any]
    gate: asyncio.Future[str]
    started: list[bool]
    path: str

    def is_running(self) -> bool:
        return self.started == [True]


@dataclass
class ThreadCall:
    """A sync call in a thread of its own."""

    thread: threading.Thread
    started: threading.Event
    go: threading.Event
    fail: list[bool]
    box: list[object]  # what the call returned or raised, once it ended
    path: str

    def is_running(self) -> bool:
        return self.started.wait(10)


class BulkheadMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = SteppedClock()
        self._previous_clock = _clock.set_clock(self.clock.as_clock())
        self.calls: dict[int, Call | ThreadCall] = {}
        self.ids = itertools.count()
        self.holders: list[int] = []  # permits this thread holds through `with`
        self.holder_ids = itertools.count(-1, -1)
        self.listening = False
        self.unsubscribe: Any = None
        self.events: list[events.Event] = []
        # What the listener must have seen: the bulkhead's own view of each
        # call (blocks have none), each rejection, and each request.
        self.expected_events = {"succeeded": 0, "failed": 0, "full": 0}
        self.expected_requests = {"started": 0, "succeeded": 0, "failed": 0, "rejected": 0}

    @initialize(
        max_concurrent=st.integers(1, 3),
        max_queue=st.integers(0, 3),
        queue_timeout=st.none() | st.sampled_from([0.5, 1.0, 2.0]),
        listen=st.booleans(),
        decorator=st.sampled_from(["with_bulkhead", "bulkhead"]),
    )
    def build(
        self,
        max_concurrent: int,
        max_queue: int,
        queue_timeout: float | None,
        listen: bool,
        decorator: str,
    ) -> None:
        cfg = BulkheadConfig(max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout)
        self.bulkhead = Bulkhead("model", cfg, listeners=events.ListenerSet())
        self.model = ModelBulkhead(max_concurrent, max_queue, queue_timeout)
        # Decorated once, before anyone listens: a listener that comes later
        # must reach the chains already built.
        decorate: Any = (
            with_bulkhead(self.bulkhead) if decorator == "with_bulkhead" else self.bulkhead
        )
        self.decorated = decorate(_sync_body)
        self.tdecorated = decorate(_blocking_body)
        self.adecorated = decorate(_body)
        # Listening sends every call through the bulkhead's events path; not
        # listening, through its lock-free fast path.
        if listen:
            self._listen()

    def teardown(self) -> None:
        threads = [c for c in self.calls.values() if isinstance(c, ThreadCall)]
        for call in threads:
            call.go.set()
        for _ in self.holders:
            self.bulkhead.__exit__(None, None, None)
        for call in self.calls.values():
            if isinstance(call, Call):
                call.task.cancel()
        # Slots pass from thread to task to thread until every call is over.
        deadline = time.monotonic() + 10
        while any(c.thread.is_alive() for c in threads) and time.monotonic() < deadline:
            self._settle()
            time.sleep(0.0002)
        self._settle()
        self.loop.close()
        if self.unsubscribe is not None:
            self.unsubscribe()
        _clock.set_clock(self._previous_clock)

    def _listen(self) -> None:
        self.unsubscribe = self.bulkhead.subscribe(self.events.append)
        self.listening = True

    def _settle(self) -> None:
        for _ in range(4):
            self.loop.run_until_complete(asyncio.sleep(0))

    def _ids(self, where: str, kind: type[Call | ThreadCall] | None = None) -> list[int]:
        ids = self.model.running if where == "running" else [c for c, _ in self.model.queue]
        return sorted(  # calls, not `with` holders
            c for c in ids if c in self.calls and (kind is None or type(self.calls[c]) is kind)
        )

    def _pick(
        self, index: int, where: str, kind: type[Call | ThreadCall] | None = None
    ) -> int | None:
        pool = self._ids(where, kind)
        return pool[index % len(pool)] if pool else None

    def _check_started(self, call_id: int) -> None:
        assert self.calls[call_id].is_running(), f"call {call_id} should be running"

    def _let_in(self, call_id: int | None) -> None:
        """The model's first waiter got the slot: it must be running now."""
        if call_id is not None:
            self._settle()  # a task woken from a thread: its wake-up is queued on the loop
            self._check_started(call_id)

    def _rejected(self) -> None:
        if self.listening:
            self.expected_events["full"] += 1
            self.expected_requests["rejected"] += 1

    def _request_started(self) -> None:
        if self.listening:
            self.expected_requests["started"] += 1

    def _ended(self, path: str, error: object) -> None:
        """An admitted call or block ended, as its caller saw it; an interrupt
        or a cancellation ends it without an event."""
        if not self.listening or not (error is None or isinstance(error, Exception)):
            return
        outcome = "succeeded" if error is None else "failed"
        self.expected_requests[outcome] += 1
        if path not in BLOCKS:
            self.expected_events[outcome] += 1

    def _call_async(self, path: str, started: list[bool], gate: asyncio.Future[str]) -> Any:
        if path == "call_async":
            return self.bulkhead.call_async(_body, started, gate)
        if path == "decorated_async":
            return self.adecorated(started, gate)
        assert path == "async_with"
        return self._in_async_block(started, gate)

    async def _in_async_block(self, started: list[bool], gate: asyncio.Future[str]) -> str:
        async with self.bulkhead:
            started.append(True)
            return await gate

    def _call_sync(self, path: str, ran: list[bool], outcome: str) -> str:
        if path == "call":
            return self.bulkhead.call(_sync_body, ran, outcome)
        if path == "decorated":
            return self.decorated(ran, outcome)  # type: ignore[no-any-return]
        assert path == "with"
        with self.bulkhead:
            return _sync_body(ran, outcome)

    def _call_blocking(
        self, path: str, started: threading.Event, go: threading.Event, fail: list[bool]
    ) -> str:
        if path == "call":
            return self.bulkhead.call(_blocking_body, started, go, fail)
        if path == "decorated":
            return self.tdecorated(started, go, fail)  # type: ignore[no-any-return]
        assert path == "with"
        with self.bulkhead:
            return _blocking_body(started, go, fail)

    # rules: tasks

    @rule(path=st.sampled_from(ASYNC_PATHS))
    def start_call(self, path: str) -> None:
        call_id = next(self.ids)
        gate: asyncio.Future[str] = self.loop.create_future()
        started: list[bool] = []
        self._request_started()
        task = self.loop.create_task(self._call_async(path, started, gate))
        self._settle()
        fate = self.model.arrive(call_id, self.clock.now)
        if fate == "rejected":
            assert task.done(), f"{path}: the model rejects, the bulkhead took the call"
            assert isinstance(task.exception(), BulkheadFullError)
            assert started == []
            self._rejected()
            return
        assert not task.done(), f"{path}: the model admits, the bulkhead ended the call"
        assert started == ([True] if fate == "running" else []), f"{path}: should be {fate}"
        self.calls[call_id] = Call(task, gate, started, path)

    @rule(index=st.integers(0, 10), fail=st.booleans())
    def finish_call(self, index: int, fail: bool) -> None:
        """A running call (a task's or a thread's) returns or fails."""
        call_id = self._pick(index, "running")
        if call_id is not None:
            self._finish(call_id, fail)

    def _finish(self, call_id: int, fail: bool) -> None:
        call = self.calls.pop(call_id)
        if isinstance(call, ThreadCall):
            call.fail[:] = [True] if fail else []
            call.go.set()
            call.thread.join(10)
            assert call.box, "the call did not end"
            outcome = call.box[0]
            error = outcome if isinstance(outcome, BaseException) else None
        else:
            if fail:
                call.gate.set_exception(ValueError("boom"))
            else:
                call.gate.set_result("done")
            self._settle()
            assert call.task.done()
            outcome = error = call.task.exception()
            if error is None:
                outcome = call.task.result()
        if fail:
            assert isinstance(error, ValueError), f"{call.path}: {outcome!r}"
        else:
            assert outcome == "done", f"{call.path}: {outcome!r}"
        self._ended(call.path, error)
        self._let_in(self.model.leave(call_id))

    @rule(index=st.integers(0, 10))
    def cancel_running(self, index: int) -> None:
        call_id = self._pick(index, "running", Call)
        if call_id is not None:
            self._cancel_running(call_id)

    def _cancel_running(self, call_id: int) -> None:
        call = self.calls.pop(call_id)
        assert isinstance(call, Call)
        call.task.cancel()
        self._settle()
        assert call.task.cancelled()
        self._let_in(self.model.leave(call_id, finished=False))

    @rule(index=st.integers(0, 10))
    def cancel_queued(self, index: int) -> None:
        call_id = self._pick(index, "queued", Call)
        if call_id is not None:
            self._cancel_queued(call_id)

    def _cancel_queued(self, call_id: int) -> None:
        call = self.calls.pop(call_id)
        assert isinstance(call, Call)
        call.task.cancel()
        self._settle()
        assert call.task.cancelled()
        assert call.started == []
        self.model.give_up(call_id)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._settle()
        for call_id in self.model.expire(self.clock.now):
            call = self.calls.pop(call_id)
            assert isinstance(call, Call), "only tasks wait with a timeout"
            assert call.task.done()
            assert isinstance(call.task.exception(), BulkheadFullError)
            assert call.started == []
            self._rejected()

    # rules: threads

    @rule(path=st.sampled_from(SYNC_PATHS))
    def start_thread_call(self, path: str) -> None:
        """A thread's call that runs until told to finish; it may wait for a
        slot, blocking its thread (only without a queue timeout: under a test
        clock, a thread's wait is the whole timeout, on that clock)."""
        model = self.model
        free = len(model.running) < model.max_concurrent
        if not free and len(model.queue) < model.max_queue and model.queue_timeout is not None:
            return
        call_id = next(self.ids)
        started, go = threading.Event(), threading.Event()
        fail: list[bool] = []
        box: list[object] = []

        def run() -> None:
            try:
                box.append(self._call_blocking(path, started, go, fail))
            except BaseException as exc:
                box.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        self._request_started()
        thread.start()
        fate = model.arrive(call_id, self.clock.now)
        if fate == "rejected":
            thread.join(10)
            assert box, f"{path}: the call did not end"
            assert isinstance(box[0], BulkheadFullError), f"{path}: {box!r}"
            assert not started.is_set()
            self._rejected()
            return
        if fate == "running":
            assert started.wait(10), f"{path}: the model runs it, the bulkhead does not"
        else:
            _until(lambda: self.bulkhead.metrics().queued == len(model.queue), f"{path}: queued")
            assert not started.is_set(), f"{path}: should be queued"
            assert not box, f"{path}: should be queued: {box!r}"
        self.calls[call_id] = ThreadCall(thread, started, go, fail, box, path)

    @rule(path=st.sampled_from(SYNC_PATHS), outcome=st.sampled_from(["ok", "fail", "interrupt"]))
    def sync_call(self, path: str, outcome: str) -> None:
        """This thread's call, when it would not have to wait."""
        model = self.model
        free = len(model.running) < model.max_concurrent
        if not free and len(model.queue) < model.max_queue:
            return  # it would block this thread
        ran: list[bool] = []
        self._request_started()
        if free:
            raised: BaseException | None = None
            try:
                assert self._call_sync(path, ran, outcome) == "sync"
            except (ValueError, KeyboardInterrupt) as error:
                raised = error
            assert type(raised) is {"ok": type(None), "fail": ValueError}.get(
                outcome, KeyboardInterrupt
            )
            model.arrive(SYNC, self.clock.now)
            model.leave(SYNC, finished=outcome != "interrupt")
            assert ran == [True]
            self._ended(path, raised)
        else:
            error = _in_thread(lambda: self._call_sync(path, ran, outcome))
            assert isinstance(error, BulkheadFullError), f"{path}: expected a rejection: {error!r}"
            model.arrive(SYNC, self.clock.now)
            assert ran == []
            self._rejected()

    @rule()
    def hold_in_with_block(self) -> None:
        """This thread enters the bulkhead and stays inside, across steps."""
        if len(self.model.running) >= self.model.max_concurrent:
            return  # it would wait or be rejected: sync_call covers that
        self._request_started()
        self.bulkhead.__enter__()
        holder = next(self.holder_ids)
        assert self.model.arrive(holder, self.clock.now) == "running"
        self.holders.append(holder)

    @rule(cancel_next=st.booleans(), fail=st.booleans())
    def leave_with_block(self, cancel_next: bool, fail: bool) -> None:
        """This thread leaves a ``with`` block (normally, or by an error): its
        slot goes to the first waiter, which, with ``cancel_next`` and when
        it is a task, is cancelled before it can run."""
        if not self.holders:
            return
        holder = self.holders.pop()
        waiter = self.model.queue[0][0] if self.model.queue else None
        cancel = cancel_next and waiter is not None and isinstance(self.calls[waiter], Call)
        error = ValueError("boom") if fail else None
        self.bulkhead.__exit__(type(error) if error is not None else None, error, None)
        self._ended("with", error)
        if cancel:
            self.calls[waiter].task.cancel()  # type: ignore[union-attr]
        self._settle()
        let_in = self.model.leave(holder)
        assert let_in == waiter
        if let_in is None or not cancel:
            self._let_in(let_in)
            return
        call = self.calls.pop(let_in)
        assert isinstance(call, Call)
        assert call.task.cancelled()
        assert call.started == []
        # It held the slot for an instant: the slot moves on, nothing leaks.
        self._let_in(self.model.drop(let_in))

    # rules: listening

    @rule()
    def toggle_listener(self) -> None:
        """A listener comes or goes at a quiet moment: the calls in flight end
        and the blocks are left first, so that each call is watched throughout
        or not at all."""
        while self.calls or self.holders:
            if queued := self._ids("queued", Call):
                self._cancel_queued(queued[0])
            elif running := self._ids("running", Call):
                self._cancel_running(running[0])
            elif running := self._ids("running", ThreadCall):
                self._finish(running[0], fail=False)
            else:
                assert self.holders, "calls wait, yet no slot is taken"
                self.leave_with_block(cancel_next=False, fail=False)
        if self.listening:
            self.unsubscribe()
            self.unsubscribe = None
            self.listening = False
        else:
            self._listen()

    # invariants

    @invariant()
    def metrics_agree(self) -> None:
        if not hasattr(self, "model"):
            return
        model = self.model
        metrics = self.bulkhead.metrics()
        assert metrics.active == len(model.running)
        assert metrics.queued == len(model.queue)
        assert metrics.completed == model.completed
        assert metrics.rejected == model.rejected
        assert metrics.utilization == len(model.running) / model.max_concurrent
        assert metrics.active <= model.max_concurrent
        assert metrics.queued <= model.max_queue

    @invariant()
    def one_event_per_call(self) -> None:
        def count(level: str) -> dict[str, int]:
            of_level = [e for e in self.events if getattr(e, "level", None) == level]
            return {
                "started": sum(isinstance(e, events.CallStarted) for e in of_level),
                "succeeded": sum(isinstance(e, events.CallSucceeded) for e in of_level),
                "failed": sum(isinstance(e, events.CallFailed) for e in of_level),
                "rejected": sum(isinstance(e, events.CallRejected) for e in of_level),
            }

        own = count(events.POLICY)
        assert own == {
            "started": 0,
            "succeeded": self.expected_events["succeeded"],
            "failed": self.expected_events["failed"],
            "rejected": 0,
        }
        full = sum(isinstance(e, events.BulkheadRejected) for e in self.events)
        assert full == self.expected_events["full"]
        assert count(events.REQUEST) == self.expected_requests
        assert all(e.name == "model" and e.policy == "bulkhead" for e in self.events)


BulkheadMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("RESILIENT_MODEL_EXAMPLES", "100")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBulkheadModel = BulkheadMachine.TestCase
