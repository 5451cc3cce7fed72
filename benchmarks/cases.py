"""Every benchmarked call: the floors, resilient, and the peers doing the same job.

A case's ``make`` builds its callable inside the worker process that times
it, so a worker imports only the library it measures (a coroutine function
``make`` is run in the worker's event loop). Every protected
function is ``work(x) -> x``; rejection cases call a function that would
raise ``ValueError`` if the breaker let it run. Configurations match across
libraries: breakers open after 5 consecutive failures and wait 30 s; retries
make 3 attempts with a 1 s exponential backoff; bulkheads admit 10.

An observed case (``observer`` set) is one of these calls while something
watches it; it is compared with the same call unobserved (its
``baseline``), measured in the same run. A ``make`` that changes the whole
process (a process-wide subscription) registers its undoing with
``on_release``; a runner that builds more than one case in a process calls
``release()`` after each.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import importlib.machinery
import importlib.util
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["CASES", "Case", "available", "on_release", "release"]

FAILURES = 5  # consecutive failures that open a breaker
RECOVERY = 30.0  # seconds an open breaker waits
ATTEMPTS = 3
CONCURRENCY = 10
TIMEOUT = 5.0  # never reached: only the cost of arming it is measured


@dataclass(frozen=True)
class Case:
    """One benchmark. ``mode``: sync, async or threads; ``job``: what is done;
    ``lib``: who does it (``floor: ...`` for the references)."""

    mode: str
    job: str
    lib: str
    make: Callable[[], Callable[..., Any]]
    peer: str | None = None  # module that must be importable
    features: tuple[str, ...] = ()  # names resilient must export
    guarded: bool = False  # the loop catches an exception per call
    rejects: str | None = None  # class name of the error every call raises
    threads: int = 0
    param: float | None = None  # the x of a scaling series
    observer: str | None = None  # who watches the call ("by metrics", ...)
    requires: tuple[str, ...] = ()  # further modules that must be importable
    also: tuple[str, ...] = ()  # further cases its targets compare it with
    # Numbers the report needs besides the timings, computed by the parent.
    extra: Callable[[], dict[str, float]] | None = None

    @property
    def name(self) -> str:
        watched = f", observed {self.observer}" if self.observer else ""
        return f"{self.mode} {self.job}{watched}: {self.lib}"

    @property
    def baseline(self) -> str | None:
        """The same call with nobody watching (for an observed case)."""
        return f"{self.mode} {self.job}: {self.lib}" if self.observer else None

    @property
    def companions(self) -> tuple[str, ...]:
        """The cases to measure in the same run as this one."""
        return (*((self.baseline,) if self.baseline else ()), *self.also)


CASES: list[Case] = []


def case(mode: str, job: str, lib: str, **kw: Any) -> Callable[[Callable[[], Any]], Any]:
    def register(make: Callable[[], Any]) -> Callable[[], Any]:
        CASES.append(Case(mode, job, lib, make, **kw))
        return make

    return register


def available(c: Case) -> str | None:
    """Why ``c`` cannot run here, or ``None`` when it can."""
    missing = [m for m in (*((c.peer,) if c.peer else ()), *c.requires) if not installed(m)]
    if missing:
        return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
    if c.features:
        import resilient

        missing = [f for f in c.features if not hasattr(resilient, f)]
        if missing:
            return f"resilient has no {', '.join(missing)} yet"
    return None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it nor its
    parent packages (a worker imports only what it measures)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None:
        return False
    places = [Path(p) for p in spec.submodule_search_locations or ()]
    for depth, part in enumerate(rest, 1):
        found = [p / part for p in places if (p / part).is_dir()]
        if not found and depth == len(rest):  # a module, not a package
            suffixes = importlib.machinery.all_suffixes()
            return any((p / f"{part}{s}").is_file() for p in places for s in suffixes)
        places = found
    return bool(places) or not rest


_undo: list[Callable[[], None]] = []


def on_release(undo: Callable[[], None]) -> None:
    """Have ``release()`` call ``undo`` (last registered, first called)."""
    _undo.append(undo)


def release() -> None:
    """Undo what the cases built so far did to the whole process."""
    while _undo:
        _undo.pop()()


# -- the protected functions ---------------------------------------------------


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


async def aawait(x: int) -> int:
    """A coroutine that suspends once, as any call doing I/O does."""
    await asyncio.sleep(0)
    return x


def fail(x: int) -> int:
    raise ValueError(x)


async def afail(x: int) -> int:
    raise ValueError(x)


def trip(call: Callable[[int], Any]) -> Callable[[int], Any]:
    """Fail ``call`` until its breaker opens, then return it."""
    for _ in range(FAILURES):
        with contextlib.suppress(Exception):
            call(1)
    return call


def atrip(call: Callable[[int], Any]) -> Callable[[int], Any]:
    async def failures() -> None:
        for _ in range(FAILURES):
            with contextlib.suppress(Exception):
                await call(1)

    from .timing import event_loop

    event_loop().run_until_complete(failures())
    return call


def wraps_passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def awraps_passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


# -- floors ----------------------------------------------------------------------


@case("sync", "pass-through", "floor: bare call")
def _() -> Any:
    return work


@case("sync", "pass-through", "floor: functools.wraps")
def _() -> Any:
    return wraps_passthrough(work)


@case("sync", "pass-through", "floor: wrapt", peer="wrapt")
def _() -> Any:
    import wrapt

    @wrapt.decorator
    def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    return passthrough(work)


@case("async", "pass-through", "floor: bare call")
def _() -> Any:
    return awork


@case("async", "pass-through", "floor: functools.wraps")
def _() -> Any:
    return awraps_passthrough(awork)


@case("sync", "rejection", "floor: raise+catch", guarded=True, rejects="ValueError")
def _() -> Any:
    return fail


@case("async", "rejection", "floor: raise+catch", guarded=True, rejects="ValueError")
def _() -> Any:
    return afail


@case("async", "timeout", "floor: asyncio.timeout")
def _() -> Any:
    @functools.wraps(awork)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(TIMEOUT):
            return await awork(*args, **kwargs)

    return wrapper


# -- resilient -------------------------------------------------------------------


def _breaker(name: str, **fields: Any) -> Any:
    from resilient import CircuitBreaker, CircuitBreakerConfig

    config = CircuitBreakerConfig(failure_threshold=FAILURES, recovery_timeout=RECOVERY, **fields)
    return CircuitBreaker(name, config)


def _with_breaker(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_circuit_breaker

    return with_circuit_breaker(_breaker(name))(fn)


def _with_retry(fn: Callable[..., Any]) -> Any:
    from resilient import with_retry

    return with_retry(max_attempts=ATTEMPTS, initial_delay=1.0)(fn)


def _with_timeout(fn: Callable[..., Any]) -> Any:
    from resilient import with_timeout

    return with_timeout(TIMEOUT)(fn)


def _with_bulkhead(fn: Callable[..., Any], name: str) -> Any:
    from resilient import with_bulkhead

    return with_bulkhead(name, max_concurrent=CONCURRENCY)(fn)


def _with_fallback(fn: Callable[..., Any]) -> Any:
    from resilient import with_fallback

    return with_fallback(None)(fn)


def _with_stack(fn: Callable[..., Any], name: str) -> Any:
    from resilient import BulkheadConfig, Fallback, with_resilience

    return with_resilience(
        name,
        timeout=None,
        bulkhead=BulkheadConfig(max_concurrent=CONCURRENCY),
        fallback=Fallback(value=None),
    )(fn)


STACK = ("with_resilience", "BulkheadConfig", "Fallback")


def _with_hedged_stack(fn: Callable[..., Any], name: str) -> Any:
    """The stack with hedging whose delay is never reached: the cost of a
    hedged call whose first attempt answers in time."""
    from resilient import BulkheadConfig, Fallback, HedgingConfig, with_resilience

    return with_resilience(
        name,
        timeout=None,
        bulkhead=BulkheadConfig(max_concurrent=CONCURRENCY),
        fallback=Fallback(value=None),
        hedging=HedgingConfig(TIMEOUT),
    )(fn)


def _with_adaptive_bulkhead(fn: Callable[..., Any], name: str) -> Any:
    from resilient import AdaptiveLimit, Bulkhead, BulkheadConfig, with_bulkhead

    config = BulkheadConfig(CONCURRENCY, adaptive=AdaptiveLimit(initial=CONCURRENCY))
    return with_bulkhead(Bulkhead(name, config))(fn)


for _mode, _fn, _fail, _trip in (("sync", work, fail, trip), ("async", awork, afail, atrip)):
    case(_mode, "circuit breaker", "resilient")(functools.partial(_with_breaker, _fn, "cb"))
    case(_mode, "retry", "resilient", features=("with_retry",))(functools.partial(_with_retry, _fn))
    case(_mode, "timeout", "resilient", features=("with_timeout",))(
        functools.partial(_with_timeout, _fn)
    )
    case(_mode, "bulkhead", "resilient", features=("with_bulkhead",))(
        functools.partial(_with_bulkhead, _fn, f"bench-bulkhead-{_mode}")
    )
    case(_mode, "fallback", "resilient", features=("with_fallback",))(
        functools.partial(_with_fallback, _fn)
    )
    case(_mode, "stack", "resilient", features=STACK)(
        functools.partial(_with_stack, _fn, f"bench-stack-{_mode}")
    )
    case(_mode, "adaptive bulkhead", "resilient", features=("AdaptiveLimit",))(
        functools.partial(_with_adaptive_bulkhead, _fn, f"bench-adaptive-{_mode}")
    )
    case(_mode, "rejection", "resilient", guarded=True, rejects="CircuitOpenError")(
        # Opened by real failures (not forced): the path every open breaker takes.
        lambda fn=_fail, trip=_trip: trip(_with_breaker(fn, "open"))
    )


# -- the floors under three micro targets: what the target's own rule costs ----
#
# Each is the least any implementation of that rule pays, written as one
# closure with nothing else: the report's tables show it beside ours.


def _raise_open_error() -> Any:
    """A fresh ``CircuitOpenError`` (its fields, one clock read) raised from
    one closure: what every open rejection pays at least."""
    import time

    from resilient import CircuitOpenError

    now = time.monotonic

    def reject(x: int) -> Any:
        raise CircuitOpenError("floor", "open", 30.0 - now(), None, None)

    return reject


def _layers_of_wraps(fn: Callable[..., Any], layers: int = 4) -> Any:
    """One ``functools.wraps`` pass-through per layer of the full stack
    (fallback, retry, breaker, bulkhead): a frame per layer, nothing else."""
    for _ in range(layers):
        fn = wraps_passthrough(fn)
    return fn


def _timed_breaker(fn: Callable[..., Any], name: str) -> Any:
    """The unobserved breaker timed from outside, as metering must: two
    clock reads and one append per call (folded like the counters)."""
    import time

    call = _with_breaker(fn, name)
    now = time.perf_counter
    pending: list[float] = []

    def timed(x: int) -> Any:
        start = now()
        result = call(x)
        pending.append(now() - start)
        if len(pending) >= 128:
            pending.clear()
        return result

    return timed


case(
    "sync", "rejection", "floor: raise CircuitOpenError", guarded=True, rejects="CircuitOpenError"
)(_raise_open_error)
case("sync", "stack", "floor: functools.wraps per layer")(functools.partial(_layers_of_wraps, work))
case("sync", "circuit breaker", "floor: unobserved, timed outside")(
    functools.partial(_timed_breaker, work, "cb-timed")
)


def _deadline_layer(fn: Callable[..., Any], name: str) -> Any:
    """The stack under one more coroutine layer doing the least that a
    hedge's deadline needs on a call that ends in time: the running loop
    and its time read, an entry appended to a queue of deadlines, dropped
    when the call returns. (Hedging also finds the caller's task, which it must interrupt
    if a hedge wins: this floor leaves that out.)"""
    import time

    call = _with_stack(fn, name)
    deadlines: collections.deque[list[Any]] = collections.deque()
    running_loop, now = asyncio.get_running_loop, time.monotonic  # both C; now is asyncio's clock

    async def deadline(x: int) -> Any:
        entry = [now() + TIMEOUT, running_loop()]
        deadlines.append(entry)
        try:
            result = await call(x)
        finally:
            entry[0] = None
            deadlines.pop()
        return result

    return deadline


case("async", "hedged stack", "resilient", features=(*STACK, "HedgingConfig"))(
    functools.partial(_with_hedged_stack, awork, "bench-hedged-stack-async")
)
case("async", "hedged stack", "floor: a deadline entry per call", features=STACK)(
    functools.partial(_deadline_layer, awork, "bench-deadline-stack")
)
# The same two around a call that suspends once, as a call doing I/O does:
# what the event loop adds to each call is in both.
case("async", "stack, call awaits", "resilient", features=STACK)(
    functools.partial(_with_stack, aawait, "bench-stack-awaits")
)
case("async", "hedged stack, call awaits", "resilient", features=(*STACK, "HedgingConfig"))(
    functools.partial(_with_hedged_stack, aawait, "bench-hedged-stack-awaits")
)


# -- peers: circuit breakers -------------------------------------------------------


def _pybreaker(fn: Callable[..., Any]) -> Any:
    import pybreaker

    return pybreaker.CircuitBreaker(fail_max=FAILURES, reset_timeout=RECOVERY)(fn)


def _circuitbreaker(fn: Callable[..., Any]) -> Any:
    import circuitbreaker

    breaker = circuitbreaker.CircuitBreaker(
        failure_threshold=FAILURES, recovery_timeout=RECOVERY, name=f"bench-{id(fn)}"
    )
    return breaker(fn)


def _aiobreaker(fn: Callable[..., Any]) -> Any:
    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(
        fail_max=FAILURES, timeout_duration=timedelta(seconds=RECOVERY)
    )
    return breaker(fn)


_purgatory_names = itertools.count()


def _purgatory(fn: Callable[..., Any]) -> Any:
    import purgatory

    factory: Any
    if asyncio.iscoroutinefunction(fn):
        factory = purgatory.AsyncCircuitBreakerFactory(
            default_threshold=FAILURES, default_ttl=RECOVERY
        )
    else:
        factory = purgatory.SyncCircuitBreakerFactory(
            default_threshold=FAILURES, default_ttl=RECOVERY
        )
    return factory(f"bench-{next(_purgatory_names)}")(fn)


def _hyx_breaker(fn: Callable[..., Any]) -> Any:
    from hyx.circuitbreaker import consecutive_breaker

    return consecutive_breaker(failure_threshold=FAILURES, recovery_time_secs=RECOVERY)(fn)


def _pyresilience(fn: Callable[..., Any], **layers: Any) -> Any:
    import pyresilience as pr

    configs = {
        "retry": lambda: pr.RetryConfig(max_attempts=ATTEMPTS, delay=1.0),
        "circuit_breaker": lambda: pr.CircuitBreakerConfig(
            failure_threshold=FAILURES, recovery_timeout=RECOVERY
        ),
        "bulkhead": lambda: pr.BulkheadConfig(max_concurrent=CONCURRENCY),
        "fallback": lambda: pr.FallbackConfig(handler=None),
        "timeout": lambda: pr.TimeoutConfig(seconds=TIMEOUT),
    }
    return pr.resilient(**{layer: configs[layer]() for layer in layers})(fn)


_BREAKERS: dict[str, tuple[str, Callable[..., Any], str, str]] = {
    # lib: (module, decorate, sync/async/both, error raised when open)
    "circuitbreaker": ("circuitbreaker", _circuitbreaker, "both", "CircuitBreakerError"),
    "pybreaker": ("pybreaker", _pybreaker, "sync", "CircuitBreakerError"),
    "aiobreaker": ("aiobreaker", _aiobreaker, "async", "CircuitBreakerError"),
    "purgatory": ("purgatory", _purgatory, "both", "OpenedState"),
    "hyx": ("hyx", _hyx_breaker, "async", "BreakerFailing"),
    "pyresilience": (
        "pyresilience",
        functools.partial(_pyresilience, circuit_breaker=True),
        "both",
        "CircuitOpenError",
    ),
}

for _lib, (_module, _decorate, _modes, _error) in _BREAKERS.items():
    for _mode, _fn, _fail, _trip in (("sync", work, fail, trip), ("async", awork, afail, atrip)):
        if _modes not in ("both", _mode):
            continue
        case(_mode, "circuit breaker", _lib, peer=_module)(functools.partial(_decorate, _fn))
        case(_mode, "rejection", _lib, peer=_module, guarded=True, rejects=_error)(
            lambda d=_decorate, fn=_fail, trip=_trip: trip(d(fn))
        )


# -- peers: retry, timeout, bulkhead, fallback, the whole stack --------------------


def _tenacity(fn: Callable[..., Any]) -> Any:
    import tenacity

    return tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=1.0, max=30.0),
        reraise=True,
    )(fn)


def _stamina(fn: Callable[..., Any]) -> Any:
    import stamina

    return stamina.retry(on=Exception, attempts=ATTEMPTS, wait_initial=1.0)(fn)


def _backoff(fn: Callable[..., Any]) -> Any:
    import backoff

    return backoff.on_exception(backoff.expo, Exception, max_tries=ATTEMPTS)(fn)


def _hyx_retry(fn: Callable[..., Any]) -> Any:
    from hyx.retry import retry

    return retry(on=Exception, attempts=ATTEMPTS, backoff=1.0)(fn)


async def _hyx_timeout(fn: Callable[..., Any]) -> Any:
    # hyx binds its timeout to the running loop when it decorates.
    from hyx.timeout import timeout

    return timeout(TIMEOUT)(fn)


def _hyx_bulkhead(fn: Callable[..., Any]) -> Any:
    from hyx.bulkhead import bulkhead

    return bulkhead(max_concurrency=CONCURRENCY, max_capacity=2 * CONCURRENCY)(fn)


async def _hyx_fallback_value(result: Any, *args: Any, **kwargs: Any) -> None:
    return None


def _hyx_fallback(fn: Callable[..., Any]) -> Any:
    from hyx.fallback import fallback

    return fallback(_hyx_fallback_value)(fn)


def _hyx_stack(fn: Callable[..., Any]) -> Any:
    return _hyx_fallback(_hyx_retry(_hyx_breaker(_hyx_bulkhead(fn))))


_JOBS: list[tuple[str, str, str, Callable[..., Any], str]] = [
    # job, lib, module, decorate, sync/async/both
    ("retry", "tenacity", "tenacity", _tenacity, "both"),
    ("retry", "stamina", "stamina", _stamina, "both"),
    ("retry", "backoff", "backoff", _backoff, "both"),
    ("retry", "hyx", "hyx", _hyx_retry, "async"),
    ("retry", "pyresilience", "pyresilience", functools.partial(_pyresilience, retry=1), "both"),
    ("timeout", "hyx", "hyx", _hyx_timeout, "async"),
    (
        "timeout",
        "pyresilience",
        "pyresilience",
        functools.partial(_pyresilience, timeout=1),
        "both",
    ),
    ("bulkhead", "hyx", "hyx", _hyx_bulkhead, "async"),
    (
        "bulkhead",
        "pyresilience",
        "pyresilience",
        functools.partial(_pyresilience, bulkhead=1),
        "both",
    ),
    ("fallback", "hyx", "hyx", _hyx_fallback, "async"),
    (
        "fallback",
        "pyresilience",
        "pyresilience",
        functools.partial(_pyresilience, fallback=1),
        "both",
    ),
    ("stack", "hyx", "hyx", _hyx_stack, "async"),
    (
        "stack",
        "pyresilience",
        "pyresilience",
        functools.partial(_pyresilience, fallback=1, retry=1, circuit_breaker=1, bulkhead=1),
        "both",
    ),
]

for _job, _lib, _module, _decorate, _modes in _JOBS:
    for _mode, _fn in (("sync", work), ("async", awork)):
        if _modes in ("both", _mode):
            case(_mode, _job, _lib, peer=_module)(functools.partial(_decorate, _fn))


# -- observed: the same calls while something watches them ------------------------


def _call_once(call: Callable[[int], Any]) -> Any:
    from .timing import event_loop

    made = call(1)
    return event_loop().run_until_complete(made) if asyncio.iscoroutine(made) else made


def _observed_by_metrics(make: Callable[[], Callable[..., Any]], name: str) -> Any:
    """``make()``'s call, with a ``MetricsCollector``, the Prometheus exporter
    and the OpenTelemetry exporter subscribed process-wide (after the
    decoration, as an application instruments at start-up what its imports
    decorated)."""
    import prometheus_client
    from opentelemetry.sdk.metrics import MeterProvider

    import resilient
    from resilient.metrics import MetricsCollector, otel, prometheus

    call = make()
    collector = MetricsCollector()
    registry = prometheus_client.CollectorRegistry()
    on_release(resilient.subscribe(collector))
    on_release(prometheus.instrument(registry))
    on_release(otel.instrument(MeterProvider()))
    _call_once(call)
    # Else the case would time nobody watching (the meter provider has no
    # reader to ask: the collector and the Prometheus registry are asked).
    if collector.statistics.by_name.get(name) is None:
        raise AssertionError(f"the MetricsCollector did not count {name!r}")
    labelled = {
        sample.labels.get("name") for metric in registry.collect() for sample in metric.samples
    }
    if name not in labelled:
        raise AssertionError(f"the Prometheus exporter has no series for {name!r}")
    return call


def _listener_elsewhere(make: Callable[[], Callable[..., Any]]) -> Any:
    """``make()``'s call, while a listener watches an unrelated breaker."""
    from resilient import CircuitBreaker

    call = make()
    elsewhere = CircuitBreaker("elsewhere")
    unsubscribe = elsewhere.subscribe(lambda event: None)

    def undo(keep: object = elsewhere) -> None:  # keeps the breaker, and its listener
        unsubscribe()

    on_release(undo)
    return call


