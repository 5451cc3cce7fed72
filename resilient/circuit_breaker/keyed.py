"""Per-key circuit breakers: one breaker per host, tenant or key, made on
first use and bounded by the LRU rule.

``with_circuit_breaker(name, key=fn, max_keys=1024)`` puts a
:class:`KeyedBreakers` layer in the chain: each call asks ``fn(*args,
**kwargs)`` for its key and runs through that key's breaker, registered as
``f"{name}[{key}]"``. Beyond ``max_keys`` breakers, the least recently used
one that is CLOSED and has no call in flight is dropped (from this layer
and from the registry); an open or busy breaker never is, so the cap may be
passed for a while. A breaker dropped and asked for again starts afresh,
CLOSED, which is what it was.

A call costs the key function, a dict lookup, an LRU move and a count of
calls in flight on top of a plain breaker call, which runs by the breaker's
own path (``CircuitBreaker._through`` / ``_athrough``); a key costs its
breaker and one small record, no closure.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import events
from .._execution.compose import NEVER
from .._execution.policy_base import PolicyBase
from .._runtime import clock as _clock
from ..events import METERED
from .breaker import CircuitBreaker
from .state import CLOSED

if TYPE_CHECKING:
    from .._execution.request import Request
    from .._registry.registry import Registry
    from .config import CircuitBreakerConfig

__all__ = ["KeyedBreakers", "Member"]

R = TypeVar("R")

# The breaker's paths for a caller that picked it (the API this module uses).
_through = CircuitBreaker._through
_athrough = CircuitBreaker._athrough


class Member:
    """One key's breaker and its calls in flight."""

    __slots__ = ("breaker", "inflight", "key")

    def __init__(self, key: str, breaker: CircuitBreaker) -> None:
        self.key = key
        self.breaker = breaker
        self.inflight = 0

    @property
    def idle(self) -> bool:
        """Droppable: CLOSED, with no call in flight."""
        return self.inflight == 0 and self.breaker._core.state is CLOSED


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
        naming: Callable[[str], str] | None = None,
        on_drop: Callable[[str], object] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.max_keys = max_keys
        self._key = key
        self._registry = registry
        self._naming = naming if naming is not None else (lambda k: f"{name}[{k}]")
        self._on_drop = on_drop
        self._listeners = events.ListenerSet(registry.listeners)
        self._members: OrderedDict[str, Member] = OrderedDict()
        # The key moved to the end last (the most recently used), so a call
        # with the same key again need not move it.
        self._recent: object = None
        self._lock: threading.RLock = registry._lock

    def __repr__(self) -> str:
        return f"<KeyedBreakers {self.name!r} keys={len(self._members)}/{self.max_keys}>"

    def keys(self) -> list[str]:
        """The keys that have a breaker now, least recently used first."""
        with self._lock:
            return list(self._members)

    def breaker(self, key: str) -> CircuitBreaker:
        """The breaker of ``key`` (made now if it has none)."""
        return self._member(key).breaker

    # -- members -----------------------------------------------------------------

    def _member(self, key: str) -> Member:
        """The member of ``key``, made (and the LRU rule applied) if new."""
        members = self._members
        try:
            member = members[key]
            members.move_to_end(key)
            self._recent = key
            return member
        except KeyError:
            pass
        except TypeError:
            raise TypeError(
                f"the key function of {self.name!r} must return a str, got {key!r}"
            ) from None
        if not isinstance(key, str):
            raise TypeError(f"the key function of {self.name!r} must return a str, got {key!r}")
        with self._lock:
            found = members.get(key)
            if found is not None:
                members.move_to_end(key)
                self._recent = key
                return found
            breaker = self._registry._member(self._naming(key), self.config, self, key)
            member = members[key] = Member(key, breaker)
            self._recent = key
            member.inflight = 1  # not droppable before its caller counts itself in
            try:
                self._shrink()
            finally:
                member.inflight = 0
        return member

    def _shrink(self) -> None:
        """Under the lock: drop idle members, least recently used first,
        while there are more than ``max_keys``."""
        members = self._members
        excess = len(members) - self.max_keys
        if excess <= 0:
            return
        gone = []
        for member in members.values():
            if member.idle:
                gone.append(member)
                if len(gone) == excess:
                    break
        for member in gone:
            self._drop(member.key)
            self._registry._forget(member.breaker.name)

    def _drop(self, key: str) -> None:
        """Under the lock: forget ``key``'s member (the registry dropped it or
        the LRU rule did)."""
        member = self._members.pop(key, None)
        if member is not None and self._on_drop is not None:
            self._on_drop(key)

    def _busy(self, key: str) -> bool:
        member = self._members.get(key)
        return member is not None and member.inflight > 0

    # -- execution -----------------------------------------------------------------

    # One closure per chain, not per key: it picks the key's breaker, counts
    # the call in flight, and runs it by the breaker's own path. Outermost,
    # it meters the request as every outermost layer does.

    def _wrap_sync(
        self, fn: Callable[..., R], name: str, entry: Request | None = None
    ) -> Callable[..., R]:
        key, member_of, touch, group = self._key, self._member, self._touch, self
        members = self._members
        move = members.move_to_end
        through = _through
        gate, detour, meter = NEVER, None, entry
        if entry is not None:
            gate, detour = entry.gate, entry.detour(self._wrap_sync(fn, name))
        clock = _clock

        def through_keyed(*args: Any, **kwargs: Any) -> R:
            level = gate.level
            if level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[misc,no-any-return]
                start = clock.now()
            k = key(*args, **kwargs)
            try:
                member = members[k]
                if k != group._recent:  # the most recent already: nothing to move
                    move(k)
                    group._recent = k
            except (KeyError, TypeError):
                member = member_of(k)
            if touch is not None:
                touch(member.breaker.name)
            member.inflight += 1
            try:
                result = through(member.breaker, fn, args, kwargs)
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

    def _wrap_async(
        self, fn: Callable[..., Awaitable[R]], name: str, entry: Request | None = None
    ) -> Callable[..., Awaitable[R]]:
        key, member_of, touch, group = self._key, self._member, self._touch, self
        members = self._members
        move = members.move_to_end
        athrough = _athrough
        gate, adetour, meter = NEVER, None, entry
        if entry is not None:
            gate, adetour = entry.gate, entry.adetour(self._wrap_async(fn, name))
        clock = _clock

        async def through_keyed(*args: Any, **kwargs: Any) -> R:
            level = gate.level
            if level:
                if level != METERED:
                    return await adetour(args, kwargs)  # type: ignore[misc,no-any-return]
                start = clock.now()
            k = key(*args, **kwargs)
            try:
                member = members[k]
                if k != group._recent:  # the most recent already: nothing to move
                    move(k)
                    group._recent = k
            except (KeyError, TypeError):
                member = member_of(k)
            if touch is not None:
                touch(member.breaker.name)
            member.inflight += 1
            try:
                result = await athrough(member.breaker, fn, args, kwargs)
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

    @property
    def _touch(self) -> Callable[[str], None] | None:
        """The registry's LRU step, when the registry is bounded."""
        return self._registry._touch if self._registry._max_breakers is not None else None
