from __future__ import annotations

from collections.abc import Iterator

import pytest

import resilient

# Loads the plugin when the package is not installed; a no-op when its entry
# point already did.
pytest_plugins = ["resilient.testing"]


@pytest.fixture(autouse=True)
def _isolate(resilient_registry: resilient.Registry) -> Iterator[None]:
    """Every test gets an isolated global registry and policies switched on."""
    resilient.set_active(True)
    yield
    resilient.set_active(True)