def _listened_breaker() -> tuple[Callable[[int], Any], int]:
    """A closed breaker with a cheap listener of its own (a bounded deque's
    ``append``), and how many events one call delivers to it."""
    from resilient import with_circuit_breaker

    breaker = _breaker("cb")
    call = with_circuit_breaker(breaker)(work)
    seen: collections.deque[object] = collections.deque(maxlen=64)
    breaker.subscribe(seen.append)
    call(1)  # the first call may deliver more (a first state, ...): not counted
    seen.clear()
    call(1)
    delivered = len(seen)
    seen.clear()
    if not delivered:
        raise AssertionError("a listener on the breaker received no event")
    return call, delivered


EVENTS_PER_CALL = "events per call"


def events_per_call() -> dict[str, float]:
    """Events one call through a closed breaker delivers to its listener."""
    return {EVENTS_PER_CALL: float(_listened_breaker()[1])}


EXPORTERS = ("prometheus_client", "opentelemetry.sdk.metrics")

for _mode, _fn in (("sync", work), ("async", awork)):
    _stack = functools.partial(_with_stack, _fn, f"bench-stack-{_mode}")
    if _mode == "sync":
        case(_mode, "circuit breaker", "resilient", observer="by metrics", requires=EXPORTERS)(
            functools.partial(
                _observed_by_metrics, functools.partial(_with_breaker, _fn, "cb"), "cb"
            )
        )
    case(
        _mode,
        "stack",
        "resilient",
        observer="by metrics",
        requires=EXPORTERS,
        features=STACK,
        also=("sync retry: tenacity",) if _mode == "sync" else (),
    )(functools.partial(_observed_by_metrics, _stack, f"bench-stack-{_mode}"))

