"""with_rate_limit, a RateLimiter used as a decorator, per-key breakers and a
retry budget keep every signature exactly."""

from resilient import (
    RateLimitConfig,
    RateLimiter,
    RetryBudget,
    RetryConfig,
    registry,
    with_circuit_breaker,
    with_rate_limit,
    with_retry,
)

limiter = RateLimiter("typing", RateLimitConfig(10, burst=2))
budget = registry.retry_budget("typing", ratio=0.1)


@with_rate_limit("quota", rate=5, max_wait=1.0)
def fetch(url: str, *, retries: int = 3) -> bytes:
    return b""


@limiter
async def afetch(url: str, *, retries: int = 3) -> bytes:
    return b""


@with_circuit_breaker("hosts", key=lambda host, path: host, max_keys=64)
def get(host: str, path: str) -> int:
    return 0


@with_retry(RetryConfig(budget=budget))
async def retried(x: int) -> str:
    return ""


class Client:
    @with_circuit_breaker("tenants", key=lambda self, tenant: tenant)
    def search(self, tenant: str) -> list[str]:
        return []


reveal_type(fetch)  # N: Revealed type is "def (url: str, *, retries: int =) -> bytes"
reveal_type(afetch)  # N: Revealed type is "def (url: str, *, retries: int =) -> typing.Coroutine[Any, Any, bytes]"
reveal_type(get)  # N: Revealed type is "def (host: str, path: str) -> int"
reveal_type(retried)  # N: Revealed type is "def (x: int) -> typing.Coroutine[Any, Any, str]"
reveal_type(Client().search)  # N: Revealed type is "def (tenant: str) -> list[str]"
reveal_type(limiter.call(fetch, "u"))  # N: Revealed type is "bytes"
reveal_type(limiter.metrics().available)  # N: Revealed type is "int"
reveal_type(budget)  # N: Revealed type is "resilient.retry.budget.RetryBudget"
reveal_type(RetryBudget(ratio=0.5).available())  # N: Revealed type is "int"

fetch(1)  # E: Argument 1 to "fetch" has incompatible type "int"; expected "str"  [arg-type]
get("h")  # E: Missing positional argument "path" in call to "get"  [call-arg]
