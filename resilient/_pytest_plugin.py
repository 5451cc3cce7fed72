"""The pytest plugin of ``resilient.testing``: its marker and fixtures.

The ``pytest11`` entry point (named ``resilient.testing``) loads this module
in every pytest run of an environment where resilient is installed, used or
not: it imports nothing of resilient's machinery (the registry, the clock,
asyncio) until a test asks for a fixture, or carries the ``force_open``
marker. ``-p resilient.testing`` loads the same hooks and fixtures, which
``resilient.testing`` re-exports.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._registry.registry import Registry
    from ._runtime.fake_time import FakeClock, WaitRecorder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "force_open(*names): force these circuit breakers open for the test "
        "(in an isolated registry; released after it). From resilient.testing.",
    )


@pytest.fixture
def resilient_registry() -> Iterator[Registry]:
    """The global registry, isolated: every breaker starts CLOSED and
    unforced, and whatever the test changes is undone after it."""
    from ._registry.registry import registry

    with registry.isolated() as isolated:
        yield isolated


@pytest.fixture(name="fake_clock")
def fake_clock_fixture() -> Iterator[FakeClock]:
    """A ``FakeClock`` installed for the test;
    ``advance(seconds)``."""
    from ._runtime.fake_time import fake_clock

    with fake_clock() as clock:
        yield clock


@pytest.fixture(name="instant_waits")
def instant_waits_fixture(request: pytest.FixtureRequest) -> Iterator[WaitRecorder]:
    """Waits return at once; ``.delays`` lists what would have been slept."""
    from ._runtime.fake_time import instant_waits

    if "fake_clock" in request.fixturenames:
        # Installed first, whatever the order the test asks in, so the
        # waits are recorded and still move the fake clock.
        request.getfixturevalue("fake_clock")
    with instant_waits() as recorder:
        yield recorder


@pytest.fixture(autouse=True, name="_resilient_force_open")
def force_open_marker(request: pytest.FixtureRequest) -> None:
    # Runs for every test: a test without the marker costs one lookup and
    # imports nothing.
    markers = list(request.node.iter_markers("force_open"))
    if not markers:
        return
    names = [name for marker in markers for name in marker.args]
    if not names or not all(isinstance(name, str) and name for name in names):
        raise pytest.UsageError(
            f"@pytest.mark.force_open takes one or more breaker names, got {names!r}"
        )
    isolated: Registry = request.getfixturevalue("resilient_registry")
    for name in names:
        isolated.force_open(name)
