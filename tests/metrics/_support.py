"""Helpers shared by the metrics tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from resilient import events
from resilient._decorate import decorate


class Repeat:
    """A stand-in for a retry layer: runs ``fn`` ``times`` times, reporting
    each retry, as one request."""

    def __init__(self, name: str, times: int) -> None:
        self.name = name
        self.times = times
        self._listeners = events.ListenerSet(events.GLOBAL)

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if events.hub.listening and events.entering(fn, self):
            return events.run_request(
                self._listeners, self.name, "retry", self._call, fn, args, kwargs, owner=self
            )
        for attempt in range(1, self.times):
            with contextlib.suppress(Exception):
                return fn(*args, **kwargs)
            if events.hub.listening:
                self._listeners.emit(
                    events.RetryAttempted(
                        name=self.name,
                        policy="retry",
                        attempt=attempt,
                        delay=0.0,
                        error=None,
                        **events.stamp(),  # type: ignore[arg-type]
                    )
                )
        return fn(*args, **kwargs)

    def _acall(self, fn: Any, args: Any, kwargs: Any) -> Any:
        raise NotImplementedError

    def __call__(self, fn: Any) -> Any:
        return decorate(self, fn)


def emit(kind: type[events.Event], name: str, policy: str, **fields: Any) -> None:
    """Emit an event as a policy of that kind would."""
    events.ListenerSet(events.GLOBAL).emit(
        kind(name=name, policy=policy, **events.stamp(), **fields)  # type: ignore[arg-type]
    )
