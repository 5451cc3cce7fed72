"""A response body is a stream: silence or a break before its first byte
fails the attempt (retried, and counted by the host's breaker), as any
error before a stream's first item."""

from __future__ import annotations

import gc
import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from resilient import (
    BulkheadConfig,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Registry,
    ResiliencePolicy,
    RetryConfig,
)
from resilient.http import (
    HTTPError,
    HTTPTimeoutError,
    StreamError,
    aiter_sse,
    async_client,
    client,
    iter_sse,
)
from resilient.http.testing import LoopbackServer, Reply
from resilient.testing import instant_waits

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


# -- a streamed response is one call, judged when its body ends ---------------------

Main = Callable[[], Awaitable[Any]]

FIVE = [f"data: {n}\n\n" for n in range(5)]
BROKEN = Reply(events=FIVE, broken=True)  # five events, then the connection drops
STALLED = Reply(events=FIVE[:2], stall=math.inf)  # two events, then silence
ENDLESS = Reply(events=FIVE, stall=math.inf)  # five events, and no end


def _counting(threshold: int = 5, **fields: object) -> ResiliencePolicy:
    return ResiliencePolicy(
        retry=RetryConfig(max_attempts=3, jitter=0.0),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=threshold),
        bulkhead=BulkheadConfig(max_concurrent=2),
        **fields,  # type: ignore[arg-type]
    )


async def _read_events(http: httpx.AsyncClient, into: list[str]) -> None:
    async with http.stream("GET", "/events") as response:
        async for event in aiter_sse(response):
            into.append(event.data)


def _host(server: LoopbackServer) -> str:
    return server.url.removeprefix("http://")


def _breaker(registry: Registry, server: LoopbackServer) -> CircuitBreaker:
    breaker = registry.get("http", key=_host(server))
    assert breaker is not None
    return breaker


def _active(registry: Registry, server: LoopbackServer) -> int:
    bulkhead = registry.get_bulkhead(f"http:{_host(server)}")
    assert bulkhead is not None
    return bulkhead.metrics().active


def _outcome(registry: Registry, server: LoopbackServer) -> tuple[int, int]:
    """(calls, failures) in the host breaker's window."""
    metrics = _breaker(registry, server).metrics()
    return metrics.calls, metrics.failures


def test_a_body_that_breaks_after_its_first_byte_opens_the_breaker() -> None:
    registry = Registry()
    with LoopbackServer(BROKEN) as server, instant_waits():
        with client(_counting(threshold=2), base_url=server.url, registry=registry) as http:
            for _ in range(2):
                received = []
                with pytest.raises(StreamError), http.stream("GET", "/events") as response:
                    received.extend(event.data for event in iter_sse(response))
                assert received == ["0", "1", "2", "3", "4"]  # none lost, none repeated
            assert _breaker(registry, server).state is CircuitState.OPEN
            assert _active(registry, server) == 0
        assert len(server.requests) == 2  # each error after the first byte: not retried


def test_a_body_that_breaks_after_its_first_byte_opens_the_breaker_async(
    run: Callable[[Main], Any],
) -> None:
    async def main() -> None:
        registry = Registry()
        with LoopbackServer(BROKEN) as server, instant_waits():
            async with async_client(
                _counting(threshold=2), base_url=server.url, registry=registry
            ) as http:
                for _ in range(2):
                    received: list[str] = []
                    with pytest.raises(StreamError):
                        await _read_events(http, received)
                    assert received == ["0", "1", "2", "3", "4"]
                assert _breaker(registry, server).state is CircuitState.OPEN
                assert _active(registry, server) == 0
            assert len(server.requests) == 2

    run(main)


def test_a_body_that_stalls_after_its_first_byte_is_a_failure() -> None:
    registry = Registry()
    with LoopbackServer(STALLED) as server, instant_waits():
        with client(_counting(), base_url=server.url, registry=registry, inactivity=0.5) as http:
            received = []
            with pytest.raises(HTTPTimeoutError), http.stream("GET", "/events") as response:
                received.extend(event.data for event in iter_sse(response))
        assert received == ["0", "1"]
        assert _outcome(registry, server) == (1, 1)
        assert _active(registry, server) == 0
        assert len(server.requests) == 1


def test_a_body_that_stalls_after_its_first_byte_is_a_failure_async(
    run: Callable[[Main], Any],
) -> None:
    async def main() -> None:
        registry = Registry()
        with LoopbackServer(STALLED) as server, instant_waits():
            async with async_client(
                _counting(), base_url=server.url, registry=registry, inactivity=0.5
            ) as http:
                received: list[str] = []
                with pytest.raises(HTTPTimeoutError):
                    await _read_events(http, received)
            assert received == ["0", "1"]
            assert _outcome(registry, server) == (1, 1)
            assert _active(registry, server) == 0
            assert len(server.requests) == 1

    run(main)


