from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest import mock

import freezegun
import pytest

import resilient
from resilient import (
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    ResilienceError,
    StreamInactive,
    TimedOut,
    Timeout,
    with_timeout,
)
from resilient._runtime.workers import Job, WorkerPool
from resilient.events import Event
from tests.conftest import PICKUP

# Timeouts under test are real, and small; nothing here sleeps to wait for state.
SHORT = 0.05
LONG = 10.0
# A limit that work which should fit in it fits in by far, even on a busy machine.
ROOMY = 0.25


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    events: list[Event] = []
    unsubscribe = resilient.subscribe(events.append)
    yield events
    unsubscribe()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test, so abandoned calls finish."""
    gate = threading.Event()
    yield gate
    gate.set()


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"seconds": 0}, ValueError, ["Timeout.seconds", "0"]),
        ({"seconds": -1.5}, ValueError, ["Timeout.seconds", "-1.5"]),
        ({"seconds": float("inf")}, ValueError, ["Timeout.seconds", "inf"]),
        ({"seconds": float("nan")}, ValueError, ["Timeout.seconds", "nan"]),
        ({"seconds": "5"}, TypeError, ["Timeout.seconds", "'5'"]),
        ({"seconds": True}, TypeError, ["Timeout.seconds", "True"]),
        ({"inactivity": 0}, ValueError, ["Timeout.inactivity", "0"]),
        ({}, ValueError, ["seconds, first_item or inactivity"]),
        ({"seconds": 1, "mode": "process"}, ValueError, ["Timeout.mode", "'process'"]),
        ({"seconds": 1, "name": ""}, ValueError, ["name", "''"]),
        ({"seconds": 1, "pool": 4}, TypeError, ["Timeout.pool", "4"]),
    ],
)
def test_bad_values_name_the_field_and_the_value(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        Timeout(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_bad_pool_size() -> None:
    with pytest.raises(ValueError, match=r"max_workers.*0"):
        WorkerPool(0)


def test_with_timeout_rejects_a_timeout_with_options() -> None:
    with pytest.raises(TypeError, match="either a Timeout"):
        with_timeout(Timeout(1), mode="signal")


def test_inactivity_only_applies_to_async_generators() -> None:
    def sync() -> None:
        pass

    with pytest.raises(TypeError, match="inactivity"):
        with_timeout(inactivity=1.0)(sync)
    with pytest.raises(TypeError, match="inactivity"):
        Timeout(inactivity=1.0).call(sync)


def test_call_timeout_error_is_a_timeout_error() -> None:
    error = CallTimeoutError(2.5, name="db")
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ResilienceError)
    assert error.timeout == 2.5
    assert error.name == "db"
    assert str(error) == "call 'db' timed out after 2.5s"


# -- sync, worker thread ------------------------------------------------------------


def test_sync_result_and_errors_pass_through() -> None:
    @with_timeout(LONG)
    def add(a: int, b: int = 0) -> int:
        return a + b

    assert add(1, b=2) == 3
    error = KeyError("k")

    @with_timeout(LONG)
    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        fail()
    assert info.value is error


def test_sync_timeout_raises_and_the_abandoned_call_keeps_running(
    release: threading.Event, seen: list[Event]
) -> None:
    started, finished = threading.Event(), threading.Event()

    @with_timeout(PICKUP)
    def stuck() -> str:
        started.set()
        release.wait(LONG)
        finished.set()
        return "late"

    with pytest.raises(CallTimeoutError) as info:
        stuck()
    assert info.value.timeout == PICKUP
    assert info.value.name == stuck.__qualname__
    assert started.is_set()
    assert not finished.is_set()
    release.set()
    assert finished.wait(LONG)  # it ran to its end in the background
    timed_out = [e for e in seen if isinstance(e, TimedOut)]
    assert len(timed_out) == 1
    assert timed_out[0].timeout == PICKUP
    assert timed_out[0].policy == "timeout"


def test_context_variables_flow_into_the_worker() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")

    @with_timeout(LONG)
    def read() -> tuple[str, str | None, str]:
        return var.get(), resilient.get_request_id(), threading.current_thread().name

    with resilient.request_context("req-1"):
        value, request_id, thread = read()
    assert (value, request_id) == ("caller", "req-1")
    assert thread.startswith("resilient-timeout-")


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_of_the_call_reach_the_caller(error: type[BaseException]) -> None:
    @with_timeout(LONG)
    def stop() -> None:
        raise error

    with pytest.raises(error):
        stop()


def test_the_pool_is_bounded_and_a_call_that_never_started_never_runs(
    release: threading.Event,
) -> None:
    pool = WorkerPool(max_workers=1)
    ran: list[str] = []

    def work(tag: str) -> str:
        ran.append(tag)
        release.wait(LONG)
        return tag

    with pytest.raises(CallTimeoutError):
        Timeout(PICKUP, pool=pool).call(work, "first")  # abandoned; holds the only worker
    with pytest.raises(CallTimeoutError):
        Timeout(SHORT, pool=pool).call(work, "second")  # queued behind it, then given up
    assert pool.threads == 1
    assert pool.queued == 0  # a call nobody waits for leaves the queue
    release.set()
    assert Timeout(LONG, pool=pool).call(work, "third") == "third"
    assert ran == ["first", "third"]
    assert pool.threads == 1


def test_a_dropped_job_is_skipped() -> None:
    pool = WorkerPool(1)
    gate = threading.Event()
    blocker = Job(gate.wait, (LONG,), {})
    pool.submit(blocker)
    skipped = Job(lambda: pytest.fail("a dropped job ran"), (), {})
    pool.submit(skipped)
    assert pool.drop(skipped)
    gate.set()
    assert blocker.done.acquire(timeout=LONG)
    assert not pool.drop(blocker)  # already ran
    after = Job(lambda: "ran", (), {})
    pool.submit(after)
    assert after.done.acquire(timeout=LONG)
    assert after.result == "ran"
    assert "threads=1/1" in repr(pool)


def test_after_runs_callbacks_once_the_call_ends_or_says_it_cannot() -> None:
    pool = WorkerPool(1)
    gate = threading.Event()
    ran: list[str] = []
    ended = threading.Event()
    running = Job(gate.wait, (LONG,), {})
    pool.submit(running)
    pending = Job(ran.append, ("pending ran",), {})
    pool.submit(pending)  # queued behind the first
    dropped = Job(ran.append, ("dropped ran",), {})
    pool.submit(dropped)
    assert pool.drop(dropped)
    assert pool.after(running, lambda: ran.append("after running"))
    assert pool.after(running, lambda: ran.append("after running, again"))
    assert pool.after(pending, lambda: (ran.append("after pending"), ended.set()))
    assert not pool.after(dropped, lambda: ran.append("after dropped"))
    assert ran == []  # nothing runs before the calls end
    gate.set()
    assert ended.wait(LONG)
    assert ran == ["after running", "after running, again", "pending ran", "after pending"]
    assert running.done.acquire(timeout=LONG)
    assert not pool.after(running, lambda: ran.append("too late"))
    assert pool.queued == 0


def test_after_racing_the_end_of_the_call_runs_exactly_when_it_says() -> None:
    pool = WorkerPool(4)
    runs: dict[int, int] = {}
    promised: dict[int, bool] = {}
    finished = threading.Semaphore(0)
    jobs = [Job(lambda: None, (), {}) for _ in range(400)]

    def note(i: int) -> None:
        runs[i] = runs.get(i, 0) + 1
        finished.release()

    for job in jobs:
        pool.submit(job)
    for i, job in enumerate(jobs):  # as the calls end, some before, some after
        promised[i] = pool.after(job, functools.partial(note, i))
    for job in jobs:
        assert job.done.acquire(timeout=LONG)
    for _ in range(sum(promised.values())):
        assert finished.acquire(timeout=LONG)
    assert runs == {i: 1 for i, ok in promised.items() if ok}


def test_methods_keep_working_and_their_signature() -> None:
    class Repo:
        def __init__(self) -> None:
            self.rows = {"a": 1}

        @with_timeout(LONG)
        def get(self, key: str) -> int:
            return self.rows[key]

        @staticmethod
        @with_timeout(LONG)
        def double(x: int) -> int:
            return 2 * x

    assert Repo().get("a") == 1
    assert Repo.double(3) == 6
    assert list(inspect.signature(Repo.get).parameters) == ["self", "key"]


def test_set_active_false_runs_the_call_in_place(release: threading.Event) -> None:
    resilient.set_active(False)

    @with_timeout(SHORT)
    def here() -> str:
        return threading.current_thread().name

    assert here() == threading.current_thread().name


# -- sync, SIGALRM ------------------------------------------------------------------

needs_sigalrm = pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="no SIGALRM")


@needs_sigalrm
def test_signal_mode_interrupts_the_call_itself() -> None:
    progress: list[str] = []

    @with_timeout(SHORT, mode="signal")
    def stuck() -> None:
        progress.append("started")
        try:
            threading.Event().wait(LONG)
        except Exception:  # the call's own handlers cannot swallow the timeout
            progress.append("swallowed")
        progress.append("finished")

    with pytest.raises(CallTimeoutError) as info:
        stuck()
    assert info.value.timeout == SHORT
    assert progress == ["started"]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    # The traceback shows where the call was stopped.
    names = []
    tb = info.value.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "stuck" in names


def _until(seen: list[int]) -> None:
    """Wait (in short sleeps a signal ends) until ``seen`` gets a signal; at most 5 s."""
    for _ in range(5000):
        if seen:
            return
        time.sleep(0.001)
    raise AssertionError("no SIGALRM came")


@pytest.fixture
def their_handler() -> Iterator[list[int]]:
    """A handler of the caller's own, installed before any signal-mode call."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(signum))
    try:
        yield seen
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@needs_sigalrm
def test_signal_mode_steps_aside_for_a_timer_armed_inside_the_call(
    their_handler: list[int],
) -> None:
    # It was a false CallTimeoutError at their 10 ms, and their handler never ran.
    def work() -> str:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        _until(their_handler)
        return "done"

    assert Timeout(LONG, mode="signal").call(work) == "done"
    assert their_handler == [signal.SIGALRM]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_sigalrm
