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
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_MAX_WORKERS", "Job", "WorkerPool", "shared_pool"]

DEFAULT_MAX_WORKERS = 64


class Job:
    """One call handed to a worker. ``done`` is held until the call ends.

    A job starts at most once, and only if nobody dropped it first: the
    worker about to run it and a caller giving up on it both take its one
    claim (``list.pop``, atomic under the GIL), and only one of them gets it.
    """

    __slots__ = ("args", "claim", "context", "done", "error", "fn", "kwargs", "result")

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
        self.claim = [True]
        self.done = done = threading.Lock()
        done.acquire()


class WorkerPool:
    """At most ``max_workers`` daemon threads, started on demand and kept.

    Idle workers block on one ``SimpleQueue`` of jobs; a free worker is
    found without a lock (each idle worker leaves a token in a deque that a
    submitter takes). The lock is taken only to start a thread and to count
    a dropped job, which its worker skips when it reaches it.
    """

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"WorkerPool.max_workers must be an int >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        # One token per idle worker no submitter has claimed yet.
        self._idle: collections.deque[bool] = collections.deque()
        self._threads = 0
        self._dropped = 0  # dropped jobs not yet skipped by a worker
        self._names = itertools.count(1)

    def __repr__(self) -> str:
        return f"<WorkerPool threads={self._threads}/{self.max_workers} queued={self.queued}>"

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker that someone still waits for."""
        return max(0, self._jobs.qsize() - self._dropped)

    def submit(self, job: Job) -> None:
        try:
            self._idle.pop()  # an idle worker will take it
        except IndexError:
            if self._threads < self.max_workers and self._spawn(job):
                return
        self._jobs.put(job)

    def _spawn(self, job: Job) -> bool:
        """Start a worker with ``job`` as its first; False at the bound."""
        with self._lock:
            if self._threads >= self.max_workers:
                return False
            self._threads += 1
            name = f"resilient-timeout-{next(self._names)}"
        threading.Thread(target=self._work, args=(job,), name=name, daemon=True).start()
        return True

    def drop(self, job: Job) -> bool:
        """Make sure ``job`` never starts; False when it already has."""
        try:
            job.claim.pop()
        except IndexError:
            return False
        with self._lock:
            self._dropped += 1
        return True

    def _work(self, job: Job) -> None:
        idle, jobs = self._idle, self._jobs
        while True:
            try:
                job.claim.pop()
            except IndexError:  # dropped before it started
                with self._lock:
                    self._dropped -= 1
                idle.append(True)
            else:
                try:
                    job.result = job.context.run(job.fn, *job.args, **job.kwargs)
                except BaseException as exc:  # re-raised in the caller's thread
                    job.error = exc
                # Idle from now on: said before the caller wakes, so that its
                # next call finds this worker rather than starting another.
                idle.append(True)
                job.done.release()
            # Nothing of the call stays reachable from an idle worker.
            del job
            job = jobs.get()


_shared: list[WorkerPool | None] = [None]
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The pool every ``Timeout`` without its own uses, created on first use."""
    pool = _shared[0]
    if pool is None:
        with _shared_lock:
            pool = _shared[0]
            if pool is None:
                pool = _shared[0] = WorkerPool()
    return pool


def _forget_after_fork() -> None:
    # A forked child has none of the parent's threads.
    _shared[0] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
