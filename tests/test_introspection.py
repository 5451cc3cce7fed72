"""Decorated callables keep what introspection reads: every name in
``functools.WRAPPER_ASSIGNMENTS``, ``__defaults__``, ``__kwdefaults__``,
``__wrapped__`` and the signature, whatever the decorator and the kind of
callable."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import resilient
from resilient import Fallback

KEPT = (*functools.WRAPPER_ASSIGNMENTS, "__defaults__", "__kwdefaults__")

DECORATORS: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "breaker": lambda: resilient.with_circuit_breaker("introspected"),
    "retry": lambda: resilient.with_retry(max_attempts=2),
    "timeout": lambda: resilient.with_timeout(5.0),
    "bulkhead": lambda: resilient.with_bulkhead("introspected", max_concurrent=2),
    "fallback": lambda: resilient.with_fallback(0),
    "resilience": lambda: resilient.with_resilience("introspected"),
    "stacked": lambda: lambda fn: Fallback(0)(resilient.with_retry()(fn)),
}


def plain(x: int, y: int = 2, *, z: int = 3) -> int:
    """Twice x."""
    return 2 * x


async def coroutine(x: int, y: int = 2, *, z: int = 3) -> int:
    """Twice x, later."""
    return 2 * x


async def stream(n: int, step: int = 1, *, limit: int = 9) -> AsyncIterator[int]:
    """Counts."""
    yield n


def _same(decorated: object, original: object) -> None:
    for name in KEPT:
        assert getattr(decorated, name) == getattr(original, name), name
    assert decorated.__wrapped__ is original  # type: ignore[attr-defined]
    assert inspect.signature(decorated) == inspect.signature(original)  # type: ignore[arg-type]


@pytest.mark.parametrize("decorator", DECORATORS.values(), ids=DECORATORS.keys())
@pytest.mark.parametrize("fn", [plain, coroutine], ids=["function", "coroutine function"])
def test_functions_keep_every_attribute(
    decorator: Callable[[], Callable[[Any], Any]], fn: Callable[..., Any]
) -> None:
    _same(decorator()(fn), fn)


def test_async_generator_functions_keep_every_attribute() -> None:
    _same(resilient.with_timeout(inactivity=1.0)(stream), stream)


@pytest.mark.parametrize("decorator", DECORATORS.values(), ids=DECORATORS.keys())
def test_methods_classmethods_and_staticmethods_keep_every_attribute(
    decorator: Callable[[], Callable[[Any], Any]],
) -> None:
    def method(self: object, x: int, y: int = 2, *, z: int = 3) -> int:
        """A method."""
        return x

    def build(cls: type, x: int, y: int = 2, *, z: int = 3) -> int:
        """A classmethod."""
        return x

    def parse(x: int, y: int = 2, *, z: int = 3) -> int:
        """A staticmethod."""
        return x

    class Service:
        get = decorator()(method)
        make = decorator()(classmethod(build))
        read = decorator()(staticmethod(parse))

    _same(Service.get, method)
    for name in KEPT:
        assert getattr(Service.make, name) == getattr(build, name), name
        assert getattr(Service().make, name) == getattr(build, name), name
        assert getattr(Service.read, name) == getattr(parse, name), name
    assert Service().make(1) == Service.read(1) == Service().get(1) == 1
