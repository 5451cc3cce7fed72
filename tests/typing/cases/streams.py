"""Every decorator keeps a generator function's and an async generator
function's exact type: its parameters and its item type."""

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import assert_type

from resilient import (
    Retry,
    with_bulkhead,
    with_circuit_breaker,
    with_fallback,
    with_hedging,
    with_rate_limit,
    with_resilience,
    with_retry,
    with_timeout,
)


@with_resilience("typing-streams")
@with_retry()
@with_circuit_breaker("typing-streams")
@with_bulkhead("typing-streams", max_concurrent=2)
@with_rate_limit("typing-streams", rate=10.0)
@with_timeout(first_item=1.0, inactivity=1.0)
@with_fallback(handler=lambda prompt, *, tokens=16: iter(["..."]))
@with_hedging(0.5)
async def tokens(prompt: str, *, limit: int = 16) -> AsyncIterator[str]:
    yield prompt


@with_retry()
@with_circuit_breaker("typing-sync-streams")
def lines(path: str) -> Iterator[bytes]:
    yield b""


@with_resilience("typing-gen")
def generated(n: int) -> Generator[int, None, str]:
    yield n
    return "done"


@with_timeout(inactivity=1.0)
async def agenerated(n: int) -> AsyncGenerator[int, None]:
    yield n


async def consume() -> None:
    assert_type(tokens("hi", limit=3), AsyncIterator[str])
    async for token in tokens("hi", limit=3):
        assert_type(token, str)
    for line in lines("x"):
        assert_type(line, bytes)
    assert_type(generated(1), Generator[int, None, str])
    assert_type(agenerated(1), AsyncGenerator[int, None])
    stream = await Retry().call_async(tokens, "hi")
    assert_type(stream, AsyncIterator[str])
    assert_type(Retry().call(lines, "x"), Iterator[bytes])


def wrong() -> None:
    tokens(3)  # type: ignore[arg-type]
    lines(b"x")  # type: ignore[arg-type]