# -- tracing: the stack in a span of its own, against one bare SDK span around it ----

TRACING = ("opentelemetry.sdk.trace",)


def _sdk_tracer() -> Any:
    """A tracer of an SDK provider that keeps nothing (spans are made and
    ended, as a sampled span is, and dropped by no exporter)."""
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider()


def _traced(make: Callable[[], Callable[..., Any]], name: str) -> Any:
    """``make()``'s call with ``resilient.tracing`` instrumented."""
    import resilient.tracing

    call = make()
    provider = _sdk_tracer()
    on_release(resilient.tracing.instrument(provider))
    _call_once(call)
    return call


def _one_span(make: Callable[[], Callable[..., Any]], is_async: bool) -> Any:
    """``make()``'s call (not instrumented) inside one bare SDK span: what
    the traced stack is measured against."""
    call = make()
    tracer = _sdk_tracer().get_tracer("bench")
    span = tracer.start_as_current_span
    if is_async:

        async def aspanned(x: int) -> Any:
            with span("resilient bench"):
                return await call(x)

        return aspanned

    def spanned(x: int) -> Any:
        with span("resilient bench"):
            return call(x)

    return spanned


def _tracing_stopped(make: Callable[[], Callable[..., Any]]) -> Any:
    """``make()``'s call after tracing was instrumented and stopped."""
    import resilient.tracing

    call = make()
    resilient.tracing.instrument(_sdk_tracer())()
    return call


