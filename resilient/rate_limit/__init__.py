"""The rate limiter: at most ``rate`` calls per ``period`` (GCRA).

- ``state.py``: the rules, GCRA with reserved turns (pure).
- ``limiter.py``: ``RateLimitConfig`` and ``RateLimiter``.
"""

from . import limiter as _limiter
from .limiter import *  # noqa: F403

__all__ = _limiter.__all__
