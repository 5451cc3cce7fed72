"""The pytest plugin imports nothing heavy until a test uses it: the entry
point loads it into every pytest run of an environment where resilient is
installed. (What its fixtures and marker do: tests/test_testing.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import resilient._pytest_plugin as plugin
import resilient.testing

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("resilient._registry.registry", "asyncio", "resilient.circuit_breaker", "wrapt")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    done = _python(
        f"""
        import sys
        import resilient._pytest_plugin
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_resilient_testing_re_exports_the_plugin_not_a_copy() -> None:
    # -p resilient.testing registers these: the same objects the entry point loads.
    for name in (
        "pytest_configure",
        "resilient_registry",
        "fake_clock_fixture",
        "instant_waits_fixture",
        "force_open_marker",
    ):
        assert getattr(resilient.testing, name) is getattr(plugin, name), name


_TESTS = f"""
import sys

import pytest

HEAVY = {HEAVY!r}


def loaded():
    return sorted(m for m in HEAVY if m in sys.modules)


def test_1_a_test_that_uses_nothing_loads_nothing():
    assert loaded() == []


@pytest.mark.force_open("payments")
def test_2_the_marker_loads_the_registry_and_forces_the_breaker():
    assert "resilient._registry.registry" in sys.modules
    from resilient import CircuitState, registry

    assert registry.get_or_create("payments").state is CircuitState.FORCED_OPEN


def test_3_the_fixture_works_once_loaded(fake_clock):
    fake_clock.advance(2.0)
    assert fake_clock.now() == 2.0
"""


def test_a_pytest_run_loads_only_what_its_tests_use(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a fresh process, with the module the entry point loads and no other
    # plugin (pytest-asyncio would import asyncio).
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --strict-markers\n")
    pytester.makepyfile(test_lazy=_TESTS)
    pytester.runpytest_subprocess("-p", "resilient._pytest_plugin").assert_outcomes(passed=3)
