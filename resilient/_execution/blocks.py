"""What each open ``with policy:`` block holds, per thread and per task.

Blocks nest and interleave across tasks, so a policy cannot keep the entry on
itself: it keeps a stack in a contextvar, made on first use.
"""

from __future__ import annotations

import contextvars
from typing import Generic, TypeVar

__all__ = ["BlockStack"]

T = TypeVar("T")


class BlockStack(Generic[T]):
    __slots__ = ("_label", "_name", "_var")

    def __init__(self, label: str, name: object = "") -> None:
        # The variable's name (``label`` + ``name``) is made with the variable,
        # on the first block: a policy never used as a block keeps no string.
        self._label = label
        self._name = name
        self._var: contextvars.ContextVar[tuple[T | None, ...]] | None = None

    def _stack(self) -> contextvars.ContextVar[tuple[T | None, ...]]:
        if self._var is None:
            self._var = contextvars.ContextVar(f"{self._label}{self._name}", default=())
        return self._var

    def push(self, entry: T | None) -> None:
        """``None`` marks a block entered while policies were switched off."""
        var = self._stack()
        var.set((*var.get(), entry))

    def entries(self) -> tuple[T | None, ...]:
        """The open blocks of the current thread or task, outermost first."""
        return () if self._var is None else self._var.get()

    def pop(self) -> T | None:
        """The innermost block's entry; ``None`` when there is nothing to undo."""
        var = self._stack()
        stack = var.get()
        if not stack:
            return None
        var.set(stack[:-1])
        return stack[-1]
