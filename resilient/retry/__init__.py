"""Retry: run a call again when it fails.

- ``backoff.py``: how long to wait and when to stop (pure).
- ``retry.py``: ``RetryConfig``, ``RetryPolicies`` and ``Retry``.
- ``attempts.py``: retrying a block (``retrying`` / ``aretrying``).
- ``budget_state.py``: the retry budget's rules (pure); ``budget.py``: ``RetryBudget``.
"""

from .retry import Retry, RetryConfig, RetryPolicies

__all__ = ["Retry", "RetryConfig", "RetryPolicies"]
