"""Latency quantiles in bounded memory: a logarithmic-bucket histogram.

Bucket ``i`` holds the values in ``(g**(i-1), g**i]`` with
``g = (1 + a) / (1 - a)``, and reports ``2 * g**i / (g + 1)`` for them, which
is within a relative error ``a`` of every value in the bucket (the DDSketch
construction). A quantile is the bucket holding the value of that rank, so
it is within ``a`` (``RELATIVE_ERROR``, 1 %) of the exact nearest-rank
quantile.
"""

from __future__ import annotations

import math

__all__ = ["LogHistogram"]

RELATIVE_ERROR = 0.01
# Durations are seconds: below a nanosecond is "zero", above 11.6 days is clamped.
MIN_VALUE = 1e-9
MAX_VALUE = 1e6

_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
# At most this many buckets, whatever is recorded (about 1,730).
MAX_BUCKETS = math.ceil(math.log(MAX_VALUE / MIN_VALUE) / _LOG_GAMMA) + 1


class LogHistogram:
    """Counts, sum, extremes and quantiles (±1 %) of non-negative values."""

    __slots__ = ("_buckets", "_zeros", "count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = 0.0

    def add(self, value: float) -> None:
        value = min(max(value, 0.0), MAX_VALUE)
        self.count += 1
        self.total += value
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        if value <= MIN_VALUE:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / _LOG_GAMMA)
        buckets = self._buckets
        buckets[index] = buckets.get(index, 0) + 1

    def merge(self, other: LogHistogram) -> None:
        """Add everything ``other`` recorded (the error bound still holds)."""
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self._zeros += other._zeros
        buckets = self._buckets
        for index, n in other._buckets.items():
            buckets[index] = buckets.get(index, 0) + n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantiles(self, *qs: float) -> list[float]:
        """The nearest-rank ``q``-quantile (0 < q <= 1) for each ``q``; 0.0 when empty."""
        if not self.count:
            return [0.0 for _ in qs]
        ranks = [max(1, math.ceil(q * self.count)) for q in qs]
        found: list[float | None] = [None] * len(qs)
        seen = self._zeros
        for i, rank in enumerate(ranks):
            # The extremes are known exactly.
            if rank >= self.count:
                found[i] = self.maximum
            elif rank == 1:
                found[i] = self.minimum
            elif rank <= seen:
                found[i] = 0.0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            for i, rank in enumerate(ranks):
                if found[i] is None and rank <= seen:
                    found[i] = 2.0 * _GAMMA**index / (_GAMMA + 1.0)
        # Clamping to what was seen only moves an estimate towards the truth.
        return [min(max(v or 0.0, self.minimum), self.maximum) for v in found]
