"""``connect_sse`` / ``aconnect_sse``: server-sent events that resume with
``Last-Event-ID`` after a break, honouring the server's ``retry:`` field,
within the client policy's attempts."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("httpx")

from resilient import Registry, ResiliencePolicy, RetryConfig
from resilient.http import (
    HTTPTimeoutError,
    StreamError,
    aconnect_sse,
    async_client,
    client,
    connect_sse,
)
from resilient.http.testing import LoopbackServer, Reply, event
from resilient.testing import instant_waits


def _policy(attempts: int = 3) -> ResiliencePolicy:
    return ResiliencePolicy(retry=RetryConfig(max_attempts=attempts, jitter=0.0))


def test_a_broken_stream_with_ids_resumes_from_the_last_id() -> None:
    script = (
        Reply(events=[event("a", id="1"), event("b", id="2", retry=250)], broken=True),
        Reply(events=[event("c", id="3")]),
    )
    with LoopbackServer(*script) as server, instant_waits() as waits:
        http = client(_policy(), base_url=server.url, registry=Registry())
        with http, connect_sse(http, "GET", "/events") as source:
            data = [e.data for e in source.iter_sse()]
    assert data == ["a", "b", "c"]  # nothing repeated, nothing lost
    first, second = server.requests
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "2"
    assert second.headers["x-request-id"] == first.headers["x-request-id"]
    assert first.headers["accept"] == "text/event-stream"
    assert waits.delays == [0.25]  # the server's retry: field


def test_without_a_retry_field_the_policy_backoff_is_waited() -> None:
    script = (
        Reply(events=[event("a", id="1")], broken=True),
        Reply(events=[event("b", id="2")], broken=True),
        Reply(events=[event("c", id="3")]),
    )
    policy = ResiliencePolicy(
        retry=RetryConfig(max_attempts=3, initial_delay=0.5, multiplier=2.0, jitter=0.0)
    )
    with LoopbackServer(*script) as server, instant_waits() as waits:
        http = client(policy, base_url=server.url, registry=Registry())
        with http, connect_sse(http, "GET", "/events") as source:
            data = [e.data for e in source.iter_sse()]
    assert data == ["a", "b", "c"]
    assert waits.delays == [0.5, 1.0]


def test_without_ids_a_break_after_the_first_event_raises() -> None:
    script = (Reply(events=[event("a")], broken=True), Reply(events=[event("b")]))
    got: list[str] = []
    with LoopbackServer(*script) as server, instant_waits():
        http = client(_policy(), base_url=server.url, registry=Registry())
        with http, connect_sse(http, "GET", "/events") as source:

            def consume() -> None:
                for e in source.iter_sse():
                    got.append(e.data)

            with pytest.raises(StreamError) as info:
                consume()
        assert len(server.requests) == 1
    assert got == ["a"]
    assert any("no event ids" in note for note in info.value.__notes__)


def test_resuming_stops_after_the_policy_attempts() -> None:
    broken = Reply(events=[event("x", id="1")], broken=True)
    with LoopbackServer(broken) as server, instant_waits():
        http = client(_policy(attempts=2), base_url=server.url, registry=Registry())
        with http, connect_sse(http, "GET", "/events") as source:

            def consume() -> list[str]:
                return [e.data for e in source.iter_sse()]

            with pytest.raises(StreamError):
                consume()
        assert len(server.requests) == 2


def test_a_stall_past_the_inactivity_limit_resumes() -> None:
    script = (
        Reply(events=[event("a", id="1", retry=0)], stall=math.inf),
        Reply(events=[event("b", id="2")]),
    )
    with LoopbackServer(*script) as server:
        http = client(_policy(), base_url=server.url, inactivity=0.5, registry=Registry())
        with http, connect_sse(http, "GET", "/events") as source:
            data = [e.data for e in source.iter_sse()]
        assert server.requests[1].headers["last-event-id"] == "1"
    assert data == ["a", "b"]


async def test_the_async_source_resumes_too() -> None:
    script = (
        Reply(events=[event("a", id="7")], broken=True),
        Reply(events=[event("b", id="8")]),
    )
    with LoopbackServer(*script) as server, instant_waits():
        http = async_client(_policy(), base_url=server.url, registry=Registry())
        async with http, aconnect_sse(http, "GET", "/events") as source:
            data = [e.data async for e in source.aiter_sse()]
        assert server.requests[1].headers["last-event-id"] == "7"
    assert data == ["a", "b"]


def test_a_silent_server_times_out_without_ids() -> None:
    script = (Reply(events=[event("a")], stall=math.inf),)
    with LoopbackServer(*script) as server:
        http = client(_policy(), base_url=server.url, inactivity=0.3, registry=Registry())
        with http, connect_sse(http, "GET", "/events") as source:

            def consume() -> list[str]:
                return [e.data for e in source.iter_sse()]

            with pytest.raises(HTTPTimeoutError):
                consume()
