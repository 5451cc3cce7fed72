"""The typed settings of the decorators name exactly the configs' fields."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import resilient
from resilient import _fields
from resilient.timeout import Timeout


@pytest.mark.parametrize(
    ("fields", "config"),
    [
        (_fields.CircuitBreakerFields, resilient.CircuitBreakerConfig),
        (_fields.RetryFields, resilient.RetryConfig),
        (_fields.ResilienceOverrides, resilient.ResiliencePolicy),
    ],
)
def test_each_typed_dict_names_every_field_of_its_config(fields: type, config: type) -> None:
    assert set(fields.__annotations__) == {f.name for f in dataclasses.fields(config)}
    assert not fields.__required_keys__  # every setting may be left out


def test_timeout_options_are_the_keywords_of_timeout() -> None:
    keywords = {
        name
        for name, p in inspect.signature(Timeout).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name != "listeners"
    }
    assert set(_fields.TimeoutOptions.__annotations__) == keywords


@pytest.mark.parametrize(
    ("decorator", "typed"),
    [
        (resilient.with_circuit_breaker, "CircuitBreakerFields"),
        (resilient.with_retry, "RetryFields"),
        (resilient.with_timeout, "TimeoutOptions"),
        (resilient.with_resilience, "ResilienceOverrides"),
    ],
)
def test_each_decorator_types_its_keywords(decorator: object, typed: str) -> None:
    var_keyword = [
        p
        for p in inspect.signature(decorator).parameters.values()  # type: ignore[arg-type]
        if p.kind is p.VAR_KEYWORD
    ]
    assert [p.annotation for p in var_keyword] == [f"Unpack[{typed}]"]


def test_help_lists_the_settings() -> None:
    doc = inspect.getdoc(resilient.with_retry) or ""
    for f in dataclasses.fields(resilient.RetryConfig):
        assert f"``{f.name}``" in doc
    doc = inspect.getdoc(resilient.with_circuit_breaker) or ""
    for f in dataclasses.fields(resilient.CircuitBreakerConfig):
        assert f"``{f.name}``" in doc
