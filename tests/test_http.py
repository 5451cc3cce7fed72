"""The httpx transports against a real HTTP server on loopback, scripted with faults.

Retry waits run on the fake clock; the network I/O (and the short socket
timeouts of the slow-server and stalled-stream cases) is real.
"""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

import httpx
import pytest

import resilient
from resilient import (
    BulkheadConfig,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    ResiliencePolicies,
    ResiliencePolicy,
    RetryConfig,
    events,
    registry,
)
from resilient.fallback import Fallback
from resilient.http import (
    AsyncResilientTransport,
    AuthenticationError,
    HTTPError,
    HTTPTimeoutError,
    NetworkError,
    RateLimitError,
    ResilientTransport,
    ServerError,
    StreamError,
    ValidationError,
    aiter_sse,
    classify,
    iter_sse,
)
from resilient.http import async_client as _async_client
from resilient.http import client as _client
from resilient.http._transport import RETRY
from resilient.http.testing import LoopbackServer, Reply
from resilient.testing import FakeClock, fake_clock

QUICK = RetryConfig(max_attempts=3, initial_delay=1.0, multiplier=2.0, jitter=0.0)


def policy(**fields: object) -> ResiliencePolicy:
    """Three attempts waiting 1 s then 2 s, a breaker of 5 failures, 5 s per attempt."""
    base: dict[str, object] = {
        "retry": QUICK,
        "circuit_breaker": CircuitBreakerConfig(failure_threshold=5),
        "timeout": 5.0,
    }
    base.update(fields)
    return ResiliencePolicy(**base)  # type: ignore[arg-type]


def client(p: ResiliencePolicy, **kw: object) -> httpx.Client:
    # No TLS on loopback: skip loading the CA bundle (a fifth of a second per client).
    kw.setdefault("verify", False)
    return _client(p, **kw)  # type: ignore[arg-type]


def async_client(p: ResiliencePolicy, **kw: object) -> httpx.AsyncClient:
    kw.setdefault("verify", False)
    return _async_client(p, **kw)  # type: ignore[arg-type]


def breaker_name(server: LoopbackServer) -> str:
    """The label of the server's breaker (its events' and errors' name)."""
    return "http:" + host(server)


def host(server: LoopbackServer) -> str:
    return server.url.removeprefix("http://")


def host_breaker(server: LoopbackServer) -> CircuitBreaker | None:
    """The server's breaker: the key of its host in the group ``http``."""
    return registry.get("http", key=host(server))


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as fake:
        yield fake


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def seen() -> Iterator[list[events.Event]]:
    got: list[events.Event] = []
    unsubscribe = resilient.subscribe(got.append)
    yield got
    unsubscribe()


# -- 5xx, retries, request ids ----------------------------------------------------


def test_500s_then_success_is_retried_with_backoff(clock: FakeClock) -> None:
    with (
        LoopbackServer(500, 503, Reply(json={"ok": True})) as server,
        client(policy(), base_url=server.url) as http,
    ):
        response = http.get("/items")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert clock.sleeps == [1.0, 2.0]
    assert [r.path for r in server.requests] == ["/items"] * 3
    assert host_breaker(server) is not None


def test_retries_spent_raise_the_last_server_error(clock: FakeClock) -> None:
    down = Reply(status=503, body="down for maintenance")
    with (
        LoopbackServer(500, 502, down) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ServerError) as info,
    ):
        http.get("/items")
    error = info.value
    assert error.status_code == 503
    assert error.is_retryable
    assert (
        error.message
        == f"503 Service Unavailable from GET {server.url}/items: down for maintenance"
    )
    assert error.request_id == server.requests[0].headers["x-request-id"]
    assert error.response.text == "down for maintenance"
    assert any("3 attempts" in note for note in error.__notes__)
    assert len(server.requests) == 3


def test_every_attempt_carries_the_same_generated_request_id(clock: FakeClock) -> None:
    with LoopbackServer(500, 200) as server, client(policy(), base_url=server.url) as http:
        http.get("/")
    ids = {r.headers["x-request-id"] for r in server.requests}
    assert len(ids) == 1
    (rid,) = ids
    assert len(rid) == 32
    assert int(rid, 16) >= 0