def test_signal_mode_deadline_still_holds_after_the_calls_own_alarm(
    their_handler: list[int],
) -> None:
    def stuck() -> None:
        signal.alarm(0)  # (nothing armed of theirs)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        _until(their_handler)
        threading.Event().wait(LONG)

    with pytest.raises(CallTimeoutError):
        Timeout(0.2, mode="signal").call(stuck)
    assert their_handler == [signal.SIGALRM]


@needs_sigalrm
def test_signal_mode_leaves_a_timer_armed_inside_a_quick_call_armed(
    their_handler: list[int],
) -> None:
    def arms() -> str:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        return "armed"

    assert Timeout(LONG, mode="signal").call(arms) == "armed"
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 4.0 < left <= 5.0  # theirs, not disarmed with ours
    assert their_handler == []


@needs_sigalrm
def test_signal_mode_keeps_a_timer_armed_inside_the_call_for_as_long_as_its_own(
    their_handler: list[int],
) -> None:
    # Theirs has the time ours had left: only the interval tells them apart.
    def arms() -> str:
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        signal.setitimer(signal.ITIMER_REAL, left)
        return "armed"

    assert Timeout(LONG, mode="signal").call(arms) == "armed"
    left, interval = signal.getitimer(signal.ITIMER_REAL)
    assert LONG - 1.0 < left <= LONG
    assert interval == 0.0
    assert their_handler == []


