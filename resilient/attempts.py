"""Retrying a block of code: ``retrying`` and ``aretrying``.

See ``resilient.retry.attempts``."""

from .retry.attempts import AsyncRetrying, Attempt, Retrying, aretrying, retrying

__all__ = ["AsyncRetrying", "Attempt", "Retrying", "aretrying", "retrying"]
