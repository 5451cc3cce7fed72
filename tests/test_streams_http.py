"""A response body is a stream: silence or a break before its first byte
fails the attempt (retried, and counted by the host's breaker), as any
error before a stream's first item."""

from __future__ import annotations

import math

import pytest

from resilient import CircuitBreakerConfig, CircuitState, Registry, ResiliencePolicy, RetryConfig
from resilient.http import HTTPTimeoutError, async_client, client, iter_sse
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
