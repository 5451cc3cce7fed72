"""The pure rules of a hedged call."""

from __future__ import annotations

from resilient.hedging.state import RAISE, START, WAIT, HedgeCore


def test_attempts_are_numbered_and_bounded() -> None:
    core = HedgeCore(3)
    assert [core.start() for _ in range(3)] == [1, 2, 3]
    assert not core.may_start()
    assert core.running == 3


def test_the_first_success_wins_and_later_answers_change_nothing() -> None:
    core = HedgeCore(4)
    for _ in range(3):
        core.start()
    assert core.succeeded() is True
    assert core.done
    assert core.error is None
    assert core.succeeded() is False
    assert core.failed(ValueError(), True) == WAIT
    assert core.error is None
    assert core.running == 0
    assert not core.may_start()


def test_a_hedged_on_failure_starts_the_next_attempt_at_once() -> None:
    core = HedgeCore(2)
    core.start()
    assert core.failed(ConnectionError(), True) == START
    assert core.may_start()


def test_a_failure_waits_while_others_still_run_then_the_last_error_loses() -> None:
    core = HedgeCore(2)
    core.start()
    core.start()
    first, last = ConnectionError("a"), ConnectionError("b")
    assert core.failed(first, True) == WAIT
    assert not core.done
    assert core.failed(last, True) == RAISE
    assert core.done
    assert core.error is last


def test_an_error_not_hedged_on_ends_the_race_at_once() -> None:
    core = HedgeCore(3)
    core.start()
    core.start()
    error = KeyError("x")
    assert core.failed(error, False) == RAISE
    assert core.done
    assert core.error is error
    assert not core.may_start()
