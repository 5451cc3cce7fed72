"""The rate limiter: at most ``rate`` calls per ``period`` (GCRA).

- ``state.py``: the rules, GCRA with reserved turns (pure).
- ``limiter.py``: :class:`RateLimitConfig` and :class:`RateLimiter`.
"""

from ..errors import RateLimitExceededError
from .limiter import RateLimitConfig, RateLimiter, RateLimiterMetrics, SharedLimit

__all__ = [
    "RateLimitConfig",
    "RateLimitExceededError",
    "RateLimiter",
    "RateLimiterMetrics",
    "SharedLimit",
]