@needs_sigalrm
def test_signal_mode_keeps_a_periodic_timer_armed_inside_the_call(
    their_handler: list[int],
) -> None:
    def arms() -> str:
        signal.setitimer(signal.ITIMER_REAL, 5.0, 2.5)
        return "armed"

    assert Timeout(LONG, mode="signal").call(arms) == "armed"
    left, interval = signal.getitimer(signal.ITIMER_REAL)
    assert 4.0 < left <= 5.0
    assert interval == 2.5
    assert their_handler == []


@needs_sigalrm
def test_signal_mode_keeps_real_time_when_freezegun_freezes_the_clock() -> None:
    # SIGALRM's timer runs in real time: a frozen ``time.monotonic`` must not
    # make the alarm look early (which would pass it on: the default action).
    def stuck() -> None:
        threading.Event().wait(LONG)

    with freezegun.freeze_time("2026-01-01"), pytest.raises(CallTimeoutError) as info:
        Timeout(SHORT, mode="signal").call(stuck)
    assert info.value.timeout == SHORT
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_sigalrm
def test_signal_mode_leaves_no_timer_when_its_alarm_comes_right_after_arming_it() -> None:
    # The alarm of a tiny deadline can come as ``setitimer`` returns, before
    # the call's bookkeeping: the timer (ours repeats) must not stay armed.
    timeout = Timeout(1e-6, mode="signal")
    real = signal.setitimer
    arming = [True]

    def alarm_as_it_returns(*args: Any) -> Any:
        if not (arming[0] and args[1] > 0):
            return real(*args)
        arming[0] = False
        # Armed (long enough that no real signal comes), then the handler
        # runs as the system call returns: the deadline (1 µs) is due.
        previous = real(args[0], LONG, *args[2:])
        signal.getsignal(signal.SIGALRM)(signal.SIGALRM, None)  # type: ignore[operator]
        return previous

    with (
        mock.patch.object(signal, "setitimer", alarm_as_it_returns),
        pytest.raises(CallTimeoutError),
    ):
        timeout.call(lambda: None)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


