"""with_failover and weighed rate limits keep every signature exactly."""

from typing import Any

from resilient import Failover, RetryConfig, with_failover, with_rate_limit


def backup(prompt: str, *, max_tokens: int = 256) -> str:
    return ""


async def abackup(prompt: str) -> bytes:
    return b""


@with_failover("llm", [backup])
@with_rate_limit("tpm", rate=1000, cost=lambda prompt, max_tokens=256: len(prompt) + max_tokens)
def complete(prompt: str, *, max_tokens: int = 256) -> str:
    return ""


@with_failover("llm-async", [abackup], on=(TimeoutError,))
@with_rate_limit("otpm", rate=1000, cost=100, actual=len)
async def acomplete(prompt: str) -> bytes:
    return b""


def wait(attempt: int, error: BaseException | None, result: Any) -> float | None:
    return None


reveal_type(complete)  # N: Revealed type is "def (prompt: str, *, max_tokens: int =) -> str"
reveal_type(acomplete)  # N: Revealed type is "def (prompt: str) -> typing.Coroutine[Any, Any, bytes]"
reveal_type(Failover("x", [backup]).metrics().answered)  # N: Revealed type is "typing.Mapping[str, int]"
reveal_type(RetryConfig(wait=wait).wait)  # N: Revealed type is "(def (int, BaseException | None, Any) -> float | None) | None"

complete(1)  # E: Argument 1 to "complete" has incompatible type "int"; expected "str"  [arg-type]
with_rate_limit("tpm", rate=1, cost="many")  # E: Argument "cost" to "with_rate_limit" has incompatible type "str"; expected "Callable[..., float] | float | None"  [arg-type]
