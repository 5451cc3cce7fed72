"""resilient.redis against a real redis-server (see tests/redis_server.py).

In-process tests make several instances with several ``RedisStorage``
objects and call ``storage.sync()`` themselves, so they need no waiting.
Waits (bounded polling) are used only where real time is inherent: Redis's
own clock for recovery timeouts, and other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Registry,
    StateChanged,
)
from resilient.redis import RedisStorage
from tests.conftest import Boom
from tests.redis_server import RedisServer, wait_for
from tests.redis_worker import Worker

pytestmark = pytest.mark.redis

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
FORCED_OPEN, FORCED_CLOSED = CircuitState.FORCED_OPEN, CircuitState.FORCED_CLOSED


def fail() -> None:
    raise Boom("dependency down")


def ok() -> str:
    return "ok"


def failing(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(fail)


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("resilient-redis")]


@pytest.fixture
def storages(redis_server: RedisServer) -> Iterator[Callable[..., RedisStorage]]:
    """Make instances of a fleet; all closed after the test, threads and all."""
    made: list[RedisStorage] = []

    def make(**options: Any) -> RedisStorage:
        options.setdefault("refresh_interval", 60.0)  # tests sync by hand
        storage = RedisStorage.from_url(redis_server.url, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()
    assert _our_threads() == []


def shared(name: str, storage: RedisStorage, **fields: Any) -> CircuitBreaker:
    fields.setdefault("failure_threshold", 4)
    return CircuitBreaker(name, CircuitBreakerConfig(storage=storage, **fields))


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.msg
    ]


def sync(*stores: RedisStorage) -> None:
    for storage in stores:
        assert storage.sync()


# -- counting across instances ----------------------------------------------------


def test_failures_of_several_instances_add_up_to_the_threshold(storages) -> None:
    a, b = storages(), storages()
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    failing(one, 2)
    failing(two, 1)
    sync(a, b)
    # 3 of 4: neither the fleet nor either instance (as followers) has opened.
    assert (one.state, two.state) == (CLOSED, CLOSED)
    failing(two, 1)
    sync(b, a)
    assert (one.state, two.state) == (OPEN, OPEN)
    with pytest.raises(CircuitOpenError) as caught:
        one.call(ok)
    assert caught.value.state == "open"
    assert 0 < caught.value.remaining <= 30.0


def test_a_success_anywhere_breaks_the_fleets_run(storages) -> None:
    a, b = storages(), storages()
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    failing(one, 3)
    sync(a, b)  # b hears of the run (pub/sub does this within milliseconds)
    # Outcomes closer in time than the two clocks' skew may merge in either
    # order (docs/fleet.md): the success comes after that much real time.
    # A success on the lock-free path is stamped with the flush before it
    # (its store's last sync): that flush too must come after that time.
    time.sleep(a.clock_skew + b.clock_skew)
    sync(b)
    assert two.call(ok) == "ok"  # a success after the run's failures ends it
    sync(b)
    info = a.describe("pay")
    assert info is not None
    assert info.consecutive_failures == 0
    failing(one, 3)
    sync(a)
    assert one.state is CLOSED
    failing(one, 1)
    sync(a)
    assert one.state is OPEN


def test_the_hot_path_sends_nothing_and_counts_arrive_batched(storages, monkeypatch) -> None:
    a = storages()
    breaker = shared("pay", a)
    sync(a)
    callers: list[str] = []
    real_execute = a.execute

    def execute(calls: Any) -> Any:
        callers.append(threading.current_thread().name)
        return real_execute(calls)

    monkeypatch.setattr(a, "execute", execute)
    for _ in range(1000):
        assert breaker.call(ok) == "ok"
    assert threading.current_thread().name not in callers
    sync(a)
    info = a.describe("pay")
    assert info is not None
    assert info.calls == 1000
    assert info.failures == 0


def test_counts_from_before_a_fleet_reset_do_not_count_after_it(storages) -> None:
    a, b = storages(), storages()
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    failing(one, 3)
    two.reset()  # fleet-wide, before a's counts went up
    sync(a)
    info = a.describe("pay")
    assert info is not None
    assert info.consecutive_failures == 0
    failing(one, 3)
    sync(a)
    assert one.state is CLOSED


def test_a_failure_wakes_the_background_sync(storages) -> None:
    # A generous socket timeout: on a loaded machine a round trip may take
    # longer than the default 0.25 s, and Redis would count as down (the
    # breakers then decide alone, another test's subject).
    a, b = storages(socket_timeout=5.0), storages(socket_timeout=5.0)
    one, two = shared("pay", a, failure_threshold=2), shared("pay", b, failure_threshold=2)
    opened = threading.Event()
    two.subscribe(
        lambda event: (
            opened.set() if isinstance(event, StateChanged) and event.new_state == "open" else None
        )
    )
    sync(a, b)
    failing(one, 2)
    # No hand-made sync after them: the failures woke a's thread, the
    # transition was published, and b's thread fetched it.
    assert opened.wait(10.0), "the other instance never saw the breaker open"
    assert two.state is OPEN


# -- quorum and rates -------------------------------------------------------------


def test_quorum_needs_failures_from_that_many_instances(storages) -> None:
    a, b = storages(quorum=2), storages(quorum=2)
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    failing(one, 10)
    sync(a)
    assert one.state is CLOSED  # one sick instance cannot open the fleet
    info = a.describe("pay")
    assert info is not None
    assert info.consecutive_failures == 10
    assert info.failing_instances == 1
    failing(two, 1)
    sync(b, a)
    assert (one.state, two.state) == (OPEN, OPEN)


def test_an_instance_that_loses_redis_judges_its_own_failures_at_once(
    storages, redis_server
) -> None:
    # Ten failures the fleet did not act on (a quorum of 2): once Redis is
    # gone the instance decides alone, from what it counted, without
    # waiting for one more failure.
    a = storages(quorum=2)
    one = shared("pay", a)
    sync(a)
    failing(one, 10)
    sync(a)
    assert one.state is CLOSED
    redis_server.kill()
    assert not a.sync()
    assert one.state is OPEN


def test_a_failure_rate_in_the_fleets_window_opens_it(storages) -> None:
    a, b = storages(), storages(quorum=2)
    fields = {"failure_threshold": 100, "failure_rate_threshold": 0.5, "minimum_calls": 4}
    one = shared("pay", a, **fields)
    sync(a)
    for _ in range(2):
        one.call(ok)
        failing(one)
    sync(a)
    assert one.state is OPEN

    # With a quorum of 2, one instance's failures in the window are not enough.
    three = shared("search", b, **fields)
    sync(b)
    for _ in range(2):
        three.call(ok)
        failing(three)
    sync(b)
    assert three.state is CLOSED
    info = b.describe("search")
    assert info is not None
    assert info.rate_votes == 1


# -- half-open ----------------------------------------------------------------------


def test_instances_share_the_half_open_probe_limit(storages) -> None:
    fleet = [storages() for _ in range(3)]
    fields = {"failure_threshold": 1, "recovery_timeout": 0.2, "half_open_max_calls": 2}
    breakers = [shared("pay", s, **fields) for s in fleet]
    sync(*fleet)
    failing(breakers[0])
    sync(*fleet)
    assert [b.state for b in breakers] == [OPEN] * 3
    # Recovery is timed by Redis's clock, which only real time moves.
    wait_for(lambda: all(b.state is HALF_OPEN for b in breakers), what="recovery timeout")
    breakers[0].__enter__()
    breakers[1].__enter__()
    with pytest.raises(CircuitOpenError) as caught:
        breakers[2].__enter__()  # its own local limit (2) is free: the fleet's is not
    assert caught.value.state == "half_open"
    info = fleet[0].describe("pay")
    assert info is not None
    assert info.probes_in_flight == 2
    breakers[0].__exit__(None, None, None)
    breakers[1].__exit__(None, None, None)
    sync(*fleet, *fleet)
    assert [b.state for b in breakers] == [CLOSED] * 3  # success_threshold=2


def test_a_failed_probe_reopens_the_fleet(storages) -> None:
    a, b = storages(), storages()
    fields = {"failure_threshold": 1, "recovery_timeout": 0.2}
    one, two = shared("pay", a, **fields), shared("pay", b, **fields)
    sync(a, b)
    failing(one)
    sync(a, b)
    wait_for(lambda: one.state is HALF_OPEN, what="recovery timeout")
    failing(one)  # the probe
    sync(a, b)
    assert (one.state, two.state) == (OPEN, OPEN)


async def test_async_probe_and_hot_path(storages) -> None:
    a, b = storages(), storages()
    fields = {"failure_threshold": 1, "recovery_timeout": 0.2, "success_threshold": 1}
    one, two = shared("pay", a, **fields), shared("pay", b, **fields)

    async def aok() -> str:
        return "ok"

    async def afail() -> None:
        raise Boom

    sync(a, b)
    assert await one.call_async(aok) == "ok"
    with pytest.raises(Boom):
        await one.call_async(afail)
    sync(a, b)
    assert two.state is OPEN
    wait_for(lambda: two.state is HALF_OPEN, what="recovery timeout")
    assert await two.call_async(aok) == "ok"  # a fleet probe, asked off the loop
    sync(b, a)
    assert (one.state, two.state) == (CLOSED, CLOSED)


def test_async_probe_under_trio(storages) -> None:
    import trio

    a, b = storages(), storages()
    # Long enough that a loaded machine still sees it open after two syncs.
    fields = {"failure_threshold": 1, "recovery_timeout": 1.0, "success_threshold": 1}
    one, two = shared("pay", a, **fields), shared("pay", b, **fields)

    async def aok() -> str:
        return "ok"

    sync(a, b)  # both known to the fleet before the failure
    failing(one)
    sync(a, b)
    assert two.state is OPEN
    wait_for(lambda: two.state is HALF_OPEN, what="recovery timeout")
    assert trio.run(two.call_async, aok) == "ok"  # the fleet probe, asked off trio's thread
    sync(b, a)
    assert (one.state, two.state) == (CLOSED, CLOSED)


async def test_a_cancelled_probe_request_gives_its_permit_back(storages) -> None:
    a = storages()
    fields = {"failure_threshold": 1, "recovery_timeout": 0.2, "half_open_max_calls": 1}
    breaker = shared("pay", a, **fields)
    sync(a)
    failing(breaker)
    sync(a)
    wait_for(lambda: breaker.state is HALF_OPEN, what="recovery timeout")
    granted = threading.Event()
    proceed = threading.Event()
    binding = breaker._shared
    assert binding is not None
    real_ask = binding._ask  # the round trip, on the storage's threads

    def slow_acquire() -> Any:
        verdict = real_ask()
        granted.set()
        proceed.wait(10)
        return verdict

    binding._ask = slow_acquire  # type: ignore[method-assign]

    async def aok() -> str:
        return "ok"

    task = asyncio.ensure_future(breaker.call_async(aok))
    deadline = time.monotonic() + 10
    while not granted.is_set():
        assert time.monotonic() < deadline, "the probe was never asked for"
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    proceed.set()
    binding._ask = real_ask  # type: ignore[method-assign]
    deadline = time.monotonic() + 10
    while (info := a.describe("pay")) is None or info.probes_in_flight:
        assert time.monotonic() < deadline, "the abandoned probe was not given back"
        await asyncio.sleep(0.01)
    assert breaker._core.probes_running == 0


# -- control ------------------------------------------------------------------------


def test_forcing_one_instance_forces_the_fleet(storages) -> None:
    a, b = storages(), storages()
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    one.force_open()
    sync(b)
    assert two.state is FORCED_OPEN
    with pytest.raises(CircuitOpenError) as caught:
        two.call(ok)
    assert caught.value.remaining == float("inf")
    two.release()
    sync(a)
    assert (one.state, two.state) == (CLOSED, CLOSED)
    two.force_closed()
    sync(a)
    assert one.state is FORCED_CLOSED
    failing(one, 10)
    sync(a)
    assert one.state is FORCED_CLOSED


def test_forcing_a_name_before_any_instance_creates_it(storages) -> None:
    admin, a = storages(), storages()
    assert admin.force_open("pay") is False  # nobody has it yet
    breaker = shared("pay", a)
    sync(a)
    assert breaker.state is FORCED_OPEN
    assert admin.force_closed("pay") is True


def test_storage_admin_reads(storages) -> None:
    a = storages()
    kept = [shared("pay", a), shared("search", a)]
    sync(a)
    assert a.names() == ["pay", "search"]
    infos = a.breakers()
    assert [i.name for i in infos] == ["pay", "search"]
    assert infos[0].to_dict()["state"] == "closed"
    assert infos[0].instances == 1
    assert infos[0].created
    assert a.describe("nothing") is None
    a.force_open("pay")
    assert a.describe("pay").to_dict()["remaining"] is None  # type: ignore[union-attr]
    del kept


def test_a_garbage_collected_breaker_stops_syncing(storages) -> None:
    a = storages()
    shared("pay", a)  # nobody keeps it
    sync(a)
    assert a._bindings == []


# -- registry ------------------------------------------------------------------------


def test_registry_default_storage(storages) -> None:
    a, b = storages(), storages()
    reg = Registry(storage=a)
    other = Registry()
    early = other.get_or_create("pay", CircuitBreakerConfig(failure_threshold=2))
    other.set_default_storage(b)  # breakers made before are attached too
    late = reg.get_or_create("pay", CircuitBreakerConfig(failure_threshold=2))
    sync(a, b)
    failing(early, 1)
    failing(late, 1)
    sync(b, a, b)
    assert (early.state, late.state) == (OPEN, OPEN)
    other.set_default_storage(None)
    early.reset()
    sync(a)
    assert late.state is OPEN  # early no longer shares


def test_a_config_storage_wins_over_the_registry_default(storages) -> None:
    a, b = storages(), storages()
    reg = Registry(storage=a)
    breaker = reg.get_or_create("pay", CircuitBreakerConfig(storage=b))
    assert breaker._shared is not None
    assert breaker._shared._storage is b


# -- failure modes ------------------------------------------------------------------


def test_redis_killed_and_restarted(storages, redis_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="resilient")
    a = storages(refresh_interval=0.05)
    breaker = shared("pay", a, failure_threshold=3)
    a.sync()
    redis_server.kill()
    # Callers never see Redis: successes, failures, a local trip.
    for _ in range(50):
        assert breaker.call(ok) == "ok"
    assert not a.sync()
    assert not a.up
    failing(breaker, 3)
    assert breaker.state is OPEN  # decided locally
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    breaker.force_closed()  # queued for Redis
    breaker.force_open()
    for _ in range(3):
        assert not a.sync()
    warnings = redis_warnings(caplog)
    assert len(warnings) == 1
    assert "unreachable" in warnings[0]

    redis_server.start()  # same port, empty: no persistence
    wait_for(a.sync, what="the storage to reconnect")
    assert a.up
    info = a.describe("pay")
    assert info is not None
    assert info.state == "forced_open"
    assert breaker.state is FORCED_OPEN
    assert breaker._core.follower
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("reachable again" in message for message in infos)
    assert len(redis_warnings(caplog)) == 1


def test_redis_slow(storages, redis_server, caplog) -> None:
    a = storages(socket_timeout=0.1)
    breaker = shared("pay", a, failure_threshold=2)
    a.sync()
    pauser = redis.Redis.from_url(redis_server.url)
    pauser.execute_command("CLIENT", "PAUSE", "2000", "WRITE")
    try:
        assert breaker.call(ok) == "ok"
        assert not a.sync()  # gave up after the socket timeout
        failing(breaker, 2)
        assert breaker.state is OPEN
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
        pauser.close()
    assert len(redis_warnings(caplog)) == 1
    wait_for(a.sync, what="the storage to get answers again")
    assert a.describe("pay") is not None


def test_redis_flushed(storages, redis_server) -> None:
    a, b = storages(), storages()
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    one.force_open()
    sync(b)
    redis.Redis.from_url(redis_server.url).flushall()
    sync(b)  # re-seeded from what b mirrors
    info = a.describe("pay")
    assert info is not None
    assert info.state == "forced_open"
    sync(a)
    assert (one.state, two.state) == (FORCED_OPEN, FORCED_OPEN)
    one.release()
    sync(b)
    assert two.state is CLOSED


def test_breakers_created_while_redis_is_down(storages, redis_server) -> None:
    redis_server.kill()
    a = storages()
    breaker = shared("pay", a, failure_threshold=2)
    assert not a.sync()
    failing(breaker, 2)
    assert breaker.state is OPEN
    redis_server.start()
    wait_for(a.sync, what="the storage to reconnect")
    assert a.describe("pay") is not None


def test_state_changes_adopted_from_the_fleet_emit_events(storages) -> None:
    a, b = storages(), storages()
    one, two = shared("pay", a), shared("pay", b)
    sync(a, b)
    seen: list[StateChanged] = []
    unsubscribe = two.subscribe(lambda e: seen.append(e) if isinstance(e, StateChanged) else None)
    one.force_open()
    sync(b)
    unsubscribe()
    assert [(e.old_state, e.new_state) for e in seen] == [("closed", "forced_open")]


# -- lifecycle and validation ----------------------------------------------------------


def test_close_stops_the_threads_and_breakers_go_local(storages) -> None:
    a = storages()
    breaker = shared("pay", a, failure_threshold=2)
    a.sync()
    assert len(_our_threads()) == 2
    a.close()
    a.close()
    assert _our_threads() == []
    assert not a.up
    failing(breaker, 2)
    assert breaker.state is OPEN


def test_validation() -> None:
    with pytest.raises(ValueError, match="refresh_interval"):
        RedisStorage.from_url("redis://127.0.0.1:1/0", refresh_interval=0)
    with pytest.raises(ValueError, match="quorum"):
        RedisStorage.from_url("redis://127.0.0.1:1/0", quorum=0)
    with pytest.raises(ValueError, match="bad Redis URL"):
        RedisStorage.from_url("http://example")
    with pytest.raises(TypeError, match="storage"):
        CircuitBreakerConfig(storage="redis://127.0.0.1")  # type: ignore[arg-type]


# -- several processes ------------------------------------------------------------------


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(name: str, **fields: Any) -> Worker:
        worker = Worker(redis_server.url, name, **fields)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_is_another_instance(storages) -> None:
    a = storages()
    breaker = shared("pay", a)
    sync(a)

    def child() -> None:
        for _ in range(2):
            with contextlib.suppress(Boom):
                breaker.call(fail)
        synced = a.sync()
        a.close()
        os._exit(0 if synced else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    sync(a)
    info = a.describe("pay")
    assert info is not None
    assert info.consecutive_failures == 2
    assert info.instances == 2  # the parent and the child
    assert breaker.state is CLOSED


@pytest.mark.slow
def test_several_processes_share_one_breaker(workers) -> None:
    fleet = [workers("pay", failure_threshold=5) for _ in range(3)]
    for worker in fleet:
        assert worker.ask("fail") == "failed"
        assert worker.ask("fail") == "failed"
    # 6 failures in all, 2 each: every process stops calling.
    for worker in fleet:
        wait_for(lambda w=worker: w.ask("state") == "open", what="every process to see open")
        assert worker.ask("ok") == "rejected"


@pytest.mark.slow
def test_processes_share_the_half_open_probe_limit(workers) -> None:
    fields = {"failure_threshold": 1, "recovery_timeout": 0.3, "half_open_max_calls": 1}
    fleet = [workers("pay", **fields) for _ in range(3)]
    assert fleet[0].ask("fail") == "failed"
    for worker in fleet:
        wait_for(lambda w=worker: w.ask("state") == "open", what="every process to see open")
    for worker in fleet:
        wait_for(lambda w=worker: w.ask("state") == "half_open", what="recovery timeout")
    answers = [worker.ask("hold") for worker in fleet]
    assert sorted(answers) == ["admitted", "rejected", "rejected"]
    prober = fleet[answers.index("admitted")]
    assert prober.ask("leave fail") == "left"
    for worker in fleet:
        wait_for(lambda w=worker: w.ask("state") == "open", what="the failed probe to reopen")


@pytest.mark.slow
def test_quorum_across_processes(workers, storages) -> None:
    # Each step is made to happen by a sync the test asks for (the background
    # threads sync too; a sync by hand waits for theirs): no step is timed.
    admin = storages()
    sick, healthy = (workers("pay", quorum=2, failure_threshold=3) for _ in range(2))
    for worker in (sick, healthy):
        assert worker.ask("sync") == "synced"  # both follow the fleet now
    for _ in range(6):
        assert sick.ask("fail") == "failed"
    assert sick.ask("sync") == "synced"
    info = admin.describe("pay")
    assert info is not None
    assert (info.state, info.consecutive_failures, info.failing_instances) == ("closed", 6, 1)
    assert healthy.ask("fail") == "failed"
    assert healthy.ask("sync") == "synced"
    assert healthy.ask("state") == "open"  # a second instance: the quorum opens it
    assert sick.ask("sync") == "synced"
    assert sick.ask("state") == "open"


def test_a_shared_breaker_backs_off_fleet_wide(storages) -> None:
    # The k-th opening in a row stays open recovery_timeout * backoff ** (k - 1)
    # (capped), for every instance alike: each rejects with that much left.
    a, b = storages(), storages()
    fields = {
        "failure_threshold": 1,
        "recovery_timeout": 0.3,
        "recovery_backoff": 3.0,
        "max_recovery_timeout": 1.0,
        "success_threshold": 1,
    }
    one, two = shared("pay", a, **fields), shared("pay", b, **fields)
    sync(a, b)
    failing(one)
    # (open time, and less than which is left when seen: a loaded machine
    # may take a while to look, but never as long as the previous open time)
    for opened_for, above in ((0.3, 0.0), (0.9, 0.3), (1.0, 0.3), (1.0, 0.3)):
        sync(a, b)
        info = a.describe("pay")
        assert info is not None
        assert info.state == "open"
        assert above < info.remaining <= opened_for
        for breaker in (one, two):
            with pytest.raises(CircuitOpenError) as rejected:
                breaker.call(ok)
            # A shared breaker probes on the fleet's schedule: no probe on
            # the base one while the fleet's opening backs off.
            assert above < rejected.value.remaining <= opened_for
        prober = two if opened_for == 0.9 else one
        wait_for(lambda p=prober: p.state is HALF_OPEN, what="the open time to run out")
        failing(prober)  # the probe fails: the next opening in a row
    sync(a, b)
    wait_for(lambda: one.state is HALF_OPEN, what="the open time to run out")
    assert one.call(ok) == "ok"  # the probe succeeds: closed, and k starts over
    sync(a, b)
    assert (one.state, two.state) == (CLOSED, CLOSED)
    failing(one)
    sync(a, b)
    info = a.describe("pay")
    assert info is not None
    assert 0.0 < info.remaining <= 0.3