_STRAY_ALARM = """
import signal, threading, time
from resilient import Timeout

assert threading.active_count() == 1  # else the kernel gives the signal to another thread
seen = []
signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(signum))


def ends_as_its_deadline_passes():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    give_up = time.monotonic() + 5.0
    while signal.SIGALRM not in signal.sigpending():  # the timer has fired
        if time.monotonic() > give_up:
            raise AssertionError("no SIGALRM came")
    return "done"


try:
    assert Timeout(0.05, mode="signal").call(ends_as_its_deadline_passes) == "done"
finally:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})  # delivered now
assert seen == [], seen
assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
signal.raise_signal(signal.SIGALRM)  # the next alarm that is not ours is theirs
assert seen == [signal.SIGALRM], seen
print("ok")
"""


@needs_sigalrm
def test_signal_mode_drops_its_alarm_that_comes_after_the_call_ended() -> None:
    # Our timer can fire just as the call ends, before the call disarms it:
    # the signal then reaches the handler after the call. It went to the
    # handler ours replaced (by default, the default action: the process
    # ended). Here the call blocks SIGALRM until its timer has fired, so the
    # alarm is delivered once the call is over: in a process of one thread,
    # where no other thread can take the blocked signal.
    done = subprocess.run(
        [sys.executable, "-c", _STRAY_ALARM],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


@needs_sigalrm
def test_signal_mode_keeps_real_time_when_first_imported_under_freezegun() -> None:
    code = (
        "import threading, freezegun\n"
        "with freezegun.freeze_time('2026-01-01'):\n"
        "    from resilient import CallTimeoutError, Timeout\n"
        "    try:\n"
        "        Timeout(0.05, mode='signal').call(threading.Event().wait, 10.0)\n"
        "    except CallTimeoutError:\n"
        "        print('timed out')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "timed out\n"), done.stderr


@needs_sigalrm
def test_signal_mode_fast_call_leaves_no_timer() -> None:
    assert Timeout(LONG, mode="signal").call(lambda: 7) == 7
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_sigalrm
def test_signal_mode_nested_the_sooner_alarm_wins() -> None:
    inner = Timeout(LONG, mode="signal")
    outer = Timeout(SHORT, mode="signal")

    def stuck() -> None:
        threading.Event().wait(LONG)

    with pytest.raises(CallTimeoutError) as info:
        outer.call(inner.call, stuck)
    assert info.value.timeout == SHORT

    def inner_times_out() -> str:
        with pytest.raises(CallTimeoutError) as inner_info:
            Timeout(SHORT, mode="signal").call(stuck)
        assert inner_info.value.timeout == SHORT
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left < LONG  # the enclosing alarm is armed again
        return "ok"

    assert Timeout(LONG, mode="signal").call(inner_times_out) == "ok"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_sigalrm
def test_signal_mode_a_late_handled_alarm_still_rearms_the_enclosing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A preempted thread may handle its alarm, and disarm, well after the
    # deadline: the timer has fired, and the enclosing deadline is re-armed.
    from resilient._runtime import alarm

    late = [0.0]
    real_now = alarm._now
    monkeypatch.setattr(alarm, "_now", lambda: real_now() + late[0])

    def preempted() -> None:
        try:
            threading.Event().wait(LONG)
        finally:
            late[0] = 0.1  # the thread ran again 100 ms after its alarm

    def inner_times_out() -> float:
        with pytest.raises(CallTimeoutError):
            Timeout(SHORT, mode="signal").call(preempted)
        return signal.getitimer(signal.ITIMER_REAL)[0]

    left = Timeout(LONG, mode="signal").call(inner_times_out)
    assert LONG - 1.0 < left < LONG
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_sigalrm
def test_signal_mode_installs_its_handler_once_and_passes_other_alarms_on() -> None:
    seen: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGALRM, theirs)
    try:
        timeout = Timeout(LONG, mode="signal")
        assert timeout.call(lambda: 1) == 1
        ours = signal.getsignal(signal.SIGALRM)
        assert ours is not theirs
        calls = []
        real = signal.signal

        def counting(*args: Any) -> Any:
            calls.append(args)
            return real(*args)

        with mock.patch.object(signal, "signal", counting):
            for _ in range(3):
                assert timeout.call(lambda: 2) == 2
        assert calls == []  # installed once, kept
        # An alarm that is no deadline of ours reaches the handler ours replaced.
        signal.raise_signal(signal.SIGALRM)
        assert seen == [signal.SIGALRM]
        # A handler installed after ours is respected: ours goes in front again.
        again: list[int] = []
        signal.signal(signal.SIGALRM, lambda signum, frame: again.append(signum))
        assert timeout.call(lambda: 3) == 3
        assert signal.getsignal(signal.SIGALRM) is ours
        signal.raise_signal(signal.SIGALRM)
        assert again == [signal.SIGALRM]
    finally:
        signal.signal(signal.SIGALRM, before)


@needs_sigalrm
def test_signal_mode_arms_and_disarms_with_one_setitimer_each() -> None:
    timeout = Timeout(LONG, mode="signal")
    timeout.call(lambda: None)  # the handler is in place
    calls: list[tuple[Any, ...]] = []
    real = signal.setitimer

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    with mock.patch.object(signal, "setitimer", counting):
        assert timeout.call(lambda: "done") == "done"
    # Armed once (with the interval that marks the timer as ours), disarmed once.
    assert [call[:2] for call in calls] == [(signal.ITIMER_REAL, LONG), (signal.ITIMER_REAL, 0)]


@needs_sigalrm
def test_signal_mode_outside_the_main_thread_is_an_error_at_call_time() -> None:
    decorated = with_timeout(1.0, mode="signal")(lambda: "never")  # fine to decorate
    errors: list[BaseException] = []

    def run() -> None:
        try:
            decorated()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(LONG)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "main thread" in str(errors[0])


# -- async --------------------------------------------------------------------------


async def test_async_result_and_timeout(seen: list[Event]) -> None:
    @with_timeout(LONG)
    async def quick(x: int) -> int:
        return x + 1

    assert await quick(1) == 2

    @with_timeout(SHORT)
    async def stuck() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError) as info:
        await stuck()
    assert info.value.timeout == SHORT
    assert isinstance(info.value.__cause__, TimeoutError)
    assert [type(e) for e in seen if getattr(e, "level", None) != "request"] == [TimedOut]


