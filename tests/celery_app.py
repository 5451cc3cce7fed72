"""The Celery app tests/test_fork.py runs as a real prefork worker: resilient
is imported, and a breaker with a timeout made and used, at module level, in
the worker's main process, before it forks its pool.

The broker and result backend come from ``RESILIENT_CELERY_REDIS``.
"""

from __future__ import annotations

import os

from celery import Celery

from resilient import CircuitBreaker, CircuitBreakerConfig

_url = os.environ.get("RESILIENT_CELERY_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("resilient_fork_test", broker=_url, backend=_url)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_acks_late=False,
    result_expires=60,
)

breaker = CircuitBreaker("celery-task", CircuitBreakerConfig(timeout=0.5))


def _answer(x: int) -> list[int]:
    return [x * 2, os.getpid()]


# Used in the main process, before the pool forks.
assert breaker.call(_answer, 0)[0] == 0


@app.task(name="resilient.double")
def double(x: int) -> list[int]:
    """``[x * 2, pid of the pool process]``, through the breaker's timeout."""
    return breaker.call(_answer, x)
