"""Checked by mypy --strict (tests/test_typing.py), never run: decorated
functions keep their exact signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any, assert_type

from resilient import (
    Fallback,
    Retry,
    RetryConfig,
    Timeout,
    with_fallback,
    with_retry,
    with_timeout,
)


@with_retry(max_attempts=2)
def fetch(user: int, *, fresh: bool = False) -> dict[str, int]:
    return {"user": user}


@with_retry(RetryConfig.DEFAULT)
async def afetch(user: int) -> str:
    return str(user)


@with_timeout(1.0)
def query(sql: str) -> list[tuple[int, ...]]:
    return []


@with_timeout(inactivity=5.0)
async def tokens(prompt: str) -> AsyncIterator[str]:
    yield prompt


@with_fallback(0)
def price(sku: str) -> int:
    return 1


@Retry()
@Timeout(2.0)
@Fallback(handler=lambda user: "")
def stacked(user: int) -> str:
    return str(user)


class Service:
    @with_retry()
    def get(self, key: str) -> bytes:
        return b""

    @classmethod
    @with_fallback(handler=lambda cls, n: n)
    def build(cls, n: int) -> int:
        return n

    @staticmethod
    @with_timeout(1.0)
    def pure(n: int) -> float:
        return n / 2


assert_type(fetch(1, fresh=True), dict[str, int])
pending = afetch(1)
checked = assert_type(pending, Coroutine[Any, Any, str])  # pyright: ignore[reportAssertTypeFailure]  (pyright says CoroutineType, its subclass)
pending.close()
assert_type(query("select 1"), list[tuple[int, ...]])
assert_type(tokens("hi"), AsyncIterator[str])
assert_type(price("a"), int)
assert_type(stacked(1), str)
assert_type(Service().get("k"), bytes)
assert_type(Service.build(3), int)
assert_type(Service.pure(3), float)
assert_type(Retry().call(fetch, 1, fresh=False), dict[str, int])
assert_type(Timeout(1).call(query, "x"), list[tuple[int, ...]])
assert_type(Fallback(1).call(price, "a"), int)


async def use() -> None:
    assert_type(await Retry().call_async(afetch, 1), str)
    assert_type(await Timeout(1).call_async(afetch, 1), str)
    assert_type(await Fallback("").call_async(afetch, 1), str)


fetch("not an int")  # type: ignore[arg-type]
price(1)  # type: ignore[arg-type]
Service().get(1)  # type: ignore[arg-type]
Retry().call(fetch, "x")  # type: ignore[arg-type]
RetryConfig(jitter="full")
RetryConfig(jitter=0.2)
RetryConfig(jitter="gaussian")  # type: ignore[arg-type]
