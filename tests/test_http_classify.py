"""The pure HTTP rules: status to error, Retry-After, error details."""

from __future__ import annotations

import pickle
from email.utils import formatdate

import pytest

from resilient import CallTimeoutError, ResilienceError
from resilient.http import (
    AuthenticationError,
    HTTPError,
    HTTPTimeoutError,
    NetworkError,
    RateLimitError,
    ServerError,
    StreamError,
    ValidationError,
    parse_retry_after,
)
from resilient.http._classify import detail, error_class, error_for_status, retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (200, None),
        (204, None),
        (304, None),
        (399, None),
        (400, ValidationError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, HTTPError),
        (408, HTTPTimeoutError),
        (409, HTTPError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (599, ServerError),
    ],
)
def test_error_class_by_status(status: int, cls: type[HTTPError] | None) -> None:
    assert error_class(status) is cls


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (NetworkError, True),
        (HTTPTimeoutError, True),
        (RateLimitError, True),
        (ServerError, True),
        (AuthenticationError, False),
        (ValidationError, False),
        (StreamError, False),
        (HTTPError, False),
    ],
)
def test_which_errors_are_retryable(cls: type[HTTPError], retryable: bool) -> None:
    error = cls("boom", request_id="r-1", status_code=None)
    assert error.is_retryable is retryable
    assert isinstance(error, ResilienceError)
    assert error.message == "boom"
    assert error.request_id == "r-1"
    assert error.status_code is None


def test_timeout_error_is_also_a_call_timeout_and_builtin_timeout() -> None:
    error = HTTPTimeoutError("read timeout", timeout=2.5)
    assert isinstance(error, CallTimeoutError)
    assert isinstance(error, TimeoutError)
    assert error.timeout == 2.5
    assert str(error) == "read timeout"


def test_network_error_is_also_a_builtin_connection_error() -> None:
    error = NetworkError("refused", request_id="r")
    assert isinstance(error, ConnectionError)
    assert str(error) == "refused [request id r]"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NetworkError
    assert copy.request_id == "r"


def test_str_carries_the_request_id() -> None:
    assert (
        str(ServerError("502 Bad Gateway", request_id="abc")) == "502 Bad Gateway [request id abc]"
    )


def test_errors_pickle_without_the_httpx_objects() -> None:
    error = HTTPTimeoutError(
        "t", timeout=2.0, request_id="x", status_code=None, response=object(), request=object()
    )
    error.request_sent = False
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is HTTPTimeoutError
    assert (copy.message, copy.timeout, copy.request_id, copy.request_sent) == (
        "t",
        2.0,
        "x",
        False,
    )
    assert copy.response is None
    assert copy.request is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date_in_every_allowed_form() -> None:
    # RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms.
    when = NOW + 90
    imf = formatdate(when, usegmt=True)
    assert parse_retry_after(imf, NOW) == 90.0
    assert parse_retry_after("Tuesday, 14-Nov-23 22:14:50 GMT", 1_699_999_990.0) == 100.0
    assert parse_retry_after("Tue Nov 14 22:14:50 2023", 1_699_999_990.0) == 100.0


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after(formatdate(NOW - 60, usegmt=True), NOW) == 0.0


def test_retry_after_ms_wins_and_bad_ms_falls_back() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "1"}, NOW) == 0.25
    assert retry_after({"retry-after-ms": "later", "retry-after": "2"}, NOW) == 2.0
    assert retry_after({}, NOW) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "Rate limit reached", "type": "requests"}}', "Rate limit reached"),
        (
            b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            "Overloaded",
        ),
        (b'{"message": "bad key"}', "bad key"),
        (b'{"detail": "Not authenticated"}', "Not authenticated"),
        (b'{"error": "invalid_grant", "error_description": "expired"}', "expired"),
        (b'{"error": "invalid_grant"}', "invalid_grant"),
        (
            b'{"detail": [{"loc": ["body"], "msg": "field required"}]}',
            '{"detail": [{"loc": ["body"], "msg": "field required"}]}',
        ),
        (b"  upstream\n  connect error  ", "upstream connect error"),
        (b"", ""),
        (b"\xff\xfe", "\ufffd\ufffd"),
    ],
)
def test_detail_finds_the_message(body: bytes, expected: str) -> None:
    assert detail(body) == expected


def test_detail_is_bounded() -> None:
    text = detail(b"x" * 10_000)
    assert len(text) == 200
    assert text.endswith("...")


def test_error_for_status_builds_the_whole_error() -> None:
    error = error_for_status(
        429,
        reason="Too Many Requests",
        method="POST",
        url="https://api.example.com/v1/chat",
        headers={"retry-after": "3"},
        body=b'{"error": {"message": "slow down"}}',
        now=NOW,
        request_id="req-9",
    )
    assert isinstance(error, RateLimitError)
    assert (
        error.message
        == "429 Too Many Requests from POST https://api.example.com/v1/chat: slow down"
    )
    assert error.status_code == 429
    assert error.retry_after == 3.0
    assert error.request_id == "req-9"


def test_error_for_status_below_400_is_none() -> None:
    assert (
        error_for_status(302, reason="Found", method="GET", url="u", headers={}, body=b"", now=NOW)
        is None
    )


def test_retry_after_is_read_on_503_too() -> None:
    error = error_for_status(
        503,
        reason="Service Unavailable",
        method="GET",
        url="u",
        headers={"retry-after": "5"},
        body=b"",
        now=NOW,
    )
    assert isinstance(error, ServerError)
    assert error.retry_after == 5.0
