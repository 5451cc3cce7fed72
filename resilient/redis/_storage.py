"""``RedisStorage``: breakers shared across processes and hosts through Redis."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.retry import Retry

from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime import validation as _validate
from ._binding import Binding, Op
from ._cluster import cluster_client
from ._keys import decode_name, name_bytes, validate_namespace
from ._script import SCRIPT, keys, names_key

if TYPE_CHECKING:
    from ..circuit_breaker.storage import StoredBreaker
    from ..rate_limit.limiter import RateLimiter
    from ._limit import SharedLimiter

__all__ = ["RedisStorage", "SharedBreakerInfo"]

log = logging.getLogger("resilient")

T = TypeVar("T")

_OWNER = "RedisStorage"
# After a sync, the flusher waits this long before the next one, so a burst of
# failures costs one round trip, not one each.
_MIN_GAP = 0.005
# How long a clock offset learnt from a quick round trip stands (clocks drift).
_OFFSET_FOR = 60.0
_PROBE_WAIT = 0.25
# How many probe requests may be on their way to Redis at once, per storage.
_PROBE_THREADS = 4
# A cluster that cannot be discovered raises this (not a RedisError).
_UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError, RedisClusterException)
# Where a reply says the breaker's hash was just made, per op.
_SEEDED = {"sync": 4, "control": 5}


@dataclass(frozen=True, slots=True)
class SharedBreakerInfo:
    """A shared breaker as Redis holds it (what ``python -m resilient breakers`` shows)."""

    name: str
    state: str
    remaining: float  # seconds until a probe is allowed (inf when forced open)
    consecutive_failures: int  # the fleet's run, as the instances reported it
    failure_threshold: int | None
    failing_instances: int  # instances whose failures make up that run
    rate_votes: int  # instances with failures or slow calls in the fleet's window (quorum)
    probes_in_flight: int
    instances: int  # instances that reported on it in the last minute (idle ones send nothing)
    created: bool  # some instance has made this breaker (not only a forced name)
    calls: int  # reported since it last closed
    failures: int
    changed_at: float  # Redis's wall clock at the last transition
    # The fleet's failure-rate window, merged from every instance's outcomes
    # (zero without a failure or slow-call rate).
    window_calls: int = 0
    window_failures: int = 0
    window_slow: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if math.isinf(self.remaining):
            data["remaining"] = None  # JSON has no infinity
        return data


class RedisStorage:
    """Breaker state shared through one Redis.

    Attach breakers with ``CircuitBreakerConfig(storage=...)`` or
    ``Registry(storage=...)``. The hot path never waits for Redis: a background
    thread sends what changed (at once after a failure, else at most every
    ``refresh_interval`` seconds), and fetches a breaker's state when another
    instance publishes a transition of it. An idle process costs one
    subscription and one heartbeat command every ``heartbeat_interval``
    seconds, however many breakers it shares. ``quorum``: the fleet opens on
    counts only when at least that many instances reported failures.
    """

    unavailable = _UNAVAILABLE

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        namespace: str = "resilient",
        refresh_interval: float = 1.0,
        quorum: int = 1,
        heartbeat_interval: float = 30.0,
    ) -> None:
        validate_namespace(_OWNER, namespace)
        self.refresh_interval = _validate.seconds(
            _OWNER, "refresh_interval", refresh_interval, allow_zero=False
        )
        self.quorum = _validate.int_at_least(_OWNER, "quorum", quorum, 1)
        self.heartbeat_interval = _validate.seconds(
            _OWNER, "heartbeat_interval", heartbeat_interval, allow_zero=False
        )
        self.namespace = namespace
        self.channel = f"{namespace}:changes"
        self._client = client
        self._sha = hashlib.sha1(SCRIPT.encode()).hexdigest()
        self._bindings: list[Binding] = []
        self._failing: set[tuple[str, str]] = set()  # logged until they succeed
        self._up = True
        self._full_due = True
        self._closed = False
        # How long a caller waits for Redis's answer to a half-open probe.
        self.probe_wait = _PROBE_WAIT
        # Redis's clock (TIME) minus ours, as learnt from the round trips
        # with the least delay: outcomes go up stamped in the fleet's time.
        self.clock_offset: float | None = None
        self._offset_rtt = math.inf
        self._offset_at = -math.inf
        self._new_instance()
        _fork.renew_in_child(self, RedisStorage._forked, step=_fork.STATE)

    @property
    def clock_skew(self) -> float:
        """How far ``clock_offset`` may be off (half the round trip it was
        learnt from; ``inf`` before the first): two instances' outcomes
        closer in time than the sum of their skews may merge in either order."""
        return self._offset_rtt / 2

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "resilient",
        refresh_interval: float = 1.0,
        quorum: int = 1,
        socket_timeout: float = 0.25,
        heartbeat_interval: float = 30.0,
    ) -> RedisStorage:
        """A storage on the Redis at ``url`` (``redis://host:port/db``), or
        on a Redis Cluster (``redis+cluster://host:port``, any one node:
        the others are discovered; ``rediss+cluster://`` with TLS).

        Nothing connects yet (a cluster's nodes are discovered at once; with
        none of them answering, the storage starts on local state and
        discovers them when they do). Every command gives up after
        ``socket_timeout`` seconds and is never retried, and a caller waits
        at most that long for a half-open probe's answer: a breaker would
        rather decide on local state than wait.
        """
        timeout = _validate.seconds(_OWNER, "socket_timeout", socket_timeout, allow_zero=False)
        client: Any
        try:
            scheme, _, rest = url.partition("://")
            if scheme in ("redis+cluster", "rediss+cluster"):
                client = cluster_client(f"{scheme.removesuffix('+cluster')}://{rest}", timeout)
            else:
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                    health_check_interval=0,
                )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{_OWNER}: bad Redis URL {url!r}: {exc}") from exc
        storage = cls(
            client,
            namespace=namespace,
            refresh_interval=refresh_interval,
            quorum=quorum,
            heartbeat_interval=heartbeat_interval,
        )
        storage.probe_wait = timeout
        return storage

    def __repr__(self) -> str:
        state = "closed" if self._closed else "up" if self._up else "down"
        return f"<RedisStorage {self._where()} namespace={self.namespace!r} {state}>"

    def _where(self) -> str:
        pool = getattr(self._client, "connection_pool", None)
        if pool is None:  # a cluster
            nodes = cast(Any, self._client).get_nodes()
            if not nodes:  # not discovered yet
                return f"cluster {getattr(self._client, 'url', '?')}"
            return "cluster " + ",".join(f"{node.host}:{node.port}" for node in nodes[:3])
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    def _new_instance(self) -> None:
        # Per process: a forked child is another instance of the fleet, with
        # none of the parent's threads, and locks they may have held at fork.
        self._pid = os.getpid()
        self.instance = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Set once the listener first tried to subscribe: the first sync
        # waits for it, so whatever is published after that sync is heard.
        self._listening = threading.Event()
        self._threads: list[threading.Thread] = []
        # Where half-open probes ask Redis: threads of the storage's own, so
        # neither a caller nor an event loop waits longer than probe_wait.
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def up(self) -> bool:
        """False while Redis is unreachable (breakers then decide locally) and after close."""
        return self._up and not self._closed

    # -- breakers (the BreakerStorage protocol) ----------------------------------

    def attach(self, breaker: StoredBreaker) -> Binding:
        binding = Binding(self, breaker)
        with self._lock:
            self._bindings.append(binding)
            self._start()
        self._wake.set()
        return binding

    def bind_rate_limit(self, limiter: RateLimiter) -> SharedLimiter:
        """Share ``limiter``'s limit with the fleet (``RateLimitConfig(storage=...)``)."""
        from ._limit import SharedLimiter

        return SharedLimiter(self, limiter)

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the storage's probe threads (in this thread once
        the storage is closed: no thread outlives ``close``)."""
        with self._lock:
            pool = self._pool
            if pool is None and not self._closed:
                pool = self._pool = concurrent.futures.ThreadPoolExecutor(
                    _PROBE_THREADS, thread_name_prefix="resilient-redis-probe"
                )
        if pool is not None:
            with contextlib.suppress(RuntimeError):  # shut down meanwhile: closed
                return pool.submit(fn)
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            done.set_result(fn())
        except Exception as exc:
            done.set_exception(exc)
        return done

    def forget(self, binding: Binding) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._bindings.remove(binding)

    def wake(self) -> None:
        """Sync soon (after a failure, a probe, or a published transition)."""
        self._wake.set()

    def _forked(self) -> None:
        """In a forked child: another instance of the fleet (its own id,
        heartbeat and segments), on connections of its own; the counts the
        parent made and had not sent yet stay the parent's to send."""
        had_threads = bool(self._threads)
        self._new_instance()
        _reconnect(self._client)
        for binding in self._bindings:
            binding.forked()
        if had_threads:
            with self._lock:
                self._start()

    def _start(self) -> None:
        if self._closed:
            return
        if self._threads:
            return
        self._threads = [
            threading.Thread(target=self._flush_loop, name="resilient-redis-sync", daemon=True),
            threading.Thread(target=self._listen_loop, name="resilient-redis-listen", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop the background threads and close the connections. Attached
        breakers carry on with local state only."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._threads = self._threads, []
            bindings = list(self._bindings)
        self._stop.set()
        self._wake.set()
        self._listening.set()
        if threads:
            with contextlib.suppress(*_UNAVAILABLE):
                self._client.publish(self._private_channel(), b"close")
        for thread in threads:
            thread.join(timeout=5.0)
        for binding in bindings:
            binding.go_local()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # at most one round trip
        self._client.close()

    def __enter__(self) -> RedisStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- talking to Redis --------------------------------------------------------

    def execute(self, calls: Sequence[tuple[list[str], list[str | bytes]]]) -> list[Any]:
        """Run the script once per ``(keys, args)``, in one round trip.

        Raises when Redis cannot be reached. A call the script itself failed
        (a ``ResponseError``, e.g. WRONGTYPE on a key someone else wrote)
        is returned as that error in its place: it concerns that breaker
        only, and the others' replies stand.
        """
        pipe = self._client.pipeline(transaction=False)
        for call_keys, args in calls:
            # execute_command: a cluster pipeline refuses the evalsha method,
            # not the command (routed by its keys, one slot per breaker).
            pipe.execute_command("EVALSHA", self._sha, len(call_keys), *call_keys, *args)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # A restarted (or SCRIPT FLUSHed) Redis forgot the script; these
            # calls did not run, so running them again counts nothing twice.
            self._client.script_load(SCRIPT)
            again = self.execute([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, ResponseError):
                raise reply
        self._list_new_names(calls, replies)
        return replies

    def _list_new_names(
        self, calls: Sequence[tuple[list[str], list[str | bytes]]], replies: list[Any]
    ) -> None:
        # The names set lies in another cluster slot than any breaker's keys:
        # a name goes in when a reply says its hash was just made.
        fresh = [
            args[1]
            for (_, args), reply in zip(calls, replies, strict=True)
            if not isinstance(reply, Exception)
            and args[0] in ("sync", "control")
            and len(reply) > _SEEDED[args[0]]
            and int(reply[_SEEDED[args[0]]]) == 1
        ]
        if fresh:
            self._client.sadd(names_key(self.namespace), *fresh)

    def failed(self, what: str, name: str, error: BaseException) -> None:
        """One breaker's script call failed while Redis answered: that breaker
        decides locally for now; the store and every other breaker go on."""
        key = (what, name)
        if key in self._failing:
            return
        self._failing.add(key)
        log.warning(
            "resilient: Redis refused %s of shared breaker %r (%s: %s); it decides on "
            "local state until that succeeds, other breakers are not affected",
            what,
            name,
            type(error).__name__,
            error,
        )

    def down(self, error: BaseException) -> None:
        """Redis failed a command: breakers go local. Logged once per outage."""
        with self._lock:
            if not self._up or self._closed:
                return
            self._up = False
            bindings = list(self._bindings)
        log.warning(
            "resilient: Redis at %s is unreachable (%s: %s); shared breakers decide "
            "on local state until it is back",
            self._where(),
            type(error).__name__,
            error,
        )
        for binding in bindings:
            binding.go_local()

    def sync(self) -> bool:
        """One round trip for every attached breaker: send the counts made
        since the last sync, mirror the fleet's state. False if Redis failed."""
        return self._sync(full=True)

    def _sync(self, full: bool) -> bool:
        # Not full: only the breakers with something new (see Binding.prepare).
        with self._sync_lock:
            with self._lock:
                bindings = list(self._bindings)
            plans: list[tuple[Binding, list[Op]]] = []
            for binding in bindings:
                ops = binding.prepare(full)
                if ops is None:
                    self.forget(binding)  # its breaker was garbage-collected
                else:
                    plans.append((binding, ops))
            ops = [op for _, plan in plans for op in plan]
            if not ops:
                return self._up
            try:
                sent = _clock.monotonic()
                replies = self.execute([(op.binding.keys, op.args) for op in ops])
                self._learn_offset(ops, replies, sent, _clock.monotonic())
            except _UNAVAILABLE as exc:
                for binding, plan in plans:
                    binding.undo(plan)
                self.down(exc)
                return False
            with self._lock:
                back = not self._up and not self._closed
                self._up = True
            if back:
                log.info(
                    "resilient: Redis at %s is reachable again; breakers resynced", self._where()
                )
            for op, reply in zip(ops, replies, strict=True):
                if isinstance(reply, Exception):
                    op.binding.refused(op, reply)
                else:
                    self._failing.discard((op.kind, op.binding.name))
                    op.binding.done(op, reply)
            return True

    def _learn_offset(self, ops: list[Op], replies: list[Any], sent: float, back: float) -> None:
        """Redis's clock minus ours, from a round trip's replies: off by at
        most half the round trip. The estimate from the quickest round trip
        of the last minute stands (a slow one would be worse)."""
        redis_now = next(
            (
                float(_text(reply[6]))
                for op, reply in zip(ops, replies, strict=True)
                if op.kind in ("sync", "peek")
                and not isinstance(reply, Exception)
                and len(reply) > 6
            ),
            None,
        )
        if redis_now is None:
            return
        rtt = back - sent
        # Its age in real time: under a test's fake clock, which moves
        # while Redis's does not, the first estimate stands.
        learnt = time.monotonic()
        if rtt < self._offset_rtt or learnt - self._offset_at > _OFFSET_FOR:
            self.clock_offset = redis_now - (sent + back) / 2
            self._offset_rtt = rtt
            self._offset_at = learnt

    # -- background threads ------------------------------------------------------

    def _flush_loop(self) -> None:
        # Real time on purpose: this paces I/O; it is no policy's wait.
        wake, stop = self._wake, self._stop
        beat_at = 0.0
        self._listening.wait(self.refresh_interval)
        while not stop.is_set():
            wake.wait(self.refresh_interval)
            if stop.is_set():
                return
            wake.clear()
            try:
                now = time.monotonic()
                if now >= beat_at:
                    beat_at = now + self.heartbeat_interval
                    self._heartbeat()
                full, self._full_due = self._full_due, False
                if not self._sync(full):
                    self._full_due = True  # whatever was missed meanwhile
            except _UNAVAILABLE as exc:
                self._full_due = True
                self.down(exc)
            except Exception:  # a bug here must not kill sharing for good
                log.exception("resilient: Redis sync failed")
            stop.wait(_MIN_GAP)

    def _heartbeat(self) -> None:
        """This process is alive: one command (and one more to prune), for
        every breaker it shares. A Redis that lost its data (restarted
        empty, flushed) no longer knows us: then every breaker resyncs."""
        key = f"{self.namespace}:instances"
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(key, {self.instance: now})
        pipe.zremrangebyscore(key, "-inf", now - 3 * self.heartbeat_interval)
        added, _ = pipe.execute()
        if added:
            self._full_due = True

    def _stale(self, name: bytes) -> None:
        """Another instance published a transition of ``name``."""
        with self._lock:
            for binding in self._bindings:
                if binding.name_bytes == name:
                    binding.stale = True

    def _private_channel(self) -> str:
        return f"{self.namespace}:instance:{self.instance}"

    def _listen_loop(self) -> None:
        stop = self._stop
        pubsub: Any = None
        while not stop.is_set():
            try:
                if pubsub is None:
                    # Through Any: redis-py's annotation of pubsub() changed between
                    # releases (untyped, then typed).
                    pubsub = cast(Any, self._client).pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel, self._private_channel())
                    if self._listening.is_set():
                        # Whatever was published while we were away, a full
                        # sync catches up (the first sync waits for us).
                        self._full_due = True
                        self._wake.set()
                    self._listening.set()
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    if _text(message["channel"]) == self.channel:
                        self._stale(message["data"])
                    self._wake.set()
            except Exception as exc:  # whatever broke the connection, start over
                self._listening.set()
                if not isinstance(exc, _UNAVAILABLE):
                    log.debug("resilient: Redis listener restarts", exc_info=True)
                _discard(pubsub)
                pubsub = None
                stop.wait(self.refresh_interval)
        _discard(pubsub)

    # -- administration (the CLI) ------------------------------------------------

    def ping(self) -> None:
        """Raise the Redis error if Redis cannot be reached."""
        self._client.ping()

    def _admin(self, names: Sequence[str | bytes], op: str, *extra: str) -> list[Any]:
        # Empty config arguments: the script uses what the instances stored.
        # A name is a str, or the raw bytes of an identity (a per-key pair).
        blank = [""] * 7
        raws = [name if isinstance(name, bytes) else name_bytes(name) for name in names]
        return self.execute(
            [
                (keys(self.namespace, raw), [op, raw, "cli", self.channel, *blank, *extra])
                for raw in raws
            ]
        )

    def names(self) -> list[str]:
        """Every breaker name known to this namespace, sorted."""
        members = self._client.smembers(names_key(self.namespace))
        return sorted(decode_name(m) for m in members)

    def describe(self, name: str) -> SharedBreakerInfo | None:
        """The shared breaker ``name``, or ``None`` if Redis has never heard of it."""
        (reply,) = self._admin([name], "read")
        if isinstance(reply, Exception):
            raise reply
        return _info(name, reply)

    def breakers(self) -> list[SharedBreakerInfo]:
        """Every shared breaker, sorted by name. One whose keys Redis cannot
        read (someone else wrote them) is left out and logged, not fatal."""
        members = self._client.smembers(names_key(self.namespace))
        raws = sorted(
            (m if isinstance(m, bytes) else name_bytes(m) for m in members), key=decode_name
        )
        if not raws:
            return []
        found = []
        for raw, reply in zip(raws, self._admin(raws, "read"), strict=True):
            name = decode_name(raw)
            if isinstance(reply, Exception):
                self.failed("read", name, reply)
                continue
            info = _info(name, reply)
            if info is not None:
                found.append(info)
        return found

    def _control(self, name: str, action: str) -> bool:
        if not isinstance(name, str) or not name:
            raise ValueError(f"breaker name must be a non-empty str, got {name!r}")
        (reply,) = self._admin([name], "control", action)
        if isinstance(reply, Exception):
            raise reply
        return bool(int(reply[4]))

    def force_open(self, name: str) -> bool:
        """Force ``name`` open fleet-wide; False if no instance has made it yet
        (it applies when one does)."""
        return self._control(name, "force_open")

    def force_closed(self, name: str) -> bool:
        """Force ``name`` closed fleet-wide; False if no instance has made it yet."""
        return self._control(name, "force_closed")

    def release(self, name: str) -> bool:
        """Undo a force on ``name`` fleet-wide (closed, counts cleared)."""
        return self._control(name, "release")

    def reset(self, name: str) -> bool:
        """Close ``name`` fleet-wide and clear its shared counts."""
        return self._control(name, "reset")


def _reconnect(client: Any) -> None:
    """New connection pools for ``client`` in a forked child: the parent's
    sockets stay the parent's (redis-py would notice on the next command
    too, but only after waiting up to 5 seconds for a lock a parent thread
    may have held at fork)."""
    pools = [getattr(client, "connection_pool", None)]
    if pools[0] is None:  # a cluster: a pool per node
        with contextlib.suppress(Exception):
            pools = [
                getattr(node.redis_connection, "connection_pool", None)
                for node in client.get_nodes()
            ]
    for pool in pools:
        if pool is None:
            continue
        with contextlib.suppress(AttributeError):
            pool._fork_lock = threading.Lock()
        pool.reset()


def _discard(pubsub: Any) -> None:
    if pubsub is not None:
        with contextlib.suppress(Exception):
            pubsub.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _info(name: str, reply: Any) -> SharedBreakerInfo | None:
    if _text(reply[0]) == "missing":
        return None
    threshold = _text(reply[13])
    return SharedBreakerInfo(
        name=name,
        state=_text(reply[0]),
        remaining=float(_text(reply[1])),
        consecutive_failures=int(reply[4]),
        failure_threshold=int(float(threshold)) if threshold else None,
        failing_instances=int(reply[5]),
        rate_votes=int(reply[6]),
        probes_in_flight=int(reply[7]),
        instances=int(reply[8]),
        created=int(reply[9]) > 0,
        calls=int(reply[10]),
        failures=int(reply[11]),
        changed_at=float(_text(reply[12])),
        window_calls=int(reply[14]),
        window_failures=int(reply[15]),
        window_slow=int(reply[16]),
    )
