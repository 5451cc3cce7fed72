"""The global on/off switch: ``set_active(False)`` makes every policy a pass-through."""

from __future__ import annotations

__all__ = ["is_active", "set_active", "switch"]


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


switch = _Switch()


def set_active(active: bool) -> None:
    """Turn every policy on (the default) or into a pass-through.

    Args:
        active: ``False`` makes every policy pass calls straight through.
    """
    switch.on = bool(active)


def is_active() -> bool:
    """Whether policies are on (see ``set_active``)."""
    return switch.on