def test_request_id_comes_from_the_request_context(seen: list[events.Event]) -> None:
    with LoopbackServer(200) as server, client(policy(), base_url=server.url) as http:
        with resilient.request_context("trace-7"):
            http.get("/")
        http.get("/", headers={"X-Request-ID": "mine"})
    assert [r.headers["x-request-id"] for r in server.requests] == ["trace-7", "mine"]


def test_events_of_a_request_carry_its_request_id(
    clock: FakeClock, seen: list[events.Event]
) -> None:
    with LoopbackServer(500, 200) as server, client(policy(), base_url=server.url) as http:
        http.get("/")
    rid = server.requests[0].headers["x-request-id"]
    failed = [e for e in seen if isinstance(e, events.CallFailed)]
    retried = [e for e in seen if isinstance(e, events.RetryAttempted)]
    assert [(e.name, e.request_id) for e in failed] == [(breaker_name(server), rid)]
    assert isinstance(failed[0].error, ServerError)
    assert [(e.name, e.request_id, e.attempt) for e in retried] == [(breaker_name(server), rid, 1)]


def test_an_http_request_is_one_request_named_after_its_route(
    clock: FakeClock, seen: list[events.Event]
) -> None:
    with (
        LoopbackServer(500, 500, 500) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ServerError),
    ):
        http.get("/")
    requests = [e for e in seen if getattr(e, "level", None) == events.REQUEST]
    rid = server.requests[0].headers["x-request-id"]
    assert [(type(e).__name__, e.name, e.policy, e.request_id) for e in requests] == [
        ("CallStarted", breaker_name(server), "http", rid),
        ("CallFailed", breaker_name(server), "http", rid),
    ]
    # What the caller got: the error raise-for-status made of the last response.
    assert isinstance(requests[1].error, ServerError)  # type: ignore[attr-defined]


async def test_an_async_http_request_is_one_request(
    clock: FakeClock, seen: list[events.Event]
) -> None:
    with LoopbackServer(503, 200) as server:
        async with async_client(policy(), base_url=server.url) as http:
            response = await http.get("/")
    assert response.status_code == 200
    requests = [e for e in seen if getattr(e, "level", None) == events.REQUEST]
    assert [(type(e).__name__, e.policy) for e in requests] == [
        ("CallStarted", "http"),
        ("CallSucceeded", "http"),
    ]


def test_post_is_not_retried_by_default(clock: FakeClock) -> None:
    with (
        LoopbackServer(500, 200) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ServerError),
    ):
        http.post("/orders", json={"qty": 1})
    assert len(server.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("kwargs", "transport_options"),
    [
        ({"headers": {"Idempotency-Key": "order-1"}}, {}),
        ({"extensions": {"resilient.retry": True}}, {}),
        ({}, {"retry_methods": ["post"]}),
    ],
    ids=["idempotency-key", "per-request", "retry_methods"],
)
def test_post_is_retried_when_told(
    clock: FakeClock, kwargs: dict[str, object], transport_options: dict[str, object]
) -> None:
    with (
        LoopbackServer(500, 201) as server,
        client(policy(), base_url=server.url, **transport_options) as http,
    ):
        response = http.post("/orders", json={"qty": 1}, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 201
    assert [r.body for r in server.requests] == [b'{"qty":1}'] * 2


def test_a_get_can_opt_out_of_retries(clock: FakeClock) -> None:
    with (
        LoopbackServer(500, 200) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ServerError),
    ):
        http.get("/", extensions={"resilient.retry": False})
    assert len(server.requests) == 1


def test_a_streamed_upload_is_sent_once(clock: FakeClock) -> None:
    def body() -> Iterator[bytes]:
        yield b"chunk"

    with (
        LoopbackServer(500, 200) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ServerError),
    ):
        http.put("/blob", content=body())
    assert len(server.requests) == 1


def test_no_retry_layer_means_one_attempt(clock: FakeClock) -> None:
    with (
        LoopbackServer(500, 200) as server,
        client(policy(retry=None), base_url=server.url) as http,
        pytest.raises(ServerError),
    ):
        http.get("/")
    assert len(server.requests) == 1


# -- 429 and Retry-After ------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured(clock: FakeClock, seen: list[events.Event]) -> None:
    limited = Reply(status=429, headers={"Retry-After": "7"}, json={"error": {"message": "slow"}})
    with LoopbackServer(limited, 200) as server, client(policy(), base_url=server.url) as http:
        assert http.get("/").status_code == 200
    assert clock.sleeps == [7.0]
    rate = [e for e in seen if isinstance(e, events.RateLimited)]
    assert [e.retry_after for e in rate] == [7.0]


