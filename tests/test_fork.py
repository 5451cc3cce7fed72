"""Policies survive ``os.fork()``: in a child every worker pool, lock, timer
and Redis connection is new, state and settings are kept, and the first call
works (resilient/_runtime/fork.py). Every wait here is bounded: a child that
hangs is killed and the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import http.client
import importlib
import importlib.util
import json
import logging
import multiprocessing
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import resilient
from resilient import (
    Bulkhead,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    RateLimiter,
    Retry,
    RetryBudget,
    RetryConfig,
    Timeout,
    TimeoutConfig,
    with_bulkhead,
    with_hedging,
    with_resilience,
)
from resilient._runtime.workers import shared_pool
from resilient.redis import RedisStorage
from tests.redis_server import RedisServer, wait_for

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform"),
    # Forking a process that has threads is the point of these tests.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded"),
]


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    with resilient.registry.isolated():
        yield


@pytest.fixture
def helper_module() -> Iterator[Callable[[str], Any]]:
    """Import a helper module of module-level policies for one test only:
    afterwards it is dropped, so its policies (and their counters, which
    exporters list) do not outlive the test."""
    imported: list[str] = []

    def load(name: str) -> Any:
        imported.append(name)
        return importlib.import_module(name)

    yield load
    for name in imported:
        sys.modules.pop(name, None)
        package, _, attribute = name.rpartition(".")
        with contextlib.suppress(KeyError, AttributeError):
            delattr(sys.modules[package], attribute)
    gc.collect()


# -- running code in a forked child ------------------------------------------------


def _reap(pid: int, deadline: float) -> int | None:
    """The child's wait status, or None when it is still running at ``deadline``."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def fork_child(fn: Callable[[], Any]) -> tuple[int, int]:
    """Fork; the child runs ``fn()``, sends ``{"ok": result}`` (or
    ``{"error": traceback}``) as JSON down a pipe and exits at once.
    Returns ``(pid, read end)`` to the parent."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read)
            try:
                payload: dict[str, Any] = {"ok": fn()}
                code = 0
            except BaseException:
                payload = {"error": traceback.format_exc()}
            os.write(write, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def child_result(pid: int, read: int, timeout: float = 10.0) -> Any:
    """What the child sent, within ``timeout`` seconds; a child that does
    not answer by then is killed and the test fails."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(pid)
                pytest.fail(f"the forked child hung (killed after {timeout}s)")
            ready, _, _ = select.select([read], [], [], left)
            if ready:
                chunk = os.read(read, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read)
    status = _reap(pid, time.monotonic() + timeout)
    if status is None:
        _kill(pid)
        pytest.fail("the forked child did not exit")
    payload = json.loads(b"".join(chunks) or b"{}")
    if "error" in payload or os.waitstatus_to_exitcode(status) != 0:
        pytest.fail(f"the forked child failed:\n{payload.get('error', payload)}")
    return payload["ok"]


