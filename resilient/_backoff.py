"""How long to wait before the next attempt, and when to stop: pure
functions of their inputs.

No clock, no sleeping: the caller passes the time elapsed, the deadline and
a ``random.Random``, so a seeded source gives an exact sequence of delays.

Formulas, for the wait after failed attempt ``n`` (1 for the first call),
with ``base(n) = min(max_delay, initial_delay * multiplier ** (n - 1))``:

- jitter ``f`` (a fraction):  ``min(max_delay, base(n) * (1 + uniform(-f, f)))``
- ``"full"``:                 ``uniform(0, base(n))``
- ``"equal"``:                ``base(n) / 2 + uniform(0, base(n) / 2)``
- ``"decorrelated"``:         ``min(max_delay, uniform(initial_delay, 3 * previous))``
  where ``previous`` is the last such delay (``initial_delay`` before the
  first); this is AWS's formula, and ``multiplier`` plays no part in it.

``max_delay`` is a true maximum of the computed delay; only a server's
``Retry-After`` may ask for more.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple

__all__ = [
    "JITTER_STRATEGIES",
    "Backoff",
    "JitterStrategy",
    "Plan",
    "plan",
    "retry_after_of",
]

JitterStrategy = Literal["full", "equal", "decorrelated"]
JITTER_STRATEGIES: tuple[str, ...] = ("full", "equal", "decorrelated")

#: The source used when none is given; seeded from the OS like ``random``'s own.
DEFAULT_RANDOM = random.Random()


@dataclass(frozen=True, slots=True)
class Backoff:
    """A delay schedule. ``jitter`` is a fraction in [0, 1] or a strategy name."""

    initial_delay: float
    max_delay: float
    multiplier: float
    jitter: float | str

    def base(self, attempt: int) -> float:
        """``initial_delay * multiplier ** (attempt - 1)``, capped at ``max_delay``."""
        try:
            raw = self.initial_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_delay
        return min(raw, self.max_delay)

    def delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        """The wait after failed attempt ``attempt``. ``previous`` is the delay
        this returned for the attempt before (0.0 for the first); only the
        decorrelated strategy reads it."""
        jitter = self.jitter
        if jitter == "decorrelated":
            low = self.initial_delay
            high = 3.0 * max(previous, low)
            return min(self.max_delay, rng.uniform(low, high))
        base = self.base(attempt)
        if jitter == "full":
            return rng.uniform(0.0, base)
        if jitter == "equal":
            half = base / 2.0
            return half + rng.uniform(0.0, half)
        assert isinstance(jitter, float)
        if not jitter or not base:
            return base
        return min(self.max_delay, base * (1.0 + rng.uniform(-jitter, jitter)))


def retry_after_of(error: BaseException | None) -> float | None:
    """Seconds from the error's ``retry_after`` attribute (a number of seconds
    or a ``timedelta``), or None when it has none or it makes no sense."""
    value = getattr(error, "retry_after", None)
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


class Plan(NamedTuple):
    """What follows a failed, retryable attempt."""

    delay: float  # the wait before the next attempt
    previous: float  # pass back as ``previous`` after the next failure
    retry_after: float | None  # the Retry-After this wait honours, if any
    stop: str | None = None  # why there is no next attempt; None: wait ``delay``


def plan(
    backoff: Backoff,
    rng: random.Random,
    *,
    attempt: int,
    max_attempts: int,
    previous: float,
    elapsed: float,
    deadline: float | None,
    retry_after: float | None = None,
    open_for: float | None = None,
) -> Plan:
    """The wait after failed attempt ``attempt`` (1-based), or why to stop.

    ``elapsed`` is the time since the first attempt started; ``deadline``
    bounds it, waits included. ``retry_after`` is the wait a server asked
    for (at least that long, even past ``max_delay``). ``open_for`` is the
    time an open circuit breaker still rejects calls: waited as is when it
    is at most ``max_delay``, else a reason to stop.
    """
    if attempt >= max_attempts:
        return Plan(0.0, previous, None, "")
    if open_for is not None and open_for > 0:
        if open_for > backoff.max_delay:
            return Plan(
                0.0,
                previous,
                None,
                f"the circuit stays open {open_for:g}s, more than max_delay {backoff.max_delay:g}s",
            )
        delay = open_for
        retry_after = None
    else:
        delay = previous = backoff.delay(attempt, previous, rng)
        if retry_after is not None and retry_after > delay:
            delay = retry_after
    if deadline is not None and elapsed + delay > deadline:
        return Plan(
            0.0,
            previous,
            None,
            f"the next wait of {delay:g}s would pass the {deadline:g}s deadline",
        )
    return Plan(delay, previous, retry_after)
