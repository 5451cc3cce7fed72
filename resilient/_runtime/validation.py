"""Field checks shared by every config: each error names the field and the value."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_PERMITS",
    "MAX_SECONDS",
    "MAX_WINDOW",
    "MAX_INT",
    "MAX_WORKERS",
    "callable_or_none",
    "catchable_types",
    "exception_types",
    "fraction_or_none",
    "int_at_least",
    "int_between",
    "name_or_none",
    "number",
    "probability",
    "seconds",
    "seconds_or_none",
    "shown",
]


#: The longest duration any field accepts: what ``threading`` can wait for
#: (``threading.TIMEOUT_MAX``, about 292 years on Linux, 49 days on Windows),
#: which is also far inside what ``time.sleep``, ``signal.setitimer`` and the
#: platform's ``time_t`` represent. A longer wait would fail with
#: ``OverflowError`` at call time, deep inside every call.
MAX_SECONDS: float = float(threading.TIMEOUT_MAX)
#: Sizes are bounded by what they allocate up front: a bulkhead holds one
#: permit token per ``max_concurrent`` (8 bytes each), a count window one slot
#: per call it remembers, a worker pool one thread per worker.
MAX_PERMITS = 1_000_000
MAX_WINDOW = 1_000_000
MAX_WORKERS = 4096
#: The largest count any int field accepts (a signed 64-bit counter): a larger
#: one is a typo, never a limit.
MAX_INT = 2**63 - 1


def shown(value: object) -> str:
    """``repr(value)``, except for an int too long to print (Python refuses
    past 4300 digits): then its size."""
    try:
        return repr(value)
    except ValueError:
        if isinstance(value, int):
            return f"<an int of {len(hex(value)) - 2} hex digits>"
        raise


def _fail_type(owner: str, field: str, value: object, expected: str) -> TypeError:
    return TypeError(f"{owner}.{field} must be {expected}, got {shown(value)}")


def _fail_value(owner: str, field: str, value: object, expected: str) -> ValueError:
    return ValueError(f"{owner}.{field} must be {expected}, got {shown(value)}")


def int_at_least(owner: str, field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail_type(owner, field, value, "an int")
    if value < minimum:
        raise _fail_value(owner, field, value, f">= {minimum}")
    if value > MAX_INT:
        raise _fail_value(owner, field, value, f"an int between {minimum} and 2**63 - 1")
    return value


def int_between(owner: str, field: str, value: object, minimum: int, maximum: int) -> int:
    """An int in ``[minimum, maximum]``: the maximum is what the field allocates."""
    number = int_at_least(owner, field, value, minimum)
    if number > maximum:
        raise _fail_value(owner, field, value, f"an int between {minimum} and {maximum:_}")
    return number


def _number(owner: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail_type(owner, field, value, "a number")
    try:
        number = float(value)
    except OverflowError:  # an int past the largest float
        raise _fail_value(owner, field, value, "a number a float can hold") from None
    if math.isnan(number):
        raise _fail_value(owner, field, value, "a number, not NaN")
    return number


def number(owner: str, field: str, value: object, minimum: float) -> float:
    """A finite number ``>= minimum``, as a float (an int too large for a
    float, NaN and infinities are ValueErrors naming the field)."""
    found = _number(owner, field, value)
    if math.isinf(found) or found < minimum:
        bound = "" if minimum == -math.inf else f" >= {minimum:g}"
        raise _fail_value(owner, field, value, f"a finite number{bound}")
    return found


def seconds(owner: str, field: str, value: object, *, allow_zero: bool = True) -> float:
    number = _number(owner, field, value)
    if number < 0 or (number == 0 and not allow_zero) or math.isinf(number):
        bound = ">= 0" if allow_zero else "> 0"
        raise _fail_value(owner, field, value, f"a finite number of seconds {bound}")
    if number > MAX_SECONDS:
        raise _fail_value(
            owner, field, value, f"at most {MAX_SECONDS:g} seconds (threading.TIMEOUT_MAX)"
        )
    return number


def seconds_or_none(owner: str, field: str, value: object) -> float | None:
    if value is None:
        return None
    return seconds(owner, field, value, allow_zero=False)


def fraction_or_none(owner: str, field: str, value: object) -> float | None:
    if value is None:
        return None
    number = _number(owner, field, value)
    if not 0 < number <= 1:
        raise _fail_value(owner, field, value, "a rate with 0 < rate <= 1")
    return number


def probability(owner: str, field: str, value: object) -> float:
    number = _number(owner, field, value)
    if not 0 <= number <= 1:
        raise _fail_value(owner, field, value, "a probability with 0 <= p <= 1")
    return number


def exception_types(owner: str, field: str, value: object) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise _fail_type(owner, field, value, "an exception type or a tuple of them")
    return items


def catchable_types(owner: str, field: str, value: object) -> tuple[type[BaseException], ...]:
    """Exception types a policy can catch: those that match an ``Exception``
    (``BaseException`` itself matches every one); a ``KeyboardInterrupt`` or
    ``SystemExit`` always passes through, so naming one is a mistake."""
    items = exception_types(owner, field, value)
    for item in items:
        if not (issubclass(item, Exception) or issubclass(Exception, item)):
            raise _fail_value(
                owner,
                field,
                value,
                f"Exception subclasses ({item.__name__} is a BaseException no policy catches)",
            )
    return items


def name_or_none(owner: str, field: str, value: object) -> str | None:
    """A non-empty str, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail_type(owner, field, value, "a str or None")
    if not value:
        raise _fail_value(owner, field, value, "a non-empty str or None")
    return value


def callable_or_none(owner: str, field: str, value: object) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise _fail_type(owner, field, value, "callable or None")
    return value