async def test_async_own_timeout_error_passes_through_untouched() -> None:
    mine = TimeoutError("the call's own")

    @with_timeout(LONG)
    async def fails() -> None:
        raise mine

    with pytest.raises(TimeoutError) as info:
        await fails()
    assert info.value is mine


async def test_outside_cancellation_propagates_untouched() -> None:
    started = asyncio.Event()

    @with_timeout(LONG)
    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_async_timeout_cancels_the_call() -> None:
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(CallTimeoutError):
        await Timeout(SHORT, name="db").call_async(stuck)
    assert cancelled.is_set()


async def test_async_set_active_false() -> None:
    resilient.set_active(False)
    assert await Timeout(SHORT).call_async(asyncio.sleep, 0, "done") == "done"


# -- async streams ------------------------------------------------------------------


async def test_stream_inactivity_fails_a_silent_stream(seen: list[Event]) -> None:
    closed = asyncio.Event()

    @with_timeout(inactivity=ROOMY)
    async def ticks(n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
            await asyncio.Event().wait()  # then silence
        finally:
            closed.set()

    got: list[int] = []

    async def consume() -> None:
        async for item in ticks(3):
            got.append(item)

    with pytest.raises(CallTimeoutError) as info:
        await consume()
    assert got == [0, 1, 2]
    assert info.value.timeout == ROOMY
    assert "yielded nothing" in str(info.value)
    assert closed.is_set()
    inactive = [e for e in seen if isinstance(e, StreamInactive)]
    assert len(inactive) == 1
    assert inactive[0].inactivity == ROOMY


async def test_stream_consumer_time_is_not_silence() -> None:
    @with_timeout(inactivity=ROOMY)
    async def ticks() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    got = []
    async for item in ticks():
        got.append(item)
        await asyncio.sleep(ROOMY * 1.5)  # a slow consumer, not a silent stream
    assert got == [0, 1, 2]


async def test_stream_total_time_limit(seen: list[Event]) -> None:
    @with_timeout(SHORT, inactivity=LONG)
    async def forever() -> AsyncIterator[int]:
        i = 0
        while True:
            await asyncio.sleep(0)
            yield i
            i += 1

    async def consume() -> None:
        async for _ in forever():
            await asyncio.sleep(0)

    with pytest.raises(CallTimeoutError) as info:
        await consume()
    assert info.value.timeout == SHORT
    assert any(isinstance(e, TimedOut) for e in seen)


async def test_a_stream_past_its_whole_limit_times_out_at_its_next_wait() -> None:
    @with_timeout(SHORT, inactivity=LONG)
    async def forever() -> AsyncIterator[int]:
        i = 0
        while True:
            await asyncio.sleep(0)
            yield i
            i += 1

    got: list[int] = []

    async def consume() -> None:
        async for item in forever():
            got.append(item)
            if item == 0:
                # The consumer holds the first item past the stream's limit:
                # the timer fires between two waits.
                await asyncio.sleep(2 * SHORT)
            await asyncio.sleep(0)

    with pytest.raises(CallTimeoutError) as info:
        async with asyncio.timeout(LONG):  # it used to go on for ever
            await consume()
    assert info.value.timeout == SHORT
    assert got == [0]


async def test_stream_early_break_closes_the_generator() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.set()

    stream = Timeout(inactivity=LONG)._astream(source, (), {})
    assert await anext(stream) == 0
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed.is_set()


async def test_stream_errors_and_outside_cancellation_pass_through() -> None:
    error = ValueError("bad row")

    @with_timeout(inactivity=LONG)
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise error

    with pytest.raises(ValueError) as info:
        async for _ in broken():
            pass
    assert info.value is error

    started = asyncio.Event()

    @with_timeout(inactivity=LONG)
    async def silent() -> AsyncIterator[int]:
        started.set()
        await asyncio.Event().wait()
        yield 0

    async def consume() -> None:
        async for _ in silent():
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_stream_set_active_false() -> None:
    resilient.set_active(False)

    @with_timeout(inactivity=SHORT)
    async def items() -> AsyncIterator[int]:
        yield 1
        yield 2

    assert [i async for i in items()] == [1, 2]


# -- the breaker's own timeout ------------------------------------------------------


def test_a_breaker_timeout_keeps_a_lock_free_path() -> None:
    plain = CircuitBreaker("fast")._core
    assert plain.fast
    assert not plain.ticking
    timed = CircuitBreaker("slow", CircuitBreakerConfig(timeout=1.0))._core
    assert timed.ticking  # the call runs under the timeout
    assert not timed.fast


def test_breaker_timeout_counts_as_a_failure(release: threading.Event) -> None:
    breaker = CircuitBreaker("db", CircuitBreakerConfig(failure_threshold=2, timeout=SHORT))

    @breaker
    def query() -> str:
        release.wait(LONG)
        return "rows"

    with pytest.raises(CallTimeoutError) as info:
        query()
    assert info.value.name == "db"
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(CallTimeoutError):
        query()
    assert breaker.state is CircuitState.OPEN


async def test_breaker_timeout_async() -> None:
    breaker = CircuitBreaker("api", CircuitBreakerConfig(failure_threshold=1, timeout=SHORT))

    @breaker
    async def fetch() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError):
        await fetch()
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics().failures == 1


