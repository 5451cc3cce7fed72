"""``EventStream``: events handed to an async consumer through a bounded buffer.

The producer is the protected call, in whatever thread it runs: it appends
under a short lock and never waits. When the buffer is full the oldest event
is dropped and counted. A consumer waiting (under asyncio or trio) is woken
through its own loop when the event comes from another thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from .._runtime import async_backend as _async_backend
from .._runtime import fork as _fork
from .._runtime.async_backend import Waiter
from .._runtime.exc_info import ExcInfo
from ..events import Event

__all__ = ["EventStream"]


class EventStream:
    """An async iterator over the events its collector receives from the
    moment the stream is made. One consumer per stream; make one per task.

    ``dropped`` counts the events lost because the consumer fell more than
    ``maxsize`` events behind (the oldest go first).
    """

    __slots__ = ("__weakref__", "_buffer", "_closed", "_lock", "_on_close", "_waiter", "dropped")

    def __init__(self, maxsize: int, on_close: Callable[[EventStream], None]) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"events(maxsize) must be an int >= 1, got {maxsize!r}")
        self._buffer: deque[Event] = deque(maxlen=maxsize)
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self._waiter: Waiter | None = None
        self._closed = False
        self._on_close = on_close
        self.dropped = 0

    @property
    def maxsize(self) -> int:
        return self._buffer.maxlen or 0

    def __len__(self) -> int:
        """Events buffered and not yet consumed."""
        return len(self._buffer)

    def _push(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                return
            buffer = self._buffer
            if len(buffer) == buffer.maxlen:
                self.dropped += 1
            buffer.append(event)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.wake()  # False when its loop is closed: nobody waits any more

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                if self._closed:
                    raise StopAsyncIteration
                if self._waiter is not None:
                    raise RuntimeError("this EventStream already has a consumer waiting")
                waiter = _async_backend.waiter()
                self._waiter = waiter
            try:
                await waiter.wait()
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None

    def close(self) -> None:
        """Stop receiving; a waiting consumer's iteration ends. Safe from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._buffer.clear()
            waiter, self._waiter = self._waiter, None
        self._on_close(self)
        if waiter is not None:
            waiter.wake()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: *ExcInfo) -> None:
        self.close()
