"""``AdaptiveLimit``: a bulkhead's concurrency limit moved by what it observes.

The algorithms here are pure: each takes a window of finished calls (their
mean latency, how many calls were in flight, how many failed, how many
there were) and answers the new limit estimate. No clock, no lock, no I/O; the bulkhead
times its calls and applies the limit (see ``resilient.bulkhead``).

All three compare a call's latency with the dependency's latency without
load, the ``baseline``: the lowest latency seen over the last one or two
windows of ``BASELINE_WINDOW`` samples (so a dependency that became
slower for good is learned within two windows).

- ``"gradient"``: each round trip (a limit's worth of calls) moves the
  limit a fifth of the way toward
  ``limit * min(1, baseline / latency) + sqrt(limit)``: it grows while
  latency stays at the baseline and shrinks in proportion as latency rises
  above it (toward half the limit on failures). Settles where the queue
  the dependency builds is about ``sqrt(limit)``. The default.
- ``"vegas"``: estimates the queue, ``limit * (1 - baseline / latency)``;
  per round trip (a limit's worth of calls), grows by ``log10(limit)``
  while it is below ``3 log10(limit)``, shrinks above ``6 log10(limit)`` by
  ``log10(limit)`` or half the excess, whichever is more, and by
  ``log10(limit)`` on failures. Holds still in between: the steadiest
  limit.
- ``"aimd"``: additive increase, multiplicative decrease, as TCP: grows by
  one per round trip, multiplies by
  0.8 on a failure or a latency over 1.3 times the baseline, at most once
  per limit's worth of calls. Needs no model of the queue; saw-tooths.

None of them grows while the bulkhead is far from full (fewer calls in
flight than half the limit): an idle limit proves nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from .._runtime import validation as _validate
from .._runtime.mapping import FromDict

__all__ = [
    "ALGORITHMS",
    "BASELINE_WINDOW",
    "MAX_LIMIT",
    "TIMED",
    "WINDOW",
    "AdaptiveLimit",
    "Aimd",
    "Estimator",
    "Gradient",
    "Vegas",
    "estimator",
]

Algorithm = Literal["gradient", "vegas", "aimd"]
ALGORITHMS: tuple[str, ...] = ("gradient", "vegas", "aimd")

#: Samples per window of the baseline (the lowest latency of the last one or two).
BASELINE_WINDOW = 5000
#: Calls a bulkhead gathers before it hands them to the algorithm as one.
WINDOW = 32
#: Which of every 64 calls a bulkhead's fast path times (True for half of
#: them, the window's mean latency coming from those): the golden-ratio
#: sequence, which has no short period, so calls that cycle through backends
#: (every other one slow, say) are sampled on each of them, where timing
#: every other call would see one backend only.
TIMED: tuple[bool, ...] = tuple((i * 0.6180339887498949) % 1.0 < 0.5 for i in range(64))
#: The largest limit any bulkhead may reach (one permit is a token in memory).
MAX_LIMIT = 1_000_000

_OWNER = "AdaptiveLimit"


@dataclass(frozen=True, slots=True)
class AdaptiveLimit(FromDict):
    """How a bulkhead moves its limit: ``algorithm`` (``"gradient"``,
    ``"vegas"`` or ``"aimd"``) from ``initial``, within ``min_limit`` and
    ``max_limit`` (and the bulkhead's ``max_concurrent``)."""

    algorithm: Algorithm = "gradient"
    initial: int = 20
    min_limit: int = 1
    max_limit: int = 200

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"{_OWNER}.algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, "
                f"got {self.algorithm!r}"
            )
        for field in ("initial", "min_limit", "max_limit"):
            value = _validate.int_at_least(_OWNER, field, getattr(self, field), 1)
            if value > MAX_LIMIT:
                raise ValueError(f"{_OWNER}.{field} must be <= {MAX_LIMIT}, got {value!r}")
        if self.max_limit < self.min_limit:
            raise ValueError(
                f"{_OWNER}.max_limit must be >= min_limit ({self.min_limit!r}), "
                f"got {self.max_limit!r}"
            )
        if not self.min_limit <= self.initial <= self.max_limit:
            raise ValueError(
                f"{_OWNER}.initial must be within min_limit and max_limit "
                f"({self.min_limit!r}..{self.max_limit!r}), got {self.initial!r}"
            )


