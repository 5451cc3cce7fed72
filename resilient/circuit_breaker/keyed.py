"""Per-key circuit breakers: one breaker per host, tenant or key, made on
first use and bounded by the LRU rule.

``with_circuit_breaker(name, key=fn, max_keys=1024)`` puts a
``KeyedBreakers`` layer in the chain: each call asks ``fn(*args,
**kwargs)`` for its key and runs through that key's breaker, registered
under the pair ``(name, key)`` (``registry.get(name, key=key)``) and
labelled ``f"{name}[{key}]"`` in its events. A pair is not a string: no
key can name another key's breaker, another group's or a plain one.
Beyond ``max_keys`` breakers, the least recently used one that is CLOSED
and has no call in flight is dropped (from this layer and from the
registry); an open or busy breaker never is, so the cap may be passed for
a while. A breaker dropped and asked for again starts afresh,
CLOSED, which is what it was.

The keys, their LRU order, the calls in flight and the dropping are a
``Group`` of the registry's membership;
each call runs through its key's breaker by the breaker's own path
(``CircuitBreaker._through`` / ``_athrough``, inlined into the closures by
scripts/unasync.py: a call to it would be a second coroutine per call). A call costs the key
function, a dict lookup, an LRU move (none for the key used last) and a
count of calls in flight on top of a plain breaker call; a key costs its
breaker and its member, no closure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import events
from .._execution.compose import NEVER
from .._execution.policy_base import PolicyBase
from .._execution.streams import AOpen, Args, AsyncFn, Hold, Kwargs, Open, Opened, SyncFn
from .._runtime import clock as _clock
from .._runtime.switch import switch
from ..events import METERED
from .breaker import CircuitBreaker, _generation_of, _Permit

if TYPE_CHECKING:
    from .._execution.request import Request
    from .._registry.membership import Member
    from .._registry.registry import Registry
    from .config import CircuitBreakerConfig

__all__ = ["KeyedBreakers"]

R = TypeVar("R")

# The breaker's paths for a caller that picked it (the API this module uses;
# the closures inline ``_athrough`` / ``_through``, below).
_open_stream = CircuitBreaker._open_stream
_aopen_stream = CircuitBreaker._aopen_stream
_through_held = CircuitBreaker._through_held
_athrough_held = CircuitBreaker._athrough_held


def _leave(member: Member) -> None:
    member.inflight -= 1


class KeyedBreakers(PolicyBase):
    """A breaker per key, chosen per call. See the module's docstring."""

    # What its requests are counted as (its breakers count their own calls,
    # as circuit breakers, under their own names).
    _kind = "keyed_circuit_breaker"

    def __init__(
        self,
        name: str,
        key: Callable[..., str],
        *,
        config: CircuitBreakerConfig | None,
        max_keys: int,
        registry: Registry,
        label: Callable[[str], str] | None = None,
        on_drop: Callable[[str], object] | None = None,
        hold: Hold | None = None,
    ) -> None:
        self.name = name
        # What is still pending of a call's result (a response whose body
        # streams on): its key's breaker judges the call when that ends.
        self._hold = hold
        self.config = config
        self.max_keys = max_keys
        self._key = key
        self._registry = registry
        self._label = label
        self._listeners = events.ListenerSet(registry.listeners)
        self._group = registry.membership.group(max_keys, on_drop)

    def __repr__(self) -> str:
        return f"<KeyedBreakers {self.name!r} keys={len(self._group)}/{self.max_keys}>"

    def keys(self) -> list[str]:
        """The keys that have a breaker now, least recently used first."""
        return self._group.keys()

    def reconfigure(self, config: CircuitBreakerConfig) -> None:
        """Every key's breaker adopts ``config`` in place (see
        ``CircuitBreaker.reconfigure``), and so does each breaker made for a
        new key from now on."""
        for member in list(self._group.members.values()):
            member.breaker.reconfigure(config)  # checked by the first one
        self.config = config

    def breaker(self, key: str) -> CircuitBreaker:
        """The breaker of ``key`` (made now if it has none)."""
        return self._join(key).breaker

    # -- members -----------------------------------------------------------------

    def _make(self, key: str) -> CircuitBreaker:
        """The registry's breaker for ``key`` (made, or adopted as it is)."""
        label = self._label
        return self._registry.get_or_create(
            self.name, self.config, key=key, label=None if label is None else label(key)
        )

    def _join(self, key: object, entering: bool = False) -> Member:
        """The member of ``key``, made (and the LRU rule applied) if new."""
        if not isinstance(key, str):
            raise TypeError(f"the key function of {self.name!r} must return a str, got {key!r}")
        return self._group.join(key, self._make, entering=entering)

    def _enter(self, key: object) -> Member:
        """The member of ``key``, a use, its call counted in flight (the
        closures' fast path, for streams)."""
        group = self._group
        try:
            member = group.members[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return self._join(key, True)
        if member is not group.last:
            group.use(member)
        member.inflight += 1
        return member

    # -- execution -----------------------------------------------------------------

    # One closure per chain, not per key: it picks the key's member, counts
    # the call in flight there, and runs it through the member's breaker by
    # the breaker's own path. Outermost, it meters the request as every
    # outermost layer does.

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        key, join, group = self._key, self._join, self._group
        members, use = group.members, group.use
        hold = self._hold
        gate, detour, meter = NEVER, None, entry
        if entry is not None:
            gate, detour = entry.gate, entry.detour(self._wrap_sync(fn, name))

        def through_keyed(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[misc,no-any-return]
                start = _clock.now()
            # ``f(*args, **kwargs)`` copies ``kwargs`` into a new dict per
            # call: without keywords (the usual call), none is made.
            k = key(*args, **kwargs) if kwargs else key(*args)
            try:
                member = members[k]
            except (KeyError, TypeError):
                member = join(k, True)  # counted in flight already
            else:
                if member is not group.last:
                    use(member)
                member.inflight += 1
            breaker = member.breaker
            try:
                if hold is None:
                    # The breaker's own path, inlined: a call to it would
                    # be a second coroutine per call (6,767 instructions a
                    # call against 5,674 inlined: callgrind, the benchmark's
                    # "async per-key breaker").
                    # --- inlined from CircuitBreaker._through (scripts/unasync.py) ---
                    core = breaker._core
                    if core.fast and switch.on:
                        ticks = core.ticks  # this generation's
                        listened_at = _clock.now() if breaker._listeners.events else None
                        try:
                            # Without keywords, no copy of ``kwargs`` (a new dict per call).
                            result = fn(*args, **kwargs) if kwargs else fn(*args)
                        except BaseException as exc:
                            breaker._exit_error(
                                _Permit(_generation_of(core, ticks), listened_at), exc
                            )
                            raise
                        next(ticks)
                        if listened_at is not None:
                            breaker._succeeded_listened(listened_at)
                    else:
                        result = breaker._run(fn, args, kwargs)
                    # --- end inlined ---
                else:
                    result = _through_held(breaker, fn, args, kwargs, hold)
            except BaseException as exc:
                if level:
                    meter.failed(exc, start, False)  # type: ignore[union-attr]
                raise
            finally:
                member.inflight -= 1
            if level:
                meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_keyed

    # --- end generated ---

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        key, join, group = self._key, self._join, self._group
        members, use = group.members, group.use
        hold = self._hold
        gate, adetour, meter = NEVER, None, entry
        if entry is not None:
            gate, adetour = entry.gate, entry.adetour(self._wrap_async(fn, name))

        async def through_keyed(*args: Any, **kwargs: Any) -> R:
            if level := gate.level:
                if level != METERED:
                    return await adetour(args, kwargs)  # type: ignore[misc,no-any-return]
                start = _clock.now()
            # ``f(*args, **kwargs)`` copies ``kwargs`` into a new dict per
            # call: without keywords (the usual call), none is made.
            k = key(*args, **kwargs) if kwargs else key(*args)
            try:
                member = members[k]
            except (KeyError, TypeError):
                member = join(k, True)  # counted in flight already
            else:
                if member is not group.last:
                    use(member)
                member.inflight += 1
            breaker = member.breaker
            try:
                if hold is None:
                    # The breaker's own path, inlined: a call to it would
                    # be a second coroutine per call (6,767 instructions a
                    # call against 5,674 inlined: callgrind, the benchmark's
                    # "async per-key breaker").
                    # --- inlined from CircuitBreaker._athrough (scripts/unasync.py) ---
                    core = breaker._core
                    if core.fast and switch.on:
                        ticks = core.ticks  # this generation's
                        listened_at = _clock.now() if breaker._listeners.events else None
                        try:
                            # Without keywords, no copy of ``kwargs`` (a new dict per call).
                            result = await (fn(*args, **kwargs) if kwargs else fn(*args))
                        except BaseException as exc:
                            breaker._exit_error(
                                _Permit(_generation_of(core, ticks), listened_at), exc
                            )
                            raise
                        next(ticks)
                        if listened_at is not None:
                            breaker._succeeded_listened(listened_at)
                    else:
                        result = await breaker._arun(fn, args, kwargs)
                    # --- end inlined ---
                else:
                    result = await _athrough_held(breaker, fn, args, kwargs, hold)
            except BaseException as exc:
                if level:
                    meter.failed(exc, start, False)  # type: ignore[union-attr]
                raise
            finally:
                member.inflight -= 1
            if level:
                meter.ok(start)  # type: ignore[union-attr]
            return result

        return through_keyed

    # A stream goes through its key's breaker (picked when the stream
    # starts, from the call's arguments), counted in flight there until it
    # ends (after the breaker has judged it).

    # --- generated from _aopen_stream by scripts/unasync.py; do not edit ---
    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str = "") -> Opened:
        member = self._enter(self._key(*args, **kwargs))
        try:
            opened = _open_stream(member.breaker, open, args, kwargs, name)
        except BaseException:
            member.inflight -= 1
            raise
        opened.ends.append(lambda error, closed: _leave(member))
        return opened

    # --- end generated ---

    async def _aopen_stream(
        self, open: AOpen, args: Args, kwargs: Kwargs, name: str = ""
    ) -> Opened:
        member = self._enter(self._key(*args, **kwargs))
        try:
            opened = await _aopen_stream(member.breaker, open, args, kwargs, name)
        except BaseException:
            member.inflight -= 1
            raise
        opened.ends.append(lambda error, closed: _leave(member))
        return opened
