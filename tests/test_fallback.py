from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import resilient
from resilient import Fallback, FallbackUsed, with_fallback
from resilient.events import CallStarted, CallSucceeded, Event


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    events: list[Event] = []
    unsubscribe = resilient.subscribe(events.append)
    yield events
    unsubscribe()


def fails(error: BaseException) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise error

    return call


# -- configuration ----------------------------------------------------------------


def test_exactly_one_of_value_or_handler() -> None:
    with pytest.raises(TypeError, match="exactly one"):
        Fallback()
    with pytest.raises(TypeError, match="exactly one"):
        Fallback(1, handler=lambda: 2)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"handler": 3}, ["Fallback.handler", "3"]),
        ({"value": 1, "on": "KeyError"}, ["Fallback.on", "'KeyError'"]),
        ({"value": 1, "on": (KeyError, int)}, ["Fallback.on", "int"]),
    ],
)
def test_bad_values_name_the_field_and_the_value(kwargs: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(TypeError) as info:
        Fallback(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_with_fallback_rejects_a_fallback_with_options() -> None:
    with pytest.raises(TypeError, match="either a Fallback"):
        with_fallback(Fallback(1), on=KeyError)


# -- the forms ----------------------------------------------------------------------


def test_value(seen: list[Event]) -> None:
    error = ConnectionError("down")
    decorated = with_fallback([])(fails(error))
    assert decorated() == []
    (event,) = [e for e in seen if not isinstance(e, (CallStarted, CallSucceeded))]
    assert isinstance(event, FallbackUsed)
    assert event.error is error
    assert event.policy == "fallback"


def test_value_none_is_a_value() -> None:
    assert with_fallback(None)(fails(KeyError()))() is None
    assert with_fallback(value=None)(fails(KeyError()))() is None


def test_success_returns_the_result_and_emits_nothing_of_its_own(seen: list[Event]) -> None:
    assert with_fallback(0)(lambda x: x * 2)(4) == 8
    # Only the request-level events every outermost layer emits.
    assert [(type(e), e.level) for e in seen] == [  # type: ignore[attr-defined]
        (CallStarted, "request"),
        (CallSucceeded, "request"),
    ]


def test_handler_gets_the_call_arguments() -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def handler(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "cached"

    @with_fallback(handler=handler)
    def fetch(user: int, *, fresh: bool = False) -> str:
        raise ConnectionError

    assert fetch(7, fresh=True) == "cached"
    assert calls == [((7,), {"fresh": True})]


def test_handler_with_keyword_only_error_gets_the_exception() -> None:
    error = ConnectionError("down")

    def handler(user: int, *, error: BaseException) -> str:
        return f"{user}: {error}"

    assert with_fallback(handler=handler)(fails(error))(3) == "3: down"


def test_handler_with_a_positional_error_parameter_does_not_get_it() -> None:
    def handler(user: int, error: str = "not given") -> str:
        return error

    assert with_fallback(handler=handler)(fails(KeyError()))(1) == "not given"


def test_handler_for_a_method_gets_the_instance_first() -> None:
    class Service:
        cached = "from cache"

        def _cached(self, key: str, *, error: Exception) -> str:
            return f"{self.cached}:{key}:{type(error).__name__}"

        @with_fallback(handler=_cached)
        def get(self, key: str) -> str:
            raise TimeoutError

    assert Service().get("k") == "from cache:k:TimeoutError"
    assert list(inspect.signature(Service.get).parameters) == ["self", "key"]


def test_on_filters_what_falls_back() -> None:
    decorated = with_fallback("default", on=(KeyError, LookupError))
    assert decorated(fails(IndexError()))() == "default"
    error = ValueError()
    with pytest.raises(ValueError) as info:
        decorated(fails(error))()
    assert info.value is error
    assert with_fallback("x", on=KeyError)(fails(KeyError()))() == "x"


def test_a_raising_handler_chains_the_original_error() -> None:
    original = ConnectionError("primary down")

    def handler() -> str:
        raise LookupError("cache empty")

    with pytest.raises(LookupError) as info:
        with_fallback(handler=handler)(fails(original))()
    assert info.value.__context__ is original


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_are_never_caught(error: type[BaseException]) -> None:
    with pytest.raises(error):
        with_fallback("no", on=(BaseException,))(fails(error()))()


def test_set_active_false_is_a_pass_through() -> None:
    resilient.set_active(False)
    with pytest.raises(KeyError):
        with_fallback(1)(fails(KeyError()))()


def test_fallback_object_call_and_decorator_and_name(seen: list[Event]) -> None:
    fallback = Fallback(handler=lambda x: -x, name="prices")
    assert fallback.call(fails(KeyError()), 5) == -5
    assert fallback(fails(KeyError()))(6) == -6
    assert with_fallback(fallback)(fails(KeyError()))(7) == -7
    assert {e.name for e in seen} == {"prices"}
    assert "handler=" in repr(fallback)
    assert "value=3" in repr(Fallback(3))


def test_fallback_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    with_fallback(0)(lambda: 1)()
    assert caplog.records == []
    with_fallback(0)(fails(KeyError("k")))()
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.error_type == "KeyError"  # type: ignore[attr-defined]


# -- async --------------------------------------------------------------------------


async def test_async_value_sync_handler_and_async_handler() -> None:
    @with_fallback("value")
    async def a() -> str:
        raise ConnectionError

    assert await a() == "value"

    def sync_handler(x: int, *, error: Exception) -> str:
        return f"sync {x} {type(error).__name__}"

    async def async_handler(x: int) -> str:
        await asyncio.sleep(0)
        return f"async {x}"

    @with_fallback(handler=sync_handler)
    async def b(x: int) -> str:
        raise KeyError

    @with_fallback(handler=async_handler)
    async def c(x: int) -> str:
        raise KeyError

    assert await b(1) == "sync 1 KeyError"
    assert await c(2) == "async 2"
    assert inspect.iscoroutinefunction(c)


async def test_async_handler_cannot_serve_a_sync_function() -> None:
    async def handler() -> str:
        return "x"

    def sync() -> str:
        raise KeyError

    with pytest.raises(TypeError, match="async handler"):
        with_fallback(handler=handler)(sync)
    with pytest.raises(TypeError, match="async handler") as info:
        Fallback(handler=handler).call(sync)
    assert isinstance(info.value.__cause__, KeyError)


async def test_async_raising_handler_chains_and_cancellation_passes() -> None:
    original = ConnectionError()

    async def handler() -> str:
        raise LookupError

    async def broken() -> str:
        raise original

    with pytest.raises(LookupError) as info:
        await Fallback(handler=handler).call_async(broken)
    assert info.value.__context__ is original

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Fallback("no", on=(BaseException,)).call_async(cancelled)


async def test_async_on_filter_and_pass_through() -> None:
    error = ValueError()

    async def broken() -> None:
        raise error

    with pytest.raises(ValueError):
        await Fallback(1, on=KeyError).call_async(broken)
    resilient.set_active(False)
    with pytest.raises(ValueError):
        await Fallback(1).call_async(broken)