def in_child(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``fn()`` run in a forked child; what it returned (JSON)."""
    return child_result(*fork_child(fn), timeout=timeout)


def _ok() -> str:
    return "ok"


async def _aok() -> str:
    return "ok"


# -- the first call in a child --------------------------------------------------------


def test_a_breaker_with_a_timeout_calls_in_a_child() -> None:
    breaker = CircuitBreaker("fork-db", CircuitBreakerConfig(timeout=0.5))
    assert breaker.call(_ok) == "ok"  # its pool has a thread, in the parent only

    def child() -> list[str]:
        return [breaker.call(_ok), breaker.call(_ok)]

    assert in_child(child) == ["ok", "ok"]
    assert breaker.call(_ok) == "ok"  # the parent is unaffected


def test_a_breaker_with_a_timeout_calls_async_in_a_child() -> None:
    breaker = CircuitBreaker("fork-db-async", CircuitBreakerConfig(timeout=0.5))
    assert breaker.call(_ok) == "ok"
    assert asyncio.run(breaker.call_async(_aok)) == "ok"

    def child() -> list[str]:
        return [asyncio.run(breaker.call_async(_aok)), breaker.call(_ok)]

    assert in_child(child) == ["ok", "ok"]


def test_a_stack_with_a_thread_timeout_calls_in_a_child() -> None:
    @with_resilience("fork-stack", timeout=TimeoutConfig(0.5, mode="thread"))
    def call() -> str:
        return "ok"

    assert call() == "ok"
    assert in_child(lambda: [call(), call()]) == ["ok", "ok"]


def test_sync_hedging_calls_in_a_child() -> None:
    gate = threading.Event()

    @with_hedging(0.05)
    def call() -> str:
        # The first attempt of the parent's call waits: a hedge starts too,
        # so the shared hedging pool has two busy threads at the fork.
        gate.wait(5)
        return "ok"

    with ThreadPoolExecutor(1) as executor:
        pending = executor.submit(call)
        wait_for(lambda: fork_helpers_threads("resilient-timeout") >= 2, what="hedges")

        def child() -> str:
            gate.set()  # the child's own copy: its calls do not wait
            return call()

        assert in_child(child) == "ok"
        gate.set()
        assert pending.result(timeout=10) == "ok"


def fork_helpers_threads(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def test_a_timeout_policy_calls_in_a_child() -> None:
    timeout = Timeout(0.5)
    assert timeout.call(_ok) == "ok"
    assert in_child(lambda: [timeout.call(_ok), timeout.call(_ok)]) == ["ok", "ok"]


def test_a_child_keeps_state_and_settings() -> None:
    breaker = CircuitBreaker("fork-open", CircuitBreakerConfig(failure_threshold=2, timeout=0.5))
    for _ in range(2):
        with contextlib.suppress(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
    assert breaker.state.value == "open"

    def child() -> list[Any]:
        try:
            breaker.call(_ok)
            rejected = False
        except CircuitOpenError:
            rejected = True
        return [breaker.state.value, rejected, breaker.config.failure_threshold]

    assert in_child(child) == ["open", True, 2]


# -- locks held by other threads at the fork ---------------------------------------------


def _held_by_another_thread(lock: Any) -> Callable[[], None]:
    """Hold ``lock`` in another thread until the returned function is called."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            done.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)

    def release() -> None:
        done.set()
        thread.join(5)

    return release


def _failing_call(breaker: CircuitBreaker) -> str:
    with contextlib.suppress(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    return breaker.metrics().state.value


def _lock_cases() -> dict[str, Callable[[], tuple[Any, Callable[[], Any]]]]:
    """Per case: (a lock some call takes, what the child does that takes it)."""

    def breaker() -> tuple[Any, Callable[[], Any]]:
        b = CircuitBreaker("fork-lock-cb", CircuitBreakerConfig(timeout=0.5))
        b.call(_ok)
        return b._lock, lambda: [_failing_call(b), b.call(_ok)]

    def bulkhead() -> tuple[Any, Callable[[], Any]]:
        b = Bulkhead("fork-lock-bh", max_concurrent=1)
        return b._lock, lambda: [b.call(_ok), b.metrics().active]

    def limiter() -> tuple[Any, Callable[[], Any]]:
        r = RateLimiter("fork-lock-rl", rate=1000.0)
        return r._lock, lambda: [r.call(_ok), r.metrics().rate]

    def budget() -> tuple[Any, Callable[[], Any]]:
        b = RetryBudget()
        retry = Retry(RetryConfig(max_attempts=2, budget=b, initial_delay=0.0))
        return b._lock, lambda: [retry.call(_ok), b.refused]

    def registry() -> tuple[Any, Callable[[], Any]]:
        group = resilient.with_circuit_breaker("fork-lock-keyed", key=lambda: "k")(_ok)
        return resilient.registry._lock, lambda: [
            resilient.registry.get_or_create("fork-lock-reg").call(_ok),
            group(),
        ]

    def keyed_breaker() -> tuple[Any, Callable[[], Any]]:
        # Renewed by the registry that holds it (no fork hook of its own).
        reg = resilient.Registry()
        keyed = resilient.with_circuit_breaker("fork-lock-kb", key=lambda: "k", registry=reg)
        group = keyed(_ok)
        group()
        b = reg.get_or_create("fork-lock-kb", key="k")
        return b._lock, lambda: [_failing_call(b), group()]

    def dropped_keyed_breaker() -> tuple[Any, Callable[[], Any]]:
        # Dropped by its group (max_keys) but still held: it renews itself.
        reg = resilient.Registry()
        group = resilient.with_circuit_breaker(
            "fork-lock-kd", key=lambda k: k, max_keys=1, registry=reg
        )(lambda k: k)
        group("a")
        b = reg.get_or_create("fork-lock-kd", key="a")
        group("b")
        assert reg.get("fork-lock-kd", key="a") is not b
        return b._lock, lambda: [_failing_call(b), b.call(_ok)]

    def isolated_keyed_breaker() -> tuple[Any, Callable[[], Any]]:
        # Made inside Registry.isolated(), dropped at its end, still held.
        reg = resilient.Registry()
        with reg.isolated():
            b = reg.get_or_create("fork-lock-ki", key="k")
        return b._lock, lambda: [_failing_call(b), b.call(_ok)]

    def pool() -> tuple[Any, Callable[[], Any]]:
        t = Timeout(0.5)
        t.call(_ok)
        return shared_pool()._lock, lambda: t.call(_ok)

    def events() -> tuple[Any, Callable[[], Any]]:
        from resilient import events as ev

        b = CircuitBreaker("fork-lock-ev")
        return ev._subscribe_lock, lambda: [b.subscribe(lambda e: None) is not None, b.call(_ok)]

    def counters() -> tuple[Any, Callable[[], Any]]:
        from resilient._execution import counters as c

        collector = resilient.MetricsCollector()
        b = CircuitBreaker("fork-lock-fold")
        return c._fold_lock, lambda: [b.call(_ok), collector.statistics is not None]

    return {
        f.__name__: f
        for f in (
            breaker,
            keyed_breaker,
            dropped_keyed_breaker,
            isolated_keyed_breaker,
            bulkhead,
            limiter,
            budget,
            registry,
            pool,
            events,
            counters,
        )
    }


@pytest.mark.parametrize("case", sorted(_lock_cases()))
def test_a_lock_held_by_another_thread_at_the_fork_is_free_in_the_child(case: str) -> None:
    lock, child = _lock_cases()[case]()
    release = _held_by_another_thread(lock)
    try:
        pid, read = fork_child(child)
    finally:
        release()
    assert child_result(pid, read, timeout=10.0)


# -- bulkhead permits ------------------------------------------------------------


def test_permits_held_by_other_threads_are_free_in_the_child() -> None:
    bulkhead = Bulkhead("fork-permits", max_concurrent=2)
    inside, leave = threading.Barrier(3), threading.Event()

    @with_bulkhead(bulkhead)
    def busy() -> None:
        inside.wait(5)
        leave.wait(10)

    threads = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait(5)
    try:
        assert bulkhead.metrics().active == 2

        def child() -> list[Any]:
            before = bulkhead.metrics().active
            results = [bulkhead.call(_ok)]
            with ThreadPoolExecutor(2) as executor:  # both permits at once
                results += executor.map(lambda _: bulkhead.call(_ok), range(2))
            return [before, results, bulkhead.metrics().active]

        assert in_child(child) == [0, ["ok", "ok", "ok"], 0]
    finally:
        leave.set()
        for thread in threads:
            thread.join(5)
    assert bulkhead.metrics().active == 0


@pytest.mark.parametrize("how", ["decorated", "with block", "call"])
def test_the_permit_of_the_forking_thread_stays_held_in_the_child(how: str) -> None:
    bulkhead = Bulkhead(f"fork-own-{how}", max_concurrent=2)
    read, write = os.pipe()

    def fork_inside() -> int:
        pid = os.fork()
        if pid == 0:
            os.write(write, str(bulkhead.metrics().active).encode() + b" ")
        return pid

    pid = None
    try:
        if how == "decorated":
            pid = with_bulkhead(bulkhead)(fork_inside)()
        elif how == "with block":
            with bulkhead:
                pid = fork_inside()
        else:
            pid = bulkhead.call(fork_inside)
        if pid == 0:  # the child, its call ended: its permit came back once
            os.write(write, str(bulkhead.metrics().active).encode())
    finally:
        if pid == 0:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 10
    data = b""
    while True:
        ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            _kill(pid)
            pytest.fail("the child hung")
        chunk = os.read(read, 100)
        if not chunk:
            break
        data += chunk
    os.close(read)
    assert _reap(pid, time.monotonic() + 10) == 0
    assert data.decode().split() == ["1", "0"]
    assert bulkhead.metrics().active == 0


# -- forks while threads call ---------------------------------------------------------


@pytest.mark.slow
def test_forks_taken_while_threads_call_never_hang_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The breaker's transitions are logged: a log file a parent thread was
    # writing at the fork keeps its buffer's lock held in the child (any
    # buffered file does, in any Python program), which is not ours to renew.
    monkeypatch.setattr(logging.getLogger("resilient"), "disabled", True)
    breaker = CircuitBreaker("fork-busy-cb", CircuitBreakerConfig(timeout=0.5))
    bulkhead = Bulkhead("fork-busy-bh", max_concurrent=3, max_queue=10, queue_timeout=1.0)
    limiter = RateLimiter("fork-busy-rl", rate=1e6, burst=1000, max_wait=0.5)
    budget = RetryBudget(ratio=1.0)
    retry = Retry(RetryConfig(max_attempts=2, budget=budget, initial_delay=0.0))
    timeout = Timeout(0.5)
    calls: list[Callable[[], Any]] = [
        lambda: breaker.call(_ok),
        lambda: _failing_call(breaker),
        lambda: bulkhead.call(_ok),
        lambda: limiter.call(_ok),
        lambda: retry.call(_ok),
        lambda: timeout.call(_ok),
        breaker.metrics,
        bulkhead.metrics,
        limiter.metrics,
    ]
    stop = threading.Event()
    errors: list[BaseException] = []

    def caller(offset: int) -> None:
        i = offset
        while not stop.is_set():
            try:
                calls[i % len(calls)]()
            except CircuitOpenError:
                breaker.reset()
            except BaseException as exc:
                errors.append(exc)
                return
            i += 1

    def child(trace: Path) -> None:
        code = 1
        try:
            # A child that hangs says where, before the parent kills it.
            with trace.open("w") as out:
                faulthandler.dump_traceback_later(3.0, exit=True, file=out)
                breaker.reset()
                for call in calls:
                    with contextlib.suppress(CircuitOpenError):
                        call()
                faulthandler.cancel_dump_traceback_later()
            code = 0
        finally:
            os._exit(code)

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    hung, failed = 0, 0
    traces: list[str] = []
    try:
        for i in range(100):
            trace = tmp_path / f"child-{i}.txt"
            pid = os.fork()
            if pid == 0:
                child(trace)
            status = _reap(pid, time.monotonic() + 5.0)
            if status is None:
                hung += 1
                _kill(pid)
            elif os.waitstatus_to_exitcode(status) != 0:
                failed += 1
            if (status is None or status) and trace.exists():
                traces.append(trace.read_text())
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert (hung, failed, errors) == (0, 0, []), "\n".join(traces[:2])


# -- multiprocessing ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_multiprocessing_pool_calls_module_level_policies(
    method: str, helper_module: Callable[[str], Any]
) -> None:
    fork_helpers = helper_module("tests.fork_helpers")
    fork_helpers.task(0)  # used in the parent first (its pools have threads)
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        results = pool.map_async(fork_helpers.task, range(8)).get(timeout=60)
    assert [r[:3] for r in results] == [(2 * x, x + 1, x - 1) for x in range(8)]
    assert os.getpid() not in {r[3] for r in results}


# -- Redis ----------------------------------------------------------------------------


def test_a_redis_shared_breaker_in_a_child_has_its_own_connection(
    redis_server: RedisServer,
) -> None:
    storage = RedisStorage.from_url(redis_server.url, refresh_interval=60.0)
    try:
        config = CircuitBreakerConfig(storage=storage, failure_threshold=4, timeout=0.5)
        breaker = CircuitBreaker("fork-shared", config)
        client: Any = storage._client
        # The parent's listener is subscribed and its catch-up sync done:
        # nothing more goes up from it until asked (refresh_interval=60).
        wait_for(lambda: client.pubsub_numsub(storage.channel)[0][1] >= 1, what="the listener")
        wait_for(lambda: not storage._full_due, what="the listener's catch-up sync")
        assert storage.sync()
        for _ in range(3):  # successes: unsent at the fork
            assert breaker.call(_ok) == "ok"
        parent_instance = storage.instance
        # Every connection open to the server at the fork: the parent's.
        before = {int(c["id"]) for c in client.client_list()}

        def child() -> list[Any]:
            results = [breaker.call(_ok)]
            with contextlib.suppress(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)
            return [
                results,
                int(client.client_id()) not in before,
                client.connection_pool.pid == os.getpid(),
                storage.instance != parent_instance,
                storage.sync(),
            ]

        assert in_child(child, timeout=20) == [["ok"], True, True, True, True]
        # The parent's pool is still its own, and works.
        assert client.connection_pool.pid == os.getpid()
        assert storage.sync()
        info = storage.describe("fork-shared")
        assert info is not None
        # The parent's 3 successes went up once (from the parent, not again
        # from the child); the child's own call and failure went up too.
        assert (info.calls, info.failures, info.instances) == (3 + 2, 1, 2)

        def child_opens() -> str:
            for _ in range(4):
                with contextlib.suppress(ZeroDivisionError):
                    breaker.call(lambda: 1 / 0)
            assert storage.sync()
            return breaker.state.value

        assert in_child(child_opens, timeout=20) == "open"
        # Shared: the child's failures opened it for the parent too.
        wait_for(lambda: storage.sync() and breaker.state.value == "open", what="open here")
    finally:
        storage.close()


# -- real pre-forking servers -----------------------------------------------------


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed (pip install -e '.[test]')"
        if CI:
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            pytest.fail("the server did not stop on SIGTERM")


def _get(port: int) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("worker", ["sync", "uvicorn"])
def test_gunicorn_preload_workers_answer_through_a_breaker_with_a_timeout(
    worker: str, tmp_path: Path
) -> None:
    _need("gunicorn")
    if worker == "uvicorn":
        _need("uvicorn")
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2"]
    command += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--log-level", "warning"]
    if worker == "uvicorn":
        command += ["-k", "uvicorn.workers.UvicornWorker", "tests.fork_app:asgi"]
    else:
        command += ["tests.fork_app:app"]
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=log, stderr=log)
    try:

        def listening() -> bool:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {(tmp_path / 'gunicorn.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return True
            return False

        wait_for(listening, timeout=30, what="gunicorn to listen")
        with ThreadPoolExecutor(4) as executor:  # concurrent: spread over the workers
            answers = list(executor.map(lambda _: _get(port), range(16)))
        failures = [a for a in answers if a[0] != 200 or not a[1].startswith("ok ")]
        assert failures == []
        pids = {int(body.split()[1]) for _, body in answers}
        assert process.pid not in pids  # answered by forked workers, not the master
    finally:
        _stop(process)
        log.close()


def test_a_celery_prefork_worker_runs_tasks_through_a_breaker_with_a_timeout(
    redis_server: RedisServer, tmp_path: Path, helper_module: Callable[[str], Any]
) -> None:
    _need("celery")
    celery_app = helper_module("tests.celery_app")

    celery_app.app.conf.update(broker_url=redis_server.url, result_backend=redis_server.url)
    env = {**_env(), "RESILIENT_CELERY_REDIS": redis_server.url}
    log = (tmp_path / "celery.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
         "--pool=prefork", "-c", "2", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "warning", "-n", f"fork-test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        pending = [celery_app.double.delay(x) for x in range(8)]
        deadline = time.monotonic() + 60
        results = []
        for result in pending:
            if process.poll() is not None:
                pytest.fail(f"the worker exited: {(tmp_path / 'celery.log').read_text()}")
            results.append(result.get(timeout=max(1.0, deadline - time.monotonic())))
        assert [r[0] for r in results] == [2 * x for x in range(8)]
        assert process.pid not in {r[1] for r in results}  # ran in the pool's children
    finally:
        _stop(process)
        log.close()
        with contextlib.suppress(Exception):
            celery_app.app.close()
