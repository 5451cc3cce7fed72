"""A host's quota in a chain of an HTTP integration (httpx transports, the
aiohttp middleware): ``QuotaGate``, the layer that holds a request back
while the host's quota is spent, ``note_quota``, what an answer says of it,
and ``breaker_config``, the per-host breakers' settings that never count a
429 (the host's quota speaking, not its failure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._execution.compose import NEVER
from .._runtime import clock as _clock
from .._runtime.switch import switch
from ..errors import RateLimitExceededError
from ._quota import QuotaState, exhausted_for
from .errors import RateLimitError

if TYPE_CHECKING:
    from ..circuit_breaker.config import CircuitBreakerConfig
    from ..policy import ResiliencePolicy
    from ..retry.retry import RetryConfig

__all__ = ["QuotaGate", "breaker_config", "note_quota"]


class QuotaGate:
    """Holds a request back while its host's quota is spent: it waits for the
    reset when ``retry`` would wait that long (it has an attempt left, the
    wait is within ``max_delay`` and the deadline), else fails at once with
    ``RateLimitExceededError`` (``retry_after``: the seconds to the reset),
    without sending it."""

    _own_gate = NEVER

    def __init__(self, name: str, state: QuotaState, retry: RetryConfig | None) -> None:
        self.name = name
        self.state = state
        self.retry = retry

    def _wait(self, left: float) -> float:
        """The wait for a quota spent ``left`` more seconds, or the refusal."""
        retry = self.retry
        if (
            retry is None
            or retry.max_attempts < 2
            or left > retry.max_delay
            or (retry.deadline is not None and left > retry.deadline)
        ):
            raise RateLimitExceededError(self.name, left)
        return left

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    def _wrap_sync(
        self, fn: Callable[..., Any], name: str, entry: Any = None
    ) -> Callable[..., Any]:
        state, wait = self.state, self._wait

        def gated(*args: Any) -> Any:
            left = state.left(_clock.monotonic())
            if left > 0.0 and switch.on:
                _clock.sleep(wait(left))
            return fn(*args)

        return gated

    # --- end generated ---

    def _wrap_async(
        self, fn: Callable[..., Any], name: str, entry: Any = None
    ) -> Callable[..., Any]:
        state, wait = self.state, self._wait

        async def gated(*args: Any) -> Any:
            left = state.left(_clock.monotonic())
            if left > 0.0 and switch.on:
                await _clock.sleep_async(wait(left))
            return await fn(*args)

        return gated


def breaker_config(policy: ResiliencePolicy) -> CircuitBreakerConfig | None:
    """The per-host breakers' settings: the policy's, with a 429 never
    counted."""
    cfg = policy.circuit_breaker
    if cfg is None or issubclass(RateLimitError, cfg.ignore_on):
        return cfg
    return dataclasses.replace(cfg, ignore_on=(*cfg.ignore_on, RateLimitError))


def note_quota(
    state: QuotaState,
    status: int,
    headers: Iterable[tuple[str, str]],
    retry_after: float | None,
) -> None:
    """What an answer says of its host's quota: its quota headers, and a
    429's ``Retry-After``."""
    spent = exhausted_for(headers, _clock.wall())
    if status == 429 and retry_after is not None:
        spent = retry_after if spent is None else max(spent, retry_after)
    if spent is not None:
        state.spent_for(spent, _clock.monotonic())
