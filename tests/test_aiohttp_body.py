"""resilient.aiohttp judges a streamed body when it ends, as the httpx
transports do: a body that breaks off or goes silent after its first byte
is a failure of its host's breaker; before it, the attempt fails and retry
repeats it. Against a real server on loopback."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator

import aiohttp
import pytest

import resilient
from resilient import CircuitBreakerConfig, CircuitOpenError, CircuitState, ResiliencePolicy
from resilient import RetryConfig as Retry
from resilient.aiohttp import middleware
from resilient.aiohttp._body import pending
from resilient.circuit_breaker import CircuitBreaker
from resilient.http.testing import LoopbackServer, Reply, event
from resilient.testing import WaitRecorder

ONE_FAILURE_OPENS = ResiliencePolicy(
    retry=None, circuit_breaker=CircuitBreakerConfig(failure_threshold=1), timeout=5.0
)
TWO_EVENTS = (event("a"), event("b"))


@pytest.fixture
def serve() -> Iterator[list[LoopbackServer]]:
    started: list[LoopbackServer] = []
    yield started
    for server in started:
        server.stop()


def _start(serve: list[LoopbackServer], *script: Reply) -> LoopbackServer:
    server = LoopbackServer(*script).start()
    serve.append(server)
    return server


def _breaker(server: LoopbackServer) -> CircuitBreaker:
    breaker = resilient.registry.get("http", key=server.url.removeprefix("http://"))
    assert breaker is not None
    return breaker


def _session(policy: ResiliencePolicy, **options: object) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(middleware(policy),), **options)  # type: ignore[arg-type]


async def test_a_body_that_breaks_after_its_first_byte_is_a_failure_of_the_host(
    serve: list[LoopbackServer],
) -> None:
    server = _start(serve, Reply(events=TWO_EVENTS, broken=True))
    async with _session(ONE_FAILURE_OPENS) as session:
        async with session.get(server.url) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        assert _breaker(server).state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await session.get(server.url)
    assert len(server.requests) == 1


async def test_a_body_silent_after_its_first_byte_is_a_failure_and_a_timeout(
    serve: list[LoopbackServer],
) -> None:
    server = _start(serve, Reply(events=TWO_EVENTS, stall=math.inf))
    collector = resilient.MetricsCollector()
    unsubscribe = resilient.subscribe(collector)
    try:
        timeout = aiohttp.ClientTimeout(sock_read=0.2)
        async with (
            _session(ONE_FAILURE_OPENS, timeout=timeout) as session,
            session.get(server.url) as response,
        ):
            assert (await response.content.readany()).startswith(b"data: a")
            with pytest.raises(TimeoutError):
                await response.read()
    finally:
        unsubscribe()
    assert _breaker(server).state is CircuitState.OPEN
    name = f"http:{server.url.removeprefix('http://')}"
    assert collector.statistics.by_name[name].timeouts == 1


async def test_silence_before_the_first_byte_is_retried(
    serve: list[LoopbackServer], instant_waits: WaitRecorder
) -> None:
    server = _start(serve, Reply(stall=math.inf), Reply(body="ok"))
    policy = ResiliencePolicy(
        retry=Retry(max_attempts=2, initial_delay=1.0, jitter=0.0), timeout=0.2
    )
    async with _session(policy) as session, session.get(server.url) as response:
        assert await response.text() == "ok"
    assert len(server.requests) == 2
    assert instant_waits.delays == [1.0]
    assert _breaker(server).metrics().failures == 1


async def test_a_break_before_the_first_byte_is_retried(
    serve: list[LoopbackServer], instant_waits: WaitRecorder
) -> None:
    server = _start(serve, Reply(broken=True), Reply(body="ok"))
    policy = ResiliencePolicy(retry=Retry(max_attempts=2, initial_delay=1.0, jitter=0.0))
    async with _session(policy) as session, session.get(server.url) as response:
        assert await response.text() == "ok"
    assert len(server.requests) == 2
    assert _breaker(server).metrics().failures == 1


async def test_a_body_read_to_its_end_is_a_success_judged_at_its_end(
    serve: list[LoopbackServer],
) -> None:
    server = _start(serve, Reply(events=TWO_EVENTS, stall=math.inf))
    async with _session(ONE_FAILURE_OPENS) as session:
        response = await session.get(server.url)
        assert pending(response) is not None  # judged at its end, not yet
        assert _breaker(server).metrics().calls == 0
        server.stop()  # the server ends the body: it closes the connection
        assert (await response.read()).count(b"data:") == 2
        assert _breaker(server).metrics().calls == 1  # read to its end: judged there
        response.release()
    metrics = _breaker(server).metrics()
    assert (metrics.calls, metrics.failures) == (1, 0)


async def test_a_body_released_after_its_first_byte_is_a_success(
    serve: list[LoopbackServer],
) -> None:
    server = _start(serve, Reply(events=TWO_EVENTS, stall=math.inf))
    async with _session(ONE_FAILURE_OPENS) as session:
        async with session.get(server.url) as response:
            assert (await response.content.readany()).startswith(b"data: a")
            assert _breaker(server).metrics().calls == 0  # still streaming
        metrics = _breaker(server).metrics()
        assert (metrics.calls, metrics.failures) == (1, 0)
        assert _breaker(server).state is CircuitState.CLOSED


async def test_a_response_dropped_unread_holds_its_call_until_its_connection_ends(
    serve: list[LoopbackServer],
) -> None:
    # aiohttp's open connection keeps a response it has not released alive
    # (and its connection with it): the host's breaker judges the call when
    # that connection ends. Here the body ends with it (it is read until the
    # connection closes): a success.
    server = _start(serve, Reply(events=TWO_EVENTS, stall=math.inf))
    session = _session(ONE_FAILURE_OPENS)
    try:
        response = await session.get(server.url)
        assert pending(response) is not None
        body = response.content  # to wait for its end below, nothing read
        del response
        gc.collect()
        assert _breaker(server).metrics().calls == 0  # still in flight
    finally:
        await session.close()  # the connection ends
    await body.wait_eof()
    metrics = _breaker(server).metrics()
    assert (metrics.calls, metrics.failures) == (1, 0)


async def test_an_end_hook_that_raises_still_lets_the_connection_go(
    serve: list[LoopbackServer],
) -> None:
    def predicate(error: BaseException) -> bool:
        raise RuntimeError("predicate bug")

    server = _start(serve, Reply(events=TWO_EVENTS, broken=True))
    policy = ResiliencePolicy(
        retry=None, circuit_breaker=CircuitBreakerConfig(failure_predicate=predicate)
    )
    async with _session(policy) as session:
        response = await session.get(server.url)
        with pytest.raises(RuntimeError, match="predicate bug"):
            await response.read()  # the body breaks; judging it raises
        assert response.closed
        assert response.connection is None


async def test_a_response_dropped_unread_is_closed_by_its_consumer_whatever_came_after(
    serve: list[LoopbackServer],
) -> None:
    # Its body broke off once nobody read it (the server closed the
    # connection): no failure of the host, as for an httpx body dropped unread.
    server = _start(serve, Reply(events=TWO_EVENTS, broken=True), Reply(body="ok"))
    async with _session(ONE_FAILURE_OPENS) as session:
        response = await session.get(server.url)
        assert pending(response) is not None
        with pytest.raises(aiohttp.ClientPayloadError):  # the connection's end, nothing read
            await response.content.wait_eof()
        del response
        gc.collect()
        async with session.get(server.url) as again:  # runs what the collector set aside
            assert await again.text() == "ok"
    metrics = _breaker(server).metrics()
    assert (metrics.calls, metrics.failures) == (2, 0)