for _mode, _fn in (("sync", work), ("async", awork)):
    _stack = functools.partial(_with_stack, _fn, f"bench-stack-{_mode}")
    case(_mode, "stack in one SDK span", "floor: not traced", requires=TRACING)(
        functools.partial(_one_span, _stack, _mode == "async")
    )
    case(
        _mode,
        "stack",
        "resilient",
        observer="by tracing",
        requires=TRACING,
        features=STACK,
        also=(f"{_mode} stack in one SDK span: floor: not traced",),
    )(functools.partial(_traced, _stack, f"bench-stack-{_mode}"))
case("sync", "stack", "resilient", observer="after tracing stopped", features=STACK)(
    functools.partial(_tracing_stopped, functools.partial(_with_stack, work, "bench-stack-sync"))
)

case("sync", "circuit breaker", "resilient", observer="elsewhere")(
    functools.partial(_listener_elsewhere, functools.partial(_with_breaker, work, "cb"))
)
case("sync", "stack", "resilient", observer="elsewhere", features=STACK)(
    functools.partial(_listener_elsewhere, functools.partial(_with_stack, work, "bench-stack-sync"))
)
case("sync", "circuit breaker", "resilient", observer="per call", extra=events_per_call)(
    lambda: _listened_breaker()[0]
)


