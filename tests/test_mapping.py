"""Configs from and to plain mappings (``from_dict`` / ``to_dict``)."""

from __future__ import annotations

import dataclasses
import http.client
import tomllib
import typing

import pytest

import resilient
from resilient import (
    BulkheadConfig,
    CircuitBreakerConfig,
    Fallback,
    ResiliencePolicy,
    RetryConfig,
)
from resilient._runtime.mapping import FromDict, duration
from resilient.circuit_breaker.storage import BreakerStorage

CONFIGS = [CircuitBreakerConfig, RetryConfig, BulkheadConfig, ResiliencePolicy]

# Number-typed fields that are not durations. A new float field fails
# test_every_number_field_is_classified until it is put here or in the
# config's _durations.
NOT_DURATIONS = {
    CircuitBreakerConfig: {
        "failure_rate_threshold",
        "slow_call_rate_threshold",
        "recovery_backoff",
    },
    RetryConfig: {"multiplier", "jitter"},
    BulkheadConfig: set(),
    ResiliencePolicy: set(),
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), ("1.5s", 1.5), (" 5 s ", 5.0)],
)
def test_duration_strings(text: str, seconds: float) -> None:
    assert duration("X", "f", text) == seconds


@pytest.mark.parametrize("text", ["", "5", "3 days", "-1s", "1.5.2s", "ms", "1d", "1e3s"])
def test_a_bad_duration_names_field_and_value(text: str) -> None:
    with pytest.raises(ValueError, match=rf"RetryConfig\.deadline .*got {text!r}"):
        RetryConfig.from_dict({"deadline": text})


def test_a_policy_from_toml() -> None:
    table = tomllib.loads(
        """
        timeout = "30s"
        [circuit_breaker]
        failure_threshold = 3
        recovery_timeout = "2m"
        record_on = ["ConnectionError", "http.client.RemoteDisconnected"]
        [retry]
        max_attempts = 4
        initial_delay = "250ms"
        deadline = "1h"
        jitter = "full"
        [bulkhead]
        max_concurrent = 10
        queue_timeout = "1.5s"
        """
    )
    policy = ResiliencePolicy.from_dict(table)
    assert policy == ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=3,
            recovery_timeout=120.0,
            record_on=(ConnectionError, http.client.RemoteDisconnected),
        ),
        retry=RetryConfig(max_attempts=4, initial_delay=0.25, deadline=3600.0, jitter="full"),
        timeout=30.0,
        bulkhead=BulkheadConfig(10, queue_timeout=1.5),
    )


def test_missing_keys_take_the_defaults_and_false_or_none_drops_a_layer() -> None:
    assert ResiliencePolicy.from_dict({}) == ResiliencePolicy()
    assert ResiliencePolicy.from_dict({"retry": {}}).retry == RetryConfig()
    dropped = ResiliencePolicy.from_dict(
        {"retry": False, "circuit_breaker": None, "timeout": False}
    )
    assert (dropped.retry, dropped.circuit_breaker, dropped.timeout) == (None, None, None)


def test_ready_objects_pass_through() -> None:
    fallback = Fallback(value=0)
    policy = ResiliencePolicy.from_dict(
        {"retry": RetryConfig.AGGRESSIVE, "fallback": fallback, "timeout": 2}
    )
    assert policy.retry is RetryConfig.AGGRESSIVE
    assert policy.fallback is fallback
    predicate = lambda e: True  # noqa: E731
    assert RetryConfig.from_dict({"retry_on": predicate}).retry_on is predicate
    assert CircuitBreakerConfig.from_dict({"ignore_on": KeyError}).ignore_on == (KeyError,)


@pytest.mark.parametrize("config", CONFIGS)
def test_an_unknown_key_names_it(config: type[FromDict]) -> None:
    with pytest.raises(ValueError, match=rf"{config.__name__} has no field 'nope', 'zzz'"):
        config.from_dict({"zzz": 1, "nope": 2})


def test_an_unknown_key_in_a_nested_layer_names_it() -> None:
    with pytest.raises(ValueError, match=r"RetryConfig has no field 'max_attempt'"):
        ResiliencePolicy.from_dict({"retry": {"max_attempt": 3}})


def test_not_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"RetryConfig.from_dict needs a mapping, got \[1\]"):
        RetryConfig.from_dict([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ResiliencePolicy.retry must be a RetryConfig"):
        ResiliencePolicy.from_dict({"retry": 3})


@pytest.mark.parametrize(
    "name", ["NoSuchError", "os.path", "json.JSONDecoder", "nosuchmodule.X", ""]
)
def test_a_name_that_is_no_exception_type_is_an_error(name: str) -> None:
    with pytest.raises(ValueError, match=rf"RetryConfig\.give_up_on: {name!r} does not name"):
        RetryConfig.from_dict({"give_up_on": [name]})


def test_values_are_still_validated_naming_the_field() -> None:
    with pytest.raises(TypeError, match=r"CircuitBreakerConfig\.recovery_timeout"):
        CircuitBreakerConfig.from_dict({"recovery_timeout": False})
    with pytest.raises(TypeError, match=r"RetryConfig\.max_attempts must be an int, got '3'"):
        RetryConfig.from_dict({"max_attempts": "3"})


@pytest.mark.parametrize(
    "config",
    [
        ResiliencePolicy(),
        ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(
                failure_threshold=2,
                window_duration=60.0,
                record_on=(OSError, http.client.HTTPException),
            ),
            retry=resilient.RetryPolicies.network(),
            timeout=None,
            bulkhead=BulkheadConfig(3, max_queue=2, queue_timeout=0.5),
        ),
        CircuitBreakerConfig.AI_SERVICE,
        RetryConfig.NO_RETRY,
        BulkheadConfig(7),
    ],
)
def test_to_dict_reads_back_equal(config: FromDict) -> None:
    as_dict = config.to_dict()
    assert type(config).from_dict(as_dict) == config
    assert set(as_dict) == {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]


def test_to_dict_is_plain_data() -> None:
    data = ResiliencePolicy(bulkhead=BulkheadConfig(2)).to_dict()
    assert data["bulkhead"] == {
        "max_concurrent": 2,
        "max_queue": 0,
        "queue_timeout": None,
        "adaptive": None,
    }
    assert data["circuit_breaker"]["record_on"] == ["Exception"]
    assert data["retry"]["retry_on"] == ["Exception"]
    assert data["timeout"] == 30.0


@pytest.mark.parametrize("config", CONFIGS)
def test_every_number_field_is_classified(config: type[FromDict]) -> None:
    names = {**vars(resilient), "BreakerStorage": BreakerStorage}
    hints = typing.get_type_hints(config, localns=names)
    numbers = {
        name
        for name, hint in hints.items()
        if name in {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
        and float in (typing.get_args(hint) or (hint,))
    }
    assert numbers == set(config._durations) | NOT_DURATIONS[config]
