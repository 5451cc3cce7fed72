from __future__ import annotations

import asyncio
import functools
import inspect

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    registry,
    with_circuit_breaker,
)


def test_plain_function_keeps_its_identity() -> None:
    @with_circuit_breaker("f")
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    assert add(1) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2) -> 'int'"
    assert add.__wrapped__(1, 1) == 2  # type: ignore[attr-defined]


async def test_coroutine_function_stays_a_coroutine_function() -> None:
    @with_circuit_breaker("f")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch(5) == 5


class Service:
    def __init__(self) -> None:
        self.calls = 0

    @with_circuit_breaker("method", failure_threshold=1)
    def method(self, x: int) -> tuple[Service, int]:
        self.calls += 1
        if x < 0:
            raise ValueError(x)
        return self, x

    @with_circuit_breaker("amethod")
    async def amethod(self, x: int) -> tuple[Service, int]:
        return self, x

    @with_circuit_breaker("cm_outer")
    @classmethod
    def cm_outer(cls, x: int) -> tuple[type[Service], int]:
        return cls, x

    @classmethod
    @with_circuit_breaker("cm_inner")
    def cm_inner(cls, x: int) -> tuple[type[Service], int]:
        return cls, x

    @with_circuit_breaker("acm")
    @classmethod
    async def acm(cls, x: int) -> tuple[type[Service], int]:
        return cls, x

    @with_circuit_breaker("sm_outer")
    @staticmethod
    def sm_outer(x: int) -> int:
        return x

    @staticmethod
    @with_circuit_breaker("sm_inner")
    def sm_inner(x: int) -> int:
        return x

    @with_circuit_breaker("asm")
    @staticmethod
    async def asm(x: int) -> int:
        return x


class SubService(Service):
    pass


def test_instance_methods_bind() -> None:
    s = Service()
    assert s.method(1) == (s, 1)
    assert Service.method(s, 2) == (s, 2)
    assert s.calls == 2


def test_one_breaker_is_shared_by_all_instances() -> None:
    a, b = Service(), Service()
    with pytest.raises(ValueError):
        a.method(-1)
    with pytest.raises(CircuitOpenError):
        b.method(1)
    assert b.calls == 0


async def test_async_methods_bind() -> None:
    s = Service()
    assert await s.amethod(3) == (s, 3)
    assert inspect.iscoroutinefunction(s.amethod)


@pytest.mark.parametrize("name", ["cm_outer", "cm_inner"])
def test_classmethods_in_either_order(name: str) -> None:
    assert getattr(Service, name)(1) == (Service, 1)
    assert getattr(Service(), name)(2) == (Service, 2)
    assert getattr(SubService, name)(3) == (SubService, 3)
    assert registry.get(name) is not None


async def test_async_classmethod_and_staticmethod() -> None:
    assert await Service.acm(1) == (Service, 1)
    assert await Service().asm(2) == 2
    registry.force_open("acm")
    with pytest.raises(CircuitOpenError):
        await Service.acm(1)


@pytest.mark.parametrize("name", ["sm_outer", "sm_inner"])
def test_staticmethods_in_either_order(name: str) -> None:
    assert getattr(Service, name)(1) == 1
    assert getattr(Service(), name)(2) == 2
    registry.force_open(name)
    with pytest.raises(CircuitOpenError):
        getattr(Service, name)(1)


def test_outer_classmethod_wrapper_is_protected() -> None:
    registry.force_open("cm_outer")
    with pytest.raises(CircuitOpenError):
        Service.cm_outer(1)


def test_callable_objects_and_partials() -> None:
    class Adder:
        def __call__(self, x: int) -> int:
            return x + 1

    add = with_circuit_breaker("obj")(Adder())
    assert add(1) == 2
    part = with_circuit_breaker("partial")(functools.partial(pow, 2))
    assert part(3) == 8


async def test_async_callable_object_is_detected() -> None:
    class Fetch:
        async def __call__(self, x: int) -> int:
            return x

    fetch = with_circuit_breaker("aobj")(Fetch())
    assert await fetch(4) == 4
    registry.force_open("aobj")
    with pytest.raises(CircuitOpenError):
        await fetch(4)


def test_decorating_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="can only decorate a callable, got 42"):
        with_circuit_breaker("x")(42)  # type: ignore[type-var]


def test_decorating_an_async_generator_is_a_type_error() -> None:
    async def stream():  # type: ignore[no-untyped-def]
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        with_circuit_breaker("x")(stream)


def test_a_ready_breaker_can_be_passed() -> None:
    breaker = CircuitBreaker("own", CircuitBreakerConfig(failure_threshold=1))

    @with_circuit_breaker(breaker)
    def f() -> None:
        raise OSError()

    with pytest.raises(OSError):
        f()
    assert registry.get("own") is None
    with pytest.raises(CircuitOpenError):
        f()


def test_breaker_and_config_together_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not both"):
        with_circuit_breaker(CircuitBreaker("x"), failure_threshold=2)


def test_bad_name_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        with_circuit_breaker("")


def test_keyword_fields_configure_the_breaker() -> None:
    @with_circuit_breaker("kw", config=CircuitBreakerConfig.STRICT, recovery_timeout=5.0)
    def f() -> None: ...

    breaker = registry.get("kw")
    assert breaker is not None
    assert (breaker.config.failure_threshold, breaker.config.recovery_timeout) == (3, 5.0)


def test_unknown_keyword_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bogus"):
        with_circuit_breaker("kw", bogus=1)


# -- policies that offer their own closure ----------------------------------------


class Recording:
    """A policy recording which path each call took."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def _call(self, fn, args, kwargs):  # type: ignore[no-untyped-def]
        self.paths.append("_call")
        return fn(*args, **kwargs)

    async def _acall(self, fn, args, kwargs):  # type: ignore[no-untyped-def]
        self.paths.append("_acall")
        return await fn(*args, **kwargs)


class Specialized(Recording):
    def _wrap_sync(self, fn):  # type: ignore[no-untyped-def]
        def closure(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.paths.append("_wrap_sync")
            return fn(*args, **kwargs)

        return closure

    def _wrap_async(self, fn):  # type: ignore[no-untyped-def]
        async def closure(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.paths.append("_wrap_async")
            return await fn(*args, **kwargs)

        return closure


async def test_plain_functions_get_the_policys_own_closure() -> None:
    from resilient._decorate import decorate

    policy = Specialized()

    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    async def adouble(x: int) -> int:
        return 2 * x

    wrapped = decorate(policy, double)
    awrapped = decorate(policy, adouble)
    assert wrapped(2) == 4
    assert await awrapped(3) == 6
    assert policy.paths == ["_wrap_sync", "_wrap_async"]
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == (
        "double",
        "Twice x.",
        double,
    )  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(awrapped)


async def test_without_a_closure_the_decorator_goes_through_call() -> None:
    from resilient._decorate import decorate

    policy = Recording()

    def double(x: int) -> int:
        return 2 * x

    async def adouble(x: int) -> int:
        return 2 * x

    assert decorate(policy, double)(2) == 4
    assert await decorate(policy, adouble)(3) == 6
    assert policy.paths == ["_call", "_acall"]


def test_what_wrapt_binds_goes_through_call() -> None:
    from resilient._decorate import decorate

    policy = Specialized()

    class Service:
        @functools.partial(decorate, policy)
        @classmethod
        def name(cls) -> str:
            return cls.__name__

    assert Service.name() == "Service"
    assert policy.paths == ["_call"]
