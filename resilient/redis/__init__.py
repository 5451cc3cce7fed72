"""Circuit breakers and rate limits shared across processes and hosts through Redis.

Needs the ``redis`` extra: ``pip install 'resilient-kit[redis]'``. See docs/fleet.md.
"""

from __future__ import annotations

try:
    import redis as _redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "resilient.redis needs the redis package: pip install 'resilient-kit[redis]'"
    ) from exc

from ._storage import RedisStorage, SharedBreakerInfo

__all__ = ["RedisStorage", "SharedBreakerInfo"]
