"""A response body is a stream: silence or a break before its first byte
fails the attempt (retried, and counted by the host's breaker), as any
error before a stream's first item."""

from __future__ import annotations

import gc
import math

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Registry,
    ResiliencePolicy,
    RetryConfig,
)
from resilient.errors import CircuitOpenError
from resilient.http import HTTPTimeoutError, StreamError, aiter_sse, async_client, client, iter_sse
from resilient.http.testing import LoopbackServer, Reply
from resilient.testing import fake_clock, instant_waits

pytest.importorskip("httpx")

SILENT = Reply(events=[], stall=math.inf)  # 200, headers, then not a byte
ANSWER = Reply(events=["data: ok\n\n"])


def _policy(**fields: object) -> ResiliencePolicy:
    return ResiliencePolicy(
        retry=RetryConfig(max_attempts=2, jitter=0.0),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=5),
        **fields,  # type: ignore[arg-type]
    )


def test_silence_before_the_first_byte_is_retried() -> None:
    policy = _policy()
    with LoopbackServer(SILENT, ANSWER) as server, instant_waits():
        http = client(policy, base_url=server.url, inactivity=0.5, registry=Registry())
        with http, http.stream("GET", "/events") as response:
            events = [event.data for event in iter_sse(response)]
        assert len(server.requests) == 2
    assert events == ["ok"]


async def test_silence_before_the_first_byte_is_retried_async() -> None:
    with LoopbackServer(SILENT, ANSWER) as server, instant_waits():
        http = async_client(_policy(), base_url=server.url, inactivity=0.5, registry=Registry())
        async with http, http.stream("GET", "/events") as response:
            body = await response.aread()
        assert len(server.requests) == 2
    assert body == b"data: ok\n\n"


def test_silence_before_the_first_byte_is_a_breaker_failure() -> None:
    registry = Registry()
    policy = ResiliencePolicy(retry=None, circuit_breaker=CircuitBreakerConfig(failure_threshold=1))
    with LoopbackServer(SILENT) as server:
        http = client(policy, base_url=server.url, inactivity=0.3, registry=registry)
        with http, pytest.raises(HTTPTimeoutError):
            http.get("/events")
        host = server.url.removeprefix("http://")
        breaker = registry.get("http", key=host)
        assert breaker is not None
        assert breaker.state is CircuitState.OPEN


# -- after the first byte: the body's end is the request's end for the breaker -------------

STALLS = Reply(events=["data: a\n\n"], stall=math.inf)  # a first event, then silence
BREAKS = Reply(events=["data: a\n\n"], broken=True)  # a first event, then the cut
EVENTS = Reply(events=["data: a\n\n", "data: b\n\n"])


def _host_breaker(registry: Registry, server: LoopbackServer) -> CircuitBreaker:
    breaker = registry.get("http", key=server.url.removeprefix("http://"))
    assert breaker is not None
    return breaker


def _no_retry(threshold: int = 3, **fields: object) -> ResiliencePolicy:
    breaker = CircuitBreakerConfig(failure_threshold=threshold, **fields)  # type: ignore[arg-type]
    return ResiliencePolicy(retry=None, circuit_breaker=breaker)


def test_a_body_that_always_stalls_opens_the_host_breaker() -> None:
    registry = Registry()
    with LoopbackServer(*[STALLS] * 3) as server:
        http = client(_no_retry(3), base_url=server.url, inactivity=0.3, registry=registry)
        with http:
            for _ in range(3):
                with http.stream("GET", "/") as response, pytest.raises(HTTPTimeoutError):
                    response.read()
            with pytest.raises(CircuitOpenError):
                http.get("/")
        assert len(server.requests) == 3
    metrics = _host_breaker(registry, server).metrics()
    assert (metrics.state, metrics.calls, metrics.failures) == (CircuitState.OPEN, 3, 3)


async def test_a_body_that_always_stalls_opens_the_host_breaker_async() -> None:
    registry = Registry()
    with LoopbackServer(*[STALLS] * 3) as server:
        http = async_client(_no_retry(3), base_url=server.url, inactivity=0.3, registry=registry)
        async with http:
            for _ in range(3):
                async with http.stream("GET", "/") as response:
                    with pytest.raises(HTTPTimeoutError):
                        await response.aread()
            with pytest.raises(CircuitOpenError):
                await http.get("/")
        assert len(server.requests) == 3
    metrics = _host_breaker(registry, server).metrics()
    assert (metrics.state, metrics.calls, metrics.failures) == (CircuitState.OPEN, 3, 3)


def test_a_body_that_breaks_after_the_first_byte_counts_one_failure() -> None:
    registry = Registry()
    with LoopbackServer(BREAKS) as server:
        http = client(_no_retry(), base_url=server.url, registry=registry)
        with http, http.stream("GET", "/") as response, pytest.raises(StreamError):
            response.read()
    metrics = _host_breaker(registry, server).metrics()
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (1, 1, 1)


async def test_a_body_that_breaks_after_the_first_byte_counts_one_failure_async() -> None:
    registry = Registry()
    with LoopbackServer(BREAKS) as server:
        http = async_client(_no_retry(), base_url=server.url, registry=registry)
        async with http, http.stream("GET", "/") as response:
            with pytest.raises(StreamError):
                await response.aread()
    metrics = _host_breaker(registry, server).metrics()
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (1, 1, 1)


def test_a_body_read_to_the_end_counts_one_success_when_it_ends() -> None:
    registry = Registry()
    with LoopbackServer(EVENTS) as server:
        http = client(_no_retry(), base_url=server.url, registry=registry)
        with http, http.stream("GET", "/") as response:
            breaker = _host_breaker(registry, server)
            assert breaker.metrics().calls == 0  # pending until the body ends
            assert response.read() == b"data: a\n\ndata: b\n\n"
            assert breaker.metrics().calls == 1
    metrics = breaker.metrics()  # closing after the end counts nothing more
    assert (metrics.calls, metrics.failures) == (1, 0)


