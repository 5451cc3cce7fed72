from __future__ import annotations

from collections.abc import Iterator

import pytest

import resilient
from resilient import _clock


@pytest.fixture(autouse=True)
def _isolate() -> Iterator[None]:
    """Every test starts with an empty global registry, the real clock, and
    policies switched on."""
    saved = dict(resilient.registry._breakers)
    resilient.registry._breakers.clear()
    resilient.registry._explicit.clear()
    resilient.registry._pending.clear()
    resilient.registry._bulkheads.clear()
    resilient.registry._features.clear()
    resilient.set_active(True)
    previous = _clock.set_clock(None)
    yield
    _clock.set_clock(previous)
    resilient.set_active(True)
    resilient.registry._breakers.clear()
    resilient.registry._breakers.update(saved)
    resilient.registry._pending.clear()
    resilient.registry._bulkheads.clear()
    resilient.registry._features.clear()
