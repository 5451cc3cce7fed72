"""Stream ends that the garbage collector reaches, run later; ``Held``
streams, which end when they are dropped.

A response body dropped unread ends when it is collected, and the HTTP
clients' responses and bodies refer to each other, so that is the cyclic
collector's doing. It may run inside any code, a breaker's locked code in
this thread included, where an end hook taking that breaker's lock would
wait for ever. ``end_or_set_aside`` runs a stream's end hooks at once,
except while the collector runs: then they are kept in ``set_aside`` and run
by ``end_dropped()``, which each integration calls at its next request,
and hedging at its next stream. An error an end hook raises there is
logged (the ``resilient`` logger), never raised into that request, which
is not the one that ended.
"""

from __future__ import annotations

import gc
import logging
import os
from collections import deque

from .streams import End, Opened, end

__all__ = ["Held", "end_dropped", "end_or_set_aside", "set_aside"]

_collecting = [False]
set_aside: deque[tuple[list[End], BaseException | None, bool]] = deque()


def _on_collect(phase: str, info: dict[str, int]) -> None:
    _collecting[0] = phase == "start"


gc.callbacks.append(_on_collect)
if hasattr(os, "register_at_fork"):  # a child's breakers are its own
    os.register_at_fork(after_in_child=set_aside.clear)


def end_dropped() -> None:
    """Run the ends the collector set aside (see the module's docstring)."""
    while set_aside:
        try:
            ends, error, closed = set_aside.popleft()
        except IndexError:  # another thread took the last one
            return
        try:
            end(ends, error, closed)
        except Exception:
            logging.getLogger("resilient").exception(
                "resilient: ending a stream the garbage collector dropped failed"
            )


def end_or_set_aside(ends: list[End], error: BaseException | None, closed: bool) -> None:
    """``end(ends, error, closed)``, or set aside while the collector runs."""
    if _collecting[0]:
        set_aside.append((ends, error, closed))
    else:
        end(ends, error, closed)


class Held(Opened):
    """An opened stream held apart from the relay (a hedge that may lose
    the race): dropped before it is ``taken``, it ends as closed by its
    consumer (its hooks run, or are set aside while the collector runs;
    the stream itself is closed on collection)."""

    __slots__ = ("taken",)

    def __init__(self, opened: Opened) -> None:
        self.stream = opened.stream
        self.first = opened.first
        self.ends = opened.ends
        self.waits = opened.waits
        self.taken = False

    def __del__(self) -> None:
        if not self.taken:
            self.taken = True
            end_or_set_aside(self.ends, None, True)
