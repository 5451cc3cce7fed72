"""Stream ends reached by the garbage collector are set aside and run at
the next request, never inside the collection (which may run inside a
breaker's locked code, where an end hook taking that lock would wait for
ever); a ``Held`` stream ends when it is dropped untaken."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from resilient import with_hedging
from resilient._execution.collected import Held, end_dropped, set_aside
from resilient._execution.streams import Opened


@pytest.fixture(autouse=True)
def nothing_set_aside() -> Iterator[None]:
    gc.collect()  # what earlier tests dropped is set aside now, not in the test
    end_dropped()
    yield
    end_dropped()


def _held(seen: list[tuple[BaseException | None, bool]]) -> Held:
    opened = Opened(iter(()), 1)
    opened.ends.append(lambda error, closed: seen.append((error, closed)))
    return Held(opened)


def test_a_held_stream_dropped_untaken_ends_as_closed_at_once() -> None:
    seen: list[tuple[BaseException | None, bool]] = []
    held = _held(seen)
    del held
    assert seen == [(None, True)]
    assert not set_aside


def test_a_taken_held_stream_is_its_takers_to_end() -> None:
    seen: list[tuple[BaseException | None, bool]] = []
    held = _held(seen)
    held.taken = True
    del held
    assert seen == []


def test_a_held_stream_the_collector_frees_ends_at_the_next_request() -> None:
    seen: list[tuple[BaseException | None, bool]] = []
    held = _held(seen)
    held.first = held  # a cycle: only the collector frees it
    del held
    gc.collect()
    assert seen == []  # not inside the collection
    assert len(set_aside) == 1
    end_dropped()
    assert seen == [(None, True)]


def test_a_hedged_stream_runs_what_was_set_aside_before_it_opens() -> None:
    seen: list[tuple[BaseException | None, bool]] = []
    held = _held(seen)
    held.first = held
    del held
    gc.collect()
    assert seen == []

    @with_hedging(5.0)
    def numbers() -> Iterator[int]:
        yield 1

    assert list(numbers()) == [1]
    assert seen == [(None, True)]


def test_an_end_hook_that_raises_is_logged_not_raised_into_the_next_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(error: BaseException | None, closed: bool) -> None:
        raise RuntimeError("a failure_predicate's bug")

    opened = Opened(iter(()), 1)
    opened.ends.append(broken)
    held = Held(opened)
    held.first = held
    del held, opened
    gc.collect()
    assert len(set_aside) == 1
    end_dropped()  # the next request, of another caller: not its error
    assert not set_aside
    assert "a failure_predicate's bug" in caplog.text
