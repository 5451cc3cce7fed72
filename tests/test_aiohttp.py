"""resilient.aiohttp against a real aiohttp server on loopback: what the
httpx transport's tests check, through the client middleware."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import resilient
from resilient import (
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    RateLimitExceededError,
    ResiliencePolicy,
    RetryConfig,
)
from resilient.aiohttp import ResilientMiddleware, middleware
from resilient.http import (
    AuthenticationError,
    HTTPError,
    HTTPTimeoutError,
    NetworkError,
    RateLimitError,
    ServerError,
)
from resilient.testing import WaitRecorder, fake_clock

FOREVER = web.AppKey("forever", asyncio.Event)
POLICY = ResiliencePolicy(
    retry=RetryConfig(max_attempts=3, initial_delay=1.0, jitter=0.0),
    timeout=5.0,
)


@dataclass
class Script:
    """What the server answers, in order (then 200 "ok"), and what it saw."""

    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    seen: list[dict[str, str]] = field(default_factory=list)
    hang: bool = False

    def then(self, status: int, **headers: str) -> Script:
        self.answers.append((status, headers))
        return self


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def handle(request: web.Request) -> web.Response:
        script.seen.append({"method": request.method, **request.headers})
        if script.hang:
            await request.app[FOREVER].wait()
        if script.answers:
            status, headers = script.answers.popleft()
            return web.Response(status=status, headers=headers, text=f"answer {status}")
        return web.Response(text="ok")

    app = web.Application()
    app[FOREVER] = asyncio.Event()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", script
    finally:
        app[FOREVER].set()  # a hanging answer ends, so the server stops at once
        await runner.cleanup()


@pytest.fixture
def refused_url() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    return f"http://127.0.0.1:{port}"


def _session(mw: ResilientMiddleware) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(mw,))


async def test_500s_then_success_is_retried_with_backoff(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    script.then(500).then(503)
    async with _session(middleware(POLICY)) as session, session.get(f"{url}/a") as response:
        assert response.status == 200
        assert await response.text() == "ok"
    assert len(script.seen) == 3
    assert instant_waits.delays == [1.0, 2.0]


async def test_retries_spent_raise_the_last_server_error(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    script.then(500).then(500).then(502)
    async with _session(middleware(POLICY)) as session:
        with pytest.raises(ServerError) as caught:
            await session.get(f"{url}/a")
    assert caught.value.status_code == 502
    assert "3 attempts" in "".join(getattr(caught.value, "__notes__", []))


async def test_every_attempt_carries_one_request_id_and_the_error_names_it(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    script.then(500).then(500).then(500)
    async with _session(middleware(POLICY)) as session:
        with pytest.raises(ServerError) as caught:
            await session.get(f"{url}/a")
    ids = {seen["X-Request-ID"] for seen in script.seen}
    assert len(ids) == 1
    assert caught.value.request_id == ids.pop()


async def test_the_callers_and_the_contexts_request_id_are_kept(
    server: tuple[str, Script],
) -> None:
    url, script = server
    async with _session(middleware(POLICY)) as session:
        await session.get(f"{url}/a", headers={"X-Request-ID": "mine"})
        with resilient.request_context("from-context"):
            await session.get(f"{url}/a")
    assert [seen["X-Request-ID"] for seen in script.seen] == ["mine", "from-context"]


async def test_429_retry_after_is_honoured(server: tuple[str, Script]) -> None:
    url, script = server
    script.then(429, **{"Retry-After": "7"})
    # The fake clock: the 429 holds the host for 7 s, which the retry waits out.
    with fake_clock() as clock:
        async with _session(middleware(POLICY)) as session:
            response = await session.get(f"{url}/a")
    assert response.status == 200
    assert clock.delays == [7.0]


async def test_rate_limit_error_when_retries_are_spent(server: tuple[str, Script]) -> None:
    url, script = server
    for _ in range(3):
        script.then(429, **{"Retry-After": "2"})
    with fake_clock() as clock:
        async with _session(middleware(POLICY)) as session:
            with pytest.raises(RateLimitError) as caught:
                await session.get(f"{url}/a")
    assert caught.value.retry_after == 2.0
    assert clock.delays == [2.0, 2.0]


async def test_a_retry_after_longer_than_max_delay_is_raised_at_once(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    script.then(503, **{"Retry-After": "3600"})
    async with _session(middleware(POLICY)) as session:
        with pytest.raises(ServerError) as caught:
            await session.get(f"{url}/a")
    assert caught.value.retry_after == 3600.0
    assert len(script.seen) == 1
    assert instant_waits.delays == []


async def test_post_is_not_retried_after_it_was_sent(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    script.then(500)
    async with _session(middleware(POLICY)) as session:
        with pytest.raises(ServerError):
            await session.post(f"{url}/a", data=b"x")
        # unless it carries an idempotency key
        script.then(500)
        response = await session.post(f"{url}/a", data=b"x", headers={"Idempotency-Key": "k"})
    assert response.status == 200
    assert [seen["method"] for seen in script.seen] == ["POST", "POST", "POST"]


async def test_refused_connections_are_retried_then_raised(
    refused_url: str, instant_waits: WaitRecorder
) -> None:
    async with _session(middleware(POLICY)) as session:
        with pytest.raises(NetworkError) as caught:
            await session.post(f"{refused_url}/a")  # never sent: safe to retry
    assert "could not connect" in str(caught.value)
    assert isinstance(caught.value, aiohttp.ClientConnectionError)  # aiohttp's own, too
    assert caught.value.request_sent is False
    assert instant_waits.delays == [1.0, 2.0]


async def test_a_slow_answer_times_out(server: tuple[str, Script]) -> None:
    url, script = server
    script.hang = True
    policy = ResiliencePolicy(retry=None, timeout=0.05)
    async with _session(middleware(policy)) as session:
        with pytest.raises(HTTPTimeoutError) as caught:
            await session.get(f"{url}/slow")
    assert caught.value.timeout == 0.05
    assert "read timeout" in str(caught.value)


async def test_a_slow_answer_is_counted_as_a_timeout(server: tuple[str, Script]) -> None:
    from resilient.metrics import MetricsCollector

    url, script = server
    script.hang = True
    collector = MetricsCollector()
    unsubscribe = resilient.subscribe(collector)
    try:
        policy = ResiliencePolicy(retry=None, timeout=0.05)
        async with _session(middleware(policy, name="counted")) as session:
            with pytest.raises(HTTPTimeoutError):
                await session.get(f"{url}/slow")
        host = url.removeprefix("http://")
        assert collector.statistics.by_name[f"counted:{host}"].timeouts == 1
    finally:
        unsubscribe()


async def test_401_is_raised_at_once_and_not_held_against_the_host(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    for _ in range(8):
        script.then(401)
    async with _session(middleware(POLICY)) as session:
        for _ in range(8):
            with pytest.raises(AuthenticationError):
                await session.get(f"{url}/a")
    port = url.rsplit(":", 1)[1]
    assert resilient.registry.get("http", key=f"127.0.0.1:{port}").state is CircuitState.CLOSED
    assert len(script.seen) == 8
    assert instant_waits.delays == []


async def test_404_is_a_plain_http_error(server: tuple[str, Script]) -> None:
    url, script = server
    script.then(404)
    async with _session(middleware(POLICY)) as session:
        with pytest.raises(HTTPError) as caught:
            await session.get(f"{url}/missing")
    assert caught.value.status_code == 404
    assert "answer 404" in str(caught.value)


async def test_one_breaker_per_host_opens_and_stops_calling(
    server: tuple[str, Script], refused_url: str, instant_waits: WaitRecorder
) -> None:
    url, script = server
    policy = ResiliencePolicy(
        retry=None, circuit_breaker=resilient.CircuitBreakerConfig(failure_threshold=2)
    )
    for _ in range(2):
        script.then(500)
    async with _session(middleware(policy)) as session:
        for _ in range(2):
            with pytest.raises(ServerError):
                await session.get(f"{url}/a")
        with pytest.raises(CircuitOpenError) as caught:
            await session.get(f"{url}/a")
        # another host has its own breaker, still closed
        with pytest.raises(NetworkError):
            await session.get(f"{refused_url}/a")
    port = url.rsplit(":", 1)[1]
    assert caught.value.name == f"http:127.0.0.1:{port}"
    assert len(script.seen) == 2
    refused_port = refused_url.rsplit(":", 1)[1]
    other = resilient.registry.get("http", key=f"127.0.0.1:{refused_port}")
    assert other is not None
    assert other.state is CircuitState.CLOSED


async def test_a_forced_open_host_is_not_called(server: tuple[str, Script]) -> None:
    url, script = server
    port = url.rsplit(":", 1)[1]
    async with _session(middleware(POLICY)) as session:
        with (
            resilient.registry.forced_open("http", key=f"127.0.0.1:{port}"),
            pytest.raises(CircuitOpenError),
        ):
            await session.get(f"{url}/a")
    assert script.seen == []


async def test_one_breaker_for_every_host_when_not_per_host(server: tuple[str, Script]) -> None:
    url, _ = server
    async with _session(middleware(POLICY, per_host=False, name="api")) as session:
        await session.get(f"{url}/a")
    assert "api" in resilient.registry.names()


async def test_an_aiohttp_request_is_one_request_for_its_route(
    server: tuple[str, Script], instant_waits: WaitRecorder
) -> None:
    url, script = server
    script.then(500)
    collector = resilient.MetricsCollector()
    unsubscribe = resilient.subscribe(collector)
    try:
        async with _session(middleware(POLICY)) as session:
            await session.get(f"{url}/a")
    finally:
        unsubscribe()
    port = url.rsplit(":", 1)[1]
    stats: Any = collector.statistics.by_name[f"http:127.0.0.1:{port}"]
    assert stats.total_requests == 1
    assert stats.total_retries == 1


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="policy must be a ResiliencePolicy"):
        middleware("fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        middleware(name="")
    with pytest.raises(TypeError, match="retry_methods"):
        middleware(retry_methods="GET")


# -- quota hints --------------------------------------------------------------------


async def test_a_host_announcing_nothing_left_gets_no_request_until_the_reset(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.then(200, **{"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m"})
    with fake_clock() as clock:
        async with _session(middleware(POLICY)) as session:
            await session.get(f"{url}/a")
            with pytest.raises(RateLimitExceededError) as caught:
                await session.get(f"{url}/a")  # retry's max_delay is 30 s: 60 s is more
            assert caught.value.retry_after == 60.0
            assert len(script.seen) == 1
        async with _session(middleware(POLICY)) as session:
            script.then(200, RateLimit='"default";r=0;t=45')
            await session.get(f"{url}/a")
            with pytest.raises(RateLimitExceededError) as caught:
                await session.get(f"{url}/a")
            assert caught.value.retry_after == 45.0
            assert len(script.seen) == 2
            clock.advance(45.0)
            assert (await session.get(f"{url}/a")).status == 200
            assert len(script.seen) == 3


async def test_quota_headers_false_leaves_the_quota_to_the_server(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.then(200, RateLimit='"default";r=0;t=45')
    with fake_clock():
        async with _session(middleware(POLICY, quota_headers=False)) as session:
            await session.get(f"{url}/a")
            assert (await session.get(f"{url}/a")).status == 200
    assert len(script.seen) == 2


async def test_a_429_never_opens_the_hosts_breaker(server: tuple[str, Script]) -> None:
    url, script = server
    script.then(429, **{"Retry-After": "1"}).then(429, **{"Retry-After": "1"})
    policy = ResiliencePolicy(
        retry=RetryConfig(max_attempts=3, initial_delay=1.0, jitter=0.0),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
        timeout=5.0,
    )
    with fake_clock() as clock:
        async with _session(middleware(policy)) as session:
            assert (await session.get(f"{url}/a")).status == 200
    assert clock.delays == [1.0, 2.0]  # the backoff, when longer than Retry-After
    host = url.removeprefix("http://")
    assert resilient.registry.get("http", key=host).state is CircuitState.CLOSED  # type: ignore[union-attr]
