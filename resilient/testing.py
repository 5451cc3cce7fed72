"""Testing code that uses ``resilient``: a fake clock, waits that never sleep,
and a pytest plugin (loaded by entry point, or with ``-p resilient.testing``).

The plugin gives the fixtures ``resilient_registry``, ``fake_clock`` and
``instant_waits`` and the marker ``@pytest.mark.force_open("name", ...)``.
Everything else here works without pytest.
"""

from __future__ import annotations

from ._runtime.fake_time import FakeClock, WaitRecorder, fake_clock, instant_waits

__all__ = ["FakeClock", "WaitRecorder", "fake_clock", "instant_waits"]

# -- the pytest plugin ---------------------------------------------------------
# Its hooks and fixtures live in ._pytest_plugin, which the pytest11 entry
# point loads without this module (so that a pytest run which uses none of
# them imports none of this); re-exported here for ``-p resilient.testing``
# and ``pytest_plugins = ["resilient.testing"]``. Only when pytest is
# importable, so the helpers above need no pytest.

try:
    from ._pytest_plugin import fake_clock_fixture as fake_clock_fixture
    from ._pytest_plugin import force_open_marker as force_open_marker
    from ._pytest_plugin import instant_waits_fixture as instant_waits_fixture
    from ._pytest_plugin import pytest_configure as pytest_configure
    from ._pytest_plugin import resilient_registry as resilient_registry
except ModuleNotFoundError as missing:  # pragma: no cover - exercised without pytest
    if missing.name != "pytest":
        raise