def _stamina_prometheus(fn: Callable[..., Any]) -> Any:
    """stamina with its Prometheus hook (``stamina_retries_total``) active."""
    from stamina import instrumentation

    instrumentation.set_on_retry_hooks([instrumentation.PrometheusOnRetryHook])
    on_release(lambda: instrumentation.set_on_retry_hooks(None))
    instrumentation.get_on_retry_hooks()  # the hook's counter is made now
    if instrumentation.get_prometheus_counter() is None:
        raise AssertionError("stamina's Prometheus counter is not active")
    return _stamina(fn)


def _pybreaker_listened(fn: Callable[..., Any]) -> Any:
    """pybreaker with a ``CircuitBreakerListener`` recording every call."""
    import pybreaker

    seen: collections.deque[object] = collections.deque(maxlen=64)

    class Recorder(pybreaker.CircuitBreakerListener):
        def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            seen.append(func)

        def success(self, cb: Any) -> None:
            seen.append(cb)

        def failure(self, cb: Any, exc: BaseException) -> None:
            seen.append(exc)

    breaker = pybreaker.CircuitBreaker(
        fail_max=FAILURES, reset_timeout=RECOVERY, listeners=[Recorder()]
    )
    return breaker(fn)


case(
    "sync",
    "retry",
    "stamina",
    observer="by Prometheus",
    peer="stamina",
    requires=("prometheus_client",),
)(functools.partial(_stamina_prometheus, work))
case("sync", "circuit breaker", "pybreaker", observer="by a listener", peer="pybreaker")(
    functools.partial(_pybreaker_listened, work)
)


