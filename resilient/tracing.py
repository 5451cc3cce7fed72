"""Tracing: a span per protected call, with what resilience did to it.

``instrument(tracer_provider=None)`` (extra ``otel``: ``pip install
'resilient-kit[otel]'``) puts each call of an outermost layer (a decorated
function, a composed policy, a ``with`` block) in a span named
``resilient {name}`` with the attribute ``resilient.policy.name``, current
while the call runs (spans the call makes are its children), and adds a
span event for each retry, rejection, breaker state change, timeout, hedge,
failover and fallback that happens within it. It returns the function that
stops it. docs/observability.md lists the span's attributes and events, and
how they map to Polly's, gRPC's and OpenTelemetry's names.

With no tracing instrumented it costs nothing: the calls take their fast
paths (stopped, it leaves no listener or flag behind). Instrumented, each
request takes its events path, where its span opens, and costs one span;
the tracer listens with ``every_call=False``, so the layers inside keep
their fast paths and build no per-call event (what they do, a retry or a
rejection, they report from their slow paths).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from . import events
from ._execution import request as _request_hooks

__all__ = ["instrument"]

_SCOPE = "resilient"
_NAME = "resilient.policy.name"

# The span of the innermost traced call running in this context.
_active: contextvars.ContextVar[_Traced | None] = contextvars.ContextVar(
    "resilient_span", default=None
)
_lock = threading.Lock()


def _otel() -> Any:
    try:
        from opentelemetry import context, trace
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "resilient.tracing needs the OpenTelemetry API: pip install 'resilient-kit[otel]'"
        ) from exc
    return context, trace


class _Traced(_request_hooks.Span):
    __slots__ = ("_context", "_owner", "_previous", "_token", "retries", "span")

    def __init__(self, owner: _Tracer, span: Any, current: bool) -> None:
        self._owner = owner
        self.span = span
        self.retries = 0
        self._previous = _active.get()
        self._token = None
        self._context = None
        if current:
            context, trace = owner.api
            self._context = context.attach(trace.set_span_in_context(span))
            self._token = _active.set(self)

    def close(self, error: BaseException | None) -> None:
        span = self.span
        try:
            if self.retries:
                span.set_attribute("resilient.retries", self.retries)
                span.set_attribute("http.request.resend_count", self.retries)
            if error is not None:  # no resilient.outcome: a success
                _, trace = self._owner.api
                if isinstance(error, GeneratorExit):
                    outcome = "closed"
                elif not isinstance(error, Exception):
                    outcome = "cancelled"
                elif _request_hooks.rejection(error) is not None:
                    outcome = "rejected"
                else:
                    outcome = "failure"
                span.set_attribute("resilient.outcome", outcome)
                if isinstance(error, Exception):
                    span.set_attribute("error.type", type(error).__qualname__)
                    span.record_exception(error)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            span.end()
        finally:
            if self._token is not None:
                try:
                    _active.reset(self._token)
                except ValueError:  # ended in another context (a finalized stream)
                    _active.set(self._previous)
            if self._context is not None:
                context, _ = self._owner.api
                context.detach(self._context)  # from another context: OTel logs it
            self._owner.closed()


class _Tracer(_request_hooks.Tracer):
    def __init__(self, tracer: Any, api: Any) -> None:
        self.tracer = tracer
        self.api = api
        self.open_spans = 0
        self.stopping = False
        self.unsubscribe: Callable[[], None] | None = None

    def open(self, name: str, kind: str, current: bool) -> _Traced | None:
        if self.stopping:
            return None
        span = self.tracer.start_span(f"resilient {name}", attributes={_NAME: name})
        with _lock:
            self.open_spans += 1
        return _Traced(self, span, current)

    def closed(self) -> None:
        with _lock:
            self.open_spans -= 1
            unsubscribe = None
            if self.stopping and self.open_spans <= 0:
                unsubscribe, self.unsubscribe = self.unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def __call__(self, event: events.Event) -> None:
        """A listener on every policy: events within a traced call become
        events of its span."""
        describe = _SPAN_EVENTS.get(type(event))
        if describe is None:
            return
        traced = _active.get()
        if traced is None:
            return
        found = describe(event)
        if found is None:
            return
        what, attributes = found
        if what == "resilient.retry":
            traced.retries += 1
        traced.span.add_event(what, attributes)


def _error_type(error: BaseException | None) -> dict[str, Any]:
    return {} if error is None else {"exception.type": type(error).__qualname__}


def _base(event: events.Event) -> dict[str, Any]:
    return {_NAME: event.name, "resilient.policy": event.policy}


def _retry(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.retry", {
        **_base(event),
        "resilient.attempt": event.attempt,
        "resilient.retry.delay": event.delay,
        "http.request.resend_count": event.attempt,
        **_error_type(event.error),
    }


def _rejected(event: Any) -> tuple[str, dict[str, Any]] | None:
    if event.level != events.POLICY:
        return None  # the call's own end: the span says it
    return "resilient.rejected", {
        **_base(event),
        "resilient.rejection.state": event.state,
        "resilient.retry_after": event.remaining,
        "resilient.shadow": event.shadow,
    }


def _bulkhead_full(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.rejected", {
        **_base(event),
        "resilient.rejection.state": "full",
        "resilient.bulkhead.max_concurrent": event.max_concurrent,
    }


def _state_change(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.state_change", {
        **_base(event),
        "resilient.circuit_breaker.from_state": event.old_state,
        "resilient.circuit_breaker.to_state": event.new_state,
        "resilient.shadow": event.shadow,
    }


def _timed_out(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.timeout", {**_base(event), "resilient.timeout": event.timeout}


def _inactive(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.timeout", {**_base(event), "resilient.timeout": event.inactivity}


def _hedge(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.hedge", {**_base(event), "resilient.attempt": event.attempt}


def _fallback(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.fallback", {**_base(event), **_error_type(event.error)}


def _failover(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.failover", {
        **_base(event),
        "resilient.failover.target": str(event.target),
        **_error_type(event.error),
    }


def _exhausted(event: Any) -> tuple[str, dict[str, Any]]:
    return "resilient.retries_exhausted", {
        **_base(event),
        "resilient.attempt": event.attempts,
        **_error_type(event.error),
    }


# What each kind of event becomes on the span; the call events are the span itself.
_SPAN_EVENTS: dict[type, Callable[[Any], tuple[str, dict[str, Any]] | None]] = {
    events.RetryAttempted: _retry,
    events.CallRejected: _rejected,
    events.BulkheadRejected: _bulkhead_full,
    events.StateChanged: _state_change,
    events.TimedOut: _timed_out,
    events.StreamInactive: _inactive,
    events.HedgeStarted: _hedge,
    events.FallbackUsed: _fallback,
    events.RetriesExhausted: _exhausted,
    events.FailoverUsed: _failover,
}


def instrument(tracer_provider: Any = None) -> Callable[[], None]:
    """Trace every protected call (see the module's docstring).

    ``tracer_provider`` defaults to the global one
    (``opentelemetry.trace.get_tracer_provider()``). Instrumenting twice
    is a ``ValueError``. Returns the function that stops tracing: calls
    under way when it is called still end their spans."""
    context, trace = _otel()
    current = _request_hooks.tracer
    if current is not None and not getattr(current, "stopping", True):
        raise ValueError("resilient.tracing is instrumented already: stop it first")
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    from . import __version__

    owner = _Tracer(provider.get_tracer(_SCOPE, __version__), (context, trace))
    owner.unsubscribe = events.GLOBAL.subscribe(owner, every_call=False)
    _request_hooks.tracer = owner
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        if _request_hooks.tracer is owner:
            _request_hooks.tracer = None
        with _lock:
            owner.stopping = True
            unsubscribe = None
            if owner.open_spans <= 0:
                unsubscribe, owner.unsubscribe = owner.unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    return stop
