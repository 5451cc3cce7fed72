"""resilient.testing: the fake clock, instant waits, registry isolation and
the pytest plugin (run in fresh projects with pytester)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from importlib import metadata
from pathlib import Path

import freezegun
import pytest
import time_machine

import resilient
from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Registry,
)
from resilient._runtime import clock as _clock
from resilient.testing import FakeClock, WaitRecorder, fake_clock, instant_waits

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def _trip(breaker: CircuitBreaker) -> None:
    """Fail through ``breaker`` until it opens."""

    def boom() -> None:
        raise RuntimeError("down")

    for _ in range(breaker.config.failure_threshold):
        with pytest.raises(RuntimeError):
            breaker.call(boom)
    assert breaker.state is CircuitState.OPEN


# -- FakeClock / fake_clock() -------------------------------------------------


def test_fake_clock_is_what_every_policy_reads_and_only_inside_the_block() -> None:
    with fake_clock(start=100.0) as clock:
        assert _clock.monotonic() == clock.now() == 100.0
        clock.advance(2.5)
        assert _clock.monotonic() == 102.5
        assert _clock.wall() == clock.wall()
    assert _clock.get_clock() is _clock.REAL


def test_fake_clock_is_uninstalled_when_the_block_raises() -> None:
    with pytest.raises(KeyError), fake_clock():
        raise KeyError
    assert _clock.get_clock() is _clock.REAL


def test_fake_clock_wall_moves_with_monotonic() -> None:
    with fake_clock() as clock:
        before = clock.wall()
        clock.advance(60)
        assert clock.wall() - before == 60


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_fake_clock_refuses_to_go_back_or_to_infinity(bad: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match=r"FakeClock.advance\(seconds\).*" + repr(bad)):
        clock.advance(bad)
    assert clock.now() == 0.0


def test_sync_waits_move_the_fake_clock_and_are_recorded() -> None:
    with fake_clock() as clock:
        _clock.sleep(1.5)
        _clock.sleep(0)  # not a wait
        _clock.sleep(2.0)
        assert clock.now() == 3.5
        assert clock.delays == [1.5, 2.0]
        assert clock.sleeps is clock.delays


async def test_async_waits_move_the_fake_clock_and_are_recorded() -> None:
    with fake_clock() as clock:
        await _clock.sleep_async(4.0)
        await _clock.sleep_async(1.0)
        assert clock.now() == 5.0
        assert clock.delays == [4.0, 1.0]


async def test_concurrent_async_waits_end_in_order_of_their_end_time() -> None:
    woke: list[tuple[str, float]] = []
    with fake_clock() as clock:

        async def wait(label: str, seconds: float) -> None:
            await _clock.sleep_async(seconds)
            woke.append((label, clock.now()))

        await asyncio.gather(wait("long", 5.0), wait("short", 2.0), wait("mid", 3.0))
        # Time overlaps: 5 seconds passed, not 10.
        assert clock.now() == 5.0
    assert woke == [("short", 2.0), ("mid", 3.0), ("long", 5.0)]


async def test_a_shorter_wait_racing_a_longer_one_wins_as_a_timeout_would() -> None:
    with fake_clock() as clock:
        timer = asyncio.ensure_future(_clock.sleep_async(5.0))
        work = asyncio.ensure_future(_clock.sleep_async(20.0))
        done, _pending = await asyncio.wait({timer, work}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {timer}
        assert clock.now() == 5.0
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work
        # The cancelled wait is skipped: the clock never jumps to its end.
        await _clock.sleep_async(1.0)
        assert clock.now() == 6.0


async def test_a_fake_wait_lets_ready_work_finish_before_the_clock_jumps() -> None:
    steps = []
    with fake_clock() as clock:

        async def busy() -> None:
            for _ in range(50):
                steps.append(clock.now())
                await asyncio.sleep(0)

        task = asyncio.ensure_future(busy())
        await _clock.sleep_async(1.0)
        await task
    assert steps == [0.0] * 50


async def test_advance_wakes_the_async_waits_that_end_by_then() -> None:
    with fake_clock() as clock:
        task = asyncio.ensure_future(_clock.sleep_async(10.0))
        await asyncio.sleep(0)  # the task starts waiting
        clock.advance(15.0)
        await task
        assert clock.now() == 15.0


async def test_a_sync_wait_in_another_thread_wakes_async_waits() -> None:
    with fake_clock() as clock:
        task = asyncio.ensure_future(_clock.sleep_async(3.0))
        await asyncio.sleep(0)
        thread = threading.Thread(target=_clock.sleep, args=(4.0,))
        thread.start()
        thread.join()
        await task
        assert clock.now() >= 4.0


def test_breaker_recovers_when_the_fake_clock_passes_recovery_timeout() -> None:
    with fake_clock() as clock:
        breaker = CircuitBreaker("db", CircuitBreakerConfig(failure_threshold=2))
        _trip(breaker)
        clock.advance(29.9)
        assert breaker.state is CircuitState.OPEN
        clock.advance(0.1)
        assert breaker.state is CircuitState.HALF_OPEN


# -- instant_waits() ----------------------------------------------------------


def test_instant_waits_return_at_once_and_are_recorded_in_order() -> None:
    with instant_waits() as waits:
        assert isinstance(waits, WaitRecorder)
        _clock.sleep(30.0)
        asyncio.run(_clock.sleep_async(45.0))
        _clock.sleep(0)
        assert waits.delays == [30.0, 45.0]
        # Time is still read from the real clock.
        assert _clock.get_clock().monotonic is _clock.REAL.monotonic
    assert _clock.get_clock() is _clock.REAL


async def test_an_instant_async_wait_is_still_a_cancellation_point() -> None:
    with instant_waits():
        task = asyncio.ensure_future(_clock.sleep_async(3600.0))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_instant_waits_under_a_fake_clock_still_move_it() -> None:
    with fake_clock() as clock, instant_waits() as waits:
        _clock.sleep(2.0)
        await _clock.sleep_async(3.0)
        assert waits.delays == clock.delays == [2.0, 3.0]
        assert clock.now() == 5.0
    assert _clock.get_clock() is _clock.REAL


# -- set_active(False) ----------------------------------------------------------


def test_set_active_false_makes_breakers_pass_through() -> None:
    breaker = resilient.registry.get_or_create("off")

    @breaker
    def call() -> str:
        return "ran"

    resilient.registry.force_open("off")
    resilient.set_active(False)
    assert not resilient.is_active()
    assert call() == "ran"
    resilient.set_active(True)
    with pytest.raises(CircuitOpenError):
        call()


# -- the resilient_registry fixture (Registry.isolated: tests/test_registry.py) -----


def test_resilient_registry_fixture_is_the_isolated_global_registry(
    resilient_registry: Registry,
) -> None:
    assert resilient_registry is resilient.registry


# -- freezegun and time-machine ------------------------------------------------------


def test_freezegun_ticked_past_recovery_timeout_half_opens_a_breaker() -> None:
    with freezegun.freeze_time("2026-01-01") as frozen:
        breaker = CircuitBreaker("fg", CircuitBreakerConfig(failure_threshold=1))
        _trip(breaker)
        frozen.tick(29)
        assert breaker.state is CircuitState.OPEN
        frozen.tick(1)
        assert breaker.state is CircuitState.HALF_OPEN


def test_time_machine_shifted_past_recovery_timeout_half_opens_a_breaker() -> None:
    with time_machine.travel("2026-01-01", tick=False) as traveller:
        breaker = CircuitBreaker("tm", CircuitBreakerConfig(failure_threshold=1))
        _trip(breaker)
        traveller.shift(29)
        assert breaker.state is CircuitState.OPEN
        traveller.shift(1)
        assert breaker.state is CircuitState.HALF_OPEN


def test_a_breaker_tripped_during_a_travel_stays_open_after_it() -> None:
    breaker = CircuitBreaker("tm-end", CircuitBreakerConfig(failure_threshold=1))
    with time_machine.travel(0):  # 1970: time.time() far behind time.monotonic()
        _trip(breaker)
        assert breaker.state is CircuitState.OPEN
    # One clock for the life of the travel: its end is no 56-year jump.
    assert breaker.state is CircuitState.OPEN
    assert 29 < breaker.metrics().remaining <= 30


def test_a_travel_moves_the_clock_from_where_it_stood() -> None:
    before = _clock.monotonic()
    with time_machine.travel(0, tick=False) as traveller:
        during = _clock.monotonic()
        traveller.shift(5)
        assert _clock.monotonic() == pytest.approx(during + 5)
    assert before <= during <= before + 5
    assert before <= _clock.monotonic() <= during + 5


def test_without_travel_the_clock_is_time_monotonic() -> None:
    assert "time_machine" in sys.modules
    before = _clock.monotonic()
    assert before <= time.monotonic() <= _clock.monotonic()


# -- the pytest plugin ---------------------------------------------------------


def test_the_entry_point_name_is_the_module_so_p_and_pytest_plugins_never_clash() -> None:
    # Named after the module -p loads, so pytest registers one plugin under
    # one name whichever way it comes; it points at the light module.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"resilient.testing": "resilient._pytest_plugin"}


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A fresh project whose pytest loads no plugin but ours."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider --strict-markers\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    # -p works whether or not the package is installed (and its entry point loaded).
    return project.runpytest("-p", "resilient.testing", *args)


_PROJECT = """
import asyncio