# -- threads: two threads through one breaker against one --------------------------

for _lib, _decorate, _module in (
    ("resilient", lambda fn: _with_breaker(fn, "threads"), None),
    ("pybreaker", _pybreaker, "pybreaker"),
    ("circuitbreaker", _circuitbreaker, "circuitbreaker"),
):
    for _threads in (1, 2):
        case(
            "threads",
            "circuit breaker",
            f"{_lib}, {_threads} thread{'s' * (_threads > 1)}",
            peer=_module,
            threads=_threads,
            param=_threads,
        )(functools.partial(_decorate, work))


# -- scaling: the cost of a call against the window's size -------------------------


def _flaky() -> Callable[[int], int]:
    """Fails one call in 16: enough to record into the window and fold in the
    fast successes, never enough to open a breaker at a 50 % failure rate."""
    calls = itertools.count()

    def flaky(x: int) -> int:
        if not next(calls) % 16:
            raise ValueError(x)
        return x

    return flaky


def _windowed(**window: Any) -> Any:
    from resilient import with_circuit_breaker

    breaker = _breaker("window", failure_rate_threshold=0.5, minimum_calls=10, **window)
    # failure_threshold stays 5: one failure in 16 is never 5 in a row.
    return with_circuit_breaker(breaker)(_flaky())


