"""Readers (a MetricsCollector) and listeners subscribe alike, at every scope."""

from collections.abc import Callable

from typing import assert_type

import resilient
from resilient import CircuitBreaker, MetricsCollector, Registry, events

collector = MetricsCollector()


def listener(event: events.Event) -> None:
    print(event.name)


stops: list[Callable[[], None]] = [
    resilient.subscribe(collector),
    Registry().subscribe(collector),
    CircuitBreaker("db").subscribe(collector),
    CircuitBreaker("db").subscribe(listener),
]
assert_type(resilient.subscribe(collector), Callable[[], None])
resilient.subscribe(42)  # E: Argument 1 to "subscribe" has incompatible type "int"; expected "Callable[[Event], object] | Reader"  [arg-type]
