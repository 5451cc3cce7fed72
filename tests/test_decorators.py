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


# -- chains: what a decorator installs ------------------------------------------------


async def test_plain_functions_get_a_chain_of_the_policys_own_closures() -> None:
    from resilient import CircuitBreaker, Fallback
    from resilient._execution.compose import chain_of

    breaker = CircuitBreaker("chain")

    def double(x: int, y: int = 2, *, z: int = 3) -> int:
        """Twice x."""
        return 2 * x

    async def adouble(x: int) -> int:
        return 2 * x

    wrapped = breaker(double)
    awrapped = breaker(adouble)
    assert wrapped(2) == 4
    assert await awrapped(3) == 6
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == (  # type: ignore[attr-defined]
        "double",
        "Twice x.",
        double,
    )
    assert (wrapped.__defaults__, wrapped.__kwdefaults__) == ((2,), {"z": 3})
    assert inspect.iscoroutinefunction(awrapped)
    chain = chain_of(wrapped)
    assert chain is not None
    assert (chain.owner, chain.layers, chain.fn) == (breaker, (breaker,), double)
    # Stacking another decorator makes one chain of two layers.
    fallback = Fallback(0)
    stacked = fallback(wrapped)
    chain = chain_of(stacked)
    assert chain is not None
    assert (chain.owner, chain.layers, chain.fn) == (fallback, (fallback, breaker), double)


def test_what_wrapt_binds_runs_a_chain_built_for_the_bound_callable() -> None:
    from resilient import CircuitBreaker
    from resilient._execution.compose import chain_of

    breaker = CircuitBreaker("bound")

    class Service:
        @breaker
        @classmethod
        def name(cls) -> str:
            return cls.__name__

    assert Service.name() == "Service"
    assert Service().name() == "Service"
    chain = chain_of(Service.__dict__["name"])
    assert chain is not None
    assert chain.layers == (breaker,)
