"""A bounded pool of daemon threads that run sync calls under a timeout.

Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at
interpreter exit, so one abandoned call that never returns would hang the
process on the way out. These threads are daemons, and there are never more
than ``max_workers`` of them: when every one is busy (typically with calls
that timed out and were abandoned), new calls wait in a queue, and a call
whose caller stopped waiting before it started leaves the queue, never run.
"""

from __future__ import annotations

import collections
import contextvars
import itertools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from ._validate import MAX_WORKERS, int_between

__all__ = ["DEFAULT_MAX_WORKERS", "Job", "WorkerPool", "pool_for", "shared_pool"]

DEFAULT_MAX_WORKERS = 64

_PENDING, _RUNNING, _DROPPED, _FINISHED = 0, 1, 2, 3


class Job:
    """One call handed to a worker. ``done`` is held until the call ends."""

    __slots__ = ("after", "args", "context", "done", "error", "fn", "kwargs", "result", "state")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        # The caller's contextvars (request ids, ...) flow into the worker.
        self.context = contextvars.copy_context()
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.result: Any = None
        self.error: BaseException | None = None
        self.state = _PENDING
        # What runs once the call has ended (WorkerPool.after), e.g. the
        # release of a bulkhead permit its timed-out caller still holds.
        self.after: list[Callable[[], object]] | None = None
        self.done = threading.Lock()
        self.done.acquire()


class WorkerPool:
    """At most ``max_workers`` daemon threads, started on demand and kept.

    The queue holds only jobs someone still waits for: a dropped job leaves
    it at once, so a pool stuck on hung calls does not pile up dead work.
    """

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        int_between("WorkerPool", "max_workers", max_workers, 1, MAX_WORKERS)
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._jobs: collections.deque[Job] = collections.deque()
        self._threads = 0
        self._idle = 0
        self._names = itertools.count(1)

    def __repr__(self) -> str:
        return f"<WorkerPool threads={self._threads}/{self.max_workers} queued={len(self._jobs)}>"

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def queued(self) -> int:
        return len(self._jobs)

    def submit(self, job: Job) -> None:
        with self._lock:
            self._jobs.append(job)
            spawn = len(self._jobs) > self._idle and self._threads < self.max_workers
            if spawn:
                self._threads += 1
                self._idle += 1
            self._ready.notify()
        if spawn:
            threading.Thread(
                target=self._work, name=f"resilient-timeout-{next(self._names)}", daemon=True
            ).start()

    def drop(self, job: Job) -> bool:
        """Make sure ``job`` never starts; False when it already has."""
        with self._lock:
            if job.state != _PENDING:
                return False
            job.state = _DROPPED
            self._jobs.remove(job)
            return True

    def after(self, job: Job, callback: Callable[[], object]) -> bool:
        """Run ``callback`` in the worker once ``job``'s call has ended;
        False (and nothing registered) when it already has, or never will
        (dropped before it started)."""
        with self._lock:
            if job.state in (_FINISHED, _DROPPED):
                return False
            if job.after is None:
                job.after = []
            job.after.append(callback)
            return True

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._ready.wait()
                job = self._jobs.popleft()
                job.state = _RUNNING
                self._idle -= 1
            try:
                job.result = job.context.run(job.fn, *job.args, **job.kwargs)
            except BaseException as exc:  # re-raised in the caller's thread
                job.error = exc
            job.done.release()
            with self._lock:
                self._idle += 1
                job.state = _FINISHED
                after, job.after = job.after, None
            # Nothing of the call stays reachable from an idle worker.
            del job
            if after is not None:
                _run_all(after)
                del after


def _run_all(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a worker outlives what it runs
            logging.getLogger("resilient").exception("resilient: worker callback failed")


_shared: list[WorkerPool | None] = [None]
_shared_lock = threading.Lock()
# One pool per dependency: a Timeout of a named stack (with_resilience, a
# breaker's own timeout) runs its calls here, so a dependency whose calls
# hang fills its own pool and no other.
_named: dict[tuple[str, int], WorkerPool] = {}


def shared_pool() -> WorkerPool:
    """The pool every ``Timeout`` without its own uses, created on first use."""
    pool = _shared[0]
    if pool is None:
        with _shared_lock:
            pool = _shared[0]
            if pool is None:
                pool = _shared[0] = WorkerPool()
    return pool


def pool_for(name: str, max_workers: int = DEFAULT_MAX_WORKERS) -> WorkerPool:
    """The pool of the dependency ``name`` with ``max_workers`` workers,
    created on first use (its threads start on demand and are kept)."""
    key = (name, max_workers)
    pool = _named.get(key)
    if pool is None:
        with _shared_lock:
            pool = _named.get(key)
            if pool is None:
                pool = _named[key] = WorkerPool(max_workers)
    return pool


def _forget_after_fork() -> None:
    # A forked child has none of the parent's threads.
    _shared[0] = None
    _named.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
