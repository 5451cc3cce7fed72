"""What wrapt binds: a chain for methods, classmethods, staticmethods and
callable objects, built once per target they bind to.

Plain functions never come here (their chain is itself a function, which
binds like any function), so wrapt is imported only when the first such
wrapper is made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wrapt

__all__ = ["BoundChain", "BoundChainWrapper", "ChainWrapper"]


class BoundChain:
    """Runs a chain built for what a wrapt wrapper hands over (a method bound
    to its instance or class, a callable object), built once per target."""

    __slots__ = ("build", "cache")
    _CACHE_SIZE = 64

    def __init__(self, build: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        self.build = build
        self.cache: dict[Any, Callable[..., Any]] = {}

    def __call__(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            chain = self.cache[wrapped]
        except (KeyError, TypeError):
            chain = self.build(wrapped)
            if len(self.cache) >= self._CACHE_SIZE:
                self.cache.clear()  # bound: a method of many instances
            with contextlib.suppress(TypeError):  # an unhashable callable object
                self.cache[wrapped] = chain
        return chain(*args, **kwargs)


if TYPE_CHECKING:
    _BoundBase = wrapt.BoundFunctionWrapper[..., Any]
    _Base = wrapt.FunctionWrapper[..., Any]
else:  # wrapt before 2.2 has no subscriptable wrappers at run time
    _BoundBase = wrapt.BoundFunctionWrapper
    _Base = wrapt.FunctionWrapper


class BoundChainWrapper(_BoundBase):
    pass


class ChainWrapper(_Base):
    __bound_function_wrapper__ = BoundChainWrapper

    def __init__(self, wrapped: Any, wrapper: Any, chain: object) -> None:
        super().__init__(wrapped, wrapper)
        self._self_chain = chain
