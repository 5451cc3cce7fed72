"""Benchmark cases of the rate limiter and the per-key breaker, side by side
with the peers' rate limiters (registered into ``cases.CASES`` on import).

Every limiter admits each call: its rate is so high (10⁹ a second, with a
burst as large) that the bucket is never empty, so what is measured is the
cost of admitting a call. The per-key breaker's key function returns a
constant; its own cost (a pass-through calling it, less a plain
pass-through) is left out of the per-key target.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .cases import FAILURES, RECOVERY, awork, case, work

__all__: list[str] = []

RATE = 1_000_000_000  # calls a second: never runs out while measured
LIMITER = "rate limiter"
KEYED = "per-key breaker"


def _with_rate_limit(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_rate_limit

    return with_rate_limit(name, rate=RATE)(fn)


def _key(x: int) -> str:
    return "key"


def _key_floor(fn: Callable[..., Any]) -> Any:
    """A functools.wraps pass-through that also calls the key function: less
    the plain pass-through, what the key function itself costs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _key(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


def _akey_floor(fn: Callable[..., Any]) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        _key(*args, **kwargs)
        return await fn(*args, **kwargs)

    return wrapper


def _with_keyed(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_circuit_breaker

    return with_circuit_breaker(
        name,
        key=_key,
        failure_threshold=FAILURES,
        recovery_timeout=RECOVERY,
    )(fn)


# -- peers ----------------------------------------------------------------------------


def _pyrate(fn: Callable[..., Any]) -> Any:
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate

    limiter = Limiter(InMemoryBucket([Rate(RATE, Duration.SECOND)]))
    acquire = limiter.try_acquire

    def limited(*args: Any, **kwargs: Any) -> Any:
        if not acquire("bench", blocking=False):
            raise RuntimeError("pyrate-limiter refused")
        return fn(*args, **kwargs)

    return limited


def _limits(fn: Callable[..., Any]) -> Any:
    from limits import RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    limiter = FixedWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerSecond(RATE)
    hit = limiter.hit

    def limited(*args: Any, **kwargs: Any) -> Any:
        if not hit(item, "bench"):
            raise RuntimeError("limits refused")
        return fn(*args, **kwargs)

    return limited


def _aiolimiter(fn: Callable[..., Any]) -> Any:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(RATE, 1.0)

    async def limited(*args: Any, **kwargs: Any) -> Any:
        async with limiter:
            return await fn(*args, **kwargs)

    return limited


async def _hyx(fn: Callable[..., Any]) -> Any:
    from hyx.ratelimit import tokenbucket  # made in the worker's loop, as hyx needs

    return tokenbucket(max_executions=RATE, per_time_secs=1, bucket_size=RATE)(fn)


case("sync", LIMITER, "pyrate-limiter", peer="pyrate_limiter")(functools.partial(_pyrate, work))
case("sync", LIMITER, "limits", peer="limits")(functools.partial(_limits, work))
case("async", LIMITER, "aiolimiter", peer="aiolimiter")(functools.partial(_aiolimiter, awork))
case("async", LIMITER, "hyx", peer="hyx")(functools.partial(_hyx, awork))


MEMORY_PER_KEY = "memory per key"


def memory_per_key(count: int = 5000) -> dict[str, float]:
    """Bytes per key of a per-key breaker: its breaker, registration, LRU
    entry and closure (``count`` keys, none dropped)."""
    import gc
    import tracemalloc

    from resilient import Registry, with_circuit_breaker

    registry = Registry()
    get = with_circuit_breaker("mem", key=lambda x: x, max_keys=count + 1, registry=registry)(work)
    get("warm-up")  # first-use allocations are not per key
    keys = [f"key-{i}" for i in range(count)]  # the callers' strings, not the breakers'
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            get(key)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return {MEMORY_PER_KEY: (after - before) / count}


KEY_FLOOR = "floor: key function"

for _mode, _fn, _floor in (("sync", work, _key_floor), ("async", awork, _akey_floor)):
    _breaker = f"{_mode} circuit breaker: resilient"
    _wraps = f"{_mode} pass-through: floor: functools.wraps"
    case(_mode, LIMITER, "resilient", features=("with_rate_limit",), also=(_breaker,))(
        functools.partial(_with_rate_limit, _fn, f"bench-limit-{_mode}")
    )
    case(
        _mode,
        KEYED,
        "resilient",
        extra=memory_per_key if _mode == "sync" else None,
        also=(_breaker, f"{_mode} {KEYED}: {KEY_FLOOR}", _wraps),
    )(functools.partial(_with_keyed, _fn, f"bench-keyed-{_mode}"))
    case(_mode, KEYED, KEY_FLOOR)(functools.partial(_floor, _fn))
