"""Names are data in Redis: any string is a breaker of its own, and one
breaker's trouble in Redis never takes the store down for the others."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState
from resilient.__main__ import main
from resilient.redis import RedisStorage
from resilient.redis._keys import encode_name, identity_bytes, tagged
from resilient.redis._script import keys
from tests.conftest import Boom
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

# Each of these once shared a key with another breaker or broke a key's syntax.
NAMES = [
    "a",
    "a:run",
    "a:votes",
    "a:probes",
    "a:instances",
    "a{x}",
    "{a}",
    "*",
    "\u200b",  # looks empty
    "\u3000\ufeff",
    "line\nbreak",
    "http:example.com:443",
    "lone \ud800 surrogate",
    "n" * 10_000,
]


def _fail() -> None:
    raise Boom


@pytest.fixture
def storages(redis_server: RedisServer) -> Iterator[Callable[..., RedisStorage]]:
    made: list[RedisStorage] = []

    def make(**options: Any) -> RedisStorage:
        options.setdefault("refresh_interval", 60.0)  # tests sync by hand
        storage = RedisStorage.from_url(redis_server.url, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


def _breakers(storage: RedisStorage) -> dict[str, CircuitBreaker]:
    return {
        name: CircuitBreaker(name, CircuitBreakerConfig(storage=storage, failure_threshold=2))
        for name in NAMES
    }


def test_keys_of_different_names_never_meet_and_share_one_slot() -> None:
    all_keys = [key for name in NAMES for key in keys("ns", name)]
    assert len(set(all_keys)) == len(all_keys)
    for name in NAMES:
        tags = {key[key.index("{") + 1 : key.index("}")] for key in keys("ns", name)}
        assert tags == {encode_name(name)}  # one hash tag: one cluster slot
    assert tagged("ns", "rl", "a") != tagged("ns", "cb", "a")


@pytest.mark.parametrize("opened", ["a", "a:run", "*", "\u200b", "n" * 10_000])
def test_opening_one_name_fleet_wide_leaves_every_other_alone(storages, opened: str) -> None:
    one, two = storages(), storages()
    mine, theirs = _breakers(one), _breakers(two)
    assert one.sync()
    assert two.sync()
    assert sorted(one.names()) == sorted(NAMES)
    for _ in range(2):
        with pytest.raises(Boom):
            mine[opened].call(_fail)
    assert one.sync()
    assert two.sync()
    assert theirs[opened].state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        theirs[opened].call(lambda: None)
    for name in NAMES:
        if name != opened:
            assert mine[name].state is CircuitState.CLOSED, name
            assert theirs[name].state is CircuitState.CLOSED, name
            assert theirs[name].call(lambda: "ok") == "ok"
    infos = {info.name: info.state for info in one.breakers()}
    assert infos == {name: "open" if name == opened else "closed" for name in NAMES}


def test_a_script_error_on_one_breaker_leaves_the_store_up_for_the_others(
    storages, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = storages(), storages()
    mine, theirs = _breakers(one), _breakers(two)
    assert one.sync()
    assert two.sync()
    # Another program writes a string where the breaker keeps its run set:
    # the script fails with WRONGTYPE, for that breaker only.
    client = redis.Redis.from_url(redis_server.url)
    client.delete(keys(one.namespace, "a")[1])
    client.set(keys(one.namespace, "a")[1], "not a set")
    client.close()
    with caplog.at_level(logging.WARNING, logger="resilient"):
        with pytest.raises(Boom):
            mine["a"].call(_fail)
        assert one.sync() is True
        assert one.up
        mine["*"].force_open()  # another breaker on the same store
        assert two.sync()
    assert theirs["*"].state is CircuitState.FORCED_OPEN
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert "'a'" in refused[0]
    assert one.up
    assert two.up
    assert [b.state for n, b in theirs.items() if n != "*"] == [CircuitState.CLOSED] * (
        len(NAMES) - 1
    )
    # The CLI still lists the namespace: the broken breaker is left out.
    listed = {info.name for info in one.breakers()}
    assert "*" in listed


def test_the_cli_lists_and_controls_any_name(
    storages, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    one = storages()
    mine = _breakers(one)
    assert one.sync()
    url = redis_server.url
    assert main(["breakers", "--redis", url, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(item["name"] for item in listed) == sorted(NAMES)
    for name in ("a:run", "a{x}", "\u200b", "n" * 10_000):
        assert main(["breakers", "--redis", url, "force-open", name, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "forced_open"
        assert main(["breakers", "--redis", url, "show", name, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["name"] == name
    assert one.sync()
    forced = {"a:run", "a{x}", "\u200b", "n" * 10_000}
    for name, breaker in mine.items():
        expected = CircuitState.FORCED_OPEN if name in forced else CircuitState.CLOSED
        assert breaker.state is expected, name
    assert main(["breakers", "--redis", url, "release", "a{x}"]) == 0
    capsys.readouterr()
    assert one.sync()
    assert mine["a{x}"].state is CircuitState.CLOSED
    assert mine["a"].state is CircuitState.CLOSED


def test_a_namespace_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        RedisStorage(redis.Redis(), namespace="a{b}")


def test_a_per_key_breaker_shares_state_with_its_own_key_only(storages) -> None:
    """Key "b][c" of group "a", key "c" of group "a[b]" and the plain name
    "a[b][c]" share one label, and three states in Redis."""
    one, two = storages(), storages()

    def trio(storage: RedisStorage) -> list[CircuitBreaker]:
        config = CircuitBreakerConfig(storage=storage, failure_threshold=1)
        return [
            CircuitBreaker("a", config, key="b][c"),
            CircuitBreaker("a[b]", config, key="c"),
            CircuitBreaker("a[b][c]", config),
        ]

    mine, theirs = trio(one), trio(two)
    assert [b.name for b in mine] == ["a[b][c]"] * 3
    assert len({tuple(keys("ns", identity_bytes(b.identity))) for b in mine}) == 3
    for opened in range(3):
        for breaker in mine + theirs:
            breaker.reset()
        assert one.sync()
        assert two.sync()
        with pytest.raises(Boom):
            mine[opened].call(_fail)
        assert one.sync()
        assert two.sync()
        states = [b.state for b in theirs]
        expected = [CircuitState.CLOSED] * 3
        expected[opened] = CircuitState.OPEN
        assert states == expected, opened
    assert sorted(info.name for info in one.breakers()) == ["a[b][c]"] * 3
