"""``RetryBudget``: one allowance of retries shared by every retry holding it.

Over any ``window`` seconds, retries may number at most
``min_retries_per_second * window + ratio * first attempts`` (Finagle's and
Envoy's answer to retry storms: when a dependency fails everywhere, the
callers together add at most ``ratio`` more load, not ``max_attempts``
times the load). The rules are in ``resilient.retry.budget_state``.

Counting a first attempt costs the caller one atomic counter step; the
counts are moved into the time slots under the lock every 64 calls and at
each retry, stamped with the time of the previous move (the earliest they
can have happened), so the budget errs on the strict side only.
"""

from __future__ import annotations

import itertools
import math
import threading

from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime import validation as _validate
from .budget_state import BudgetCore

__all__ = ["RetryBudget"]

_OWNER = "RetryBudget"
_BATCH = 63  # move first attempts into their slots every 64 calls


def _finite(owner: str, field: str, value: object) -> float:
    return _validate.number(owner, field, value, 0)


class RetryBudget:
    """Retries allowed across every retry that holds this budget.

    ``ratio``: retries allowed per first attempt (0.2: one retry for five
    calls). ``min_retries_per_second``: a floor, so a quiet caller can retry
    at all. ``window``: seconds over which both are counted. ``name``: what
    its events and metrics call it (``registry.retry_budget(name)`` sets it).
    """

    __slots__ = (
        "__weakref__",
        "_core",
        "_counted",
        "_firsts",
        "_lock",
        "_since",
        "name",
        "refused",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        window: float = 10.0,
        *,
        name: str | None = None,
    ) -> None:
        ratio = _finite(_OWNER, "ratio", ratio)
        floor = _finite(_OWNER, "min_retries_per_second", min_retries_per_second)
        window = _validate.seconds(_OWNER, "window", window, allow_zero=False)
        if window > 1e9:
            raise ValueError(f"{_OWNER}.window must be <= 1e9 seconds, got {window!r}")
        if math.isinf(floor * window):
            raise ValueError(f"{_OWNER}.min_retries_per_second is too large: {floor!r}")
        self.name = _validate.name_or_none(_OWNER, "name", name)
        self.window = window
        self._core = BudgetCore(ratio, floor, window)
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self._firsts = itertools.count()  # first attempts, lock-free
        self._counted = 0  # values of _firsts already moved into the core
        self._since = _clock.monotonic()  # when they were last moved
        self.refused = 0

    @property
    def ratio(self) -> float:
        return self._core.ratio

    @property
    def min_retries_per_second(self) -> float:
        return self._core.allowance / self.window

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return (
            f"<RetryBudget{named} ratio={self.ratio:g} "
            f"min_retries_per_second={self.min_retries_per_second:g} window={self.window:g}s>"
        )

    def first_attempt(self) -> None:
        """A call made its first attempt (the hot path: one counter step)."""
        if not next(self._firsts) & _BATCH:
            self._move()

    def _move(self) -> None:
        now = _clock.monotonic()
        with self._lock:
            self._settle(now)

    def _settle(self, now: float) -> None:
        # Under the lock. next() consumes a value: subtract what reads took.
        seen = next(self._firsts)
        made = seen - self._counted
        self._counted = seen + 1
        self._core.deposit(made, min(self._since, now))  # (a test may swap the clock)
        self._since = now

    def try_retry(self) -> bool:
        """A retry asks to go: True (and counted) if the budget allows it."""
        now = _clock.monotonic()
        with self._lock:
            self._settle(now)
            allowed = self._core.withdraw(now)
            if not allowed:
                self.refused += 1
        return allowed

    def available(self) -> int:
        """Retries the budget would allow now."""
        now = _clock.monotonic()
        with self._lock:
            self._settle(now)
            return self._core.available(now)
