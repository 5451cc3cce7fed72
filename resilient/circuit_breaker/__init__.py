"""The circuit breaker: stop calling a dependency that keeps failing.

- ``config.py``: ``CircuitBreakerConfig``, how a breaker opens and closes.
- ``state.py``: the rules, a pure state object (no clock, no lock, no I/O).
- ``windows.py``: the count and time windows it counts outcomes in, O(1).
- ``breaker.py``: ``CircuitBreaker``, the lock, clock and events around the rules.
- ``keyed.py``: per-key breakers (``with_circuit_breaker(key=...)``).
- ``waiting.py``: the few retries that may wait for an open breaker's probe.
- ``storage.py``: what a breaker needs from a store shared across processes.
"""

from .breaker import BreakerMetrics, CircuitBreaker
from .config import CircuitBreakerConfig
from .state import CircuitState

__all__ = ["BreakerMetrics", "CircuitBreaker", "CircuitBreakerConfig", "CircuitState"]