def test_a_body_read_to_the_end_is_a_success_and_holds_its_permit_until_then() -> None:
    registry = Registry()
    with (
        LoopbackServer(Reply(events=FIVE)) as server,
        client(_counting(), base_url=server.url, registry=registry) as http,
    ):
        with http.stream("GET", "/events") as response:
            assert _active(registry, server) == 1
            assert _outcome(registry, server) == (0, 0)  # not judged yet
            body = response.read()
        assert _active(registry, server) == 0
        assert http.get("/events").text == body.decode()  # read by httpx itself
    assert body == "".join(FIVE).encode()
    assert _outcome(registry, server) == (2, 0)


def test_a_body_read_to_the_end_is_a_success_and_holds_its_permit_until_then_async(
    run: Callable[[Main], Any],
) -> None:
    async def main() -> None:
        registry = Registry()
        with LoopbackServer(Reply(events=FIVE)) as server:
            async with async_client(_counting(), base_url=server.url, registry=registry) as http:
                async with http.stream("GET", "/events") as response:
                    assert _active(registry, server) == 1
                    assert _outcome(registry, server) == (0, 0)
                    body = await response.aread()
                assert _active(registry, server) == 0
                assert (await http.get("/events")).text == body.decode()
        assert body == "".join(FIVE).encode()
        assert _outcome(registry, server) == (2, 0)

    run(main)


def test_a_body_closed_after_a_chunk_is_a_success() -> None:
    registry = Registry()
    with LoopbackServer(ENDLESS) as server:
        with (
            client(_counting(), base_url=server.url, registry=registry) as http,
            http.stream("GET", "/events") as response,
        ):
            assert next(response.iter_bytes())
        assert _outcome(registry, server) == (1, 0)
        assert _active(registry, server) == 0


def test_a_body_closed_after_a_chunk_is_a_success_async(run: Callable[[Main], Any]) -> None:
    async def main() -> None:
        registry = Registry()
        with LoopbackServer(ENDLESS) as server:
            async with (
                async_client(_counting(), base_url=server.url, registry=registry) as http,
                http.stream("GET", "/events") as response,
            ):
                chunks = response.aiter_bytes()
                assert await anext(chunks)
                await chunks.aclose()
            assert _outcome(registry, server) == (1, 0)
            assert _active(registry, server) == 0

    run(main)


def test_a_body_closed_before_its_first_byte_is_neither() -> None:
    registry = Registry()
    with LoopbackServer(ENDLESS) as server:
        with client(_counting(threshold=1), base_url=server.url, registry=registry) as http:
            for _ in range(3):
                with http.stream("GET", "/events"):
                    pass
        assert _outcome(registry, server) == (0, 0)
        assert _breaker(registry, server).state is CircuitState.CLOSED
        assert _active(registry, server) == 0


def test_a_body_closed_before_its_first_byte_is_neither_async(run: Callable[[Main], Any]) -> None:
    async def main() -> None:
        registry = Registry()
        with LoopbackServer(ENDLESS) as server:
            async with async_client(
                _counting(threshold=1), base_url=server.url, registry=registry
            ) as http:
                for _ in range(3):
                    async with http.stream("GET", "/events"):
                        pass
            assert _outcome(registry, server) == (0, 0)
            assert _breaker(registry, server).state is CircuitState.CLOSED
            assert _active(registry, server) == 0

    run(main)


def test_a_body_dropped_unclosed_gives_its_permit_back_when_collected() -> None:
    registry = Registry()
    with (
        LoopbackServer(ENDLESS) as server,
        client(_counting(), base_url=server.url, registry=registry) as http,
    ):
        response = http.send(http.build_request("GET", "/events"), stream=True)
        assert next(response.iter_bytes())
        assert _active(registry, server) == 1
        del response
        gc.collect()
        assert _active(registry, server) == 0
        assert _outcome(registry, server) == (1, 0)  # closed after a chunk: a success


def test_an_error_response_ends_its_call_with_the_attempt() -> None:
    registry = Registry()
    with (
        LoopbackServer(Reply(status=404, body="no such model")) as server,
        client(_counting(), base_url=server.url, registry=registry) as http,
        pytest.raises(HTTPError, match="404"),
    ):
        http.get("/v1/models/nope")
    assert _active(registry, server) == 0
    assert _outcome(registry, server) == (1, 0)  # the host answered: a success
