"""Test helpers: a fake clock that every policy reads, and waits that never sleep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from . import _clock

__all__ = ["FakeClock", "fake_clock"]


class FakeClock:
    """A monotonic (and wall) clock that moves only when told to.

    Under it, every wait a policy makes advances the clock instead of sleeping.
    """

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"FakeClock.advance(seconds) must be >= 0, got {seconds!r}")
        self._now += seconds

    def _wall(self) -> float:
        return self._now + self._wall_offset

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def _sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def as_clock(self) -> _clock.Clock:
        return _clock.Clock(
            monotonic=self.now, wall=self._wall, sleep=self._sleep, sleep_async=self._sleep_async
        )


@contextlib.contextmanager
def fake_clock(start: float = 0.0) -> Iterator[FakeClock]:
    """Every policy reads ``clock.now()`` inside the block; waits advance it."""
    clock = FakeClock(start)
    previous = _clock.set_clock(clock.as_clock())
    try:
        yield clock
    finally:
        _clock.set_clock(previous)
