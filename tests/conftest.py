from __future__ import annotations

from collections.abc import Iterator

import pytest

import resilient
from resilient import _clock
from tests.redis_server import redis_server  # noqa: F401  (a fixture)

# Loads the plugin when the package is not installed; a no-op when its entry
# point already did.
pytest_plugins = ["resilient.testing"]


@pytest.fixture(autouse=True)
def _isolate(resilient_registry: resilient.Registry) -> Iterator[None]:
    """Every test gets an isolated global registry, the real clock (some tests
    install their own), and policies switched on."""
    resilient.set_active(True)
    previous = _clock.set_clock(None)
    yield
    _clock.set_clock(previous)
    resilient.set_active(True)
