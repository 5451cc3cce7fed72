from __future__ import annotations

import math
import pickle

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