def test_429_retry_after_http_date_is_honoured(clock: FakeClock) -> None:
    # The fake clock's wall time is an exact second, as HTTP-dates are.
    when = formatdate(resilient._runtime.clock.wall() + 5, usegmt=True)
    limited = Reply(status=429, headers={"Retry-After": when})
    with LoopbackServer(limited, 200) as server, client(policy(), base_url=server.url) as http:
        assert http.get("/").status_code == 200
    assert clock.sleeps == [5.0]


def test_503_retry_after_is_honoured_too(clock: FakeClock) -> None:
    unavailable = Reply(status=503, headers={"Retry-After": "4"})
    with LoopbackServer(unavailable, 200) as server, client(policy(), base_url=server.url) as http:
        http.get("/")
    assert clock.sleeps == [4.0]


def test_rate_limit_error_when_retries_are_spent(clock: FakeClock) -> None:
    limited = Reply(status=429, headers={"Retry-After": "3"}, json={"error": {"message": "quota"}})
    with (
        LoopbackServer(limited) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(RateLimitError) as info,
    ):
        http.get("/v1/models")
    assert info.value.retry_after == 3.0
    assert info.value.status_code == 429
    assert info.value.message.endswith(": quota")
    assert clock.sleeps == [3.0, 3.0]


def test_a_retry_after_longer_than_max_delay_is_raised_at_once(clock: FakeClock) -> None:
    limited = Reply(status=429, headers={"Retry-After": "3600"})
    with (
        LoopbackServer(limited, 200) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(RateLimitError) as info,
    ):
        http.get("/")
    assert info.value.retry_after == 3600.0
    assert clock.sleeps == []
    assert len(server.requests) == 1


# -- connections, slow servers ---------------------------------------------------------


def test_refused_connections_are_retried_then_raised(clock: FakeClock, refused_url: str) -> None:
    with client(policy(), base_url=refused_url) as http, pytest.raises(NetworkError) as info:
        http.get("/")
    assert info.value.request_sent is False
    assert info.value.status_code is None
    assert "could not connect on GET" in info.value.message
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert clock.sleeps == [1.0, 2.0]


def test_a_post_that_never_left_is_retried(clock: FakeClock, refused_url: str) -> None:
    with client(policy(), base_url=refused_url) as http, pytest.raises(NetworkError):
        http.post("/", json={})
    assert clock.sleeps == [1.0, 2.0]


def test_the_network_preset_retries_connections_but_not_5xx(
    clock: FakeClock, refused_url: str
) -> None:
    external = ResiliencePolicies.external()
    with client(external) as http:
        with pytest.raises(NetworkError):
            http.get(refused_url)
        assert len(clock.sleeps) == 3  # RetryPolicies.network(): 4 attempts
        with LoopbackServer(500, 200) as server, pytest.raises(ServerError):
            http.get(server.url)
    assert len(server.requests) == 1


def test_refused_connections_open_the_host_breaker(clock: FakeClock, refused_url: str) -> None:
    strict = policy(retry=None, circuit_breaker=CircuitBreakerConfig(failure_threshold=2))
    with client(strict, base_url=refused_url) as http:
        for _ in range(2):
            with pytest.raises(NetworkError):
                http.get("/")
        with pytest.raises(CircuitOpenError) as info:
            http.get("/")
    name = "http:" + refused_url.removeprefix("http://")
    assert info.value.name == name
    host = refused_url.removeprefix("http://")
    assert registry.get("http", key=host).state is CircuitState.OPEN  # type: ignore[union-attr]


def test_a_dropped_connection_is_a_network_error(clock: FakeClock) -> None:
    dropped = Reply(drop=True)
    with (
        LoopbackServer(dropped, 200, dropped, 200) as server,
        client(policy(), base_url=server.url) as http,
    ):
        assert http.get("/").status_code == 200
        with pytest.raises(NetworkError) as info:
            http.post("/")
    # The POST may have been processed before the connection dropped: not repeated.
    assert info.value.request_sent is True
    assert [r.method for r in server.requests] == ["GET", "GET", "POST"]


