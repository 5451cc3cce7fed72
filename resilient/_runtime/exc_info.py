"""The arguments of ``__exit__`` and ``__aexit__``, as one type."""

from __future__ import annotations

from types import TracebackType
from typing import TypeAlias

__all__ = ["ExcInfo"]

#: ``(exc_type, exc, tb)``: ``def __exit__(self, *exc_info: *ExcInfo)``.
ExcInfo: TypeAlias = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
