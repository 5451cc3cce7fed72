from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import resilient
from resilient import (
    Bulkhead,
    BulkheadConfig,
    BulkheadFullError,
    BulkheadRejected,
    Registry,
    events,
    with_bulkhead,
)
from resilient._runtime import clock as _clock
from resilient.bulkhead.state import LimiterCore, Waiter
from resilient.testing import fake_clock

WAIT = 10.0  # a safety net for blocking waits in tests, never a timing assumption


class _WatchedCore(LimiterCore):
    """Reports every waiter joining the queue, so a test knows a caller is queued."""

    def __init__(self, max_concurrent: int, max_queue: int, joined: queue.Queue[None]) -> None:
        super().__init__(max_concurrent, max_queue)
        self.joined = joined

    def enqueue(self, wake: object) -> Waiter:
        waiter = super().enqueue(wake)
        self.joined.put(None)
        return waiter


def watch(bulkhead: Bulkhead) -> Callable[[], None]:
    """Returns a function that blocks until the next caller has joined the queue."""
    joined: queue.Queue[None] = queue.Queue()
    cfg = bulkhead.config
    bulkhead._core = _WatchedCore(cfg.max_concurrent, cfg.max_queue, joined)
    return lambda: joined.get(timeout=WAIT)


def counts(bulkhead: Bulkhead) -> tuple[int, int]:
    m = bulkhead.metrics()
    return m.active, m.queued


