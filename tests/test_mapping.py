"""Configs from and to plain mappings (``from_dict`` / ``to_dict``)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import sys
import tomllib
import typing

import pytest

import resilient
from resilient import (
    AdaptiveLimit,
    BulkheadConfig,
    CircuitBreakerConfig,
    CircuitOpenError,
    Fallback,
    HedgingConfig,
    RateLimitConfig,
    ResiliencePolicy,
    RetryConfig,
    TimeoutConfig,
)
from resilient._runtime.mapping import FromDict, duration
from resilient.circuit_breaker.storage import BreakerStorage
from resilient.http import ServerError

CONFIGS = [
    CircuitBreakerConfig,
    RetryConfig,
    BulkheadConfig,
    ResiliencePolicy,
    RateLimitConfig,
    HedgingConfig,
    TimeoutConfig,
    AdaptiveLimit,
]
#: The classes beyond the builtins that the files below name.
KNOWN = {
    "RemoteDisconnected": http.client.RemoteDisconnected,
    "HTTPException": http.client.HTTPException,
}

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
    RateLimitConfig: {"rate"},
    HedgingConfig: set(),
    TimeoutConfig: set(),
    AdaptiveLimit: set(),
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
    policy = ResiliencePolicy.from_dict(table, exceptions=KNOWN)
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
    with pytest.raises(ValueError, match=r"retry \(RetryConfig\) has no field 'max_attempt'"):
        ResiliencePolicy.from_dict({"retry": {"max_attempt": 3}})


def test_not_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"RetryConfig.from_dict needs a mapping, got \[1\]"):
        RetryConfig.from_dict([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"retry must be a table of RetryConfig fields") as caught:
        ResiliencePolicy.from_dict({"retry": 3})
    assert "None" not in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "NoSuchError",
        "os.path",
        "json.JSONDecoder",
        "json.JSONDecodeError",  # an exception type, but not one from_dict was given
        "nosuchmodule.X",
        "",
        "..x",
        ".x",
        "x.",
        "this.X",
        "print",
    ],
)
def test_a_name_that_is_no_exception_type_is_an_error(name: str) -> None:
    with pytest.raises(
        ValueError, match=rf"RetryConfig\.give_up_on: {name!r} names no exception type"
    ):
        RetryConfig.from_dict({"give_up_on": [name]})


def test_from_dict_never_imports_a_module_it_names(capsys: pytest.CaptureFixture[str]) -> None:
    sys.modules.pop("this", None)  # importing it prints the Zen of Python
    with pytest.raises(ValueError, match=r"RetryConfig\.retry_on: 'this\.X'"):
        RetryConfig.from_dict({"retry_on": "this.X"})
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""


def test_exception_names_resolve_among_builtins_resilients_own_and_those_given() -> None:
    class PaymentDeclined(Exception):
        pass

    cfg = RetryConfig.from_dict(
        {
            "retry_on": ["TimeoutError", "CircuitOpenError", "resilient.http.errors.ServerError"],
            "give_up_on": ["PaymentDeclined", "http.client.RemoteDisconnected"],
        },
        exceptions={"PaymentDeclined": PaymentDeclined, **KNOWN},
    )
    assert cfg.retry_on == (TimeoutError, CircuitOpenError, ServerError)
    assert cfg.give_up_on == (PaymentDeclined, http.client.RemoteDisconnected)
    # Nested layers get them too; to_dict's "module.Name" reads back.
    policy = ResiliencePolicy.from_dict(
        {"circuit_breaker": {"ignore_on": ["PaymentDeclined"]}},
        exceptions={"PaymentDeclined": PaymentDeclined},
    )
    assert policy.circuit_breaker is not None
    assert policy.circuit_breaker.ignore_on == (PaymentDeclined,)
    again = ResiliencePolicy.from_dict(
        json.loads(json.dumps(policy.to_dict())), exceptions={"Declined": PaymentDeclined}
    )
    assert again == policy


@pytest.mark.parametrize("exceptions", [{"X": 3}, {"X": int}, {3: KeyError}, ["KeyError"]])
def test_exceptions_must_map_names_to_exception_types(exceptions: object) -> None:
    with pytest.raises(TypeError, match=r"RetryConfig\.from_dict: exceptions must map names"):
        RetryConfig.from_dict({}, exceptions=exceptions)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["\u0661\u0662s", "\uff11\uff12s", "1\u0662ms", "\u0967s", "12\u00a0s"],
    ids=["arabic-indic", "full-width", "mixed", "devanagari", "nbsp"],
)
def test_a_duration_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match=r"RetryConfig\.deadline must be a number of seconds"):
        RetryConfig.from_dict({"deadline": text})


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
    assert type(config).from_dict(as_dict, exceptions=KNOWN) == config
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


JSON_CONFIGS = {
    "breaker": CircuitBreakerConfig(
        failure_threshold=2,
        failure_rate_threshold=0.5,
        window_duration=60.0,
        slow_call_duration=2.0,
        slow_call_rate_threshold=0.8,
        record_on=(OSError, http.client.HTTPException),
        ignore_on=(CircuitOpenError,),
        recovery_backoff=1.5,
        max_recovery_timeout=120.0,
        max_half_open_duration=10.0,
    ),
    "retry": RetryConfig(
        max_attempts=5, jitter="decorrelated", give_up_on=(KeyError,), deadline=12.5
    ),
    "bulkhead": BulkheadConfig(3, max_queue=2, queue_timeout=0.5, adaptive=AdaptiveLimit()),
    "rate-limit": RateLimitConfig(5.0, 2.0, burst=3, max_wait=0.25),
    "hedging": HedgingConfig(0.2, 2, on=(ConnectionError, ServerError)),
    "timeout": TimeoutConfig(3.0, pool_size=4),
    "adaptive": AdaptiveLimit("aimd", 10, 2, 50),
    "policy-defaults": ResiliencePolicy(),
    "policy-full": ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=4),
        retry=RetryConfig(max_attempts=2),
        timeout=TimeoutConfig(2.0, pool_size=8),
        bulkhead=BulkheadConfig(10, max_queue=5),
        rate_limit=RateLimitConfig(100.0, burst=10, max_wait=0.1),
        hedging=HedgingConfig(0.05),
    ),
    "policy-seconds-timeout": ResiliencePolicy(
        timeout=1.5, rate_limit=RateLimitConfig(1.0), hedging=HedgingConfig(1.0)
    ),
}


@pytest.mark.parametrize("name", sorted(JSON_CONFIGS))
def test_to_dict_goes_through_json_and_reads_back_equal(name: str) -> None:
    config = JSON_CONFIGS[name]
    text = json.dumps(config.to_dict())  # plain data: no TypeError
    assert type(config).from_dict(json.loads(text), exceptions=KNOWN) == config


def test_a_policy_table_takes_a_rate_limit_hedging_and_a_timeout_table() -> None:
    policy = ResiliencePolicy.from_dict(
        {
            "timeout": {"seconds": "2s", "pool_size": 4},
            "rate_limit": {"rate": 10, "period": "1m", "max_wait": "250ms"},
            "hedging": {"delay": "50ms", "on": ["ConnectionError"]},
            "bulkhead": {"max_concurrent": 3, "adaptive": {"algorithm": "vegas"}},
        }
    )
    assert policy.timeout == TimeoutConfig(2.0, pool_size=4)
    assert policy.rate_limit == RateLimitConfig(10.0, 60.0, max_wait=0.25)
    assert policy.hedging == HedgingConfig(0.05, on=(ConnectionError,))
    assert policy.bulkhead == BulkheadConfig(3, adaptive=AdaptiveLimit("vegas"))


def test_every_table_of_a_policy_loads_from_toml() -> None:
    document = tomllib.loads(
        """
        timeout = "2s"
        [circuit_breaker]
        failure_threshold = 4
        [retry]
        max_attempts = 2
        [bulkhead]
        max_concurrent = 8
        [rate_limit]
        rate = 50
        period = "1s"
        [hedging]
        delay = "150ms"
        on = ["ConnectionError"]
        [fallback]
        value = "cached"
        on = ["TimeoutError"]
        """
    )
    policy = ResiliencePolicy.from_dict(document)
    assert policy.rate_limit == RateLimitConfig(rate=50, period=1.0)
    assert policy.hedging == HedgingConfig(delay=0.15, on=(ConnectionError,))
    assert policy.bulkhead == BulkheadConfig(8)
    assert isinstance(policy.fallback, Fallback)
    assert policy.fallback.value == "cached"
    assert policy.fallback.on == (TimeoutError,)
    back = policy.to_dict()
    assert back["fallback"] == {"value": "cached", "on": ["TimeoutError"]}
    again = ResiliencePolicy.from_dict(json.loads(json.dumps(back)))
    assert again.replace(fallback=None) == policy.replace(fallback=None)
    assert again.fallback is not None
    assert again.fallback.value == "cached"


def test_a_fallback_table_needs_a_value_and_knows_its_keys() -> None:
    with pytest.raises(ValueError, match=r"fallback needs exactly one of 'value' or 'handler'"):
        ResiliencePolicy.from_dict({"fallback": {}})
    with pytest.raises(ValueError, match=r"fallback has no field 'valeu'"):
        ResiliencePolicy.from_dict({"fallback": {"valeu": 1}})
    assert Fallback.from_dict({"value": 0}).value == 0


def test_a_bulkhead_table_without_max_concurrent_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"^bulkhead \(BulkheadConfig\) needs 'max_concurrent'$"):
        ResiliencePolicy.from_dict({"bulkhead": {"max_queue": 3}})
    with pytest.raises(ValueError, match=r"^BulkheadConfig needs 'max_concurrent'$"):
        BulkheadConfig.from_dict({})
    with pytest.raises(ValueError, match=r"^RateLimitConfig needs 'rate'$"):
        RateLimitConfig.from_dict({})


@pytest.mark.parametrize("key", ["rate_limit", "hedging", "fallback", "bulkhead", "retry"])
def test_a_layer_that_is_not_a_table_speaks_of_tables_and_false(key: str) -> None:
    with pytest.raises(TypeError, match=rf"^{key} must be a table of \w+ fields") as caught:
        ResiliencePolicy.from_dict({key: 3})
    assert "None" not in str(caught.value)
    assert "or false for no" in str(caught.value)


def test_an_error_inside_a_layer_names_its_key() -> None:
    with pytest.raises(TypeError, match=r"^rate_limit: RateLimitConfig.rate must be"):
        ResiliencePolicy.from_dict({"rate_limit": {"rate": "many"}})
