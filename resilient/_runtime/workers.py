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
import queue
import threading
from collections.abc import Callable
from typing import Any

from . import fork as _fork
from .validation import MAX_WORKERS, int_between

__all__ = ["DEFAULT_MAX_WORKERS", "Job", "WorkerPool", "pool_for", "shared_pool"]

DEFAULT_MAX_WORKERS = 64

# The tokens of a job's ``claim`` list (see Job).
_START, _WANTED, _FINISHED = "start", "wanted", "finished"
# ``Job.after`` once nothing more may be registered (finished, or dropped).
_CLOSED: list[Callable[[], object]] = []


class Job:
    """One call handed to a worker. ``done`` is held until the call ends.

    ``claim`` settles races without a lock (``list`` operations are atomic
    under the GIL). It starts as ``[_START]``: the worker about to run the
    job and a caller giving up on it both ``remove`` ``_START``, and only one
    succeeds, so a job starts at most once and never after it was dropped.
    Then whoever appends first between the worker (``_FINISHED``, the call
    has ended) and someone asking to run code after the call
    (``_WANTED``, see ``WorkerPool.after``) is ``claim[0]``: both read
    it, and agree whether the worker runs the callbacks.
    """

    __slots__ = ("after", "args", "claim", "context", "done", "error", "fn", "kwargs", "result")

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
        self.claim = [_START]
        # What runs once the call has ended (WorkerPool.after), e.g. the
        # release of a bulkhead permit its timed-out caller still holds.
        self.after: list[Callable[[], object]] | None = None
        self.done = done = threading.Lock()
        done.acquire()


class WorkerPool:
    """At most ``max_workers`` daemon threads, started on demand and kept.

    Idle workers block on one ``SimpleQueue`` of jobs; a free worker is
    found without a lock (each idle worker leaves a token in a deque that a
    submitter takes). The lock is taken only to start a thread, to drop a
    job (which its worker skips when it reaches it) and around the rare
    callbacks of ``after``.
    """

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        int_between("WorkerPool", "max_workers", max_workers, 1, MAX_WORKERS)
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        # One token per idle worker no submitter has claimed yet.
        self._idle: collections.deque[bool] = collections.deque()
        self._threads = 0
        self._dropped = 0  # dropped jobs not yet skipped by a worker
        self._names = itertools.count(1)
        _fork.renew_in_child(self, WorkerPool._forked)

    def _forked(self) -> None:
        """In a forked child: no threads (they stayed in the parent), no
        jobs (their callers did too), a new lock."""
        self._lock = threading.Lock()
        self._jobs = queue.SimpleQueue()
        self._idle = collections.deque()
        self._threads = 0
        self._dropped = 0

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
        # In a list the worker empties: a thread keeps its ``args`` for as
        # long as it runs, and this one runs for good.
        first = [job]
        threading.Thread(target=self._work, args=(first,), name=name, daemon=True).start()
        return True

    def drop(self, job: Job) -> bool:
        """Make sure ``job`` never starts; False when it already has."""
        with self._lock:
            try:
                job.claim.remove(_START)
            except ValueError:
                return False
            self._dropped += 1
            job.after = _CLOSED
            return True

    def after(self, job: Job, callback: Callable[[], object]) -> bool:
        """Run ``callback`` in the worker once ``job``'s call has ended;
        False (and nothing registered) when it already has, or never will
        (dropped before it started)."""
        with self._lock:
            callbacks = job.after
            if callbacks is _CLOSED:
                return False
            if callbacks is not None:  # an earlier registration: the worker runs these
                callbacks.append(callback)
                return True
            job.after = [callback]
            claim = job.claim
            claim.append(_WANTED)
            if claim[0] is _FINISHED:  # the call ended first
                job.after = _CLOSED
                return False
            return True

    def _work(self, first: list[Job]) -> None:
        idle, jobs = self._idle, self._jobs
        job = first.pop()
        while True:
            claim = job.claim
            try:
                claim.remove(_START)
                started = True
            except ValueError:
                started = False
            if not started:  # dropped before it started
                with self._lock:
                    self._dropped -= 1
                idle.append(True)
            else:
                try:
                    job.result = job.context.run(job.fn, *job.args, **job.kwargs)
                except BaseException as exc:  # re-raised in the caller's thread
                    job.error = exc
                claim.append(_FINISHED)
                if claim[0] is _FINISHED:  # nothing to run after it
                    # Idle from now on: said before the caller wakes, so that
                    # its next call finds this worker rather than starting one.
                    idle.append(True)
                    job.done.release()
                else:
                    job.done.release()
                    with self._lock:
                        after, job.after = job.after, _CLOSED
                    if after:
                        _run_all(after)
                    del after
                    idle.append(True)
            # Nothing of the call stays reachable from an idle worker.
            del job, claim
            job = jobs.get()


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


# The pools themselves renew in place (WorkerPool._forked): a policy that
# holds one keeps it in a forked child, and so does pool_for().
_fork.renew_module_locks(__name__, "_shared_lock")