import pytest

from resilient import CircuitOpenError, CircuitState, registry, with_circuit_breaker
from resilient._runtime import clock as _clock


@with_circuit_breaker("payments", failure_threshold=2, recovery_timeout=30.0)
def charge(fail=False):
    if fail:
        raise ConnectionError("down")
    return "charged"


@pytest.mark.force_open("payments")
def test_marker_forces_a_module_level_breaker_open():
    with pytest.raises(CircuitOpenError) as caught:
        charge()
    assert caught.value.name == "payments"


def test_the_force_is_gone_in_the_next_test():
    assert charge() == "charged"


@pytest.mark.force_open("first", "second")
def test_marker_takes_several_names_and_names_created_later(resilient_registry):
    assert resilient_registry.get_or_create("first").state is CircuitState.FORCED_OPEN
    assert resilient_registry.get_or_create("second").state is CircuitState.FORCED_OPEN


@pytest.mark.force_open("payments")
class TestOnAClass:
    def test_applies_to_methods(self):
        with pytest.raises(CircuitOpenError):
            charge()


def test_trip_in_an_isolated_registry(resilient_registry):
    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge(fail=True)
    assert resilient_registry.get("payments").state is CircuitState.OPEN


def test_the_trip_is_undone_after_it():
    assert registry.get("payments").state is CircuitState.CLOSED