for _size in (100, 1_000, 10_000, 100_000, 1_000_000):
    case(
        "window",
        "count window",
        f"{_size:.0e} calls".replace("e+0", "e"),
        guarded=True,
        param=_size,
    )(functools.partial(_windowed, window_size=_size))

for _seconds, _label in ((1, "1 s"), (60, "1 min"), (600, "10 min"), (3600, "1 h")):
    case("window", "time window", _label, guarded=True, param=_seconds)(
        functools.partial(_windowed, window_duration=float(_seconds))
    )
case("window", "time window", "1 day", guarded=True, param=86_400)(
    functools.partial(_windowed, window_duration=86_400.0)
)


# -- breaker options: a closed breaker configured as services configure theirs ------

PLAIN_BREAKER = "sync circuit breaker: resilient"
BREAKER_OPTIONS: dict[str, dict[str, Any]] = {
    "failure rate, count window": {"failure_rate_threshold": 0.5, "minimum_calls": 10},
    "time window (60 s)": {
        "window_duration": 60.0,
        "failure_rate_threshold": 0.5,
        "minimum_calls": 10,
    },
    "slow calls": {"slow_call_duration": 1.0, "slow_call_rate_threshold": 0.5},
    "result predicate": {"result_predicate": lambda result: result is None},
    "shadow=True": {"shadow": True},
}