class Gate:
    """A thread-side call that holds its slot until opened."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.opened = threading.Event()

    def __call__(self, value: object = None) -> object:
        self.entered.release()
        assert self.opened.wait(WAIT)
        return value

    def wait_entered(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.entered.acquire(timeout=WAIT)


def start(target: Callable[..., Any], *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; the list gets its result or exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target(*args))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


# -- config ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_concurrent": 0}, ValueError, "BulkheadConfig.max_concurrent must be >= 1, got 0"),
        ({"max_concurrent": 1.5}, TypeError, "BulkheadConfig.max_concurrent must be an int"),
        ({"max_concurrent": 1, "max_queue": -1}, ValueError, "max_queue must be >= 0, got -1"),
        ({"max_concurrent": 1, "queue_timeout": 0}, ValueError, "queue_timeout must be a finite"),
        ({"max_concurrent": 1, "queue_timeout": "1"}, TypeError, "queue_timeout must be a number"),
    ],
)
def test_config_errors_name_the_field_and_value(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace(".", r"\.")):
        BulkheadConfig(**kwargs)


def test_config_takes_max_concurrent_positionally_and_the_rest_by_keyword() -> None:
    cfg = BulkheadConfig(4, max_queue=2, queue_timeout=1.5)
    assert (cfg.max_concurrent, cfg.max_queue, cfg.queue_timeout) == (4, 2, 1.5)
    with pytest.raises(TypeError):
        BulkheadConfig(4, 2)  # type: ignore[misc]


def test_bulkhead_needs_a_name_and_limits_given_once() -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        Bulkhead("", max_concurrent=1)
    with pytest.raises(TypeError, match="needs a config or max_concurrent"):
        Bulkhead("db")
    with pytest.raises(TypeError, match="either a config or limits"):
        Bulkhead("db", BulkheadConfig(1), max_concurrent=2)
    assert Bulkhead("db", BulkheadConfig(3)).config == Bulkhead("db", max_concurrent=3).config


# -- threads -----------------------------------------------------------------


def test_a_call_beyond_the_limit_is_rejected_at_once_without_a_queue() -> None:
    bh = Bulkhead("db", max_concurrent=2)
    gate = Gate()
    threads = [start(bh.call, gate, i)[0] for i in range(2)]
    gate.wait_entered(2)
    with pytest.raises(BulkheadFullError) as info:
        bh.call(gate)
    assert (info.value.name, info.value.max_concurrent, info.value.max_queue) == ("db", 2, 0)
    m = bh.metrics()
    assert (m.active, m.queued, m.rejected, m.utilization) == (2, 0, 1, 1.0)
    gate.opened.set()
    for thread in threads:
        thread.join(WAIT)
    m = bh.metrics()
    assert (m.active, m.completed, m.utilization) == (0, 2, 0.0)


def test_a_queued_thread_runs_when_a_slot_frees_and_a_full_queue_rejects() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=1)
    queued = watch(bh)
    with bh:
        thread, out = start(bh.call, lambda: "ran")
        queued()
        assert counts(bh) == (1, 1)
        with pytest.raises(BulkheadFullError):
            bh.call(lambda: None)
    thread.join(WAIT)
    assert out == ["ran"]
    assert counts(bh) == (0, 0)
    assert bh.metrics().rejected == 1


def test_queued_threads_are_served_first_in_first_out() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=5)
    queued = watch(bh)
    order: list[int] = []
    threads = []
    with bh:
        for i in range(5):
            threads.append(start(bh.call, order.append, i)[0])
            queued()
    for thread in threads:
        thread.join(WAIT)
    assert order == [0, 1, 2, 3, 4]


def test_the_permit_is_returned_when_the_call_raises() -> None:
    bh = Bulkhead("db", max_concurrent=1)

    def boom() -> None:
        raise KeyError("x")

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyError):
        bh.call(boom)
    with pytest.raises(KeyboardInterrupt):
        bh.call(interrupt)
    m = bh.metrics()
    # The interrupted call never finished: it is not counted as completed.
    assert (m.active, m.completed) == (0, 1)


def test_queue_timeout_passes_on_the_fake_clock_and_rejects() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=5.0)
    with fake_clock() as clock, bh:
        with pytest.raises(BulkheadFullError):
            bh.call(lambda: None)
        assert clock.now() == 5.0
        assert counts(bh) == (1, 0)
    assert bh.metrics().rejected == 1


def test_queue_timeout_on_the_real_clock_rejects() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=0.001)
    with bh, pytest.raises(BulkheadFullError):
        bh.call(lambda: None)
    assert counts(bh) == (0, 0)


def test_a_thread_with_a_queue_timeout_gets_a_slot_freed_in_time() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=60.0)
    queued = watch(bh)
    with bh:
        thread, out = start(bh.call, lambda: "ran")
        queued()
    thread.join(WAIT)
    assert out == ["ran"]


def test_an_interrupted_waiter_leaves_the_queue() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=1, queue_timeout=5.0)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    _clock.set_clock(_clock.Clock(sleep=interrupted))
    with bh:
        with pytest.raises(KeyboardInterrupt):
            bh.call(lambda: None)
        assert counts(bh) == (1, 0)
    assert counts(bh) == (0, 0)


def test_a_permit_handed_to_a_waiter_as_it_is_interrupted_goes_to_the_next() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=2, queue_timeout=5.0)
    queued = watch(bh)
    main = threading.current_thread()
    passed_on = threading.Event()
    behind: list[Any] = []

    def release_then_interrupt(seconds: float) -> None:
        if threading.current_thread() is not main:
            # The second waiter's wait on the test clock ends once the main
            # thread has dealt with its interruption.
            assert passed_on.wait(WAIT)
            return
        # The main thread is first in the queue; a second waiter lines up
        # behind it, then the slot frees (handed to the main thread) just as
        # the main thread is interrupted.
        queued()  # the main thread's own notice
        behind.extend(start(bh.call, lambda: "second"))
        queued()
        bh.__exit__(None, None, None)
        raise KeyboardInterrupt

    bh.__enter__()
    _clock.set_clock(_clock.Clock(sleep=release_then_interrupt))
    with pytest.raises(KeyboardInterrupt):
        bh.call(lambda: "first")
    passed_on.set()
    thread, out = behind
    thread.join(WAIT)
    assert out == ["second"]
    m = bh.metrics()
    assert (m.active, m.queued, m.completed) == (0, 0, 2)


def test_context_manager_holds_a_slot_and_nests() -> None:
    bh = Bulkhead("db", max_concurrent=2)
    with bh:
        assert counts(bh) == (1, 0)
        with bh:
            assert counts(bh) == (2, 0)
            with pytest.raises(BulkheadFullError), bh:
                pass
        assert counts(bh) == (1, 0)
    assert counts(bh) == (0, 0)


def test_switched_off_it_passes_calls_through_uncounted() -> None:
    bh = Bulkhead("db", max_concurrent=1)
    resilient.set_active(False)
    with bh, bh:
        assert bh.call(lambda: 7) == 7
    m = bh.metrics()
    assert (m.active, m.completed, m.rejected) == (0, 0, 0)


def test_rejection_emits_an_event() -> None:
    bh = Bulkhead("db", max_concurrent=1, max_queue=0)
    seen: list[object] = []
    unsubscribe = bh.subscribe(seen.append)
    try:
        with bh, pytest.raises(BulkheadFullError):
            bh.call(lambda: None)
    finally:
        unsubscribe()
    # Besides the request-level events of the rejected call (see test_events).
    (event,) = [e for e in seen if isinstance(e, BulkheadRejected)]
    assert (event.name, event.policy, event.max_concurrent, event.max_queue) == (
        "db",
        "bulkhead",
        1,
        0,
    )


def test_rejected_since_reads_the_time_of_the_last_rejection() -> None:
    bh = Bulkhead("db", max_concurrent=1)
    with fake_clock() as clock:
        assert not bh.rejected_since(0.0)
        clock.advance(10)
        with bh, pytest.raises(BulkheadFullError):
            bh.call(lambda: None)
        assert bh.rejected_since(10.0)
        assert not bh.rejected_since(10.5)


# -- decorator and registry ----------------------------------------------------


def test_with_bulkhead_registers_the_name_and_limits_functions_and_methods() -> None:
    class Service:
        @with_bulkhead("svc", max_concurrent=1)
        def work(self, x: int) -> int:
            return x * 2

        @with_bulkhead("svc", max_concurrent=1)
        async def awork(self, x: int) -> int:
            return x * 3

    svc = Service()
    assert svc.work(2) == 4
    assert asyncio.run(svc.awork(2)) == 6
    bh = resilient.registry.get_bulkhead("svc")
    assert bh is not None
    assert bh.metrics().completed == 2
    with bh, pytest.raises(BulkheadFullError):
        svc.work(1)


def test_with_bulkhead_accepts_a_ready_bulkhead() -> None:
    bh = Bulkhead("own", max_concurrent=1)

    @with_bulkhead(bh)
    def f() -> int:
        return 1

    assert f() == 1
    assert bh.metrics().completed == 1
    assert resilient.registry.get_bulkhead("own") is None
    with pytest.raises(TypeError, match="either a Bulkhead or a name"):
        with_bulkhead(bh, max_concurrent=2)


def test_with_bulkhead_needs_limits_for_a_name() -> None:
    with pytest.raises(TypeError, match="needs max_concurrent"):
        with_bulkhead("x")
    with pytest.raises(TypeError, match="non-empty str"):
        with_bulkhead("")


def test_registry_returns_one_bulkhead_per_name_and_refuses_other_limits() -> None:
    reg = Registry()
    first = reg.bulkhead("db", max_concurrent=2, max_queue=1)
    assert reg.bulkhead("db", max_concurrent=2, max_queue=1) is first
    assert reg.bulkhead("db", config=BulkheadConfig(2, max_queue=1)) is first
    with pytest.raises(ValueError, match="already exists"):
        reg.bulkhead("db", max_concurrent=3)
    with pytest.raises(TypeError, match="needs max_concurrent"):
        reg.bulkhead("other")
    with pytest.raises(TypeError, match="either a config or limits"):
        reg.bulkhead("other", max_concurrent=1, config=BulkheadConfig(1))
    assert reg.get_bulkhead("db") is first
    assert reg.bulkheads() == [first]


def test_registry_bulkhead_events_reach_registry_listeners() -> None:
    reg = Registry()
    seen: list[object] = []
    unsubscribe = reg.subscribe(seen.append)
    bh = reg.bulkhead("db", max_concurrent=1)
    try:
        with bh, pytest.raises(BulkheadFullError):
            bh.call(lambda: None)
    finally:
        unsubscribe()
    assert [type(e) for e in seen if not isinstance(e, events.CallStarted)] == [
        BulkheadRejected,
        events.CallRejected,  # the call, as its caller saw it
        events.CallSucceeded,  # the `with bh:` block
    ]


# -- asyncio -------------------------------------------------------------------


async def settle() -> None:
    """Let every ready task run up to its next wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_tasks_beyond_the_limit_are_rejected_and_queued_ones_run_in_order() -> None:
    bh = Bulkhead("ai", max_concurrent=2, max_queue=2)
    opened = asyncio.Event()
    order: list[int] = []

    async def work(i: int) -> int:
        await opened.wait()
        order.append(i)
        return i

    tasks = [asyncio.create_task(bh.call_async(work, i)) for i in range(4)]
    await settle()
    assert counts(bh) == (2, 2)
    with pytest.raises(BulkheadFullError):
        await bh.call_async(work, 99)
    opened.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3]
    assert order == [0, 1, 2, 3]
    m = bh.metrics()
    assert (m.active, m.queued, m.completed, m.rejected) == (0, 0, 4, 1)


