"""Checked by mypy --strict (tests/test_typing.py), never run: functions
decorated with with_bulkhead and with_resilience keep their exact signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any, assert_type

from resilient import (
    Bulkhead,
    BulkheadConfig,
    Fallback,
    Resilience,
    ResiliencePolicies,
    ResiliencePolicy,
    registry,
    with_bulkhead,
    with_resilience,
)


@with_bulkhead("db", max_concurrent=10, max_queue=5)
def query(sql: str, *, limit: int = 10) -> list[tuple[int, ...]]:
    return []


@with_bulkhead(Bulkhead("ai", BulkheadConfig(2)))
async def complete(prompt: str) -> str:
    return prompt


@Bulkhead("stream", max_concurrent=1)
async def tokens(prompt: str) -> AsyncIterator[str]:
    yield prompt


@with_resilience("api", ResiliencePolicies.api(), timeout=5.0)
def fetch(user: int) -> dict[str, int]:
    return {"user": user}


@with_resilience("ai", ResiliencePolicy(fallback=Fallback(value="")))
async def answer(question: str) -> str:
    return question


class Service:
    @with_resilience("svc")
    def get(self, key: str) -> bytes:
        return b""

    @classmethod
    @with_bulkhead("svc", max_concurrent=1)
    def build(cls, n: int) -> int:
        return n


assert_type(query("select 1", limit=1), list[tuple[int, ...]])
pending = complete("hi")
checked = assert_type(pending, Coroutine[Any, Any, str])  # pyright: ignore[reportAssertTypeFailure]  (pyright says CoroutineType, its subclass)
pending.close()
assert_type(tokens("hi"), AsyncIterator[str])
assert_type(fetch(1), dict[str, int])
assert_type(Service().get("k"), bytes)
assert_type(Service.build(3), int)
assert_type(Bulkhead("x", max_concurrent=1).call(query, "x"), list[tuple[int, ...]])
assert_type(Resilience("x").call(fetch, 1), dict[str, int])
assert_type(registry.bulkhead("db", max_concurrent=10, max_queue=5), Bulkhead)


async def use() -> None:
    assert_type(await answer("q"), str)
    assert_type(await Bulkhead("x", max_concurrent=1).call_async(complete, "p"), str)
    assert_type(await Resilience("x").call_async(complete, "p"), str)


query(1)  # type: ignore[arg-type]
fetch("1")  # type: ignore[arg-type]
Service().get(1)  # type: ignore[arg-type]
Resilience("x").call(fetch, "x")  # type: ignore[arg-type]
ResiliencePolicy(timeout="5")  # type: ignore[arg-type]
