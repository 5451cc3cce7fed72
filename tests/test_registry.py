from __future__ import annotations

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Event,
    Registry,
    StateChanged,
    registry,
    with_circuit_breaker,
)


def boom() -> None:
    raise OSError("down")


def test_get_or_create_returns_one_breaker_per_name() -> None:
    reg = Registry()
    first = reg.get_or_create("db")
    assert isinstance(first, CircuitBreaker)
    assert reg.get_or_create("db") is first
    assert reg.get("db") is first
    assert reg.get("nope") is None


def test_names_are_sorted() -> None:
    reg = Registry()
    for name in ["b", "c", "a"]:
        reg.get_or_create(name)
    assert reg.names() == ["a", "b", "c"]
    assert [b.name for b in reg.breakers()] == ["a", "b", "c"]


def test_same_explicit_config_twice_is_fine() -> None:
    reg = Registry()
    cfg = CircuitBreakerConfig(failure_threshold=2)
    breaker = reg.get_or_create("db", cfg)
    assert reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=2)) is breaker


def test_different_explicit_configs_are_an_error() -> None:
    reg = Registry()
    reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=2))
    with pytest.raises(ValueError, match="'db' already exists") as info:
        reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=3))
    assert "failure_threshold=3" in str(info.value)


def test_decorating_a_name_twice_with_different_configs_is_an_error() -> None:
    @with_circuit_breaker("pay", failure_threshold=2)
    def one() -> None: ...

    with pytest.raises(ValueError, match="'pay' already exists"):

        @with_circuit_breaker("pay", failure_threshold=4)
        def two() -> None: ...


def test_a_default_breaker_adopts_the_first_explicit_config() -> None:
    reg = Registry()
    breaker = reg.get_or_create("db")
    strict = CircuitBreakerConfig.STRICT
    assert reg.get_or_create("db", strict) is breaker
    assert breaker.config is strict
    with pytest.raises(ValueError, match="already exists"):
        reg.get_or_create("db", CircuitBreakerConfig.LENIENT)


def test_reset_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no circuit breaker named 'ghost'"):
        Registry().reset("ghost")


def test_reset_closes_and_clears() -> None:
    reg = Registry()
    breaker = reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=1))
    with pytest.raises(OSError):
        breaker.call(boom)
    reg.reset("db")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().calls == 0


def test_force_a_name_before_it_exists() -> None:
    reg = Registry()
    reg.force_open("later")
    assert reg.pending_forces() == {"later": "open"}
    breaker = reg.get_or_create("later")
    assert breaker.state is CircuitState.FORCED_OPEN
    assert reg.pending_forces() == {}
    reg.force_closed("also-later")
    assert reg.get_or_create("also-later").state is CircuitState.FORCED_CLOSED


def test_release_of_a_pending_force_cancels_it() -> None:
    reg = Registry()
    reg.force_open("later")
    reg.release("later")
    assert reg.get_or_create("later").state is CircuitState.CLOSED


def test_release_does_nothing_to_a_breaker_that_is_not_forced() -> None:
    reg = Registry()
    breaker = reg.get_or_create("db", CircuitBreakerConfig(failure_threshold=1))
    with pytest.raises(OSError):
        breaker.call(boom)
    reg.release("db")
    assert breaker.state is CircuitState.OPEN


def test_reset_all_resets_everything_and_clears_forces() -> None:
    reg = Registry()
    a = reg.get_or_create("a", CircuitBreakerConfig(failure_threshold=1))
    b = reg.get_or_create("b")
    with pytest.raises(OSError):
        a.call(boom)
    b.force_open()
    reg.force_open("pending")
    reg.reset_all()
    assert a.state is CircuitState.CLOSED
    assert b.state is CircuitState.CLOSED
    assert reg.names() == ["a", "b"]
    assert reg.get_or_create("pending").state is CircuitState.CLOSED


def test_forced_open_context_manager() -> None:
    @with_circuit_breaker("svc")
    def call() -> str:
        return "ok"

    with registry.forced_open("svc"):
        with pytest.raises(CircuitOpenError) as info:
            call()
        assert info.value.remaining == float("inf")
    assert call() == "ok"


def test_forced_closed_context_manager() -> None:
    @with_circuit_breaker("svc", failure_threshold=1)
    def call() -> None:
        raise OSError()

    with registry.forced_closed("svc"):
        for _ in range(3):
            with pytest.raises(OSError):
                call()
        assert registry.get("svc").state is CircuitState.FORCED_CLOSED  # type: ignore[union-attr]
    assert registry.get("svc").state is CircuitState.CLOSED  # type: ignore[union-attr]


def test_registry_listeners_hear_their_breakers_only() -> None:
    reg = Registry()
    other = Registry()
    seen: list[Event] = []
    unsubscribe = reg.subscribe(seen.append)
    reg.get_or_create("mine").force_open()
    other.get_or_create("theirs").force_open()
    CircuitBreaker("loose").force_open()
    unsubscribe()
    reg.get_or_create("mine").release()
    assert [(e.name, type(e)) for e in seen] == [("mine", StateChanged)]
