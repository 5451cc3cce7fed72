from __future__ import annotations

from collections.abc import Iterator

import pytest

import resilient
from resilient import _clock
from tests.redis_server import redis_server  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def _isolate() -> Iterator[None]:
    """Every test starts with the real clock, policies on, and every breaker
    of the global registry reset; breakers a test creates are dropped after it
    (breakers of module-level decorated functions stay registered)."""
    reg = resilient.registry
    before = set(reg.names())
    bulkheads_before = set(reg._bulkheads)
    features_before = set(reg._features)
    reg.reset_all()
    resilient.set_active(True)
    previous = _clock.set_clock(None)
    yield
    _clock.set_clock(previous)
    resilient.set_active(True)
    for name in set(reg.names()) - before:
        reg._breakers.pop(name, None)
        reg._explicit.discard(name)
    reg.reset_all()
    for name in set(reg._bulkheads) - bulkheads_before:
        del reg._bulkheads[name]
    for name in set(reg._features) - features_before:
        del reg._features[name]