def _with_options(**fields: Any) -> Any:
    from resilient import with_circuit_breaker

    return with_circuit_breaker(_breaker("options", **fields))(work)


for _label, _fields in BREAKER_OPTIONS.items():
    case("option", "circuit breaker", _label, also=(PLAIN_BREAKER,))(
        functools.partial(_with_options, **_fields)
    )
case("option", "circuit breaker", "timeout=", also=("sync timeout: resilient",))(
    functools.partial(_with_options, timeout=TIMEOUT)
)


# -- sync timeouts: the hand-off to a worker thread, and SIGALRM -----------------------


def _two_queues() -> Any:
    """The least a thread hand-off can cost: a worker taking calls from one
    ``SimpleQueue`` and putting results on another, the caller waiting on it
    with a timeout."""
    import queue
    import threading

    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def worker() -> None:
        while True:
            fn, x = inbox.get()
            outbox.put(fn(x))

    threading.Thread(target=worker, daemon=True).start()

    @functools.wraps(work)
    def handed_off(x: int) -> Any:
        inbox.put((work, x))
        return outbox.get(timeout=TIMEOUT)

    return handed_off


case("sync", "timeout", "floor: two SimpleQueues")(_two_queues)


def _signal_timeout() -> Any:
    from resilient import with_timeout

    return with_timeout(TIMEOUT, mode="signal")(work)


def _two_setitimer_calls() -> Any:
    """The least a SIGALRM deadline costs: arm the timer, disarm it."""
    import signal

    setitimer, real = signal.setitimer, signal.ITIMER_REAL

    @functools.wraps(work)
    def alarmed(x: int) -> Any:
        setitimer(real, TIMEOUT)
        try:
            return work(x)
        finally:
            setitimer(real, 0)

    return alarmed


case("sync", "timeout", "floor: two setitimer calls")(_two_setitimer_calls)


case(
    "sync",
    "timeout",
    "resilient (signal)",
    features=("with_timeout",),
    also=("sync timeout: floor: two setitimer calls",),
)(_signal_timeout)


# The rate limiters, per-key breakers, quotas, failover and streams (their own
# modules, registered here).
from . import cases_limits, cases_quota, cases_streams  # noqa: E402,F401  (quota reads limits)
