from __future__ import annotations

import math
import pickle

import pytest

from resilient import CircuitOpenError, ResilienceError


def test_circuit_open_error_fields_come_from_its_arguments() -> None:
    error = CircuitOpenError("db", "open", 2.5)
    assert isinstance(error, ResilienceError)
    assert (error.name, error.state, error.remaining) == ("db", "open", 2.5)
    assert error.args == ("db", "open", 2.5)
    assert str(error) == "circuit 'db' is open; next probe allowed in 2.500s"


def test_forced_open_error_says_until_released() -> None:
    error = CircuitOpenError("db", "forced_open", math.inf)
    assert str(error) == "circuit 'db' is forced_open; calls are rejected until released"


def test_circuit_open_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(CircuitOpenError("db", "open", 2.5)))
    assert (error.name, error.state, error.remaining) == ("db", "open", 2.5)


def test_circuit_open_error_carries_the_request_id_it_is_given() -> None:
    error = CircuitOpenError("db", "open", 2.5, "req-1")
    assert error.request_id == "req-1"
    assert CircuitOpenError("db", "open", 2.5).request_id is None
    error.request_id = "req-2"
    assert error.args == ("db", "open", 2.5, "req-2")
    assert str(error) == "circuit 'db' is open; next probe allowed in 2.500s"


def test_rejections_carry_the_current_request_id() -> None:
    """Forced open (the breaker's lock-free path) and tripped by failures (the
    decorator's own closure): both errors carry the request id."""
    from resilient import CircuitBreaker, request_context

    forced = CircuitBreaker("db")
    forced.force_open()

    @forced
    def call() -> None:
        pass

    @CircuitBreaker("api")
    def fail() -> None:
        raise OSError

    for _ in range(5):
        with pytest.raises(OSError):
            fail()
    with request_context("from-the-framework"):
        with pytest.raises(CircuitOpenError) as first:
            call()
        with pytest.raises(CircuitOpenError) as second:
            fail()
    assert first.value.request_id == second.value.request_id == "from-the-framework"
