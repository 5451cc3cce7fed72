from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.bulkhead.state import LimiterCore, Waiter


def test_permits_are_taken_until_none_is_free() -> None:
    core = LimiterCore(2, 1)
    core.take()
    core.take()
    with pytest.raises(IndexError):
        core.take()
    assert core.active == 2
    core.give()
    assert core.active == 1


def test_the_queue_has_room_for_max_queue_waiters() -> None:
    core = LimiterCore(1, 2)
    assert core.can_queue()
    core.enqueue("a")
    core.enqueue("b")
    assert not core.can_queue()
    assert core.queued == 2


def test_hand_over_gives_free_permits_to_waiters_in_order() -> None:
    core = LimiterCore(1, 3)
    core.take()
    first, second = core.enqueue("a"), core.enqueue("b")
    assert core.hand_over() is None  # no free permit
    core.give()
    assert core.hand_over() is first
    assert (core.active, core.queued) == (1, 1)
    assert core.hand_over() is None
    core.give()
    assert core.hand_over() is second
    assert core.hand_over() is None  # nobody waits
    assert (core.active, core.queued) == (1, 0)


def test_a_cancelled_waiter_is_skipped_and_holds_nothing() -> None:
    core = LimiterCore(1, 2)
    core.take()
    gone, kept = core.enqueue("a"), core.enqueue("b")
    assert core.cancel(gone) is False
    assert core.queued == 1
    core.give()
    assert core.hand_over() is kept


def test_a_waiter_handed_a_permit_before_it_cancels_holds_it_once() -> None:
    core = LimiterCore(1, 1)
    core.take()
    waiter = core.enqueue("a")
    core.give()
    assert core.hand_over() is waiter
    assert core.cancel(waiter) is True
    assert core.cancel(waiter) is False  # asking twice never frees twice


def test_completed_calls_are_counted_without_the_lock() -> None:
    core = LimiterCore(1, 0)
    assert core.completed() == 0
    for _ in range(5):
        core.finished()
    assert core.completed() == 5
    assert core.completed() == 5  # reading does not count


def test_reject_counts_and_remembers_when() -> None:
    core = LimiterCore(1, 0)
    core.reject(12.5)
    assert (core.rejected, core.last_rejected_at) == (1, 12.5)


def test_cancelled_waiters_do_not_pile_up_without_releases() -> None:
    core = LimiterCore(1, 1)
    core.take()
    for _ in range(10_000):
        assert core.can_queue()
        core.cancel(core.enqueue("w"))
    assert len(core._waiters) <= 17


@given(st.lists(st.tuples(st.sampled_from("eerrcx"), st.integers(0, 50)), max_size=200))
def test_permits_are_conserved_under_any_sequence(ops: list[tuple[str, int]]) -> None:
    """The driver's protocol, step by step: permits held = active, at most
    max_concurrent; and no permit stays free while someone waits."""
    core = LimiterCore(3, 4)
    running = 0
    waiting: list[Waiter] = []
    handed: list[Waiter] = []  # given a permit, not yet running

    def give_back() -> None:
        core.give()
        while core.queued:
            waiter = core.hand_over()
            if waiter is None:
                break
            waiting.remove(waiter)
            handed.append(waiter)

    for op, pick in ops:
        if op == "e":  # a call arrives
            try:
                core.take()
                running += 1
            except IndexError:
                if core.can_queue():
                    waiting.append(core.enqueue(None))
        elif op == "r" and running:  # a call ends
            running -= 1
            core.finished()
            give_back()
        elif op == "c" and (waiting or handed):  # a waiter gives up
            pool = waiting + handed
            waiter = pool[pick % len(pool)]
            if core.cancel(waiter):
                handed.remove(waiter)
                give_back()
            else:
                waiting.remove(waiter)
        elif op == "x" and handed:  # a woken waiter starts running
            handed.pop(pick % len(handed))
            running += 1
        assert core.active == running + len(handed) <= 3
        assert core.queued == len(waiting) <= 4
        assert not waiting or core.active == 3
