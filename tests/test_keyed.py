"""Per-key breakers and bounded registries: one breaker per key, the LRU
rule (open or busy breakers are never dropped), names, metering, errors."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

import resilient
from resilient import (
    CircuitOpenError,
    CircuitState,
    MetricsCollector,
    Registry,
    with_circuit_breaker,
)


class Down(Exception):
    pass


def names(prefix: str = "api[") -> list[str]:
    """The global registry's breakers of one keyed name (other modules
    register breakers of their own at import)."""
    return [n for n in resilient.registry.names() if n.startswith(prefix)]


def _by_host(host: str, fail: bool = False) -> str:
    return host


def make_get(**options: Any) -> Any:
    @with_circuit_breaker("api", key=_by_host, failure_threshold=1, **options)
    def get(host: str, fail: bool = False) -> str:
        if fail:
            raise Down(host)
        return host

    return get


def test_each_key_has_its_own_breaker_registered_as_name_and_key() -> None:
    get = make_get()
    with pytest.raises(Down):
        get("a", fail=True)
    with pytest.raises(CircuitOpenError) as caught:
        get("a")
    assert caught.value.name == "api[a]"
    assert get("b") == "b"  # another key, another breaker: still closed
    assert names() == ["api[a]", "api[b]"]
    assert resilient.registry.get("api", key="a").state is CircuitState.OPEN  # type: ignore[union-attr]


def test_names_are_data_in_keys_too() -> None:
    get = make_get()
    for host in ("x:1", "a]b[", "ünï", "multi\nline"):
        assert get(host) == host
    assert sorted(names()) == sorted(f"api[{h}]" for h in ("x:1", "a]b[", "ünï", "multi\nline"))


def _opened_by_key(key: str, *, group: str = "a") -> Any:
    """A per-key call of ``group`` whose key ``key`` fails once (and opens)."""

    @with_circuit_breaker(group, key=lambda k, fail=False: k, failure_threshold=1)
    def call(k: str, fail: bool = False) -> str:
        if fail:
            raise Down(k)
        return k

    return call


def test_no_key_reaches_another_groups_breaker_whatever_its_label() -> None:
    # Key "b][c" of group "a" and key "c" of group "a[b]" share the label
    # "a[b][c]", and so would a plain breaker of that name: three breakers.
    first, second = _opened_by_key("b][c", group="a"), _opened_by_key("c", group="a[b]")
    plain = resilient.registry.get_or_create("a[b][c]")
    with pytest.raises(Down):
        first("b][c", fail=True)
    with pytest.raises(CircuitOpenError):
        first("b][c")
    assert second("c") == "c"
    assert plain.call(lambda: "plain") == "plain"
    one, two = resilient.registry.get("a", key="b][c"), resilient.registry.get("a[b]", key="c")
    assert one is not None
    assert two is not None
    assert len({id(one), id(two), id(plain)}) == 3
    assert (one.state, two.state, plain.state) == (
        CircuitState.OPEN,
        CircuitState.CLOSED,
        CircuitState.CLOSED,
    )
    assert (one.group, one.key, one.identity) == ("a", "b][c", ("a", "b][c"))
    assert (plain.group, plain.key, plain.identity) == (None, None, "a[b][c]")


def test_a_plain_breaker_named_like_a_key_is_not_that_key() -> None:
    call = _opened_by_key("acme", group="tenant")
    plain = resilient.registry.get_or_create("tenant[acme]")
    with pytest.raises(Down):
        plain.call(_raise_down)
    for _ in range(4):
        with pytest.raises(Down):
            plain.call(_raise_down)
    assert plain.state is CircuitState.OPEN  # five failures: the default threshold
    assert call("acme") == "acme"  # the key's own breaker is still closed
    resilient.registry.force_open("tenant", key="acme")
    with pytest.raises(CircuitOpenError):
        call("acme")
    resilient.registry.release("tenant[acme]")  # the plain one's name: not the key's
    with pytest.raises(CircuitOpenError):
        call("acme")
    resilient.registry.release("tenant", key="acme")
    assert call("acme") == "acme"


def _raise_down() -> None:
    raise Down


def test_the_breakers_of_every_key_share_their_groups_timeout_threads() -> None:
    @with_circuit_breaker("pooled", key=lambda t: t, timeout=5.0, max_keys=10)
    def fetch(t: str) -> str:
        return t

    before = threading.active_count()
    for i in range(200):
        assert fetch(f"t{i}") == f"t{i}"
    # Calls one after another need one worker thread, whatever the keys:
    # every key's breaker runs its calls on the group's pool.
    assert threading.active_count() - before <= 1
    assert len([n for n in resilient.registry.names() if n.startswith("pooled[")]) == 10


def test_a_force_on_a_key_applies_when_its_breaker_is_made() -> None:
    get = make_get()
    resilient.registry.force_open("api", key="down")
    with pytest.raises(CircuitOpenError):
        get("down")
    assert get("up") == "up"


def test_the_least_recently_used_closed_idle_breaker_is_dropped() -> None:
    get = make_get(max_keys=3)
    for host in ("a", "b", "c"):
        get(host)
    get("a")  # a is now the most recently used
    get("d")
    assert names() == ["api[a]", "api[c]", "api[d]"]


def test_an_open_breaker_is_never_dropped_and_the_cap_may_be_passed() -> None:
    get = make_get(max_keys=2)
    for host in ("a", "b"):
        with pytest.raises(Down):
            get(host, fail=True)
    get("c")  # both older ones are open: nothing can go
    assert names() == ["api[a]", "api[b]", "api[c]"]
    get("d")  # c is closed and idle: it goes, the open ones stay
    assert names() == ["api[a]", "api[b]", "api[d]"]
    with pytest.raises(CircuitOpenError):
        get("a")


def test_a_breaker_with_a_call_in_flight_is_never_dropped() -> None:
    seen: list[list[str]] = []

    @with_circuit_breaker("api", key=lambda host, inner=(): host, max_keys=1)
    def get(host: str, inner: tuple[str, ...] = ()) -> str:
        for other in inner:  # while this call is in flight, others come and go
            get(other)
        seen.append(names())
        return host

    get("busy", ("b", "c", "d", "e"))
    # "busy" was the least recently used all along, and stayed.
    assert all("api[busy]" in names for names in seen)
    assert len(seen[-1]) == 2  # the cap passed by the one in flight
    get("f")
    assert names() == ["api[f]"]


@pytest.mark.slow
def test_100k_distinct_keys_keep_the_registry_at_the_cap() -> None:
    get = make_get(max_keys=1024)
    most = 0
    for i in range(100_000):
        get(f"host-{i}")
        if i % 1000 == 0:
            most = max(most, len(names()))
    assert most <= 1024
    assert len(names()) == 1024


def test_a_key_function_that_raises_makes_no_breaker() -> None:
    def broken(host: str) -> str:
        raise LookupError("no key")

    @with_circuit_breaker("api", key=broken)
    def get(host: str) -> str:
        return host

    with pytest.raises(LookupError, match="no key"):
        get("a")
    assert names() == []


@pytest.mark.parametrize("bad", [3, None, ["a"]])
def test_a_key_that_is_not_a_str_is_an_error(bad: object) -> None:
    @with_circuit_breaker("api", key=lambda: bad)
    def get() -> None:
        return None

    with pytest.raises(TypeError, match="must return a str"):
        get()
    assert names() == []


async def test_async_a_key_function_error_is_raised_when_the_call_is_awaited() -> None:
    def broken(host: str) -> str:
        raise LookupError("no key")

    @with_circuit_breaker("api", key=broken)
    async def get(host: str) -> str:
        return host

    @with_circuit_breaker("api-typed", key=lambda host: 3)
    async def typed(host: str) -> str:
        return host

    pending = get("a")  # as from any coroutine function: nothing raised yet
    with pytest.raises(LookupError, match="no key"):
        await pending
    with pytest.raises(TypeError, match="must return a str"):
        await typed("a")
    assert names() == []


async def test_async_calls_pick_their_key_too() -> None:
    @with_circuit_breaker("api", key=lambda host, fail=False: host, failure_threshold=1)
    async def get(host: str, fail: bool = False) -> str:
        await asyncio.sleep(0)
        if fail:
            raise Down(host)
        return host

    with pytest.raises(Down):
        await get("a", fail=True)
    with pytest.raises(CircuitOpenError):
        await get("a")
    assert await get("b") == "b"


def test_requests_are_counted_under_the_name_and_calls_under_each_key() -> None:
    collector = MetricsCollector()
    resilient.registry.subscribe(collector)
    get = make_get()
    get("a")
    get("b")
    get("b")
    with pytest.raises(Down):
        get("a", fail=True)
    stats = collector.statistics.by_name["api"]
    assert (stats.total_requests, stats.successes, stats.failures) == (4, 3, 1)


def test_methods_with_a_key() -> None:
    class Client:
        @with_circuit_breaker("tenant", key=lambda self, tenant: tenant)
        def fetch(self, tenant: str) -> str:
            return f"{tenant}!"

    assert Client().fetch("t1") == "t1!"
    assert names("tenant[") == ["tenant[t1]"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        with_circuit_breaker("api", key=_by_host, max_keys=0)
    with pytest.raises(TypeError, match="key must be callable"):
        with_circuit_breaker("api", key="host")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs key"):
        with_circuit_breaker("api", max_keys=3)
    with pytest.raises(TypeError, match="needs a name"):
        with_circuit_breaker(resilient.CircuitBreaker("x"), key=_by_host)
    with pytest.raises(ValueError, match="max_breakers"):
        Registry(max_breakers=0)
    with pytest.raises(TypeError, match="key must be a str or None, got 5"):
        resilient.CircuitBreaker("x", key=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"label .* got 'x'"):
        resilient.CircuitBreaker("x", label="x")  # a label is for a per-key breaker only


def test_a_bounded_registry_drops_the_least_recently_used_closed_breaker() -> None:
    reg = Registry(max_breakers=3)
    for name in ("a", "b", "c"):
        reg.get_or_create(name)
    reg.get_or_create("a")  # used again
    reg.get_or_create("b").force_open()
    reg.get_or_create("d")
    assert reg.names() == ["a", "b", "d"]  # c: the least recently used closed one
    reg.get_or_create("e")
    assert reg.names() == ["b", "d", "e"]  # a went; b is forced open and stays


def test_a_bounded_registry_bounds_per_key_breakers_too() -> None:
    reg = Registry(max_breakers=4)
    reg.get_or_create("plain")

    @with_circuit_breaker("api", key=_by_host, registry=reg, max_keys=100)
    def get(host: str) -> str:
        return host

    for host in "abcdef":
        get(host)
    get("e")
    assert len(reg.names()) == 4
    assert "api[e]" in reg.names()
    assert "api[f]" in reg.names()
    # A dropped key comes back as a fresh breaker.
    get("a")
    assert "api[a]" in reg.names()
    assert len(reg.names()) == 4


def test_an_isolated_registry_drops_the_keys_made_inside() -> None:
    get = make_get()
    get("before")
    with resilient.registry.isolated():
        with pytest.raises(Down):
            get("inside", fail=True)
        assert names() == ["api[before]", "api[inside]"]
    assert names() == ["api[before]"]
    assert get("inside") == "inside"  # a fresh, closed breaker


def test_repeated_keys_keep_the_exact_lru_order() -> None:
    get = make_get(max_keys=2)
    for host in ("a", "b", "b", "a", "a", "c"):
        get(host)
    assert names() == ["api[a]", "api[c]"]  # b was the least recently used
    for host in ("c", "d", "a"):  # a was dropped by d: it comes back, c goes
        get(host)
    assert names() == ["api[a]", "api[d]"]


# -- the same rules for coroutine functions ------------------------------------------


def make_aget(**options: Any) -> Any:
    @with_circuit_breaker("api", key=_by_host, failure_threshold=1, **options)
    async def aget(host: str, fail: bool = False) -> str:
        await asyncio.sleep(0)
        if fail:
            raise Down(host)
        return host

    return aget


async def test_async_an_open_key_rejects_under_its_own_name_and_others_still_run() -> None:
    aget = make_aget()
    with pytest.raises(Down):
        await aget("a", fail=True)
    with pytest.raises(CircuitOpenError) as caught:
        await aget("a")
    assert caught.value.name == "api[a]"
    assert await aget("b") == "b"
    assert names() == ["api[a]", "api[b]"]
    assert resilient.registry.get("api", key="a").state is CircuitState.OPEN  # type: ignore[union-attr]


async def test_async_the_least_recently_used_closed_idle_breaker_is_dropped() -> None:
    aget = make_aget(max_keys=3)
    for host in ("a", "b", "c", "a", "d"):
        await aget(host)
    assert names() == ["api[a]", "api[c]", "api[d]"]


async def test_async_an_open_breaker_is_never_dropped_and_the_cap_may_be_passed() -> None:
    aget = make_aget(max_keys=2)
    for host in ("a", "b"):
        with pytest.raises(Down):
            await aget(host, fail=True)
    await aget("c")  # both older ones are open: nothing can go
    assert names() == ["api[a]", "api[b]", "api[c]"]
    await aget("d")  # c is closed and idle: it goes, the open ones stay
    assert names() == ["api[a]", "api[b]", "api[d]"]
    with pytest.raises(CircuitOpenError):
        await aget("a")


async def test_async_a_breaker_with_a_call_awaiting_is_never_dropped() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    @with_circuit_breaker("api", key=_by_host, max_keys=1)
    async def aget(host: str) -> str:
        if host == "busy":
            started.set()
            await release.wait()
        return host

    busy = asyncio.ensure_future(aget("busy"))
    await started.wait()
    for host in ("b", "c", "d"):  # each new key finds the cap passed
        await aget(host)
        assert "api[busy]" in names()
    assert len(names()) == 2  # the one in flight, and the newest
    release.set()
    assert await busy == "busy"
    await aget("e")  # idle now, and the least recently used: it goes
    assert names() == ["api[e]"]


# -- a bounded registry never drops a breaker with a call in flight ------------------


def _keyed_or_plain(reg: Registry, keyed: bool, run: Any) -> tuple[Any, str]:
    """``run`` decorated with a plain breaker called "slow", or with per-key
    breakers whose key "slow" is labelled "api[slow]"."""
    if keyed:
        return with_circuit_breaker("api", key=lambda: "slow", registry=reg)(run), "api[slow]"
    return with_circuit_breaker("slow", registry=reg)(run), "slow"


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "per-key"])
def test_a_bounded_registry_keeps_a_breaker_whose_only_call_runs_in_another_thread(
    keyed: bool,
) -> None:
    reg = Registry(max_breakers=4)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait()
        return "done"

    call, name = _keyed_or_plain(reg, keyed, slow)
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(call()))
    worker.start()
    try:
        assert started.wait(10)
        for other in "abcdef":  # the busy one is the least recently used all along
            reg.get_or_create(other)
            assert name in reg.names()
        assert len(reg.names()) == 4
    finally:
        release.set()
        worker.join(10)
    assert results == ["done"]
    reg.get_or_create("g")  # idle now, and the least recently used: it goes
    assert name not in reg.names()
    assert len(reg.names()) == 4


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "per-key"])
async def test_a_bounded_registry_keeps_a_breaker_whose_only_call_is_awaiting(
    keyed: bool,
) -> None:
    reg = Registry(max_breakers=4)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "done"

    call, name = _keyed_or_plain(reg, keyed, slow)
    task = asyncio.ensure_future(call())
    await started.wait()
    for other in "abcdef":
        reg.get_or_create(other)
        assert name in reg.names()
    assert len(reg.names()) == 4
    release.set()
    assert await task == "done"
    reg.get_or_create("g")
    assert name not in reg.names()
    assert len(reg.names()) == 4


@pytest.mark.parametrize("is_async", [False, True], ids=["with", "async with"])
async def test_a_bounded_registry_keeps_a_breaker_whose_block_is_open(is_async: bool) -> None:
    reg = Registry(max_breakers=2)
    breaker = reg.get_or_create("held")
    if is_async:
        async with breaker:
            for other in "abc":
                reg.get_or_create(other)
            assert "held" in reg.names()
    else:
        with breaker:
            for other in "abc":
                reg.get_or_create(other)
            assert "held" in reg.names()
    reg.get_or_create("d")
    assert reg.names() == ["c", "d"]


# -- one membership for the registry and its per-key groups ---------------------------


def test_two_decorators_of_one_name_share_each_key_and_drop_it_together() -> None:
    first = make_get(max_keys=1)
    second = make_get(max_keys=1)
    first("a")
    second("a")  # the same breaker, in both groups
    assert names() == ["api[a]"]
    with pytest.raises(Down):
        second("a", fail=True)
    with pytest.raises(CircuitOpenError):
        first("a")  # opened through the other decorator
    resilient.registry.reset("api", key="a")
    old = resilient.registry.get("api", key="a")
    second("b")  # second's bound drops a: from the registry and from first too
    assert names() == ["api[b]"]
    assert first("a") == "a"  # a fresh breaker, in the registry again
    assert names() == ["api[a]", "api[b]"]
    assert resilient.registry.get("api", key="a") is not old


def test_an_isolated_registry_brings_back_the_keys_dropped_inside() -> None:
    get = make_get(max_keys=2)
    get("a")
    get("b")
    kept = resilient.registry.get("api", key="a")
    with resilient.registry.isolated():
        get("c")  # a, the least recently used, is dropped inside
        assert names() == ["api[b]", "api[c]"]
    assert names() == ["api[a]", "api[b]"]
    assert resilient.registry.get("api", key="a") is kept
    get("a")  # its group has it again: no new breaker
    assert resilient.registry.get("api", key="a") is kept
    get("d")  # b is now the least recently used
    assert names() == ["api[a]", "api[d]"]


# -- a key's own scope of listeners, made when that key is used on its own ----------------


def _registry_events(registry: Registry) -> list[Any]:
    seen: list[Any] = []
    registry.subscribe(seen.append)
    return seen


def test_a_listener_of_one_key_sees_that_key_and_the_registrys_sees_every_key() -> None:
    registry = Registry()
    get = with_circuit_breaker("svc", key=lambda k: k, failure_threshold=1, registry=registry)(
        lambda k: k
    )
    get("a")
    get("b")
    everything = _registry_events(registry)
    only_b: list[Any] = []
    registry.get_or_create("svc", key="b").subscribe(only_b.append)
    get("a")
    get("b")
    assert sorted({e.name for e in everything if e.name != "svc"}) == ["svc[a]", "svc[b]"]
    assert only_b
    assert {e.name for e in only_b} == {"svc[b]"}


def test_the_counters_of_a_key_used_on_its_own_are_found_once_in_each_scope() -> None:
    from resilient._execution import counters

    registry = Registry()
    get = with_circuit_breaker("svc", key=lambda k: k, failure_threshold=1, registry=registry)(
        lambda k: k
    )
    get("a")
    get("b")
    b = registry.get_or_create("svc", key="b")
    b.subscribe(MetricsCollector())
    get("b")

    def keys(scope: Any) -> list[str]:
        return sorted(s.name for s in counters.within(scope) if s.name.startswith("svc["))

    assert keys(b._listeners) == ["svc[b]"]
    assert keys(registry.listeners) == ["svc[a]", "svc[b]"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_chain_of_a_key_made_before_a_listener_of_that_key_reports_to_it(
    is_async: bool,
) -> None:
    registry = Registry()
    with_circuit_breaker("svc", key=lambda k: k, registry=registry)(lambda k: k)("a")
    breaker = registry.get_or_create("svc", key="a")
    if is_async:

        async def work() -> int:
            return 1

        chain: Any = breaker(work)
    else:
        chain = breaker(lambda: 1)
    seen: list[Any] = []
    breaker.subscribe(seen.append)
    assert (asyncio.run(chain()) if is_async else chain()) == 1
    assert any(type(e).__name__ == "CallSucceeded" and e.name == "svc[a]" for e in seen)


def test_keys_coming_and_going_keep_the_shared_scope_small() -> None:
    from resilient._execution import counters

    registry = Registry()
    get = with_circuit_breaker("svc", key=lambda k: k, max_keys=16, registry=registry)(lambda k: k)
    for i in range(2000):
        get(f"k{i}")
        if i % 50 == 0:
            gc.collect()  # dropped breakers are freed (their counters with them)
    # Without pruning: 2,000. Pruned once the references have doubled: at
    # most twice what was alive then (16 keys, and up to 50 uncollected).
    assert len(registry.listeners._stats) <= 2 * (16 + 50)
    gc.collect()
    assert len([s for s in counters.within(registry.listeners) if s.name.startswith("svc[")]) == 16


# -- a call whose outcome is still pending (a streamed body) ---------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_key_whose_held_call_is_pending_is_never_dropped(is_async: bool) -> None:
    # The http integration's per-host breakers hold a response whose body
    # streams on: that host's breaker is busy until the body ends.
    from resilient.circuit_breaker.keyed import KeyedBreakers

    registry = Registry()
    pending: dict[str, list[Any]] = {}
    keyed = KeyedBreakers(
        "hosts",
        lambda host: host,
        config=None,
        max_keys=1,
        registry=registry,
        hold=lambda result: result,  # the body's end hooks, or None
    )

    def body(host: str) -> list[Any]:
        pending[host] = [] if host == "streaming" else None  # type: ignore[assignment]
        return pending[host]

    async def abody(host: str) -> list[Any]:
        return body(host)

    def call(host: str) -> None:
        if is_async:
            asyncio.run(keyed._wrap_async(abody, "hosts")(host))  # type: ignore[arg-type]
        else:
            keyed._wrap_sync(body, "hosts")(host)

    call("streaming")
    ends = pending["streaming"]
    assert len(ends) == 1  # the breaker waits for the body's end
    for host in ("b", "c"):  # each new key finds the cap passed
        call(host)
        assert keyed.keys().count("streaming") == 1
    for end in ends:
        end(None, False)  # the body is read to its end: a success
    call("d")  # idle now, and the least recently used: it goes
    assert keyed.keys() == ["d"]
    assert registry.get("hosts", key="streaming") is None