def test_a_slow_response_times_out_and_is_retried(clock: FakeClock) -> None:
    slow = Reply(delay=math.inf)  # answers only when the server stops
    with (
        LoopbackServer(slow, 200) as server,
        client(policy(timeout=0.2), base_url=server.url) as http,
    ):
        assert http.get("/").status_code == 200
    assert len(server.requests) == 2


def test_a_slow_response_times_out(clock: FakeClock) -> None:
    with (
        LoopbackServer(Reply(delay=math.inf)) as server,
        client(policy(timeout=0.2, retry=None), base_url=server.url) as http,
        pytest.raises(HTTPTimeoutError) as info,
    ):
        http.get("/")
    error = info.value
    assert isinstance(error, CallTimeoutError)
    assert error.timeout == 0.2
    assert error.request_sent is True
    assert error.message == f"read timeout on GET {server.url}/ after 0.2s"


def test_the_policy_timeout_caps_the_client_timeout() -> None:
    with (
        LoopbackServer(Reply(delay=math.inf)) as server,
        client(policy(timeout=0.2, retry=None), base_url=server.url, timeout=60.0) as http,
        pytest.raises(HTTPTimeoutError) as info,
    ):
        http.get("/")
    assert info.value.timeout == 0.2


# -- 4xx ----------------------------------------------------------------------------


def test_401_is_raised_at_once_and_not_held_against_the_host(clock: FakeClock) -> None:
    denied = Reply(status=401, json={"error": {"message": "Incorrect API key provided"}})
    strict = policy(circuit_breaker=CircuitBreakerConfig(failure_threshold=1))
    with LoopbackServer(denied) as server, client(strict, base_url=server.url) as http:
        for _ in range(3):
            with pytest.raises(AuthenticationError) as info:
                http.get("/v1/models")
    error = info.value
    assert error.status_code == 401
    assert not error.is_retryable
    assert (
        error.message
        == f"401 Unauthorized from GET {server.url}/v1/models: Incorrect API key provided"
    )
    assert error.response.json()["error"]["message"] == "Incorrect API key provided"
    assert clock.sleeps == []
    assert len(server.requests) == 3
    assert host_breaker(server).state is CircuitState.CLOSED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, ValidationError), (403, AuthenticationError), (404, HTTPError), (422, ValidationError)],
)
def test_client_errors_map_to_their_class(status: int, cls: type[HTTPError]) -> None:
    with (
        LoopbackServer(status) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(HTTPError) as info,
    ):
        http.get("/")
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert len(server.requests) == 1


def test_redirects_pass_through(clock: FakeClock) -> None:
    moved = Reply(status=302, headers={"Location": "/there"})
    with (
        LoopbackServer(moved, 200) as server,
        client(policy(), base_url=server.url, follow_redirects=True) as http,
    ):
        response = http.get("/here")
    assert response.status_code == 200
    assert [r.path for r in server.requests] == ["/here", "/there"]


# -- breakers per host, control -----------------------------------------------------------


def test_one_breaker_per_host(clock: FakeClock) -> None:
    strict = policy(retry=None, circuit_breaker=CircuitBreakerConfig(failure_threshold=1))
    with LoopbackServer(500) as bad, LoopbackServer(200) as good, client(strict) as http:
        with pytest.raises(ServerError):
            http.get(bad.url)
        with pytest.raises(CircuitOpenError):
            http.get(bad.url)
        assert http.get(good.url).status_code == 200
    assert host_breaker(bad).state is CircuitState.OPEN  # type: ignore[union-attr]
    assert host_breaker(good).state is CircuitState.CLOSED  # type: ignore[union-attr]
    assert len(bad.requests) == 1


def test_threads_share_one_route_per_host() -> None:
    with (
        LoopbackServer(200) as server,
        client(policy(), base_url=server.url) as http,
        ThreadPoolExecutor(8) as pool,
    ):
        codes = list(pool.map(lambda _: http.get("/").status_code, range(32)))
    assert codes == [200] * 32
    assert [n for n in registry.names() if n.startswith("http:")] == [breaker_name(server)]


def test_one_breaker_for_every_host_when_not_per_host(clock: FakeClock) -> None:
    with (
        LoopbackServer(200) as one,
        LoopbackServer(200) as two,
        client(policy(), per_host=False, name="backend") as http,
    ):
        http.get(one.url)
        http.get(two.url)
    assert [n for n in registry.names() if "backend" in n] == ["backend"]


