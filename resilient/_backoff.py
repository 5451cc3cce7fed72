"""How long to wait before the next attempt: pure functions of their inputs.

No clock, no sleeping: the caller passes ``now``, the deadline and a
``random.Random``, so a seeded source gives an exact sequence of delays.

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
from typing import Literal

__all__ = ["JITTER_STRATEGIES", "Backoff", "JitterStrategy", "fits", "retry_after_of"]

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


def fits(now: float, delay: float, deadline_at: float | None) -> bool:
    """Whether a wait of ``delay`` from ``now`` ends by the deadline."""
    return deadline_at is None or now + delay <= deadline_at