def test_fake_clock_fixture_moves_every_policy(fake_clock, resilient_registry):
    for _ in range(2):
        with pytest.raises(ConnectionError):
            charge(fail=True)
    fake_clock.advance(30.0)
    assert registry.get("payments").state is CircuitState.HALF_OPEN
    asyncio.run(_clock.sleep_async(5.0))
    assert fake_clock.now() == 35.0


def test_instant_waits_fixture_records_waits(instant_waits):
    _clock.sleep(60.0)
    asyncio.run(_clock.sleep_async(1.0))
    assert instant_waits.delays == [60.0, 1.0]


def test_instant_waits_and_fake_clock_compose_in_any_order(instant_waits, fake_clock):
    _clock.sleep(3.0)
    assert instant_waits.delays == fake_clock.delays == [3.0]
    assert fake_clock.now() == 3.0


def test_clock_restored_after_fixtures():
    assert _clock.get_clock() is _clock.REAL
"""


def test_plugin_in_a_fresh_project(project: pytest.Pytester) -> None:
    project.makepyfile(test_project=_PROJECT)
    _run(project).assert_outcomes(passed=10)


def test_plugin_registers_the_marker(project: pytest.Pytester) -> None:
    result = _run(project, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.force_open(*names)*"])
    assert result.ret == 0


def test_force_open_marker_without_names_is_an_error(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.force_open()
        def test_nothing():
            pass

        @pytest.mark.force_open(42)
        def test_not_a_name():
            pass
        """
    )
    result = _run(project)
    result.assert_outcomes(errors=2)
    for got in ("[]", "[42]"):
        message = f"force_open takes one or more breaker names, got {got}"
        result.stdout.re_match_lines([".*" + re.escape(message)])


@pytest.mark.slow
def test_the_installed_entry_point_loads_the_plugin(pytester: pytest.Pytester) -> None:
    installed = [
        ep
        for ep in metadata.entry_points(group="pytest11")
        if ep.name == "resilient.testing" and ep.dist and ep.dist.name == "resilient-kit"
    ]
    if not installed:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs the package: its pytest11 entry point must be there")
        pytest.skip("the package is not pip-installed here; CI covers the entry point")
    pytester.makepyfile(
        """
        def test_fixture_from_the_entry_point(resilient_registry, fake_clock):
            assert fake_clock.now() == 0.0
        """
    )
    # The entry point alone, and the entry point plus -p: no double registration.
    # (pytest-asyncio, also loaded by entry point here, would warn about its ini.)
    pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:asyncio", "-p", "resilient.testing").assert_outcomes(passed=1)


def test_importing_resilient_testing_needs_no_pytest() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["pytest"] = None  # as if pytest were not installed
        import resilient.testing as t
        from resilient._runtime import clock as _clock
        assert not hasattr(t, "resilient_registry")
        with t.fake_clock() as clock, t.instant_waits() as waits:
            _clock.sleep(2.0)
            asyncio.run(_clock.sleep_async(1.0))
        assert clock.now() == 3.0 and waits.delays == [2.0, 1.0]
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- the pytest recipes of docs/testing.md, run by pytest ---------------------------

_DOC = ROOT / "docs" / "testing.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _doc_blocks() -> list[tuple[int, str]]:
    text = _DOC.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m[1]) for m in _BLOCK.finditer(text)]


_CONFTEST = next(
    code for _, code in _doc_blocks() if "resilient_registry" in code and "\ndef test_" not in code
)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(code, id=f"docs/testing.md:{line}")
        for line, code in _doc_blocks()
        if "\ndef test_" in code
    ],
)
def test_the_docs_pytest_recipes_pass_under_pytest(project: pytest.Pytester, code: str) -> None:
    # test_docs.py only runs these blocks (defining the tests); here pytest
    # runs the tests, with the conftest the page recommends.
    project.makeconftest(_CONFTEST)
    project.makepyfile(test_recipe=code)
    _run(project).assert_outcomes(passed=code.count("\ndef test_"))
