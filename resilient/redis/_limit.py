"""One rate limit for the whole fleet: GCRA in one atomic Lua script.

Every acquisition is one ``EVALSHA`` (one round trip): the script reads the
limit's theoretical arrival time, decides with Redis's own clock (``TIME``,
so hosts with skewed clocks agree), moves it on when it admits, and notes
the instance as seen. A waiter that gives its turn back runs the script
once more; only the last turn handed out can be taken back (an earlier one
stays spent: the fleet errs on the strict side). A turn may weigh more
than one call (``cost``), and ``adjust`` charges or refunds units after
the fact: the same script, so every decision is one atomic round trip.

While Redis is unreachable, each instance limits alone at ``rate`` divided
by the number of instances it last saw (and the burst likewise), with the
local GCRA core, and asks Redis again every ``refresh_interval`` seconds.

Keys of a limit ``NAME`` in namespace ``NS`` (see ``limit_keys``):
``NS:rl:NAME`` (the arrival time, a string; it expires once the limit is
back to a full burst) and ``NS:rl:NAME:instances`` (zset: instance -> when
it last acquired).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Protocol, cast

from .._runtime import async_backend as _async_backend
from .._runtime import clock as _clock
from .._runtime import fork as _fork
from ..rate_limit.state import GcraCore
from ._binding import Hub
from ._keys import tagged

if TYPE_CHECKING:
    from ..rate_limit.limiter import RateLimiter

__all__ = ["LIMIT_SCRIPT", "SharedLimiter", "limit_keys"]

log = logging.getLogger("resilient")

# How long an instance counts as part of the fleet after its last acquisition.
SEEN_FOR = 60.0


def limit_keys(namespace: str, name: str) -> list[str]:
    """The Redis keys of the rate limit ``name``: every name the limiter
    uses is made here."""
    base = tagged(namespace, "rl", name)  # names are data: encoded, one slot
    return [base, f"{base}:instances"]


# ARGV: op ("acquire", "give" or "adjust"), interval, tolerance, max_wait,
# instance, token (give only), seen_for, cost (the units of "adjust").
# Numbers travel as "%.17g" strings: exact doubles.
LIMIT_SCRIPT = r"""
local TAT, INST = KEYS[1], KEYS[2]
local op = ARGV[1]
local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = tonumber(ARGV[8] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function num(x) return string.format('%.17g', x) end
local function keep(tat)
  local ms = math.ceil((tat - now) * 1000) + 1000
  if ms < 1000 then ms = 1000 end
  redis.call('SET', TAT, num(tat), 'PX', ms)
end

if op == 'acquire' then
  local max_wait, me, seen_for = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[7])
  redis.call('ZADD', INST, now, me)
  redis.call('ZREMRANGEBYSCORE', INST, '-inf', now - seen_for)
  redis.call('EXPIRE', INST, math.ceil(seen_for) * 2)
  local seen = redis.call('ZCARD', INST)
  local tat = tonumber(redis.call('GET', TAT) or '0')
  if tat < now then tat = now end
  local wait = tat + (cost - 1) * interval - tolerance - now
  if wait > max_wait + interval * 1e-9 then
    return {0, num(wait), seen}
  end
  keep(tat + cost * interval)
  if wait < 0 then wait = 0 end
  return {1, num(wait), seen, num(tat)}
end

if op == 'give' then
  local token = tonumber(ARGV[6])
  local tat = tonumber(redis.call('GET', TAT) or '0')
  if num(token + cost * interval) == num(tat) then
    if token > now then keep(token) else redis.call('DEL', TAT) end
    return 1
  end
  return 0
end

if op == 'adjust' then
  local tat = tonumber(redis.call('GET', TAT) or '0')
  if cost >= 0 then
    if tat < now then tat = now end
    keep(tat + cost * interval)
  elseif tat > now then
    tat = tat + cost * interval
    if tat > now then keep(tat) else redis.call('DEL', TAT) end
  end
  return 1
end

