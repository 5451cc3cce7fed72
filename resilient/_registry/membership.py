"""``Membership``: the breakers a bound may drop, and which one it drops.

Two bounds keep breakers by one rule: a registry made with ``max_breakers``,
and each per-key group (``with_circuit_breaker(name, key=..., max_keys=...)``).
Beyond its bound, the least recently used breaker that is CLOSED and has no
call in flight is dropped; an open, forced or busy one never is, so a bound
may be passed for a while.

A registry has one ``Membership``, and its per-key groups are
``Group`` objects of that membership: the LRU orders (the registry's,
each group's), the lock, the busy check and the eviction all live here. The
registry and the per-key layer (``resilient.circuit_breaker.keyed``) use
them through the public methods below, and never each other's internals: a
breaker dropped by either bound leaves both (the group's ``on_drop`` and the
registry's ``forget`` are told).

A breaker under a bound has a ``Member``, whose ``inflight`` counts its
calls in flight. Whoever runs a call through the breaker counts it there: the
per-key layer around each call it routes, and the breaker's own chains and
``with`` blocks (the breaker is handed its member when it joins). A use moves
the member to the most recent end of each order it is in. Uses and counts
take no lock (``OrderedDict.move_to_end`` is atomic); joining, the bound and
dropping take the membership's lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..circuit_breaker.breaker import count_calls_into, is_closed

if TYPE_CHECKING:
    from ..circuit_breaker.breaker import CircuitBreaker

__all__ = ["Group", "Member", "Membership"]

R = TypeVar("R")
# A breaker's ``identity``: its name, or (group, key) for a per-key breaker.
Identity = str | tuple[str, str]


class Member:
    """One breaker under a bound: its calls in flight and where it is kept.

    ``inflight`` is public so that the per-key layer counts a call inline;
    everything else goes through the membership.
    """

    __slots__ = ("also", "breaker", "group", "inflight", "owner")

    def __init__(self, owner: Membership, breaker: CircuitBreaker) -> None:
        self.owner = owner
        self.breaker = breaker
        self.inflight = 0
        # The group it is in, under ``key`` (a breaker two groups share, by
        # name, is in ``also`` for the others).
        self.group: Group | None = None
        self.also: list[tuple[Group, str]] | None = None

    def __repr__(self) -> str:
        return f"<Member {self.breaker.name!r} inflight={self.inflight}>"

    @property
    def identity(self) -> Identity:
        """What the registry knows its breaker by (``breaker.identity``)."""
        return self.breaker.identity

    @property
    def key(self) -> str:
        """Its key in its groups: its breaker's (``""`` for a plain breaker)."""
        return self.breaker.key or ""

    @property
    def busy(self) -> bool:
        """Not droppable: a call in flight, or not CLOSED (open, half-open, forced)."""
        return self.inflight > 0 or not is_closed(self.breaker)

    def places(self) -> list[tuple[Group, str]]:
        """The groups it is in, with its key in each."""
        found = [] if self.group is None else [(self.group, self.key)]
        if self.also:
            found.extend(self.also)
        return found

    # -- counting calls (the breaker's own chains and blocks) ------------------

    def enter(self) -> None:
        """A call through the breaker starts: a use, and one more in flight."""
        self.owner.touch(self)
        self.inflight += 1

    def leave(self) -> None:
        """That call ended, whichever way."""
        self.inflight -= 1

    # --- generated from acounting by scripts/unasync.py; do not edit ---
    def counting(self, run: Callable[..., R]) -> Callable[..., R]:
        """``run`` (a breaker's closure), each call of it a use counted in flight."""
        touch = self.owner.touch
        member = self

        def counted(*args: Any, **kwargs: Any) -> R:
            touch(member)
            member.inflight += 1
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                return run(*args, **kwargs) if kwargs else run(*args)
            finally:
                member.inflight -= 1

        return counted

    # --- end generated ---

    def acounting(self, run: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        """``run`` (a breaker's closure), each call of it a use counted in flight."""
        touch = self.owner.touch
        member = self

        async def counted(*args: Any, **kwargs: Any) -> R:
            touch(member)
            member.inflight += 1
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                return await (run(*args, **kwargs) if kwargs else run(*args))
            finally:
                member.inflight -= 1

        return counted


class Group:
    """The breakers of one per-key layer, by key, least recently used first.

    The per-key layer reads ``members`` (``key -> Member``) and ``last`` on
    its fast path and changes neither: a call finds its key's member in
    ``members``; unless that member is ``last`` (already the most recent
    everywhere) it calls ``use(member)``; a key with no member calls
    ``join``.
    """

    __slots__ = ("last", "limit", "members", "on_drop", "owner", "use")

    def __init__(
        self, owner: Membership, limit: int, on_drop: Callable[[str], object] | None
    ) -> None:
        self.owner = owner
        self.limit = limit
        self.on_drop = on_drop
        self.members: OrderedDict[str, Member] = OrderedDict()
        # The member made the most recent in every order it is in by the
        # last use, so that using it again moves nothing. None while the
        # registry is bounded: its order changes with every other breaker's use.
        self.last: Member | None = None
        #: ``use(member)``: a call of ``member``'s key, the most recent of
        #: this group (and of the registry, if bounded). Membership.touch.
        self.use: Callable[[Member], None] = owner.touch

    def __len__(self) -> int:
        return len(self.members)

    def keys(self) -> list[str]:
        """The keys that have a member now, least recently used first."""
        with self.owner.lock:
            return list(self.members)

    def join(
        self, key: str, make: Callable[[str], CircuitBreaker], *, entering: bool = False
    ) -> Member:
        """The member of ``key``, a use. A key with none gets one: ``make(key)``
        returns its breaker (made, or adopted, by the registry), and then past
        ``limit`` the group's least recently used idle members are dropped
        (never this one). ``entering``: count the caller's call in flight
        before the lock is let go, so no one drops it meanwhile."""
        owner = self.owner
        with owner.lock:
            member = self.members.get(key)
            if member is None:
                member = owner._adopt(make(key))
                if member.group is None:
                    member.group = self  # under its breaker's key, ``key``
                elif member.group is not self:
                    member.also = [*(member.also or ()), (self, key)]
                self.members[key] = member
                owner.touch(member)
                owner._shrink(self.members, self.limit, member)
            else:
                owner.touch(member)
            if entering:
                member.inflight += 1
            return member


class _Saved(NamedTuple):
    members: dict[Identity, Member]
    groups: dict[Group, OrderedDict[str, Member]]


class Membership:
    """A registry's bound and its per-key groups. See the module's docstring.

    Args:
        limit: the registry's ``max_breakers`` (``None``: only groups are bounded).
        lock: the registry's lock (this membership's too).
        forget: takes a breaker out of the registry; called, under the lock,
            for each breaker dropped here.
    """

    def __init__(
        self,
        limit: int | None,
        *,
        lock: threading.RLock,
        forget: Callable[[CircuitBreaker], None],
    ) -> None:
        self.limit = limit
        self.lock = lock
        self._forget = forget
        # Bounded: every breaker of the registry, least recently used first
        # (``_order`` is ``_members``). Otherwise only those in a group, in a
        # plain dict: no order to keep.
        self._order: OrderedDict[Identity, Member] | None = None if limit is None else OrderedDict()
        self._members: dict[Identity, Member] = {} if self._order is None else self._order

    def __repr__(self) -> str:
        return f"<Membership {len(self._members)}/{self.limit}>"

    def __len__(self) -> int:
        return len(self._members)

    def group(self, limit: int, on_drop: Callable[[str], object] | None = None) -> Group:
        """A new per-key group: at most ``limit`` idle members; ``on_drop(key)``
        is called (under the lock) as a key's member is dropped."""
        return Group(self, limit, on_drop)

    # -- the registry's side ---------------------------------------------------

    def add(self, breaker: CircuitBreaker) -> None:
        """Under the lock: ``breaker`` was just made by the registry. Bounded,
        it becomes the most recent member, and past ``limit`` the least
        recently used idle ones are dropped (never this one)."""
        if self.limit is None:
            return
        assert self._order is not None
        member = self._adopt(breaker)
        self._shrink(self._order, self.limit, member)

    def discard(self, breaker: CircuitBreaker) -> None:
        """Under the lock: ``breaker`` leaves its groups and the registry at
        once, whatever the bounds (a registration taken back)."""
        member = self._members.get(breaker.identity)
        if member is not None and member.breaker is breaker:
            self._drop(member)
        else:
            self._forget(breaker)

    def used(self, identity: Identity) -> None:
        """The registry was asked for a breaker again: a use, if it has a member."""
        member = self._members.get(identity)
        if member is not None:
            self.touch(member)

    # -- members ---------------------------------------------------------------

    def _adopt(self, breaker: CircuitBreaker) -> Member:
        """Under the lock: ``breaker``'s member, made if it has none (the
        breaker then counts its calls there)."""
        identity = breaker.identity
        member = self._members.get(identity)
        if member is None or member.breaker is not breaker:
            member = self._members[identity] = Member(self, breaker)
            count_calls_into(breaker, member)
        return member

    def touch(self, member: Member) -> None:
        """A use of ``member``: the most recent in every order it is in.
        Without the lock: a member dropped meanwhile is left out."""
        last: Member | None = member
        order = self._order
        if order is not None:
            last = None
            try:
                order.move_to_end(member.breaker.identity)
            except KeyError:
                return
        group = member.group
        if group is None:
            return
        try:
            group.members.move_to_end(member.breaker.key or "")
        except KeyError:
            return
        group.last = last
        if member.also:
            for other, key in member.also:
                try:
                    other.members.move_to_end(key)
                except KeyError:
                    continue
                other.last = last

    def _shrink(self, order: OrderedDict[Any, Member], limit: int, keep: Member) -> None:
        """Under the lock: while ``order`` holds more than ``limit``, drop its
        least recently used idle member (never ``keep``, nor a busy one)."""
        excess = len(order) - limit
        if excess <= 0:
            return
        gone: list[Member] = []
        # A copy (made at once, under the GIL): uses move members meanwhile.
        for member in list(order.values()):
            if member is not keep and not member.busy:
                gone.append(member)
                if len(gone) == excess:
                    break
        for member in gone:
            self._drop(member)

    def _drop(self, member: Member) -> None:
        """Under the lock: ``member`` leaves its groups and the registry."""
        identity = member.breaker.identity
        if self._members.get(identity) is member:
            del self._members[identity]
        self._leave_groups(member)
        self._forget(member.breaker)

    def _leave_groups(self, member: Member) -> None:
        for group, key in member.places():
            if group.members.get(key) is member:
                del group.members[key]
                if group.on_drop is not None:
                    group.on_drop(key)
            if group.last is member:
                group.last = None

    # -- Registry.isolated() ---------------------------------------------------

    def snapshot(self) -> _Saved:
        """Under the lock: what ``restore`` puts back."""
        groups: dict[Group, OrderedDict[str, Member]] = {}
        for member in list(self._members.values()):
            for group, _ in member.places():
                if group not in groups:
                    groups[group] = group.members.copy()
        return _Saved(self._members.copy(), groups)

    def restore(self, saved: _Saved) -> None:
        """Under the lock: back to ``saved``. Members made since leave their
        groups (their ``on_drop`` is told); those dropped since come back.
        The registry puts its own tables back itself."""
        for identity, member in list(self._members.items()):
            if saved.members.get(identity) is not member:
                self._leave_groups(member)
        self._members.clear()
        self._members.update(saved.members)
        for group, members in saved.groups.items():
            group.members.clear()
            group.members.update(members)
            group.last = None
