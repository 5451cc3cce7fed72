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

``max_delay`` is a true maximum of every wait: a ``Retry-After`` may make
the wait longer than the computed delay, up to ``max_delay``; one asking
for more (``float('inf')``, ``10**400``, a year) is not slept through: the
retry gives up at once and the error is re-raised, as past the deadline.

After a circuit breaker's rejection (``Circuit``) the wait is not the
backoff: a retry that holds a waiter slot wakes ``left`` seconds later plus
up to 10 % (``left * (1 + uniform(0, s))``, cut at the deadline, where ``s``
is the jitter fraction capped at 0.1, or 0.1 for a jitter strategy), when
the breaker lets it probe; every other one gives up at once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple

__all__ = [
    "CIRCUIT_JITTER",
    "JITTER_STRATEGIES",
    "Backoff",
    "Circuit",
    "JitterStrategy",
    "Plan",
    "may_wait_for_circuit",
    "plan",
    "retry_after_of",
]

#: How much later than the breaker's reopening a waiting retry may wake (a fraction of the wait).
CIRCUIT_JITTER = 0.1

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
        try:
            seconds = float(value)
        except OverflowError:  # an int past the largest float: forever
            seconds = math.inf
    else:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


class Circuit(NamedTuple):
    """A circuit breaker's rejection, as retry sees it."""

    state: str  # the breaker's state when it rejected (a CircuitState value)
    left: float  # seconds until this retry may probe (its ticket's due, or remaining)
    waiter: bool  # whether this retry holds one of the breaker's waiter slots


def may_wait_for_circuit(
    *,
    state: str,
    remaining: float,
    attempt: int,
    max_attempts: int,
    max_delay: float,
    elapsed: float,
    deadline: float | None,
) -> bool:
    """Whether a retry that met an open breaker would wait for it, given a
    waiter slot: asked before taking one, so a retry that would give up
    anyway never holds a slot another could use."""
    return (
        attempt < max_attempts
        and state == "open"
        and remaining <= max_delay
        and (deadline is None or elapsed + remaining <= deadline)
    )


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
    circuit: Circuit | None = None,
    chosen: float | None = None,
) -> Plan:
    """The wait after failed attempt ``attempt`` (1-based), or why to stop.

    ``elapsed`` is the time since the first attempt started; ``deadline``
    bounds it, waits included. ``retry_after`` is the wait a server asked
    for (at least that long; past ``max_delay``: stop). ``circuit``: the
    attempt was a breaker's rejection (see the module's docstring).
    ``chosen``: the wait a user's ``wait`` callable picked instead of the
    backoff (capped at ``max_delay``, as the backoff is).
    """
    if attempt >= max_attempts:
        return Plan(0.0, previous, None, "")
    if circuit is not None:
        return _circuit_plan(circuit, backoff, rng, previous, elapsed, deadline)
    if chosen is None:
        delay = previous = backoff.delay(attempt, previous, rng)
    else:
        delay = previous = min(chosen, backoff.max_delay)
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    if deadline is not None and elapsed + delay > deadline:
        return Plan(
            0.0,
            previous,
            None,
            f"the next wait of {delay:g}s would pass the {deadline:g}s deadline",
        )
    if delay > backoff.max_delay:  # only a retry_after can ask for that
        return Plan(
            0.0,
            previous,
            None,
            f"the error's retry_after of {delay:g}s is more than max_delay {backoff.max_delay:g}s",
        )
    return Plan(delay, previous, retry_after)


def _circuit_plan(
    circuit: Circuit,
    backoff: Backoff,
    rng: random.Random,
    previous: float,
    elapsed: float,
    deadline: float | None,
) -> Plan:
    state, left, waiter = circuit
    max_delay = backoff.max_delay
    if left > max_delay or state == "forced_open":
        return Plan(
            0.0,
            previous,
            None,
            f"the circuit stays open {left:g}s, more than max_delay {max_delay:g}s",
        )
    if state != "open":
        return Plan(0.0, previous, None, f"the circuit is {state} with no probe free")
    if not waiter:
        return Plan(0.0, previous, None, "other retries already wait for the circuit's probes")
    room = math.inf if deadline is None else deadline - elapsed
    if left > room:
        return Plan(
            0.0,
            previous,
            None,
            f"the circuit stays open {left:g}s, past the {deadline:g}s deadline",
        )
    delay = left
    jitter = backoff.jitter
    spread = CIRCUIT_JITTER if isinstance(jitter, str) or jitter > CIRCUIT_JITTER else jitter
    if left > 0 and spread:
        delay = min(left + left * rng.uniform(0.0, spread), room)
    return Plan(delay, previous, None)
