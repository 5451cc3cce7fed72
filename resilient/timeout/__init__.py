"""The timeout: stop waiting for a call that takes too long.

- ``timeout.py``: ``TimeoutConfig`` and ``Timeout`` (asyncio and trio
  cancellation, a worker thread, SIGALRM, stream inactivity).
"""

from .._runtime.workers import WorkerPool
from .timeout import Timeout, TimeoutConfig, TimeoutMode, timeout_seconds

__all__ = ["Timeout", "TimeoutConfig", "TimeoutMode", "WorkerPool", "timeout_seconds"]