async def test_a_cancelled_queued_task_leaves_no_permit_behind() -> None:
    bh = Bulkhead("ai", max_concurrent=1, max_queue=1)
    async with bh:
        waiter = asyncio.create_task(bh.call_async(asyncio.sleep, 0))
        await settle()
        assert counts(bh) == (1, 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert counts(bh) == (1, 0)
    assert counts(bh) == (0, 0)


async def test_a_permit_handed_to_a_task_being_cancelled_goes_to_the_next() -> None:
    bh = Bulkhead("ai", max_concurrent=1, max_queue=2)
    await bh.__aenter__()
    first = asyncio.create_task(bh.call_async(asyncio.sleep, 0, "first"))
    second = asyncio.create_task(bh.call_async(asyncio.sleep, 0, "second"))
    await settle()
    await bh.__aexit__(None, None, None)  # the permit goes to `first`...
    first.cancel()  # ...which is cancelled before it can run
    assert await asyncio.wait_for(second, WAIT) == "second"
    with pytest.raises(asyncio.CancelledError):
        await first
    m = bh.metrics()
    assert (m.active, m.queued, m.completed) == (0, 0, 2)


async def test_a_cancelled_running_task_returns_its_permit() -> None:
    bh = Bulkhead("ai", max_concurrent=1)
    task = asyncio.create_task(bh.call_async(asyncio.Event().wait))
    await settle()
    assert counts(bh) == (1, 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counts(bh) == (0, 0)


async def test_async_queue_timeout_passes_on_the_fake_clock_and_rejects() -> None:
    bh = Bulkhead("ai", max_concurrent=1, max_queue=1, queue_timeout=5.0)
    with fake_clock() as clock:
        async with bh:
            with pytest.raises(BulkheadFullError):
                await bh.call_async(asyncio.sleep, 0)
            assert clock.now() == 5.0
            assert counts(bh) == (1, 0)


async def test_async_queue_timeout_on_the_real_clock_rejects() -> None:
    bh = Bulkhead("ai", max_concurrent=1, max_queue=1, queue_timeout=0.001)
    async with bh:
        with pytest.raises(BulkheadFullError):
            await bh.call_async(asyncio.sleep, 0)
    assert counts(bh) == (0, 0)
    assert bh.metrics().rejected == 1


@pytest.mark.parametrize("fake", [False, True])
async def test_a_task_with_a_queue_timeout_gets_a_slot_freed_in_time(fake: bool) -> None:
    bh = Bulkhead("ai", max_concurrent=1, max_queue=1, queue_timeout=60.0)
    with fake_clock() if fake else _nothing():
        await bh.__aenter__()
        task = asyncio.create_task(bh.call_async(asyncio.sleep, 0, "ran"))
        await asyncio.sleep(0)
        await bh.__aexit__(None, None, None)
        assert await task == "ran"
    assert counts(bh) == (0, 0)


async def test_a_permit_granted_as_the_queue_timeout_fires_is_used() -> None:
    bh = Bulkhead("ai", max_concurrent=1, max_queue=1, queue_timeout=5.0)

    async def release_while_waiting(seconds: float) -> None:
        # The permit is handed over, its wake-up still on the way, as the
        # timeout fires.
        bh._core.give()
        with bh._lock:
            assert bh._core.hand_over() is not None
        raise TimeoutError

    await bh.__aenter__()
    _clock.set_clock(_clock.Clock(sleep_async=release_while_waiting))
    assert await bh.call_async(asyncio.sleep, 0, "ran") == "ran"
    assert counts(bh) == (0, 0)
    assert bh.metrics().rejected == 0


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def test_async_context_manager_holds_a_slot() -> None:
    bh = Bulkhead("ai", max_concurrent=1)
    async with bh:
        assert counts(bh) == (1, 0)
        with pytest.raises(BulkheadFullError):
            async with bh:
                pass
    assert counts(bh) == (0, 0)


async def test_a_stream_holds_its_slot_until_it_ends() -> None:
    bh = Bulkhead("ai", max_concurrent=1)

    @bh
    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    items = []
    async for item in stream(3):
        items.append(item)
        assert counts(bh) == (1, 0)
    assert items == [0, 1, 2]
    assert counts(bh) == (0, 0)
    resilient.set_active(False)
    assert [i async for i in stream(2)] == [0, 1]


# -- threads and tasks, on several loops ------------------------------------------


async def test_a_thread_waits_for_a_permit_a_task_holds() -> None:
    bh = Bulkhead("mix", max_concurrent=1, max_queue=1)
    queued = watch(bh)
    opened = asyncio.Event()
    holder = asyncio.create_task(bh.call_async(opened.wait))
    await settle()
    thread, out = start(bh.call, lambda: "thread ran")
    await asyncio.to_thread(queued)
    opened.set()
    await holder
    await asyncio.to_thread(thread.join, WAIT)
    assert out == ["thread ran"]
    assert counts(bh) == (0, 0)


async def test_a_task_waits_for_a_permit_a_thread_holds() -> None:
    bh = Bulkhead("mix", max_concurrent=1, max_queue=1)
    gate = Gate()
    thread, _ = start(bh.call, gate)
    await asyncio.to_thread(gate.wait_entered)
    task = asyncio.create_task(bh.call_async(asyncio.sleep, 0, "task ran"))
    await settle()
    assert counts(bh) == (1, 1)
    gate.opened.set()  # the thread's release wakes the task through its loop
    assert await task == "task ran"
    await asyncio.to_thread(thread.join, WAIT)
    assert counts(bh) == (0, 0)


def test_a_permit_for_a_task_on_a_closed_loop_is_not_lost() -> None:
    bh = Bulkhead("mix", max_concurrent=1, max_queue=2)
    queued = watch(bh)
    bh.__enter__()
    loop = asyncio.new_event_loop()
    task = loop.create_task(bh.call_async(asyncio.sleep, 0))
    loop.run_until_complete(asyncio.sleep(0))
    queued()
    loop.close()
    thread, out = start(bh.call, lambda: "thread ran")
    queued()
    bh.__exit__(None, None, None)  # the task's loop is gone: the thread gets it
    thread.join(WAIT)
    assert out == ["thread ran"]
    assert counts(bh) == (0, 0)
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    task.get_coro().close()  # type: ignore[union-attr]
    assert counts(bh) == (0, 0)


class _Tracker:
    """Counts calls inside the bulkhead, from any thread, and keeps the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


async def _cancelling_crowd(bh: Bulkhead, tracker: _Tracker, n: int, seed: int) -> None:
    """``n`` tasks through ``bh``; a random third cancelled at random moments,
    while the limits are checked between steps."""
    rng = random.Random(seed)
    left = n

    async def work(spins: int) -> None:
        tracker.enter()
        try:
            for _ in range(spins):
                await asyncio.sleep(0)
        finally:
            tracker.leave()

    async def one(spins: int) -> None:
        with contextlib.suppress(BulkheadFullError):
            await bh.call_async(work, spins)

    def finished(task: object) -> None:
        nonlocal left
        left -= 1

    tasks = [asyncio.create_task(one(rng.randrange(4))) for _ in range(n)]
    for task in tasks:
        task.add_done_callback(finished)
    doomed = rng.sample(tasks, n // 3)
    deadline = asyncio.get_running_loop().time() + 6 * WAIT  # a hang fails, never waits forever
    while left:
        assert asyncio.get_running_loop().time() < deadline, f"{left} tasks stuck"
        for _ in range(rng.randrange(1, 30)):
            if doomed:
                doomed.pop().cancel()
        m = bh.metrics()
        assert m.active <= bh.config.max_concurrent
        assert m.queued <= bh.config.max_queue
        await asyncio.sleep(0)
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.slow
async def test_ten_thousand_tasks_with_random_cancellation_respect_the_limits() -> None:
    bh = Bulkhead("crowd", max_concurrent=10, max_queue=2_000)
    tracker = _Tracker()
    await _cancelling_crowd(bh, tracker, 10_000, seed=1)
    assert tracker.peak == 10
    m = bh.metrics()
    assert (m.active, m.queued) == (0, 0)
    assert m.rejected > 0
    assert m.completed > 0


@pytest.mark.slow
def test_threads_and_tasks_on_several_loops_share_one_limit() -> None:
    bh = Bulkhead("shared", max_concurrent=4, max_queue=50)
    tracker = _Tracker()
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def thread_worker(seed: int) -> None:
        rng = random.Random(seed)

        def work() -> None:
            tracker.enter()
            try:
                for _ in range(rng.randrange(3)):
                    time.sleep(0)  # lets other threads in
            finally:
                tracker.leave()

        barrier.wait(WAIT)
        for _ in range(500):
            with contextlib.suppress(BulkheadFullError):
                bh.call(work)

    def loop_worker(seed: int) -> None:
        barrier.wait(WAIT)
        asyncio.run(_cancelling_crowd(bh, tracker, 2_000, seed))

    def guard(target: Callable[[int], None], seed: int) -> None:
        try:
            target(seed)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=guard, args=(thread_worker, i), daemon=True) for i in range(3)
    ]
    threads += [
        threading.Thread(target=guard, args=(loop_worker, 10 + i), daemon=True) for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert tracker.peak <= 4
    assert counts(bh) == (0, 0)
    assert bh.metrics().completed > 0
