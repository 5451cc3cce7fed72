"""The bulkhead against a reference model written from DESIGN.md alone.

Hypothesis drives random sequences of calls (started, finished, failed,
cancelled while running or while queued), queue timeouts, sync calls and
metric reads through the real ``Bulkhead`` and through
:class:`ModelBulkhead`, and checks that they agree on who runs, who waits,
who is rejected, and on every metric, and that no permit is ever left
behind.

Time is a stepped clock: a wait lasts until the test advances the clock past
its end (``fake_clock()`` would end every wait at once).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from resilient import Bulkhead, BulkheadConfig, BulkheadFullError, _clock, events

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

    def leave(self, call: int) -> int | None:
        """A running call ended (any outcome): the waiter it lets in, if any."""
        self.running.remove(call)
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


SYNC = 10**9  # a sync call's id: it never outlives its step


# -- the machine -----------------------------------------------------------------------


@dataclass
class Call:
    task: asyncio.Task[Any]
    gate: asyncio.Future[str]
    started: list[bool]


class BulkheadMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = SteppedClock()
        self._previous_clock = _clock.set_clock(self.clock.as_clock())
        self.calls: dict[int, Call] = {}
        self.ids = itertools.count()
        self.holders: list[int] = []  # permits this thread holds through `with`
        self.holder_ids = itertools.count(-1, -1)

    @initialize(
        max_concurrent=st.integers(1, 3),
        max_queue=st.integers(0, 3),
        queue_timeout=st.none() | st.sampled_from([0.5, 1.0, 2.0]),
    )
    def build(self, max_concurrent: int, max_queue: int, queue_timeout: float | None) -> None:
        cfg = BulkheadConfig(max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout)
        self.bulkhead = Bulkhead("model", cfg, listeners=events.ListenerSet())
        self.model = ModelBulkhead(max_concurrent, max_queue, queue_timeout)

    def teardown(self) -> None:
        for _ in self.holders:
            self.bulkhead.__exit__(None, None, None)
        for call in self.calls.values():
            call.task.cancel()
        if self.calls:
            self._settle()
        self.loop.close()
        _clock.set_clock(self._previous_clock)

    def _settle(self) -> None:
        for _ in range(4):
            self.loop.run_until_complete(asyncio.sleep(0))

    def _pick(self, index: int, where: str) -> int | None:
        ids = self.model.running if where == "running" else [c for c, _ in self.model.queue]
        pool = sorted(c for c in ids if c in self.calls)  # tasks, not `with` holders
        return pool[index % len(pool)] if pool else None

    def _check_started(self, call_id: int) -> None:
        assert self.calls[call_id].started == [True], f"call {call_id} should be running"

    # rules

    @rule()
    def start_call(self) -> None:
        call_id = next(self.ids)
        gate: asyncio.Future[str] = self.loop.create_future()
        started: list[bool] = []

        async def body() -> str:
            started.append(True)
            return await gate

        task = self.loop.create_task(self.bulkhead.call_async(body))
        self._settle()
        fate = self.model.arrive(call_id, self.clock.now)
        if fate == "rejected":
            assert task.done()
            assert isinstance(task.exception(), BulkheadFullError)
            return
        assert not task.done()
        assert started == ([True] if fate == "running" else [])
        self.calls[call_id] = Call(task, gate, started)

    @rule(index=st.integers(0, 10), fail=st.booleans())
    def finish_call(self, index: int, fail: bool) -> None:
        call_id = self._pick(index, "running")
        if call_id is None:
            return
        call = self.calls.pop(call_id)
        if fail:
            call.gate.set_exception(ValueError("boom"))
        else:
            call.gate.set_result("done")
        self._settle()
        assert call.task.done()
        if fail:
            assert isinstance(call.task.exception(), ValueError)
        else:
            assert call.task.result() == "done"
        let_in = self.model.leave(call_id)
        if let_in is not None:
            self._check_started(let_in)

    @rule(index=st.integers(0, 10))
    def cancel_running(self, index: int) -> None:
        call_id = self._pick(index, "running")
        if call_id is None:
            return
        call = self.calls.pop(call_id)
        call.task.cancel()
        self._settle()
        assert call.task.cancelled()
        let_in = self.model.leave(call_id)
        if let_in is not None:
            self._check_started(let_in)

    @rule(index=st.integers(0, 10))
    def cancel_queued(self, index: int) -> None:
        call_id = self._pick(index, "queued")
        if call_id is None:
            return
        call = self.calls.pop(call_id)
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
            assert call.task.done()
            assert isinstance(call.task.exception(), BulkheadFullError)
            assert call.started == []

    @rule(interrupt=st.booleans())
    def sync_call(self, interrupt: bool) -> None:
        """A thread's call, when it would not have to wait."""
        model = self.model
        free = len(model.running) < model.max_concurrent
        if not free and len(model.queue) < model.max_queue:
            return  # it would block this thread
        ran = []

        def body() -> str:
            ran.append(True)
            if interrupt:
                raise KeyboardInterrupt
            return "sync"

        if free:
            if interrupt:
                with pytest.raises(KeyboardInterrupt):
                    self.bulkhead.call(body)
            else:
                assert self.bulkhead.call(body) == "sync"
            model.arrive(SYNC, self.clock.now)
            model.leave(SYNC)
            assert ran == [True]
        else:
            assert isinstance(_in_thread(lambda: self.bulkhead.call(body)), BulkheadFullError)
            model.arrive(SYNC, self.clock.now)
            assert ran == []

    @rule()
    def hold_in_with_block(self) -> None:
        """This thread enters the bulkhead and stays inside, across steps."""
        if len(self.model.running) >= self.model.max_concurrent:
            return  # it would wait or be rejected: sync_call covers that
        self.bulkhead.__enter__()
        holder = next(self.holder_ids)
        assert self.model.arrive(holder, self.clock.now) == "running"
        self.holders.append(holder)

    @rule(cancel_next=st.booleans())
    def leave_with_block(self, cancel_next: bool) -> None:
        """This thread leaves a ``with`` block: its slot goes to the first
        waiter, which, with ``cancel_next``, is cancelled before it can run."""
        if not self.holders:
            return
        holder = self.holders.pop()
        waiter = self.model.queue[0][0] if self.model.queue else None
        self.bulkhead.__exit__(None, None, None)
        if cancel_next and waiter is not None:
            self.calls[waiter].task.cancel()
        self._settle()
        let_in = self.model.leave(holder)
        assert let_in == waiter
        if let_in is None:
            return
        if not cancel_next:
            self._check_started(let_in)
            return
        call = self.calls.pop(let_in)
        assert call.task.cancelled()
        assert call.started == []
        # It held the slot for an instant: the slot moves on, nothing leaks.
        following = self.model.drop(let_in)
        if following is not None:
            self._check_started(following)

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


BulkheadMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("RESILIENT_MODEL_EXAMPLES", "100")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBulkheadModel = BulkheadMachine.TestCase
