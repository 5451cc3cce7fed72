"""``AdaptiveLimit`` and its algorithms: the old import path of
``resilient.bulkhead.adaptive``, which holds them."""

from .bulkhead import adaptive as _adaptive
from .bulkhead.adaptive import *  # noqa: F403

__all__ = _adaptive.__all__