def test_timeout_repr() -> None:
    assert repr(Timeout(2, name="db")) == "<Timeout 'db' seconds=2>"
    assert "inactivity=3" in repr(Timeout(inactivity=3))
    if hasattr(signal, "SIGALRM"):
        assert "mode='signal'" in repr(Timeout(1, mode="signal"))


def test_many_callers_through_a_small_pool() -> None:
    pool = WorkerPool(3)
    timeout = Timeout(LONG, pool=pool)
    wrong: list[int] = []

    def caller(offset: int) -> None:
        for i in range(50):
            if timeout.call(lambda x: x * 2, offset + i) != (offset + i) * 2:
                wrong.append(offset + i)

    callers = [threading.Thread(target=caller, args=(n * 100,)) for n in range(8)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(LONG)
    assert wrong == []
    assert pool.threads <= 3
    assert pool.queued == 0


@needs_sigalrm
def test_interrupted_while_queued_the_call_never_runs(release: threading.Event) -> None:
    pool = WorkerPool(1)
    blocker = Job(release.wait, (LONG,), {})
    pool.submit(blocker)  # holds the only worker
    ran: list[str] = []

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, SHORT)
        with pytest.raises(KeyboardInterrupt):
            Timeout(LONG, pool=pool).call(ran.append, "late")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert pool.queued == 0
    release.set()
    assert blocker.done.acquire(timeout=LONG)
    assert Timeout(LONG, pool=pool).call(ran.append, "next") is None
    assert ran == ["next"]


# -- async with -----------------------------------------------------------------


async def test_async_with_bounds_the_block() -> None:
    from resilient import Timeout

    seen: list[object] = []
    timeout = Timeout(0.05, name="block")
    unsubscribe = timeout.subscribe(seen.append)
    try:
        with pytest.raises(CallTimeoutError) as info:
            async with timeout:
                await asyncio.Event().wait()
    finally:
        unsubscribe()
    assert info.value.timeout == 0.05
    assert info.value.name == "block"
    assert isinstance(info.value.__cause__, TimeoutError)
    assert [type(e).__name__ for e in seen] == ["TimedOut"]