async def test_a_body_read_to_the_end_counts_one_success_when_it_ends_async() -> None:
    registry = Registry()
    with LoopbackServer(EVENTS) as server:
        http = async_client(_no_retry(), base_url=server.url, registry=registry)
        async with http, http.stream("GET", "/") as response:
            breaker = _host_breaker(registry, server)
            assert breaker.metrics().calls == 0
            assert await response.aread() == b"data: a\n\ndata: b\n\n"
            assert breaker.metrics().calls == 1
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (1, 0)


def test_a_body_closed_early_by_its_consumer_counts_a_success() -> None:
    registry = Registry()
    with LoopbackServer(STALLS) as server:
        http = client(_no_retry(), base_url=server.url, inactivity=30.0, registry=registry)
        with http:
            with http.stream("GET", "/") as response:
                assert next(iter_sse(response)).data == "a"
            metrics = _host_breaker(registry, server).metrics()
    assert (metrics.calls, metrics.failures) == (1, 0)


async def test_a_body_closed_early_by_its_consumer_counts_a_success_async() -> None:
    registry = Registry()
    with LoopbackServer(STALLS) as server:
        http = async_client(_no_retry(), base_url=server.url, inactivity=30.0, registry=registry)
        async with http:
            async with http.stream("GET", "/") as response:
                async for event in aiter_sse(response):
                    assert event.data == "a"
                    break
            metrics = _host_breaker(registry, server).metrics()
    assert (metrics.calls, metrics.failures) == (1, 0)


def test_a_half_open_probe_is_judged_when_its_body_ends() -> None:
    registry = Registry()
    policy = _no_retry(1, success_threshold=1, recovery_timeout=10.0)
    with fake_clock() as clock, LoopbackServer(STALLS, STALLS, EVENTS, EVENTS) as server:
        http = client(policy, base_url=server.url, inactivity=0.3, registry=registry)
        with http:
            with http.stream("GET", "/") as response, pytest.raises(HTTPTimeoutError):
                response.read()
            breaker = _host_breaker(registry, server)
            assert breaker.state is CircuitState.OPEN
            clock.advance(11.0)
            # A probe whose body stalls after its first byte opens it again.
            with http.stream("GET", "/") as response:
                assert breaker.state is CircuitState.HALF_OPEN
                with pytest.raises(HTTPTimeoutError):
                    response.read()
            assert breaker.state is CircuitState.OPEN
            clock.advance(11.0)
            with http.stream("GET", "/") as response:
                # Its permit is held while the body streams: no second probe.
                with pytest.raises(CircuitOpenError):
                    http.get("/")
                response.read()
            assert breaker.state is CircuitState.CLOSED
            assert http.get("/").status_code == 200
    assert len(server.requests) == 4


async def test_a_half_open_probe_is_judged_when_its_body_ends_async() -> None:
    registry = Registry()
    policy = _no_retry(1, success_threshold=1, recovery_timeout=10.0)
    with fake_clock() as clock, LoopbackServer(STALLS, STALLS, EVENTS, EVENTS) as server:
        http = async_client(policy, base_url=server.url, inactivity=0.3, registry=registry)
        async with http:
            async with http.stream("GET", "/") as response:
                with pytest.raises(HTTPTimeoutError):
                    await response.aread()
            breaker = _host_breaker(registry, server)
            assert breaker.state is CircuitState.OPEN
            clock.advance(11.0)
            async with http.stream("GET", "/") as response:
                assert breaker.state is CircuitState.HALF_OPEN
                with pytest.raises(HTTPTimeoutError):
                    await response.aread()
            assert breaker.state is CircuitState.OPEN
            clock.advance(11.0)
            async with http.stream("GET", "/") as response:
                with pytest.raises(CircuitOpenError):
                    await http.get("/")
                await response.aread()
            assert breaker.state is CircuitState.CLOSED
            assert (await http.get("/")).status_code == 200
    assert len(server.requests) == 4


def test_a_body_dropped_unread_frees_its_probe_as_a_success() -> None:
    registry = Registry()
    policy = _no_retry(1, success_threshold=1, recovery_timeout=10.0)
    with fake_clock() as clock, LoopbackServer(STALLS, STALLS) as server:
        http = client(policy, base_url=server.url, inactivity=0.3, registry=registry)
        with http:
            with http.stream("GET", "/") as response, pytest.raises(HTTPTimeoutError):
                response.read()
            breaker = _host_breaker(registry, server)
            clock.advance(11.0)
            dropped = http.send(http.build_request("GET", "/"), stream=True)
            assert breaker.state is CircuitState.HALF_OPEN
            del dropped
            gc.collect()
            # The collector set its end aside (it may run inside a breaker's
            # locked code); the next request runs it first, and is admitted.
            assert breaker.state is CircuitState.HALF_OPEN
            with http.stream("GET", "/") as response:
                assert breaker.state is CircuitState.CLOSED


def test_the_result_predicate_still_judges_a_streamed_response_at_its_headers() -> None:
    registry = Registry()
    policy = _no_retry(1, result_predicate=lambda response: response.headers.get("x-bad") == "1")
    bad = Reply(events=["data: a\n\n"], headers={"X-Bad": "1"})
    with LoopbackServer(bad) as server:
        http = client(policy, base_url=server.url, registry=registry)
        with http, http.stream("GET", "/") as response:
            breaker = _host_breaker(registry, server)
            assert breaker.state is CircuitState.OPEN  # judged at the headers
            response.read()  # and not again when the body ends
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (1, 1)