def test_two_clients_disagreeing_about_a_host_is_an_error() -> None:
    lenient = policy(circuit_breaker=CircuitBreakerConfig(failure_threshold=50))
    with (
        LoopbackServer(200) as server,
        client(policy(), base_url=server.url) as one,
        client(lenient, base_url=server.url) as two,
        client(lenient, base_url=server.url, name="batch") as three,
    ):
        one.get("/")
        with pytest.raises(ValueError, match="already exists with config"):
            two.get("/")
        three.get("/")
    assert len(server.requests) == 2
    assert registry.get("batch", key=host(server)) is not None


def test_a_forced_open_host_is_not_called(clock: FakeClock) -> None:
    with LoopbackServer(200) as server, client(policy(), base_url=server.url) as http:
        with registry.forced_open("http", key=host(server)), pytest.raises(CircuitOpenError):
            http.get("/")
        assert http.get("/").status_code == 200
    assert len(server.requests) == 1


def test_a_half_open_probe_closes_the_host_again(clock: FakeClock) -> None:
    strict = policy(
        retry=None,
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=30.0, success_threshold=1
        ),
    )
    with LoopbackServer(500, 200) as server, client(strict, base_url=server.url) as http:
        with pytest.raises(ServerError):
            http.get("/")
        with pytest.raises(CircuitOpenError) as info:
            http.get("/")
        assert info.value.remaining == 30.0
        clock.advance(30.0)
        assert http.get("/").status_code == 200
    assert host_breaker(server).state is CircuitState.CLOSED  # type: ignore[union-attr]


def test_retry_waits_for_a_breaker_that_opens_mid_way(clock: FakeClock) -> None:
    opening = policy(
        retry=RetryConfig(max_attempts=3, initial_delay=1.0, max_delay=60.0, jitter=0.0),
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=10.0, success_threshold=1
        ),
    )
    with LoopbackServer(500, 200) as server, client(opening, base_url=server.url) as http:
        assert http.get("/").status_code == 200
    # 1 s of backoff, then the open breaker's remaining 9 s, then the probe.
    assert clock.sleeps == [1.0, 9.0]


def test_a_request_with_no_wait_ticket_left_gives_up_at_once(clock: FakeClock) -> None:
    # The same rule as retry's: at most half_open_max_calls requests wait for
    # the host breaker's reopening; every other one fails at once.
    opening = policy(
        retry=RetryConfig(max_attempts=3, initial_delay=1.0, max_delay=60.0, jitter=0.0),
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=10.0, success_threshold=1
        ),
    )
    with LoopbackServer(500, 200) as server, client(opening, base_url=server.url) as http:
        with pytest.raises(HTTPError):
            http.get("/", extensions={RETRY: False})  # opens the host's breaker
        breaker = host_breaker(server)
        assert breaker is not None
        held = breaker._wait_ticket()  # another request waits for the probe
        assert held is not None
        with pytest.raises(CircuitOpenError) as info:
            http.get("/")
        assert clock.sleeps == []
        assert "other retries already wait" in info.value.__notes__[-1]
        held.release()
        assert http.get("/").status_code == 200
    assert clock.sleeps == [10.0]


def test_one_bulkhead_per_host_sheds_load_without_retrying(clock: FakeClock) -> None:
    narrow = policy(bulkhead=BulkheadConfig(1), retry=QUICK)
    server = LoopbackServer(Reply(delay=math.inf)).start()
    with client(narrow, base_url=server.url) as http, ThreadPoolExecutor(1) as pool:
        held = pool.submit(http.get, "/slow")
        assert server.wait_for(1)
        with pytest.raises(BulkheadFullError):
            http.get("/fast")
        server.stop()  # the held request now fails: its connection closes unanswered
        with pytest.raises(NetworkError):
            held.result()
    bulkhead = registry.get_bulkhead(breaker_name(server))
    assert bulkhead is not None
    metrics = bulkhead.metrics()
    assert (metrics.active, metrics.rejected) == (0, 1)
    assert [r.path for r in server.requests] == ["/slow"]


def test_fallback_answers_when_everything_failed(clock: FakeClock) -> None:
    cached = Fallback(handler=lambda request: httpx.Response(200, json={"cached": True}))
    with (
        LoopbackServer(500) as server,
        client(policy(fallback=cached), base_url=server.url) as http,
    ):
        response = http.get("/")
    assert response.json() == {"cached": True}
    assert len(server.requests) == 3


