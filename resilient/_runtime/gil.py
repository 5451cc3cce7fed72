"""The steps that run without a lock because the GIL makes them atomic.

Each step below is one bytecode-level operation on a builtin (or a short run
of them with no call in between), which no other thread can interleave
while the GIL is held. They are what makes the hot paths cheap; each is
named where it is used, with a comment pointing here.

- Breaker successes (``circuit_breaker/breaker.py``): while CLOSED a success
  is counted by ``next(core.ticks)`` on an ``itertools.count``; the counts
  are folded into the window under the lock. Caught by
  ``tests/test_stress.py::test_threads_lock_free_successes_are_all_counted``
  and ``tests/test_circuit_breaker_fast_path.py::
  test_no_success_or_failure_is_lost_under_eight_threads``.
- Racy reads of ``core.state`` and ``core.reject_until`` (admitting or
  rejecting on sight): a stale read is the same as a call arriving a moment
  earlier. Caught by ``tests/test_stress.py::
  test_threads_half_open_admits_exactly_half_open_max_calls``.
- Bulkhead permits (``bulkhead/state.py``): free permits are tokens in a
  ``deque``; ``pop`` and ``append`` take and give one back. Caught by
  ``tests/test_bulkhead.py::test_threads_and_tasks_on_several_loops_share_one_limit``
  and ``tests/test_stress.py::test_threads_through_a_composed_policy``.
- Rate limiter turns (``rate_limit/limiter.py``): reading the clock and
  GCRA's compare-and-set with no call in between. Without a GIL (free
  threaded builds) every call takes the locked path instead (``GIL``).
  Caught by ``tests/test_rate_limit.py::
  test_threads_together_get_exactly_the_burst_while_time_stands_still``.
- Worker claims (``_runtime/workers.py``): a job's ``claim`` list settles
  who runs it with list operations. Caught by ``tests/test_isolation_stress.py``.
- Retry budget first attempts (``retry/budget.py``): one ``itertools.count``
  step per first attempt. Caught by ``tests/test_retry_budget.py``.
- Counters (``_execution/counters.py``): ``list.append`` of a duration to a
  policy's pending batch; folding swaps the list under the fold lock.
  Caught by ``tests/metrics/test_exact.py::test_counts_are_exact_under_threads``.
"""

from __future__ import annotations

import sys

__all__ = ["GIL"]

#: Whether this interpreter has a GIL (``False`` on a free-threaded build
#: running without it): the steps above need it to go without a lock.
GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()
