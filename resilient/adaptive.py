"""``AdaptiveLimit`` and its algorithms (see :mod:`resilient.bulkhead.adaptive`)."""

from .bulkhead.adaptive import (
    ALGORITHMS,
    BASELINE_WINDOW,
    MAX_LIMIT,
    TIMED,
    WINDOW,
    AdaptiveLimit,
    Aimd,
    Estimator,
    Gradient,
    Vegas,
    estimator,
)

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
