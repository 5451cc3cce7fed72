"""Hedging: when an attempt is slow, start another and take the first answer.

- ``state.py``: the rules, when another attempt starts and who wins (pure).
- ``hedging.py``: ``HedgingConfig``, ``Hedging``, ``with_hedging``;
  sync hedges run on worker threads.
- ``asyncio_race.py``: the asyncio race, one timer per policy and loop.
- ``trio_race.py``: the trio race, a nursery.
"""

from .hedging import MAX_HEDGES, Hedging, HedgingConfig, with_hedging

__all__ = ["MAX_HEDGES", "Hedging", "HedgingConfig", "with_hedging"]
