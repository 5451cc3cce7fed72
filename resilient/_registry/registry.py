"""``Registry``: breakers and bulkheads by name, forcing, health and features."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, cast

from .. import events, health
from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime import settings as _new_settings
from .._runtime import validation as _validate
from ..bulkhead.bulkhead import Bulkhead, BulkheadConfig
from ..circuit_breaker import breaker as breaker_hooks
from ..circuit_breaker.breaker import CircuitBreaker, CircuitBreakerConfig
from ..health import DegradationLevel, Feature, HealthReport
from ..rate_limit import limiter as limiter_hooks
from ..rate_limit.limiter import RateLimitConfig, RateLimiter
from ..retry.budget import RetryBudget
from .membership import Membership

_SETTINGS = {
    "circuit_breaker": frozenset(f.name for f in dataclasses.fields(CircuitBreakerConfig)),
    "bulkhead": frozenset(f.name for f in dataclasses.fields(BulkheadConfig)),
    "rate_limiter": frozenset(f.name for f in dataclasses.fields(RateLimitConfig)),
}

if TYPE_CHECKING:
    from ..circuit_breaker.storage import BreakerStorage

__all__ = ["Registrations", "Registry", "recording", "registry", "resolve"]

_Force = Literal["open", "closed"]
# What the registry knows a breaker by: its name, or (group, key) for a
# per-key breaker, so that no key can name another key's, group's or plain
# breaker (a label like "group[key]" could).
Identity = str | tuple[str, str]


def _identity(name: str, key: str | None) -> Identity:
    return name if key is None else (name, key)


def _label(identity: Identity) -> str:
    return identity if isinstance(identity, str) else f"{identity[0]}[{identity[1]}]"


# What the registries made inside ``recording()`` blocks of this context;
# None outside any block.
_journal: contextvars.ContextVar[Registrations | None] = contextvars.ContextVar(
    "resilient_registry_journal", default=None
)


class Registrations:
    """What registries created inside a ``recording()`` block (breakers,
    bulkheads, rate limiters), so that it can be taken back."""

    __slots__ = ("made", "taken_back")

    def __init__(self) -> None:
        self.made: list[tuple[Registry, str, Identity, object]] = []
        self.taken_back = False

    def take_back(self) -> None:
        """Each policy recorded leaves its registry (unless another has its
        name by now): a decoration that failed registers nothing."""
        self.taken_back = True
        made, self.made = self.made, []
        for owner, table, name, policy in reversed(made):
            owner._take_back(table, name, policy)


@contextlib.contextmanager
def recording() -> Iterator[Registrations]:
    """Records what any registry creates inside the block, in this thread or
    task; when the block raises, that is taken back at once."""
    made = Registrations()
    token = _journal.set(made)
    try:
        yield made
    except BaseException:
        made.take_back()
        raise
    finally:
        _journal.reset(token)


def _record(owner: Registry, table: str, name: Identity, policy: object) -> None:
    made = _journal.get()
    if made is not None:
        made.made.append((owner, table, name, policy))


# The configs of the breakers registries make without one, by id (one per
# set of defaults read when a breaker is made): a breaker with any other
# config was given it explicitly.
_IMPLICIT: dict[int, CircuitBreakerConfig] = {}


def _implicit() -> CircuitBreakerConfig:
    """The config of a breaker made without one: the defaults as they are now."""
    fresh = CircuitBreakerConfig()
    for config in list(_IMPLICIT.values()):  # a few: one per reload of the defaults
        if config == fresh:
            return config
    _IMPLICIT[id(fresh)] = fresh
    return fresh


def _is_implicit(config: CircuitBreakerConfig) -> bool:
    return _IMPLICIT.get(id(config)) is config


def _renew_lock(registry: Registry) -> None:
    """In a forked child: a new lock, shared again with its membership, and
    the breakers it holds renewed (they have no fork hook of their own
    while it holds them: see ``_hold`` and ``_release``)."""
    registry._lock = registry._membership.lock = threading.RLock()
    for breaker in list(registry._breakers.values()):
        breaker_hooks.renew_after_fork(breaker)


class Registry:
    """Named policies. ``resilient.registry`` is the process-global one.

    Args:
        storage: the shared store new breakers use unless their config names
            one (e.g. ``RedisStorage``); default: in memory."""

    def __init__(
        self, *, storage: BreakerStorage | None = None, max_breakers: int | None = None
    ) -> None:
        """``max_breakers``: beyond that many breakers, the least recently used
        one that is CLOSED and has no call in flight is dropped (an open or
        busy one never is, so the bound may be passed for a while)."""
        if max_breakers is not None:
            _validate.int_at_least("Registry", "max_breakers", max_breakers, 1)
        if storage is not None and not callable(getattr(storage, "attach", None)):
            raise TypeError(f"Registry.storage must be a breaker storage or None, got {storage!r}")
        self._storage = storage
        self._lock = threading.RLock()
        # The bound (max_breakers) and the per-key groups, under the same lock.
        self._membership = Membership(max_breakers, lock=self._lock, forget=self._forget)
        _fork.renew_in_child(self, _renew_lock)
        self._breakers: dict[Identity, CircuitBreaker] = {}
        # Breakers made with defaults (``_implicit()``) asked for again with a
        # config equal to them: explicit too (any other config is).
        self._explicit: set[Identity] = set()
        self._pending: dict[Identity, _Force] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._rate_limiters: dict[str, RateLimiter] = {}
        self._retry_budgets: dict[str, RetryBudget] = {}
        self._features: dict[str, Feature] = {}
        self._listeners = events.ListenerSet(events.GLOBAL)
        # (kind, name) of the policies whose settings an operator set
        # (reconfigure, a loaded file): a call site asking for other ones
        # gets these, not an error.
        self._operated: set[tuple[str, Identity]] = set()

    def __repr__(self) -> str:
        return f"<Registry breakers={self.names()}>"

    # -- breakers ------------------------------------------------------------

    def get_or_create(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        key: str | None = None,
        label: str | None = None,
    ) -> CircuitBreaker:
        """The breaker called ``name`` (with ``key``: the breaker of that key
        in the per-key group ``name``), created with ``config`` on first use.
        ``label`` is what a per-key breaker's events call it (default
        ``f"{name}[{key}]"``).

        Asking again with a different explicit config is an error: two call
        sites would otherwise silently disagree about one dependency.
        """
        identity = _identity(name, key)
        with self._lock:
            breaker = self._breakers.get(identity)
            if breaker is None:
                breaker = self._create(name, config, key, label)
                # Bounded: the least recently used idle breakers past the bound go.
                self._membership.add(breaker)
                return breaker
            self._adopt(identity, breaker, config)
            return breaker

    @property
    def membership(self) -> Membership:
        """The LRU orders, lock and bounds of this registry's breakers
        (``max_breakers``, and each per-key group's ``max_keys``)."""
        return self._membership

    def _adopt(
        self, identity: Identity, breaker: CircuitBreaker, config: CircuitBreakerConfig | None
    ) -> None:
        """Under the lock: ``breaker`` asked for again, with ``config``."""
        self._membership.used(identity)
        if config is not None and config != breaker.config:
            if ("circuit_breaker", identity) in self._operated:
                return  # the operator's settings stand
            if not _is_implicit(breaker.config) or identity in self._explicit:
                raise ValueError(
                    f"circuit breaker {breaker.name!r} already exists with config "
                    f"{breaker.config!r}; got a different one: {config!r}"
                )
            breaker_hooks.adopt_config(breaker, config)  # explicit from now on
        elif config is not None and _is_implicit(breaker.config):
            self._explicit.add(identity)  # its defaults, asked for explicitly

    def _create(
        self,
        name: str,
        config: CircuitBreakerConfig | None,
        key: str | None = None,
        label: str | None = None,
    ) -> CircuitBreaker:
        """Under the lock: a new breaker called ``name`` (of ``key``), registered."""
        # A breaker made without a config has a shared implicit one:
        # any other config it has was given explicitly (no table entry per
        # breaker, one per key of a per-key group, to say so).
        # Renewed after a fork by this registry while it holds it (a per-key
        # group may hold thousands: one hook, not a weak entry each).
        breaker = breaker_hooks.held_by_owner(
            name,
            _implicit() if config is None else config,
            listeners=self._listeners,
            storage=self._storage,
            key=key,
            label=label,
        )
        identity = breaker.identity
        self._breakers[identity] = breaker
        _record(self, "breakers", identity, breaker)
        force = self._pending.pop(identity, None)
        if force == "open":
            breaker.force_open()
        elif force == "closed":
            breaker.force_closed()
        return breaker

    def _take_back(self, table: str, name: Identity, policy: object) -> None:
        """``policy``, made under ``name`` and recorded for a decoration
        that failed, leaves this registry (unless another has that name by now)."""
        with self._lock:
            if table == "breakers":
                assert isinstance(policy, CircuitBreaker)
                self._membership.discard(policy)  # calls _forget
                return
            assert isinstance(name, str)
            if table == "bulkheads":
                if self._bulkheads.get(name) is policy:
                    del self._bulkheads[name]
            elif self._rate_limiters.get(name) is policy:
                del self._rate_limiters[name]

    def _forget(self, breaker: CircuitBreaker) -> None:
        """Under the lock: the membership dropped ``breaker`` (the LRU rule):
        it leaves the registry, unless another breaker has its name by now."""
        identity = breaker.identity
        if self._breakers.get(identity) is breaker:
            del self._breakers[identity]
            self._explicit.discard(identity)
            # Whoever still holds it: it renews itself after a fork again.
            breaker_hooks.released_by_owner(breaker)

    def set_default_storage(self, storage: BreakerStorage | None) -> None:
        """Share every breaker whose config names no store through ``storage``
        (``None``: stop sharing them), those already created included."""
        with self._lock:
            self._storage = storage
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker_hooks.use_default_storage(breaker, storage)

    def get(self, name: str, *, key: str | None = None) -> CircuitBreaker | None:
        """The breaker called ``name`` (with ``key``: that key's breaker in
        the per-key group ``name``), or ``None``."""
        return self._breakers.get(name if key is None else (name, key))

    def names(self) -> list[str]:
        """Names (labels, for per-key breakers) of every breaker, sorted."""
        with self._lock:
            return sorted(b.name for b in self._breakers.values())

    def breakers(self) -> list[CircuitBreaker]:
        """Every breaker, sorted by name (label)."""
        with self._lock:
            return sorted(self._breakers.values(), key=_by_name)

    def _require(self, identity: Identity) -> CircuitBreaker:
        breaker = self._breakers.get(identity)
        if breaker is None:
            raise KeyError(f"no circuit breaker named {_label(identity)!r}")
        return breaker

    def reset(self, name: str, *, key: str | None = None) -> None:
        """Close ``name`` (of ``key``) and clear its window."""
        identity = _identity(name, key)
        with self._lock:
            self._pending.pop(identity, None)
            self._require(identity).reset()

    def reset_all(self) -> None:
        """Reset every breaker; forces, pending ones included, are cleared."""
        with self._lock:
            self._pending.clear()
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.reset()

    def _force(self, identity: Identity, how: _Force) -> None:
        with self._lock:
            breaker = self._breakers.get(identity)
            if breaker is None:
                self._pending[identity] = how
                return
        if how == "open":
            breaker.force_open()
        else:
            breaker.force_closed()

    def force_open(self, name: str, *, key: str | None = None) -> None:
        """Reject every call to ``name`` (of ``key``); applies at creation if
        it does not exist yet."""
        self._force(_identity(name, key), "open")

    def force_closed(self, name: str, *, key: str | None = None) -> None:
        """Admit every call to ``name`` (of ``key``); applies at creation if
        it does not exist yet."""
        self._force(_identity(name, key), "closed")

    def release(self, name: str, *, key: str | None = None) -> None:
        """Undo a force on ``name`` (of ``key``; a pending one too); otherwise nothing."""
        identity = _identity(name, key)
        with self._lock:
            self._pending.pop(identity, None)
            breaker = self._breakers.get(identity)
        if breaker is not None:
            breaker.release()

    def pending_forces(self) -> dict[str, _Force]:
        """Forces waiting for their breaker to be created, by name (label)."""
        with self._lock:
            return {_label(identity): how for identity, how in self._pending.items()}

    @contextlib.contextmanager
    def forced_open(self, name: str, *, key: str | None = None) -> Iterator[None]:
        """``name`` (of ``key``) is forced open inside the block and released after it."""
        self.force_open(name, key=key)
        try:
            yield
        finally:
            self.release(name, key=key)

    @contextlib.contextmanager
    def forced_closed(self, name: str, *, key: str | None = None) -> Iterator[None]:
        """``name`` (of ``key``) is forced closed inside the block and released after it."""
        self.force_closed(name, key=key)
        try:
            yield
        finally:
            self.release(name, key=key)

    @contextlib.contextmanager
    def isolated(self) -> Iterator[Registry]:
        """A clean slate for one test, undone after it.

        Inside the block every breaker already registered (say, by a
        module-level decorator) is CLOSED with an empty window, every rate
        limiter has its whole burst, and nothing is forced. After it,
        whatever the block created, forced or tripped is gone: breakers
        (per-key ones included), bulkheads, rate limiters and features
        declared inside are dropped, and names, configs, forces, breaker
        states and rate limiters' turns are back as they were.
        Bulkheads keep their counters; listeners subscribed inside stay.
        """
        with self._lock:
            # Every per-name table (breakers, explicit configs, pending
            # forces, and any a later feature adds), copied shallowly.
            tables = {
                key: value.copy()
                for key, value in vars(self).items()
                if isinstance(value, (dict, set))
            }
            members = self._membership.snapshot()
            states = [(b, breaker_hooks.swap_state(b)) for b in self._breakers.values()]
            turns = [(r, limiter_hooks.swap_turns(r)) for r in self._rate_limiters.values()]
            self._pending.clear()
        try:
            yield self
        finally:
            with self._lock:
                saved_breakers = cast("dict[Identity, CircuitBreaker]", tables["_breakers"])
                for breaker in self._breakers.values():
                    if saved_breakers.get(breaker.identity) is not breaker:
                        # Made inside, dropped now: it renews itself after a fork.
                        breaker_hooks.released_by_owner(breaker)
                for key, saved in tables.items():
                    live = getattr(self, key)
                    live.clear()
                    live.update(saved)
                # Per-key breakers made inside leave their groups too.
                self._membership.restore(members)
                for breaker, state in states:
                    breaker_hooks.swap_state(breaker, state)
                for limiter, saved_turns in turns:
                    limiter_hooks.swap_turns(limiter, saved_turns)

    # -- bulkheads ------------------------------------------------------------

    def bulkhead(
        self,
        name: str,
        *,
        max_concurrent: int | None = None,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        config: BulkheadConfig | None = None,
    ) -> Bulkhead:
        """The bulkhead called ``name``, created with these limits on first use.

        Asking again with different limits is an error, as for breakers.
        """
        if config is None:
            if max_concurrent is None:
                raise TypeError(f"registry.bulkhead({name!r}) needs max_concurrent")
            config = BulkheadConfig(
                max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout
            )
        elif max_concurrent is not None or max_queue or queue_timeout is not None:
            raise TypeError(f"registry.bulkhead({name!r}): pass either a config or limits")
        with self._lock:
            bulkhead = self._bulkheads.get(name)
            if bulkhead is None:
                bulkhead = Bulkhead(name, config, listeners=self._listeners)
                self._bulkheads[name] = bulkhead
                _record(self, "bulkheads", name, bulkhead)
            elif bulkhead.config != config and ("bulkhead", name) not in self._operated:
                raise ValueError(
                    f"bulkhead {name!r} already exists with {bulkhead.config!r}; "
                    f"got different limits: {config!r}"
                )
            return bulkhead

    def get_bulkhead(self, name: str) -> Bulkhead | None:
        """The bulkhead called ``name``, or ``None``."""
        return self._bulkheads.get(name)

    def bulkheads(self) -> list[Bulkhead]:
        """Every bulkhead, sorted by name."""
        with self._lock:
            return [self._bulkheads[n] for n in sorted(self._bulkheads)]

    # -- rate limiters ---------------------------------------------------------

    def rate_limiter(
        self, name: str, config: RateLimitConfig | None = None, **fields: object
    ) -> RateLimiter:
        """The rate limiter called ``name``, created with ``config`` (or the
        fields of ``RateLimitConfig``) on first use. Asking again with a
        different limit is an error, as for breakers; with none, the one
        there is returned."""
        if fields:
            if config is not None:
                raise TypeError(f"registry.rate_limiter({name!r}): pass either a config or fields")
            config = RateLimitConfig(**fields)  # type: ignore[arg-type]
        with self._lock:
            limiter = self._rate_limiters.get(name)
            if limiter is None:
                if config is None:
                    raise TypeError(f"registry.rate_limiter({name!r}) needs a config or rate=")
                limiter = RateLimiter(name, config, listeners=self._listeners)
                self._rate_limiters[name] = limiter
                _record(self, "rate_limiters", name, limiter)
            elif (
                config is not None
                and limiter.config != config
                and ("rate_limiter", name) not in self._operated
            ):
                raise ValueError(
                    f"rate limiter {name!r} already exists with {limiter.config!r}; "
                    f"got a different one: {config!r}"
                )
            return limiter

    def get_rate_limiter(self, name: str) -> RateLimiter | None:
        """The rate limiter called ``name``, or ``None``."""
        return self._rate_limiters.get(name)

    def rate_limiters(self) -> list[RateLimiter]:
        """Every rate limiter, sorted by name."""
        with self._lock:
            return [self._rate_limiters[n] for n in sorted(self._rate_limiters)]

    # -- new settings, in place -------------------------------------------------

    def reconfigure(self, name: str, *, key: str | None = None, **fields: Any) -> None:
        """Change the settings of the breaker, bulkhead and/or rate limiter
        called ``name`` in place (each field goes to the one of them that
        has it): state, counts and callers in flight are kept. Nothing
        changes when any field is unknown or any value bad (a
        ``ValueError`` naming it). Each policy changed emits
        ``Reconfigured``. A call site asking later for other settings
        under this name gets these.

        ``key``: the breaker of that key in the per-key group ``name``
        (the group's ``reconfigure(config)`` changes every key's)."""
        present = self._named(name, key)
        if not present:
            what = (
                f"per-key breaker {name!r}[{key!r}]"
                if key is not None
                else (f"circuit breaker, bulkhead or rate limiter named {name!r}")
            )
            raise KeyError(f"no {what}")
        by_kind: dict[str, dict[str, Any]] = {}
        for field, value in fields.items():
            owners = [kind for kind in present if field in _SETTINGS[kind]]
            if not owners:
                raise ValueError(
                    f"{field!r} is not a setting of the {' or '.join(present)} named {name!r}"
                )
            if len(owners) > 1:
                raise ValueError(
                    f"{field!r} is a setting of both the {' and the '.join(owners)} named "
                    f"{name!r}: reconfigure each with its reconfigure(config)"
                )
            by_kind.setdefault(owners[0], {})[field] = value
        new = {
            kind: _new_settings.replaced(f"{kind} {name!r}", present[kind].config, changed)
            for kind, changed in by_kind.items()
        }
        self._apply(name, new, key)

    def _apply(self, name: str, configs: dict[str, Any], key: str | None = None) -> None:
        """Give the policies called ``name`` these configs, by kind
        (``"circuit_breaker"``, ``"bulkhead"``, ``"rate_limiter"``): those
        that exist are reconfigured in place, the others created."""
        with self._lock:
            for kind, config in configs.items():
                policy = self._named(name, key).get(kind)
                if policy is not None:
                    policy.reconfigure(config)
                elif kind == "circuit_breaker":
                    self.get_or_create(name, config, key=key)
                elif kind == "bulkhead":
                    self.bulkhead(name, config=config)
                else:
                    self.rate_limiter(name, config)
                self._operated.add(
                    (kind, _identity(name, key) if kind == "circuit_breaker" else name)
                )

    def _named(self, name: str, key: str | None = None) -> dict[str, Any]:
        """The breaker, bulkhead and rate limiter called ``name`` (with
        ``key``: only that key's breaker of the per-key group ``name``)."""
        found: dict[str, Any] = {}
        breaker = self._breakers.get(_identity(name, key))
        if breaker is not None:
            found["circuit_breaker"] = breaker
        if key is None:
            for kind, table in (
                ("bulkhead", self._bulkheads),
                ("rate_limiter", self._rate_limiters),
            ):
                policy = table.get(name)
                if policy is not None:
                    found[kind] = policy
        return found

    # -- retry budgets ----------------------------------------------------------

    def retry_budget(
        self,
        name: str,
        *,
        ratio: float | None = None,
        min_retries_per_second: float | None = None,
        window: float | None = None,
    ) -> RetryBudget:
        """The retry budget called ``name``, made with these fields (the
        defaults of ``RetryBudget`` for those not given) on first use.
        Asking again with different fields is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"retry budget name must be a non-empty str, got {name!r}")
        given: dict[str, Any] = {
            k: v
            for k, v in (
                ("ratio", ratio),
                ("min_retries_per_second", min_retries_per_second),
                ("window", window),
            )
            if v is not None
        }
        with self._lock:
            budget = self._retry_budgets.get(name)
            if budget is None:
                budget = RetryBudget(**given, name=name)
                self._retry_budgets[name] = budget
                return budget
        wanted = _settings(RetryBudget(**given)) if given else None
        if wanted is not None and any(
            given.get(k) is not None and w != h
            for k, w, h in zip(
                ("ratio", "min_retries_per_second", "window"),
                wanted,
                _settings(budget),
                strict=True,
            )
        ):
            raise ValueError(f"retry budget {name!r} already exists as {budget!r}; got {given!r}")
        return budget

    # -- health and features -------------------------------------------------

    def _states(self) -> dict[str, health.CircuitState]:
        # Reading .state lets an expired OPEN timer (or a health check)
        # move a breaker to HALF_OPEN, as any caller would see it.
        # A shadow breaker rejects nothing: it makes no one unhealthy.
        return {
            breaker.name: breaker.state for breaker in self.breakers() if not breaker.config.shadow
        }

    def _pending_open(self) -> list[str]:
        with self._lock:
            return [_label(identity) for identity, how in self._pending.items() if how == "open"]

    def health(self, *, rejection_window: float = 60.0) -> HealthReport:
        """Every breaker's state, every bulkhead's load and rate limiter's
        turns, every feature's availability, and one status: healthy,
        degraded, unhealthy or critical.

        A bulkhead or a rate limiter counts as rejecting (degraded) if it
        rejected a call within the last ``rejection_window`` seconds.
        """
        since = _clock.monotonic() - rejection_window
        bulkheads = []
        for bulkhead in self.bulkheads():
            m = bulkhead.metrics()
            bulkheads.append(
                health.BulkheadHealth(
                    name=bulkhead.name,
                    active=m.active,
                    queued=m.queued,
                    max_concurrent=m.max_concurrent,
                    max_queue=m.max_queue,
                    utilization=m.utilization,
                    rejected=m.rejected,
                    rejecting=bulkhead.rejected_since(since),
                    limit=m.limit,
                )
            )
        limiters = []
        for limiter in self.rate_limiters():
            turns = limiter.metrics()
            limiters.append(
                health.RateLimiterHealth(
                    name=limiter.name,
                    rate=turns.rate,
                    period=turns.period,
                    burst=turns.burst,
                    available=turns.available,
                    rejected=turns.rejected,
                    rejecting=limiter.rejected_since(since),
                )
            )
        with self._lock:
            features = dict(sorted(self._features.items()))
        return health.build_report(
            self._states(),
            bulkheads,
            features,
            pending_open=self._pending_open(),
            rate_limiters=limiters,
        )

    def feature(self, name: str, depends_on: Iterable[str] = ()) -> Feature:
        """Declare a feature that works only while the breakers it depends on
        let calls through. Declaring it again with other dependencies is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"feature name must be a non-empty str, got {name!r}")
        if isinstance(depends_on, str):
            raise TypeError(
                f"feature {name!r}: depends_on must be a list of breaker names, "
                f"got the str {depends_on!r}"
            )
        feature = Feature(name, tuple(depends_on))
        with self._lock:
            known = self._features.setdefault(name, feature)
        if known != feature:
            raise ValueError(
                f"feature {name!r} already depends on {list(known.depends_on)}; "
                f"got {list(feature.depends_on)}"
            )
        return known

    def is_available(self, name: str) -> bool:
        """False when any breaker feature ``name`` depends on is open or forced open."""
        feature = self._features.get(name)
        if feature is None:
            raise KeyError(f"no feature named {name!r}")
        states = {}
        for dep in feature.depends_on:
            breaker = self._breakers.get(dep)
            if breaker is not None:
                states[dep] = breaker.state
        return health.available(feature, health.dependency_states(states, self._pending_open()))

    def degradation_level(self) -> DegradationLevel:
        """none, minor, moderate, severe or critical, by the share of
        features unavailable: 0, < 25 %, < 50 %, < 100 %, all."""
        with self._lock:
            features = list(self._features)
        unavailable = sum(1 for name in features if not self.is_available(name))
        return health.degradation_level(unavailable, len(features))

    # -- events --------------------------------------------------------------

    def subscribe(self, listener: events.Listener | events.Reader) -> Callable[[], None]:
        """Listen to every event of every policy in this registry."""
        return self._listeners.subscribe(listener)

    @property
    def listeners(self) -> events.ListenerSet:
        return self._listeners


registry = Registry()


def resolve(owner: str, given: object) -> Registry:
    """``given``, or the global registry for ``None``; anything else is a
    ``TypeError`` naming ``owner``'s ``registry`` argument and the value."""
    if given is None:
        return registry
    if not isinstance(given, Registry):
        raise TypeError(f"{owner}.registry must be a Registry or None, got {given!r}")
    return given


def _by_name(breaker: CircuitBreaker) -> str:
    return breaker.name


def _settings(budget: RetryBudget) -> tuple[float, float, float]:
    return (budget.ratio, budget.min_retries_per_second, budget.window)
