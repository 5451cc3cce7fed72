"""What a forked child renews: policies survive ``os.fork()``.

A child of ``fork`` (gunicorn ``--preload``, Celery prefork,
``multiprocessing`` with ``"fork"``) has a copy of the parent's memory and
only the thread that forked. Every lock another thread held at that moment
stays held for good, and a worker pool still counts threads that are not
there. So objects that own a lock a call takes, a pool of threads or a
connection register here in their ``__init__``, and in the child one hook
(``os.register_at_fork(after_in_child=...)``) renews them, in two steps:

1. ``LOCKS``: every lock is replaced by a new one (never released: the
   thread that held it does not exist here), and every worker pool starts
   empty. Nothing in this step takes a lock of another object.
2. ``STATE``: what needs those new locks: a bulkhead frees the permits of
   threads that are gone, a Redis storage reconnects and restarts its
   threads, the hedging timers start over.

State and settings stay. The registries are weak (``WeakKeyDictionary``):
nothing is kept alive by being registered, and registering costs one
dictionary entry when the object is made. No call path reads anything here.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "LOCKS",
    "STATE",
    "fresh_lock",
    "locks",
    "renew_in_child",
    "renew_module_locks",
]

T = TypeVar("T")

LOCKS, STATE = 0, 1

_Renewal = Callable[[Any], None]
# An object's renewals: the one function (most objects have one: no tuple
# to keep per object), or a tuple of them in order.
_steps: tuple[weakref.WeakKeyDictionary[Any, _Renewal | tuple[_Renewal, ...]], ...] = (
    weakref.WeakKeyDictionary(),
    weakref.WeakKeyDictionary(),
)
# Module-level locks: (module name, attribute names).
_module_locks: list[tuple[str, tuple[str, ...]]] = []

_LockType = type(threading.Lock())
_RLockType = type(threading.RLock())


def renew_in_child(obj: T, renew: Callable[[T], None], *, step: int = LOCKS) -> None:
    """Call ``renew(obj)`` in a forked child, if ``obj`` still lives then.

    ``step`` LOCKS runs before any STATE renewal of any object. Renewals
    of one step run in the order their objects registered (a registry
    before the groups made from it)."""
    table = _steps[step]
    known = table.get(obj)
    if known is renew:
        return  # registered again by an owner letting it go: once is enough
    if known is None:
        table[obj] = renew
    else:
        table[obj] = (*known, renew) if isinstance(known, tuple) else (known, renew)


def fresh_lock(lock: T) -> T:
    """A new lock of the same kind as ``lock``: never held by anyone."""
    new: Any
    if isinstance(lock, _RLockType):
        new = threading.RLock()
    elif isinstance(lock, threading.Condition):
        new = threading.Condition()
    elif isinstance(lock, threading.Event):
        new = threading.Event()
        if lock.is_set():
            new.set()
    elif isinstance(lock, threading.Semaphore):
        raise TypeError("a semaphore's count cannot be renewed without knowing its holders")
    else:
        new = threading.Lock()
    return new  # type: ignore[no-any-return]


@functools.cache
def locks(*names: str) -> Callable[[Any], None]:
    """The renewal that gives ``obj`` a new lock in each attribute ``names``."""

    def renew(obj: Any) -> None:
        for name in names:
            setattr(obj, name, fresh_lock(getattr(obj, name)))

    renew.__qualname__ = f"locks{names!r}"
    return renew


def renew_module_locks(module: str, *names: str) -> None:
    """New locks in the child for the module-level ``names`` of ``module``
    (read as globals at each use, so replacing the attribute is enough)."""
    _module_locks.append((module, names))


def _after_fork_in_child() -> None:
    log = logging.getLogger("resilient")
    for module_name, names in _module_locks:
        module = sys.modules.get(module_name)
        if module is not None:
            locks(*names)(module)
    for table in _steps:
        for obj, renewals in list(table.items()):
            for renew in renewals if isinstance(renewals, tuple) else (renewals,):
                try:
                    renew(obj)
                except Exception:  # one object's trouble must not stop the others
                    log.exception("resilient: renewing %r after fork failed", obj)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
