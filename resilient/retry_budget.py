"""``RetryBudget`` (see ``resilient.retry.budget``)."""

from .retry.budget import RetryBudget

__all__ = ["RetryBudget"]
