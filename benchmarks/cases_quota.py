"""Benchmark cases of provider quotas and failover (registered into
``cases.CASES`` on import): a weighed rate limit against a count limit,
three stacked limits against one, failover with a healthy primary against
the primary's own stack, a failover skipping a primary whose breaker is
open against a bare open rejection, and the quota headers' parsing (an
extra: microseconds per response).

Every limiter admits each call (its rate is 10⁹ a second, its burst as
large), so what is measured is the cost of admitting a call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .cases import case, fail, trip, work
from .cases_limits import LIMITER, RATE

__all__: list[str] = []

WEIGHED = "weighed rate limiter"
STACKED = "three stacked rate limits"
PRIMARY = "failover's primary stack"
FAILOVER = "failover, healthy primary"
SKIP = "failover skips an open breaker"
QUOTA_PARSE = "quota header parsing"


def _cost(x: int) -> float:
    return 1.0


def _weighed(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_rate_limit

    return with_rate_limit(name, rate=RATE, cost=_cost)(fn)


def _stacked(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_rate_limit

    fn = with_rate_limit(f"{name}-otpm", rate=RATE, cost=_cost, actual=lambda r: 1.0)(fn)
    fn = with_rate_limit(f"{name}-itpm", rate=RATE, cost=_cost)(fn)
    return with_rate_limit(f"{name}-rpm", rate=RATE)(fn)


def _primary(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_circuit_breaker, with_rate_limit

    return with_circuit_breaker(name)(with_rate_limit(name, rate=RATE)(fn))


def _failover(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_failover

    return with_failover(name, [work])(_primary(fn, f"{name}-primary"))


def _skipping(name: str) -> Any:
    """A failover whose primary's breaker is open: every call is rejected by
    it, and the alternate answers."""
    from resilient import with_circuit_breaker, with_failover

    primary = trip(with_circuit_breaker(name, failure_threshold=5, recovery_timeout=30.0)(fail))
    return with_failover(name, [work], on=lambda error: True)(primary)


#: A response's headers as an OpenAI-style API sends them: six quota
#: headers among the usual ones.
HEADERS = [
    ("date", "Mon, 07 Dec 2026 03:00:00 GMT"),
    ("content-type", "application/json"),
    ("transfer-encoding", "chunked"),
    ("connection", "keep-alive"),
    ("openai-organization", "org-bench"),
    ("openai-processing-ms", "412"),
    ("openai-version", "2020-10-01"),
    ("strict-transport-security", "max-age=15724800; includeSubDomains"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-limit-tokens", "2000000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-remaining-tokens", "0"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-reset-tokens", "6m0s"),
    ("x-request-id", "req_0123456789abcdef"),
    ("cf-cache-status", "DYNAMIC"),
    ("server", "cloudflare"),
]


def quota_parse_us(rounds: int = 20000) -> dict[str, float]:
    """Microseconds ``exhausted_for`` takes per response (the best of 5)."""
    import time

    from resilient.http._quota import exhausted_for

    now = time.time()
    assert exhausted_for(HEADERS, now) == 360.0
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            exhausted_for(HEADERS, now)
        best = min(best, (time.perf_counter() - start) / rounds)
    return {QUOTA_PARSE: best * 1e6}


_count = f"sync {LIMITER}: resilient"
case("sync", WEIGHED, "resilient", features=("with_failover",), also=(_count,))(
    functools.partial(_weighed, work, "bench-weighed")
)
case(
    "sync",
    STACKED,
    "resilient",
    features=("with_failover",),
    also=(_count,),
    extra=quota_parse_us,
)(functools.partial(_stacked, work, "bench-stacked"))
case("sync", PRIMARY, "resilient", features=("with_failover",))(
    functools.partial(_primary, work, "bench-primary")
)
case(
    "sync", FAILOVER, "resilient", features=("with_failover",), also=(f"sync {PRIMARY}: resilient",)
)(functools.partial(_failover, work, "bench-failover"))
case("sync", SKIP, "resilient", features=("with_failover",), also=("sync rejection: resilient",))(
    functools.partial(_skipping, "bench-skip")
)