return redis.error_reply('resilient: unknown op ' .. tostring(op))
"""


def _num(x: float) -> str:
    return f"{x:.17g}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _LimitHub(Hub, Protocol):
    """What a limiter's link uses of its storage: a ``Hub``, and the client
    its script is registered with."""

    @property
    def _client(self) -> Any: ...


class SharedLimiter:
    """One limiter's link to a ``RedisStorage`` (what
    ``RateLimitConfig(storage=...)`` makes)."""

    def __init__(self, storage: _LimitHub, limiter: RateLimiter) -> None:
        cfg = limiter.config
        assert cfg.burst is not None
        self._storage = storage
        self._name = limiter.name
        self._keys = limit_keys(storage.namespace, limiter.name)
        self._rate, self._period, self._burst = cfg.rate, cfg.period, cfg.burst
        self._interval = cfg.period / cfg.rate
        self._tolerance = (cfg.burst - 1) * self._interval
        self._script = storage._client.register_script(LIMIT_SCRIPT)
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self.instances = 1  # as last seen in Redis
        self._local: GcraCore | None = None  # while Redis is unreachable
        self._retry_at = 0.0

    @property
    def local(self) -> bool:
        """Whether this instance limits alone now (Redis unreachable)."""
        return self._local is not None

    def acquire(self, max_wait: float, cost: float = 1.0) -> tuple[object, float]:
        if self._local is not None and _clock.monotonic() < self._retry_at:
            return self._acquire_locally(max_wait, cost)
        storage = self._storage
        try:
            reply: Any = self._script(
                keys=self._keys,
                args=[
                    "acquire",
                    _num(self._interval),
                    _num(self._tolerance),
                    _num(max_wait),
                    storage.instance,
                    "",
                    _num(SEEN_FOR),
                    _num(cost),
                ],
            )
        except storage.unavailable as exc:
            self._go_local(exc)
            return self._acquire_locally(max_wait, cost)
        if self._local is not None:
            self._local = None
            log.info("resilient: Redis is reachable again; rate limit %r is shared", self._name)
        self.instances = max(1, int(reply[2]))
        wait = float(_text(reply[1]))
        if not int(reply[0]):
            return None, wait
        return ("redis", float(_text(reply[3])), cost), wait

    async def acquire_async(self, max_wait: float) -> tuple[object, float]:
        """``acquire`` on the storage's own threads: the event loop never
        waits for Redis (a stalled one costs the caller at most
        ``socket_timeout``, then the instance limits alone)."""
        if self._local is not None and _clock.monotonic() < self._retry_at:
            return self._acquire_locally(max_wait)  # no I/O
        if _async_backend.running_loop() is None:  # trio, say
            return await _async_backend.in_thread(
                lambda: self.acquire(max_wait), self._abandon_turn
            )
        future = self._storage.submit(lambda: self.acquire(max_wait))
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except BaseException:
            # Cancelled: a turn granted after the caller left goes back.
            future.add_done_callback(self._abandoned)
            raise

    def _abandoned(self, future: concurrent.futures.Future[tuple[object, float]]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._abandon_turn(future.result())

    def _abandon_turn(self, turn: tuple[object, float]) -> None:
        token, _ = turn
        if token is not None:
            self.give_back(token)

    def give_back(self, token: object) -> None:
        where, value, cost = cast("tuple[str, float, float]", token)
        if where == "local":
            with self._lock:
                if self._local is not None:
                    self._local.give_back(value, cost)
            return
        storage = self._storage
        try:
            self._script(
                keys=self._keys,
                args=[
                    "give",
                    _num(self._interval),
                    _num(self._tolerance),
                    "0",
                    storage.instance,
                    _num(value),
                    _num(SEEN_FOR),
                    _num(cost),
                ],
            )
        except storage.unavailable as exc:  # the turn stays spent: strict, never loose
            self._go_local(exc)

    def adjust(self, units: float) -> None:
        """Charge (or refund) ``units``: one atomic round trip."""
        if self._local is not None and _clock.monotonic() < self._retry_at:
            self._adjust_locally(units)
            return
        storage = self._storage
        try:
            self._script(
                keys=self._keys,
                args=[
                    "adjust",
                    _num(self._interval),
                    _num(self._tolerance),
                    "0",
                    storage.instance,
                    "",
                    _num(SEEN_FOR),
                    _num(units),
                ],
            )
        except storage.unavailable as exc:
            self._go_local(exc)
            self._adjust_locally(units)

    def detach(self) -> None:
        """Nothing to stop: every acquisition is its own round trip."""

    # -- alone, while Redis is unreachable ---------------------------------------

    def _go_local(self, error: BaseException) -> None:
        now = _clock.monotonic()
        with self._lock:
            self._retry_at = now + self._storage.refresh_interval
            if self._local is not None:
                return
            share = max(1, self.instances)
            self._local = GcraCore(
                self._rate / share, self._period, max(1, math.ceil(self._burst / share))
            )
        log.warning(
            "resilient: Redis is unreachable (%s: %s); rate limit %r limits this instance "
            "alone at 1/%d of the rate until it is back",
            type(error).__name__,
            error,
            self._name,
            share,
        )

    def _acquire_locally(self, max_wait: float, cost: float = 1.0) -> tuple[object, float]:
        now = _clock.now()
        with self._lock:
            core = self._local
            if core is None:  # back meanwhile: one more local decision is fine
                return ("local", 0.0, 0.0), 0.0
            # Alone, this instance has a share of the burst: a call costing
            # more than the share takes all of it.
            cost = min(cost, core.tolerance / core.interval + 1.0)
            token = core.acquire(now, max_wait, cost)
            if token is None:
                return None, core.retry_after(now, cost)
        return ("local", token, cost), max(0.0, core.start_of(token, cost) - now)

    def _adjust_locally(self, units: float) -> None:
        with self._lock:
            if self._local is not None:
                self._local.adjust(_clock.now(), units)
