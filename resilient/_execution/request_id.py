"""The request id of the current call, carried in a contextvar.

Its own module so that errors (which carry the id) and events (which stamp
it) can both read it without importing each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
from collections.abc import Iterator

__all__ = ["current", "get_request_id", "new_request_id", "request_context"]

current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resilient_request_id", default=None
)

# Ids correlate log lines and events, they guard nothing: a random prefix per
# process (drawn again in forked children, so two workers of one server never
# share one) and a counter make 32 hex digits, unique in the process, for a
# fraction of the cost of uuid4 or 128 random bits formatted.
_prefix = os.urandom(8).hex()
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A fresh id: 32 hex digits, like ``uuid4().hex``."""
    return f"{_prefix}{next(_counter):016x}"


def get_request_id() -> str | None:
    """The request id of the current context, or ``None`` outside any."""
    return current.get()


@contextlib.contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Set (or generate) the request id for every call inside the block.

    A web framework's own id (``X-Request-ID``) passed here flows into every
    event and every ``ResilienceError`` raised inside.

    Args:
        request_id: the id to use (default: a new one).

    Yields:
        The request id in force inside the block.
    """
    if request_id is not None and not isinstance(request_id, str):
        raise TypeError(f"request_context(request_id) must be a str or None, got {request_id!r}")
    rid = request_id if request_id is not None else new_request_id()
    token = current.set(rid)
    try:
        yield rid
    finally:
        current.reset(token)
