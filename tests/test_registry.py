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


def test_a_default_breaker_asked_for_with_its_defaults_keeps_them_explicitly() -> None:
    reg = Registry()
    breaker = reg.get_or_create("db")
    assert reg.get_or_create("db", CircuitBreakerConfig()) is breaker
    with pytest.raises(ValueError, match="already exists"):
        reg.get_or_create("db", CircuitBreakerConfig.STRICT)


def test_a_breaker_made_before_the_defaults_changed_still_adopts_a_config() -> None:
    from resilient import config as env

    reg = Registry()
    try:
        env.reload({"RESILIENT_CB_FAILURE_THRESHOLD": "8"})
        before = reg.get_or_create("db")
        env.reload({"RESILIENT_CB_FAILURE_THRESHOLD": "9"})
        after = reg.get_or_create("cache")
    finally:
        env.reload()
    assert (before.config.failure_threshold, after.config.failure_threshold) == (8, 9)
    strict = CircuitBreakerConfig.STRICT
    assert reg.get_or_create("db", strict).config is strict
    assert reg.get_or_create("cache", strict).config is strict


def test_each_key_of_a_group_with_a_config_has_it_explicitly() -> None:
    reg = Registry()
    get = with_circuit_breaker("api", key=lambda k: k, failure_threshold=2, registry=reg)(
        lambda k: k
    )
    get("a")
    with pytest.raises(ValueError, match=r"'api\[a\]' already exists"):
        reg.get_or_create("api", CircuitBreakerConfig(failure_threshold=3), key="a")


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


# -- isolated(): what the resilient_registry fixture of resilient.testing uses --------


def _trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        with pytest.raises(OSError):
            breaker.call(boom)
    assert breaker.state is CircuitState.OPEN


def test_isolated_starts_every_breaker_clean_and_restores_it_after() -> None:
    reg = Registry()
    tripped = reg.get_or_create("tripped", CircuitBreakerConfig(failure_threshold=1))
    forced = reg.get_or_create("forced")
    _trip(tripped)
    reg.force_open("forced")
    reg.force_open("not-yet")
    with reg.isolated() as inside:
        assert inside is reg
        assert tripped.state is CircuitState.CLOSED
        assert tripped.metrics().calls == 0
        assert forced.state is CircuitState.CLOSED
        assert reg.pending_forces() == {}
    assert tripped.state is CircuitState.OPEN
    assert tripped.metrics().failures == 1
    assert forced.state is CircuitState.FORCED_OPEN
    assert reg.pending_forces() == {"not-yet": "open"}


def test_isolated_undoes_what_the_block_did() -> None:
    reg = Registry()
    existing = reg.get_or_create("existing")
    with reg.isolated():
        reg.get_or_create("made-inside", CircuitBreakerConfig(failure_threshold=1))
        reg.get_or_create("existing", CircuitBreakerConfig.STRICT)  # adopts an explicit config
        _trip(existing)
        reg.force_open("pending")
    assert reg.names() == ["existing"]
    assert existing.state is CircuitState.CLOSED
    assert existing.config == CircuitBreakerConfig()
    assert reg.pending_forces() == {}
    # The config given inside does not bind the name outside.
    reg.get_or_create("made-inside", CircuitBreakerConfig.LENIENT)
    reg.get_or_create("existing", CircuitBreakerConfig.LENIENT)


def test_isolated_itself_emits_no_events_and_nests() -> None:
    reg = Registry()
    breaker = reg.get_or_create("b", CircuitBreakerConfig(failure_threshold=1))
    _trip(breaker)
    seen: list[object] = []
    reg.subscribe(seen.append)
    with reg.isolated():
        with reg.isolated():
            reg.force_open("b")
        assert breaker.state is CircuitState.CLOSED
    assert breaker.state is CircuitState.OPEN
    changes = [e for e in seen if isinstance(e, StateChanged)]
    assert [(e.old_state, e.new_state) for e in changes] == [("closed", "forced_open")]


def test_isolated_drops_the_bulkheads_and_features_the_block_declared() -> None:
    reg = Registry()
    pool = reg.bulkhead("pool", max_concurrent=2)
    reg.feature("checkout", depends_on=["payments"])
    with reg.isolated():
        reg.bulkhead("made-inside", max_concurrent=1)
        reg.feature("search", depends_on=["index"])
        assert reg.get_bulkhead("pool") is pool
    assert reg.get_bulkhead("made-inside") is None
    assert [b.name for b in reg.bulkheads()] == ["pool"]
    with pytest.raises(KeyError):
        reg.is_available("search")
    assert reg.is_available("checkout")
    # Names declared inside do not bind outside.
    reg.bulkhead("made-inside", max_concurrent=5)
    reg.feature("search", depends_on=["other"])