async def test_async_with_passes_results_and_errors_through() -> None:
    from resilient import Timeout

    timeout = Timeout(5.0)
    async with timeout:
        value = await asyncio.sleep(0, result=42)
    assert value == 42
    with pytest.raises(KeyError):
        async with timeout:
            raise KeyError("x")
    with pytest.raises(TimeoutError) as info:  # the block's own TimeoutError
        async with timeout:
            raise TimeoutError("mine")
    assert not isinstance(info.value, CallTimeoutError)


async def test_async_with_nests_and_is_task_local() -> None:
    from resilient import Timeout

    outer, inner = Timeout(5.0), Timeout(0.05)

    async def nested() -> None:
        async with outer, inner:
            await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError) as info:
        await nested()
    assert info.value.timeout == 0.05
    shared = Timeout(0.05)

    async def hang() -> None:
        async with shared:
            await asyncio.Event().wait()

    async def quick() -> int:
        async with shared:
            return 1

    results = await asyncio.gather(hang(), quick(), return_exceptions=True)
    assert isinstance(results[0], CallTimeoutError)
    assert results[1] == 1


async def test_async_with_does_not_swallow_outside_cancellation() -> None:
    from resilient import Timeout

    started = asyncio.Event()

    async def body() -> None:
        async with Timeout(5.0):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_async_with_is_a_pass_through_when_inactive() -> None:
    from resilient import Timeout, set_active

    set_active(False)
    async with Timeout(0.001):
        await asyncio.sleep(0.01)
    set_active(True)


def test_sync_with_is_refused() -> None:
    from resilient import Timeout

    with pytest.raises(TypeError, match="use `async with`"), Timeout(1.0):
        pass


async def test_async_with_only_inactivity_is_refused() -> None:
    from resilient import Timeout

    with pytest.raises(TypeError, match="only an inactivity limit"):
        async with Timeout(inactivity=1.0):
            pass


# -- under the fake clock ----------------------------------------------------------


async def test_fake_clock_moving_past_the_deadline_times_out_an_async_call() -> None:
    from resilient import with_timeout
    from resilient.testing import fake_clock

    with fake_clock() as clock:
        started = asyncio.Event()

        @with_timeout(5.0)
        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(hang())
        await started.wait()
        clock.advance(4.9)
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        clock.advance(0.1)
        with pytest.raises(CallTimeoutError) as info:
            await task
        assert info.value.timeout == 5.0


async def test_fake_waits_inside_the_call_count_against_its_timeout() -> None:
    from resilient import with_retry, with_timeout
    from resilient.testing import fake_clock

    attempts = []

    @with_timeout(5.0)
    @with_retry(max_attempts=5, initial_delay=2.0, multiplier=2.0, jitter=0.0)
    async def flaky() -> None:
        attempts.append(1)
        raise ConnectionError()

    with fake_clock() as clock:
        with pytest.raises(CallTimeoutError):
            await flaky()
        # Waits of 2 s then 4 s: the deadline at 5 s passed during the second.
        assert len(attempts) == 2
        assert clock.now() >= 5.0


async def test_fake_clock_does_not_jump_to_a_deadline_by_itself() -> None:
    from resilient import with_timeout
    from resilient.testing import fake_clock

    with fake_clock() as clock:

        @with_timeout(30.0)
        async def real_io() -> str:
            # Stands for real I/O: the loop idles, no fake wait is pending.
            await asyncio.sleep(0.01)
            return "done"

        assert await real_io() == "done"
        assert clock.now() == 0.0


async def test_a_call_that_finishes_first_leaves_no_deadline_behind() -> None:
    from resilient import with_timeout
    from resilient.testing import fake_clock

    with fake_clock() as clock:

        @with_timeout(5.0)
        async def quick() -> int:
            return 1

        assert await quick() == 1
        clock.advance(10.0)  # the cancelled deadline wakes nothing
        await asyncio.sleep(0)
        assert clock._deadlines == [] or all(f.done() for _, _, f in clock._deadlines)


# -- coroutine deadlines: one queue and one loop timer per timeout and loop ---------


async def test_a_timed_out_call_leaves_its_task_not_cancelling() -> None:
    @with_timeout(SHORT)
    async def stuck() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError):
        await stuck()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # and no cancellation is left pending for it


