"""Retrying a block of code: ``retrying`` and ``aretrying``.

See :mod:`resilient.retry.attempts`."""

from .retry.attempts import AsyncRetrying, Attempt, Retrying, aretrying, retrying

__all__ = ["AsyncRetrying", "Attempt", "Retrying", "aretrying", "retrying"]
