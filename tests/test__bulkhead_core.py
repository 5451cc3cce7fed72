from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from resilient._bulkhead_core import FULL, GRANTED, QUEUE, LimiterCore, Waiter


def test_grants_up_to_the_limit_then_queues_then_is_full() -> None:
    core = LimiterCore(2, 1)
    assert [core.try_enter(), core.try_enter()] == [GRANTED, GRANTED]
    assert core.try_enter() == QUEUE
    core.enqueue("w")
    assert core.try_enter() == FULL
    assert (core.active, core.queued) == (2, 1)


def test_release_hands_the_permit_to_the_first_waiter_in_order() -> None:
    core = LimiterCore(1, 3)
    core.try_enter()
    first, second = core.enqueue("a"), core.enqueue("b")
    assert core.release() is first
    assert (core.active, core.queued, core.completed) == (1, 1, 1)
    assert core.release() is second
    assert core.release() is None
    assert (core.active, core.queued, core.completed) == (0, 0, 3)


def test_a_cancelled_waiter_is_skipped_and_holds_nothing() -> None:
    core = LimiterCore(1, 2)
    core.try_enter()
    gone, kept = core.enqueue("a"), core.enqueue("b")
    assert core.cancel(gone) is False
    assert core.queued == 1
    assert core.release() is kept


def test_a_waiter_granted_before_it_cancels_holds_the_permit_once() -> None:
    core = LimiterCore(1, 1)
    core.try_enter()
    waiter = core.enqueue("a")
    assert core.release() is waiter
    assert core.cancel(waiter) is True
    assert core.cancel(waiter) is False  # asking twice never frees twice
    assert core.release(completed=False) is None
    assert (core.active, core.completed) == (0, 1)


def test_undeliverable_permit_goes_to_the_next_waiter() -> None:
    core = LimiterCore(1, 2)
    core.try_enter()
    dead, alive = core.enqueue("a"), core.enqueue("b")
    assert core.release() is dead
    assert core.undeliverable(dead) is alive
    assert core.cancel(dead) is False  # its late clean-up must not free it again
    assert (core.active, core.queued) == (1, 0)


def test_reject_counts_and_remembers_when() -> None:
    core = LimiterCore(1, 0)
    core.reject(12.5)
    assert (core.rejected, core.last_rejected_at) == (1, 12.5)


def test_cancelled_waiters_do_not_pile_up_without_releases() -> None:
    core = LimiterCore(1, 1)
    core.try_enter()
    for _ in range(10_000):
        assert core.try_enter() == QUEUE
        core.cancel(core.enqueue("w"))
    assert len(core._waiters) <= 17


@given(st.lists(st.tuples(st.sampled_from("eEcrx"), st.integers(0, 50)), max_size=200))
def test_invariants_hold_under_any_sequence(ops: list[tuple[str, int]]) -> None:
    """Permits are conserved: holders = active, and nobody waits while one is free."""
    core = LimiterCore(3, 4)
    holders = 0  # calls running with a permit
    waiting: list[Waiter] = []
    granted: list[Waiter] = []  # handed a permit, not yet running
    for op, pick in ops:
        if op in "eE":
            decision = core.try_enter()
            if decision == GRANTED:
                holders += 1
            elif decision == QUEUE:
                waiting.append(core.enqueue(None))
        elif op == "c" and (waiting or granted):
            pool = waiting + granted
            waiter = pool[pick % len(pool)]
            if core.cancel(waiter):
                granted.remove(waiter)
                handed = core.release(completed=False)
                if handed is not None:
                    waiting.remove(handed)
                    granted.append(handed)
            else:
                waiting.remove(waiter)
        elif op == "r" and holders:
            holders -= 1
            handed = core.release()
            if handed is not None:
                waiting.remove(handed)
                granted.append(handed)
        elif op == "x" and granted:
            # A granted waiter wakes and runs.
            waiter = granted.pop(pick % len(granted))
            assert core.cancel(waiter) is True
            holders += 1
        assert core.active == holders + len(granted) <= 3
        assert core.queued == len(waiting) <= 4
        assert not waiting or core.active == 3