def test_switched_off_the_policy_passes_through_but_errors_stay_typed(clock: FakeClock) -> None:
    resilient.set_active(False)
    with (
        LoopbackServer(500, 200) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ServerError),
    ):
        http.get("/")
    assert len(server.requests) == 1
    assert "x-request-id" in server.requests[0].headers


# -- streams ------------------------------------------------------------------------------

SSE = ['data: {"delta": "Hel"}\n\n', 'data: {"delta": "lo"}\n\n']


def test_a_stalled_event_stream_times_out(seen: list[events.Event]) -> None:
    stalled = Reply(events=SSE, stall=math.inf)
    with (
        LoopbackServer(stalled) as server,
        client(policy(), base_url=server.url, inactivity=0.2) as http,
    ):
        got: list[str] = []
        with (
            http.stream("POST", "/v1/chat", json={}) as response,
            pytest.raises(HTTPTimeoutError) as info,
        ):
            got.extend(event.json()["delta"] for event in iter_sse(response))
    assert got == ["Hel", "lo"]
    error = info.value
    assert error.timeout == 0.2
    assert error.status_code == 200
    rid = server.requests[0].headers["x-request-id"]
    assert error.request_id == rid
    assert "went silent for 0.2s" in error.message
    inactive = [e for e in seen if isinstance(e, events.StreamInactive)]
    assert [(e.name, e.policy, e.inactivity, e.request_id) for e in inactive] == [
        (breaker_name(server), "http", 0.2, rid)
    ]


def test_inactivity_per_request_overrides_the_transport() -> None:
    stalled = Reply(events=SSE, stall=math.inf)
    with (
        LoopbackServer(stalled) as server,
        client(policy(), base_url=server.url) as http,
        http.stream("GET", "/", extensions={"resilient.inactivity": 0.2}) as response,
        pytest.raises(HTTPTimeoutError) as info,
    ):
        response.read()
    assert info.value.timeout == 0.2


def test_inactivity_starts_after_the_headers() -> None:
    # Waiting 0.3 s for the headers is the ordinary read timeout's business.
    thinking = Reply(delay=0.3, events=SSE)
    with (
        LoopbackServer(thinking) as server,
        client(policy(), base_url=server.url, inactivity=0.2) as http,
        http.stream("GET", "/") as response,
    ):
        assert [e.data for e in iter_sse(response)] == [s[6:-2] for s in SSE]


def test_a_stream_that_breaks_off_is_a_stream_error() -> None:
    cut = Reply(events=SSE[:1], headers={"Content-Length": "1000"})
    with (
        LoopbackServer(cut) as server,
        client(policy(), base_url=server.url) as http,
        http.stream("GET", "/") as response,
        pytest.raises(StreamError) as info,
    ):
        list(iter_sse(response))
    assert not info.value.is_retryable
    assert info.value.status_code == 200
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


def test_a_non_stream_body_is_guarded_too() -> None:
    with (
        LoopbackServer(Reply(events=SSE, stall=math.inf)) as server,
        client(policy(), base_url=server.url, inactivity=0.2) as http,
        pytest.raises(HTTPTimeoutError),
    ):
        http.get("/")


# -- async ----------------------------------------------------------------------------------


async def test_async_500s_then_success(clock: FakeClock) -> None:
    with LoopbackServer(500, 502, 200) as server:
        async with async_client(policy(), base_url=server.url) as http:
            response = await http.get("/")
    assert response.status_code == 200
    assert clock.sleeps == [1.0, 2.0]
    assert len({r.headers["x-request-id"] for r in server.requests}) == 1


async def test_async_429_with_an_http_date(clock: FakeClock) -> None:
    when = formatdate(resilient._runtime.clock.wall() + 6, usegmt=True)
    with LoopbackServer(Reply(status=429, headers={"Retry-After": when}), 200) as server:
        async with async_client(policy(), base_url=server.url) as http:
            await http.get("/")
    assert clock.sleeps == [6.0]


async def test_async_refused_and_401(clock: FakeClock, refused_url: str) -> None:
    async with async_client(policy()) as http:
        with pytest.raises(NetworkError):
            await http.get(refused_url)
        with LoopbackServer(401) as server, pytest.raises(AuthenticationError):
            await http.get(server.url)
    assert clock.sleeps == [1.0, 2.0]


