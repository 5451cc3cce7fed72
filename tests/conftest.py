from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
import trio

import resilient
from resilient._runtime import clock as _clock
from resilient.testing import FakeClock, fake_clock
from tests.redis_server import redis_server  # noqa: F401  (a fixture)

# Loads the plugin when the package is not installed; a no-op when its entry
# point already did.
pytest_plugins = ["resilient.testing"]


class Boom(Exception):
    """The failure of a protected function in a test."""


def ok() -> str:
    return "ok"


def fail() -> None:
    raise Boom


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A fake clock at 1000 s (a module that needs another start has its own)."""
    with fake_clock(1000.0) as fake:
        yield fake


class CountingLock:
    """A breaker's lock, counting how often it is taken."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.taken = 0

    def __enter__(self) -> Any:
        self.taken += 1
        return self.lock.__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        return self.lock.__exit__(*exc_info)


@pytest.fixture
def stepped_storages(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    """Instances of a fleet on the test's Redis that sync only when the test
    says so (their background threads are not started)."""
    from resilient.redis import RedisStorage

    url = request.getfixturevalue("redis_server").url
    monkeypatch.setattr(RedisStorage, "_start", lambda self: None)
    made: list[Any] = []

    def make(**options: Any) -> Any:
        storage = RedisStorage.from_url(url, refresh_interval=60.0, **options)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


@pytest.fixture(autouse=True)
def _isolate(resilient_registry: resilient.Registry) -> Iterator[None]:
    """Every test gets an isolated global registry, the real clock (some tests
    install their own), and policies switched on."""
    resilient.set_active(True)
    previous = _clock.set_clock(None)
    yield
    _clock.set_clock(previous)
    resilient.set_active(True)


# -- async libraries ---------------------------------------------------------------

#: A coroutine function a test hands to ``run``.
Main = Callable[[], Awaitable[Any]]

#: A sync timeout a worker surely picks its call up within, on a loaded
#: machine: for tests whose call must have started when the deadline fires
#: (a call no worker had picked up yet is dropped, never run).
PICKUP = 1.0


def _asyncio(main: Main) -> Any:
    async def wrapped() -> Any:
        return await main()

    return asyncio.run(wrapped())


def _trio(main: Main) -> Any:
    return trio.run(main)


def _anyio_trio(main: Main) -> Any:
    return anyio.run(main, backend="trio")


def _anyio_asyncio(main: Main) -> Any:
    return anyio.run(main, backend="asyncio")


RUNNERS = {
    "asyncio": _asyncio,
    "trio": _trio,
    "anyio-trio": _anyio_trio,
    "anyio-asyncio": _anyio_asyncio,
}


@pytest.fixture(params=list(RUNNERS))
def run(request: pytest.FixtureRequest) -> Callable[[Main], Any]:
    """Runs a coroutine function to its end under each library in turn, the
    way a service would (``asyncio.run``, ``trio.run``, ``anyio.run``). Test
    bodies use anyio's primitives, which all four share."""
    return RUNNERS[request.param]


@pytest.fixture
def library(run: Callable[[Main], Any]) -> str:
    """The library ``run`` runs the test under: ``"asyncio"`` or ``"trio"``."""
    return "asyncio" if run in (_asyncio, _anyio_asyncio) else "trio"