async def test_nested_timeouts_the_sooner_one_wins() -> None:
    inner_long = Timeout(LONG, name="inner")
    outer_short = Timeout(SHORT, name="outer")

    async def stuck() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError) as info:
        await outer_short.call_async(inner_long.call_async, stuck)
    assert (info.value.name, info.value.timeout) == ("outer", SHORT)

    inner_short = Timeout(SHORT, name="inner")
    outer_long = Timeout(LONG, name="outer")

    async def caught() -> str:
        with pytest.raises(CallTimeoutError) as inner_info:
            await inner_short.call_async(stuck)
        assert inner_info.value.name == "inner"
        return "outer goes on"

    assert await outer_long.call_async(caught) == "outer goes on"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_stdlib_timeouts_around_and_inside_keep_their_own() -> None:
    async def stuck() -> None:
        await asyncio.Event().wait()

    # asyncio.timeout outside, sooner: its own TimeoutError, not ours
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(SHORT):
            await Timeout(LONG).call_async(stuck)
    assert not isinstance(info.value, CallTimeoutError)

    # ours inside a later asyncio.timeout: ours fires, theirs stays armed
    async with asyncio.timeout(LONG) as outer:
        with pytest.raises(CallTimeoutError):
            await Timeout(SHORT).call_async(stuck)
    assert not outer.expired()

    # asyncio.timeout inside ours, sooner: the call's own TimeoutError
    async def own_stdlib_timeout() -> None:
        async with asyncio.timeout(SHORT):
            await stuck()

    with pytest.raises(TimeoutError) as own:
        await Timeout(LONG).call_async(own_stdlib_timeout)
    assert not isinstance(own.value, CallTimeoutError)


async def test_a_cancellation_asked_with_the_deadline_stays_a_cancellation() -> None:
    from resilient.timeout.deadlines import WHEN

    timeout = Timeout(LONG)

    async def cancelled_then_due() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # the caller's own cancellation, asked first
        queue = timeout._queue
        assert queue is not None
        queue.entries[-1][WHEN] = 0.0  # ... and the deadline passes too
        queue.fire()
        await asyncio.Event().wait()

    task = asyncio.create_task(timeout.call_async(cancelled_then_due))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert task.cancelling() == 1  # the caller's, untouched


async def test_a_call_that_swallows_the_deadline_returns_and_is_not_cancelling() -> None:
    timeout = Timeout(SHORT)

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept going"
        return "never"

    assert await timeout.call_async(stubborn) == "kept going"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_calls_in_time_share_one_loop_timer_and_leave_no_entries() -> None:
    timeout = Timeout(LONG)

    async def quick(x: int) -> int:
        return x

    assert await timeout.call_async(quick, 1) == 1
    queue = timeout._queue
    assert queue is not None
    handle = queue.handle
    assert handle is not None
    for i in range(50):
        assert await timeout.call_async(quick, i) == i
    assert queue.handle is handle  # no timer made per call
    assert not queue.entries  # each call, the last one armed, took its entry back

    async def pause() -> None:
        await asyncio.sleep(0)

    # Calls ending out of order: each is marked, and the timer drops them.
    await asyncio.gather(*(timeout.call_async(pause) for _ in range(5)))
    assert all(entry[0] is None for entry in queue.entries)
    queue.fire()  # early: nothing due, nothing counts; the timer is set again
    assert not queue.entries
    assert queue.handle is None


async def test_a_timed_out_call_among_calls_in_time() -> None:
    timeout = Timeout(SHORT)
    release = asyncio.Event()

    async def stuck() -> None:
        await asyncio.Event().wait()

    async def waits() -> str:
        await release.wait()
        return "in time"

    slow = asyncio.create_task(timeout.call_async(stuck))
    fast = asyncio.create_task(timeout.call_async(waits))
    await asyncio.sleep(0)
    release.set()
    assert await fast == "in time"
    with pytest.raises(CallTimeoutError):
        await slow


async def test_within_bounds_any_awaitable_with_a_queue() -> None:
    from resilient.timeout.deadlines import DeadlineQueue, within

    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop, SHORT)
    assert await within(queue, asyncio.sleep(0, "done")) == "done"
    with pytest.raises(TimeoutError) as info:
        await within(queue, asyncio.Event().wait())
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_timeout_used_on_two_loops_times_each() -> None:
    timeout = Timeout(SHORT)

    async def stuck() -> None:
        await asyncio.Event().wait()

    def other_loop() -> str:
        async def run() -> str:
            with pytest.raises(CallTimeoutError):
                await timeout.call_async(stuck)
            return "timed out there"

        return asyncio.run(run())

    assert await asyncio.to_thread(other_loop) == "timed out there"
    with pytest.raises(CallTimeoutError):
        await timeout.call_async(stuck)