async def test_async_slow_response_times_out() -> None:
    with LoopbackServer(Reply(delay=math.inf)) as server:
        async with async_client(policy(timeout=0.2, retry=None), base_url=server.url) as http:
            with pytest.raises(HTTPTimeoutError) as info:
                await http.get("/")
    assert info.value.timeout == 0.2


async def test_async_stalled_stream_times_out(seen: list[events.Event]) -> None:
    with LoopbackServer(Reply(events=SSE, stall=math.inf)) as server:
        async with async_client(policy(), base_url=server.url, inactivity=0.2) as http:
            got: list[str] = []

            async def read_all() -> None:
                async with http.stream("GET", "/") as response:
                    async for event in aiter_sse(response):
                        got.append(event.json()["delta"])

            with pytest.raises(HTTPTimeoutError):
                await read_all()
    assert got == ["Hel", "lo"]
    assert [type(e) for e in seen if isinstance(e, events.StreamInactive)] == [
        events.StreamInactive
    ]


async def test_async_stream_that_breaks_off() -> None:
    cut = Reply(events=SSE[:1], headers={"Content-Length": "1000"})
    with LoopbackServer(cut) as server:
        async with (
            async_client(policy(), base_url=server.url) as http,
            http.stream("GET", "/") as response,
        ):
            with pytest.raises(StreamError):
                await response.aread()