class Estimator:
    """The shared half of the algorithms: the limit estimate, its bounds and
    the baseline latency. ``update`` takes one window of samples (their
    mean latency, the calls in flight at its end, how many failed, how many
    there were) and answers the new estimate (a float within the bounds).
    Each algorithm moves in proportion to the samples it is given, so one
    sample at a time or ``WINDOW`` at once move it alike."""

    __slots__ = ("_cur_min", "_prev_min", "_seen", "estimate", "high", "low")

    name: ClassVar[str]

    def __init__(self, initial: float, low: float, high: float) -> None:
        self.low = float(low)
        self.high = float(high)
        self.estimate = min(max(float(initial), self.low), self.high)
        self._cur_min = math.inf
        self._prev_min = math.inf
        self._seen = 0

    def baseline(self, latency: float, samples: int = 1) -> float:
        """Take ``latency`` into the baseline; answer the baseline."""
        seen = self._seen + samples
        if seen > BASELINE_WINDOW:
            self._prev_min, self._cur_min, seen = self._cur_min, math.inf, samples
        self._seen = seen
        if latency < self._cur_min:
            self._cur_min = latency
        return min(self._cur_min, self._prev_min)

    def _bounded(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        self.estimate = value
        return value

    def update(self, latency: float, inflight: int, failures: int = 0, samples: int = 1) -> float:
        raise NotImplementedError


class Gradient(Estimator):
    __slots__ = ()
    name = "gradient"
    SMOOTHING = 0.2

    def update(self, latency: float, inflight: int, failures: int = 0, samples: int = 1) -> float:
        baseline = self.baseline(latency, samples)
        limit = self.estimate
        if failures:
            target = limit * 0.5  # no room for a queue while it fails
        else:
            gradient = max(0.5, min(1.0, baseline / latency)) if latency > 0 else 1.0
            target = limit * gradient + math.sqrt(limit)
            if target > limit and inflight < limit / 2:
                return limit  # far from full: no reason to grow
        # A limit's worth of samples arrive per round trip: each moves it a
        # share, so that a round trip moves it SMOOTHING of the way.
        share = min(1.0, self.SMOOTHING * samples / limit)
        return self._bounded(limit + (target - limit) * share)


class Vegas(Estimator):
    __slots__ = ()
    name = "vegas"

    def update(self, latency: float, inflight: int, failures: int = 0, samples: int = 1) -> float:
        baseline = self.baseline(latency, samples)
        limit = self.estimate
        log = max(1.0, math.log10(limit))
        step = log * samples / limit  # log10(limit) per limit's worth of samples
        if failures:
            return self._bounded(limit - step)
        queue = limit * (1.0 - baseline / latency) if latency > 0 else 0.0
        if queue > 6.0 * log:
            # log10(limit), or half the queue beyond 6 log10(limit), per round trip.
            excess = max(log, (queue - 6.0 * log) / 2.0)
            return self._bounded(limit - excess * samples / limit)
        if queue < 3.0 * log and inflight >= limit / 2:
            return self._bounded(limit + step)
        return limit


class Aimd(Estimator):
    __slots__ = ("_calm",)
    name = "aimd"
    BACKOFF = 0.8
    TOLERANCE = 1.3

    def __init__(self, initial: float, low: float, high: float) -> None:
        super().__init__(initial, low, high)
        self._calm = 0  # samples to let pass before the next decrease

    def update(self, latency: float, inflight: int, failures: int = 0, samples: int = 1) -> float:
        baseline = self.baseline(latency, samples)
        limit = self.estimate
        calm = self._calm
        if calm:
            self._calm = max(0, calm - samples)
        if failures or latency > self.TOLERANCE * baseline:
            if calm:
                return limit  # this window has shrunk once already
            self._calm = int(limit)
            return self._bounded(limit * self.BACKOFF)
        if inflight < limit / 2:
            return limit
        return self._bounded(limit + samples / limit)


_BY_NAME: dict[str, type[Estimator]] = {cls.name: cls for cls in (Gradient, Vegas, Aimd)}


def estimator(config: AdaptiveLimit, cap: int) -> Estimator:
    """A fresh estimator for ``config``, bounded by ``cap`` (the bulkhead's
    ``max_concurrent``) too."""
    high = min(config.max_limit, cap)
    low = min(config.min_limit, high)
    return _BY_NAME[config.algorithm](min(config.initial, high), low, high)
