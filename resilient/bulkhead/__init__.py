"""The bulkhead: a concurrency limit with a bounded queue, for threads and tasks.

- ``state.py``: the rules, free permits and a FIFO of waiters (pure).
- ``bulkhead.py``: ``BulkheadConfig`` and ``Bulkhead``.
- ``adaptive.py``: ``AdaptiveLimit``, a limit moved by what it observes.
"""

from .bulkhead import Bulkhead, BulkheadConfig, BulkheadMetrics

__all__ = ["Bulkhead", "BulkheadConfig", "BulkheadMetrics"]