async def test_async_cancellation_is_not_a_failure(clock: FakeClock) -> None:
    with LoopbackServer(Reply(delay=math.inf)) as server:
        async with async_client(policy(), base_url=server.url) as http:
            task = asyncio.ensure_future(http.get("/"))
            assert await asyncio.to_thread(server.wait_for, 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert host_breaker(server).metrics().calls == 0  # type: ignore[union-attr]
    assert clock.sleeps == []


# -- classify ---------------------------------------------------------------------------------


def _request() -> httpx.Request:
    return httpx.Request(
        "GET",
        "http://api.test/v1",
        headers={"X-Request-ID": "r-9"},
        extensions={"timeout": {"connect": 1.0, "read": 2.0, "write": 3.0, "pool": 4.0}},
    )


@pytest.mark.parametrize(
    ("exc_type", "cls", "sent"),
    [
        (httpx.ConnectError, NetworkError, False),
        (httpx.ConnectTimeout, HTTPTimeoutError, False),
        (httpx.PoolTimeout, HTTPTimeoutError, False),
        (httpx.ReadTimeout, HTTPTimeoutError, True),
        (httpx.WriteTimeout, HTTPTimeoutError, True),
        (httpx.ReadError, NetworkError, True),
        (httpx.RemoteProtocolError, NetworkError, True),
        (httpx.ProxyError, NetworkError, True),
        (httpx.UnsupportedProtocol, HTTPError, True),
        (httpx.LocalProtocolError, HTTPError, True),
    ],
)
def test_classify_transport_errors(
    exc_type: type[httpx.TransportError], cls: type[HTTPError], sent: bool
) -> None:
    error = classify(exc_type("boom", request=_request()))
    assert type(error) is cls
    assert error.request_sent is sent
    assert error.request_id == "r-9"
    assert error.status_code is None
    assert "on GET http://api.test/v1" in error.message


def test_classify_timeouts_know_their_limit() -> None:
    assert classify(httpx.ConnectTimeout("t", request=_request())).timeout == 1.0  # type: ignore[union-attr]
    assert classify(httpx.ReadTimeout("t", request=_request())).timeout == 2.0  # type: ignore[union-attr]
    assert classify(httpx.PoolTimeout("t", request=_request())).timeout == 4.0  # type: ignore[union-attr]


def test_classify_decoding_error_is_a_stream_error() -> None:
    assert type(classify(httpx.DecodingError("bad gzip", request=_request()))) is StreamError


def test_classify_responses() -> None:
    ok = httpx.Response(204, request=_request())
    assert classify(ok) is None
    limited = httpx.Response(
        429, headers={"Retry-After": "2"}, json={"error": {"message": "x"}}, request=_request()
    )
    error = classify(limited)
    assert isinstance(error, RateLimitError)
    assert (error.retry_after, error.request_id, error.response) == (2.0, "r-9", limited)
    status_error = httpx.HTTPStatusError("500", request=_request(), response=httpx.Response(500))
    assert type(classify(status_error)) is ServerError


def test_classify_unread_stream_leaves_the_body_alone() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"never read"

    response = httpx.Response(502, content=chunks(), request=_request())
    error = classify(response)
    assert error is not None
    assert error.message == "502 Bad Gateway from GET http://api.test/v1"
    assert not response.is_stream_consumed


def test_classify_uses_the_context_request_id_for_a_bare_response() -> None:
    with resilient.request_context("ctx-1"):
        error = classify(httpx.Response(500))
    assert error is not None
    assert error.request_id == "ctx-1"
    assert error.message == "500 Internal Server Error from"


def test_classify_others() -> None:
    error = ServerError("x")
    assert classify(error) is error
    assert classify(ValueError("x")) is None
    assert classify(httpx.StreamConsumed()) is None


# -- construction ------------------------------------------------------------------------------


def test_client_uses_the_policy_timeout_unless_given() -> None:
    with _client(policy(timeout=12.0)) as http:
        assert http.timeout.read == 12.0
    with client(policy(timeout=12.0), timeout=3.0) as http:
        assert http.timeout.read == 3.0


def test_client_passes_transport_options_to_the_wrapped_transport() -> None:
    with client(policy(), verify=False, http1=True) as http:
        transport = http._transport
        assert isinstance(transport, ResilientTransport)
        assert isinstance(transport.transport, httpx.HTTPTransport)
    with pytest.raises(TypeError, match="verify"):
        _client(
            policy(), transport=httpx.MockTransport(lambda r: httpx.Response(200)), verify=False
        )


def test_transport_wraps_any_transport() -> None:
    inner = httpx.MockTransport(lambda request: httpx.Response(503, text="busy"))
    with (
        fake_clock(),
        httpx.Client(transport=ResilientTransport(policy(), transport=inner)) as http,
        pytest.raises(ServerError),
    ):
        http.get("http://mock.test/")


async def test_async_transport_wraps_any_transport() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=request.headers["x-request-id"])

    transport = AsyncResilientTransport(policy(), transport=httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as http:
        with resilient.request_context("abc"):
            response = await http.get("http://mock.test/")
    assert response.text == "abc"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"policy": "api"}, TypeError, "ResilientTransport.policy must be a ResiliencePolicy"),
        ({"inactivity": 0}, ValueError, "ResilientTransport.inactivity must be"),
        ({"inactivity": -1.0}, ValueError, "ResilientTransport.inactivity must be"),
        ({"retry_methods": "GET"}, TypeError, "ResilientTransport.retry_methods must be"),
        ({"name": ""}, ValueError, "ResilientTransport.name must be"),
        ({"transport": httpx.AsyncHTTPTransport()}, TypeError, r"an httpx\.BaseTransport"),
    ],
)
def test_transport_arguments_are_validated(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ResilientTransport(**kwargs)  # type: ignore[arg-type]


def test_async_transport_must_wrap_an_async_transport() -> None:
    with pytest.raises(TypeError, match=r"an httpx\.AsyncBaseTransport"):
        AsyncResilientTransport(transport=httpx.HTTPTransport(verify=False))  # type: ignore[arg-type]


def test_a_bad_inactivity_extension_names_itself() -> None:
    with (
        LoopbackServer(200) as server,
        client(policy(), base_url=server.url) as http,
        pytest.raises(ValueError, match=r"request.extensions\['resilient.inactivity'\] must be"),
    ):
        http.get("/", extensions={"resilient.inactivity": -1})
    assert server.requests == []


def test_default_policy_is_the_default_resilience_policy() -> None:
    assert ResilientTransport().policy == ResiliencePolicy()


def test_without_httpx_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "import resilient.http as h\n"
        "assert h.ServerError('x').is_retryable\n"
        "try:\n"
        "    h.client\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert "pip install 'resilient-kit[http]'" in out.stdout


def test_loopback_server_records_requests_and_repeats_its_last_reply() -> None:
    with (
        LoopbackServer(Reply(status=201), 204) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        codes = [http.post("/a", content=b"x").status_code for _ in range(3)]
        head = http.head("/b")
    assert codes == [201, 204, 204]
    assert head.status_code == 204
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("POST", "/a", b"x"),
        ("POST", "/a", b"x"),
        ("POST", "/a", b"x"),
        ("HEAD", "/b", b""),
    ]
    assert server.url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not been started"):
        _ = LoopbackServer().url
