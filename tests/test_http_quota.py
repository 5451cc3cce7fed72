"""Quota hints: the header families read (table-driven, real samples and
malformed values), a host's quota state in the httpx transports, and a 429
as the host's quota, never its breaker's failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from resilient import (
    CircuitBreakerConfig,
    CircuitState,
    RateLimitExceededError,
    ResiliencePolicy,
    RetryConfig,
    registry,
)
from resilient.http import RateLimitError
from resilient.http import async_client as _async_client
from resilient.http import client as _client
from resilient.http._quota import QuotaState, exhausted_for, parse_duration
from resilient.http.testing import LoopbackServer, Reply
from resilient.testing import FakeClock, fake_clock

NOW = 1_700_000_000.0  # the fake clock's wall time: 2023-11-14T22:13:20Z


# -- the parser ------------------------------------------------------------------------

SPENT: list[tuple[str, dict[str, str], float | None]] = [
    (
        "openai-requests-spent",
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        1.0,
    ),
    (
        "openai-tokens-spent",
        {
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        360.0,
    ),
    (
        "openai-both-spent-longest-wins",
        {
            "X-RateLimit-Remaining-Requests": "0",
            "X-RateLimit-Remaining-Tokens": "0",
            "X-RateLimit-Reset-Requests": "20ms",
            "X-RateLimit-Reset-Tokens": "1m30.5s",
        },
        90.5,
    ),
    (
        "openai-nothing-spent",
        {"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "1s"},
        None,
    ),
    (
        "anthropic-requests-spent",
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:50Z",
            "anthropic-ratelimit-tokens-remaining": "9000",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:14:20Z",
        },
        30.0,
    ),
    (
        "anthropic-input-and-output-tokens",
        {
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:25+00:00",
            "anthropic-ratelimit-output-tokens-remaining": "0",
            "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:32Z",
        },
        12.0,
    ),
    (
        "anthropic-reset-in-the-past",
        {
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:00:00Z",
        },
        0.0,
    ),
    ("ietf-list-spent", {"RateLimit": '"default";r=0;t=30'}, 30.0),
    (
        "ietf-list-with-policy",
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "day";q=1000;w=86400',
            "RateLimit": '"burst";r=50;t=12',
        },
        None,
    ),
    ("ietf-list-two-quotas", {"RateLimit": '"burst";r=3;t=1, "day";r=0;t=3600'}, 3600.0),
    ("ietf-dictionary", {"RateLimit": "limit=100, remaining=0, reset=45"}, 45.0),
    ("ietf-separate-fields", {"RateLimit-Remaining": "0", "RateLimit-Reset": "12"}, 12.0),
    (
        "github-unix-reset",
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 600)},
        600.0,
    ),
    ("no-quota-headers", {"content-type": "application/json", "retry-after": "3"}, None),
]

MALFORMED: list[tuple[str, dict[str, str]]] = [
    (
        "remaining-not-a-number",
        {"x-ratelimit-remaining-requests": "none", "x-ratelimit-reset-requests": "1s"},
    ),
    (
        "remaining-nan",
        {"x-ratelimit-remaining-requests": "NaN", "x-ratelimit-reset-requests": "1s"},
    ),
    (
        "reset-not-a-duration",
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "soon"},
    ),
    ("reset-unknown-unit", {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6x"}),
    ("reset-negative", {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "-5"}),
    ("reset-empty", {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": ""}),
    ("reset-overflows", {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1e400"}),
    ("reset-missing", {"x-ratelimit-remaining-tokens": "0"}),
    (
        "anthropic-not-a-date",
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "tomorrow",
        },
    ),
    (
        "anthropic-no-timezone",
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:50",
        },
    ),
    ("ietf-garbage", {"RateLimit": ';;;=,,"unterminated;r=;t='}),
    ("ietf-no-reset", {"RateLimit": '"default";r=0'}),
    ("ietf-bad-numbers", {"RateLimit": '"default";r=zero;t=later'}),
    ("unicode-digits", {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "٣s"}),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [(h, e) for _, h, e in SPENT], ids=[i for i, _, _ in SPENT]
)
def test_the_header_families_say_how_long_a_spent_quota_lasts(
    headers: dict[str, str], expected: float | None
) -> None:
    assert exhausted_for(headers.items(), NOW) == pytest.approx(expected)


@pytest.mark.parametrize("headers", [h for _, h in MALFORMED], ids=[i for i, _ in MALFORMED])
def test_a_malformed_header_is_ignored_never_an_error(headers: dict[str, str]) -> None:
    assert exhausted_for(headers.items(), NOW) is None


def test_header_names_are_read_in_any_case_and_remembered_within_a_bound() -> None:
    from resilient.http import _quota

    spent = [("X-RateLimit-Remaining-Tokens", "0"), ("x-ratelimit-reset-tokens", "6m0s")]
    for _ in range(2):  # the second time from what was remembered
        assert exhausted_for(spent, NOW) == 360.0
    invented = [(f"x-trace-{i}", "1") for i in range(3 * _quota._NAMES_KEPT)]
    assert exhausted_for([*invented, *spent], NOW) == 360.0
    assert len(_quota._names) <= _quota._NAMES_KEPT


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2.5", 2.5),
        ("0", 0.0),
        (" 7s ", 7.0),
        ("", None),
        ("s", None),
        ("1s2", None),
        ("-1s", None),
        ("inf", None),
        ("1d", None),
    ],
    ids=lambda v: repr(v),
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_a_host_state_only_moves_later() -> None:
    state = QuotaState()
    assert state.left(0.0) == 0.0
    state.spent_for(30.0, 10.0)
    state.spent_for(5.0, 10.0)  # an earlier reset never shortens a longer one
    assert state.left(20.0) == 20.0
    assert state.left(40.0) == 0.0


# -- the transports -------------------------------------------------------------------


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


def _policy(max_delay: float = 60.0, **fields: Any) -> ResiliencePolicy:
    retry = RetryConfig(max_attempts=3, initial_delay=1.0, max_delay=max_delay, jitter=0.0)
    base: dict[str, Any] = {"retry": retry, "timeout": 5.0}
    base.update(fields)
    return ResiliencePolicy(**base)


SPENT_30S = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}


def make(p: ResiliencePolicy, url: str, **kw: Any) -> httpx.Client:
    return _client(p, base_url=url, verify=False, **kw)


def test_a_host_announcing_nothing_left_receives_no_request_until_the_reset(
    clock: FakeClock,
) -> None:
    with LoopbackServer(Reply(headers=SPENT_30S), 200) as server:
        with make(_policy(max_delay=10.0), server.url) as http:
            assert http.get("/").status_code == 200
            with pytest.raises(RateLimitExceededError) as caught:
                http.get("/")  # its retry would not wait 30 s: at once, unsent
            assert caught.value.retry_after == pytest.approx(30.0)
            clock.advance(19.0)
            with pytest.raises(RateLimitExceededError) as again:
                http.get("/")
            assert again.value.retry_after == pytest.approx(11.0)
            assert len(server.requests) == 1
            clock.advance(10.5)  # 0.5 s left: within max_delay, so it waits, then sends
            assert http.get("/").status_code == 200
        assert len(server.requests) == 2
        assert clock.delays == [0.5]
        assert clock.now() == 30.0


def test_a_request_waits_for_the_reset_when_its_retry_would_wait_that_long(
    clock: FakeClock,
) -> None:
    with LoopbackServer(Reply(headers=SPENT_30S), 200) as server:
        with make(_policy(max_delay=60.0), server.url) as http:
            http.get("/")
            assert http.get("/").status_code == 200
        assert clock.delays == [30.0]
        assert len(server.requests) == 2


def test_a_request_that_may_not_be_retried_fails_at_once(clock: FakeClock) -> None:
    with LoopbackServer(Reply(headers=SPENT_30S), 200) as server:
        with make(_policy(), server.url) as http:
            http.get("/")
            with pytest.raises(RateLimitExceededError):
                http.get("/", extensions={"resilient.retry": False})
        assert len(server.requests) == 1


def test_quota_headers_false_sends_anyway(clock: FakeClock) -> None:
    with LoopbackServer(Reply(headers=SPENT_30S), 200) as server:
        with make(_policy(max_delay=10.0), server.url, quota_headers=False) as http:
            http.get("/")
            assert http.get("/").status_code == 200
        assert len(server.requests) == 2


def test_quota_state_is_per_host(clock: FakeClock) -> None:
    with (
        LoopbackServer(Reply(headers=SPENT_30S)) as spent,
        LoopbackServer(200) as other,
        make(_policy(max_delay=10.0), spent.url) as http,
    ):
        http.get("/")
        assert http.get(f"{other.url}/").status_code == 200
        with pytest.raises(RateLimitExceededError):
            http.get("/")


def test_a_429_is_the_hosts_quota_not_a_breaker_failure(clock: FakeClock) -> None:
    limited = Reply(status=429, headers={"Retry-After": "2"})
    breaker = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60.0)
    with LoopbackServer(limited, limited, 200) as server:
        with make(_policy(circuit_breaker=breaker), server.url) as http:
            assert http.get("/").status_code == 200  # retried by its Retry-After
        assert clock.delays == [2.0, 2.0]
        host = server.url.removeprefix("http://")
        assert registry.get("http", key=host).state is CircuitState.CLOSED  # type: ignore[union-attr]


def test_a_429_holds_the_host_for_other_requests_until_its_retry_after(clock: FakeClock) -> None:
    limited = Reply(status=429, headers={"Retry-After": "20"})
    no_retry = ResiliencePolicy(retry=None, timeout=5.0)
    with LoopbackServer(limited, 200) as server, make(no_retry, server.url) as http:
        with pytest.raises(RateLimitError):
            http.get("/")
        with pytest.raises(RateLimitExceededError) as caught:
            http.get("/")
        assert caught.value.retry_after == pytest.approx(20.0)
        assert len(server.requests) == 1
        clock.advance(20.0)
        assert http.get("/").status_code == 200


async def test_async_transport_holds_requests_while_the_quota_is_spent(clock: FakeClock) -> None:
    anthropic = {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:35Z",  # 15 s after NOW
    }
    with LoopbackServer(Reply(headers=anthropic), 200) as server:
        async with _async_client(
            _policy(max_delay=10.0), base_url=server.url, verify=False
        ) as http:
            await http.get("/")
            with pytest.raises(RateLimitExceededError) as caught:
                await http.get("/")
            assert caught.value.retry_after == pytest.approx(15.0)
            assert len(server.requests) == 1
    with LoopbackServer(Reply(headers=anthropic), 200) as server:
        async with _async_client(
            _policy(max_delay=60.0), base_url=server.url, verify=False
        ) as http:
            await http.get("/")
            assert (await http.get("/")).status_code == 200
        assert clock.delays == [15.0]


def test_quota_headers_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="quota_headers"):
        _client(ResiliencePolicy(), quota_headers="yes")  # type: ignore[arg-type]


def test_switched_off_the_quota_holds_nothing_back(clock: FakeClock) -> None:
    import resilient

    with LoopbackServer(Reply(headers=SPENT_30S), 200) as server:
        with make(_policy(max_delay=10.0), server.url) as http:
            http.get("/")
            resilient.set_active(False)
            try:
                assert http.get("/").status_code == 200
            finally:
                resilient.set_active(True)
        assert len(server.requests) == 2
