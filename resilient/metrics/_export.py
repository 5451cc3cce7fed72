"""What the exporters record for each event: one mapping, two back ends.

Series (label ``name`` is the policy's name everywhere):

- ``circuit_breaker_state``: 0 closed, 1 open, 2 half-open. A breaker forced
  open reads 1 and one forced closed reads 0: dashboards and alerts see what
  callers get (rejections or not); ``circuit_breaker_state_changes_total``
  says whether it was forced (``to_state="forced_open"``).
- ``circuit_breaker_state_changes_total{from_state, to_state}``
- ``circuit_breaker_calls_total{result}``: every call through a breaker
  (every attempt of a retry), ``success`` / ``failure`` / ``rejected``, as
  the breaker counted it.
- ``retry_attempts_total``: retries (attempts after the first).
- ``timeout_operations_total``: calls that timed out (a stream's inactivity
  timeout included).
- ``bulkhead_executions_total{state}``: ``success`` / ``failure`` for calls a
  bulkhead admitted, ``rejected`` for calls it turned away.
- ``resilient_operation_duration_seconds``: the duration of each request
  (one call of a decorated function, retries included) that ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .. import events

__all__ = ["DEFAULT_BUCKETS", "STATE_VALUES", "Sink", "known_states", "listener"]

STATE_VALUES = {
    "closed": 0,
    "open": 1,
    "half_open": 2,
    "forced_open": 1,
    "forced_closed": 0,
}

# Seconds: 1 ms to 2 min, for calls to other services.
DEFAULT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

_RESULT = {
    events.CallSucceeded: "success",
    events.CallFailed: "failure",
    events.CallRejected: "rejected",
}


class Sink(Protocol):
    def state(self, name: str, value: int) -> None: ...
    def state_change(self, name: str, old: str, new: str) -> None: ...
    def breaker_call(self, name: str, result: str) -> None: ...
    def retry(self, name: str) -> None: ...
    def timeout(self, name: str) -> None: ...
    def bulkhead(self, name: str, state: str) -> None: ...
    def duration(self, name: str, seconds: float) -> None: ...


def known_states() -> dict[str, int]:
    """The state of every breaker in the global registry, to start from."""
    from ..registry import registry

    return {b.name: STATE_VALUES[b.state.value] for b in registry.breakers()}


def listener(sink: Sink, states: dict[str, int]) -> Callable[[events.Event], None]:
    """An event listener recording into ``sink``; ``states`` is the last
    known state value of each breaker, kept up to date."""

    def record(event: events.Event) -> None:
        kind = type(event)
        name = event.name
        result = _RESULT.get(kind)
        if result is not None:
            if event.level == events.REQUEST:  # type: ignore[attr-defined]
                if kind is not events.CallRejected:
                    sink.duration(name, event.duration)  # type: ignore[attr-defined]
            elif event.policy == "circuit_breaker":
                sink.breaker_call(name, result)
                if kind is events.CallRejected:
                    value = STATE_VALUES.get(event.state, 1)  # type: ignore[attr-defined]
                elif name not in states:
                    # Created after instrument() and never changed state since.
                    value = 0
                else:
                    return
                states[name] = value
                sink.state(name, value)
            elif event.policy == "bulkhead" and kind is not events.CallRejected:
                sink.bulkhead(name, result)
        elif kind is events.StateChanged:
            old, new = event.old_state, event.new_state  # type: ignore[attr-defined]
            states[name] = value = STATE_VALUES.get(new, 0)
            sink.state(name, value)
            sink.state_change(name, old, new)
        elif kind is events.RetryAttempted:
            sink.retry(name)
        elif kind is events.TimedOut or kind is events.StreamInactive:
            sink.timeout(name)
        elif kind is events.BulkheadRejected:
            sink.bulkhead(name, "rejected")

    return record
