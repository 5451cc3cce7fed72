"""Every public function and class has a docstring naming its parameters
(``help()`` and the API reference are built from them)."""

from __future__ import annotations

import enum
import inspect

import pytest

import resilient

# Wiring a registry or a composed policy passes in; not a user's setting.
INTERNAL = {"self", "cls", "args", "kwargs", "listeners"}


def _public() -> list[str]:
    return [
        name
        for name in resilient.__all__
        if inspect.isclass(getattr(resilient, name)) or inspect.isfunction(getattr(resilient, name))
    ]


def _documented(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    init = vars(obj).get("__init__") if inspect.isclass(obj) else None
    return doc + (init.__doc__ or "" if init is not None else "")


@pytest.mark.parametrize("name", _public())
def test_public_names_have_a_docstring_naming_each_parameter(name: str) -> None:
    obj = getattr(resilient, name)
    doc = _documented(obj)
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isclass(obj) and (
        issubclass(obj, (enum.Enum, BaseException)) or hasattr(obj, "_fields")
    ):
        return  # members and error fields are documented on the pattern pages
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    missing = [p for p in parameters if p not in INTERNAL and p not in doc]
    assert missing == [], f"{name}'s docstring does not name {missing}"
