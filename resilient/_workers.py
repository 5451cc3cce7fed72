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
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_MAX_WORKERS", "Job", "WorkerPool", "shared_pool"]

DEFAULT_MAX_WORKERS = 64

_PENDING, _RUNNING, _DROPPED = 0, 1, 2


class Job:
    """One call handed to a worker. ``done`` is held until the call ends."""

    __slots__ = ("args", "context", "done", "error", "fn", "kwargs", "result", "state")

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
        self.done = threading.Lock()
        self.done.acquire()


class WorkerPool:
    """At most ``max_workers`` daemon threads, started on demand and kept.

    The queue holds only jobs someone still waits for: a dropped job leaves
    it at once, so a pool stuck on hung calls does not pile up dead work.
    """

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"WorkerPool.max_workers must be an int >= 1, got {max_workers!r}")
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
            # Nothing of the call stays reachable from an idle worker.
            del job
            with self._lock:
                self._idle += 1


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
