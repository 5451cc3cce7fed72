"""The request id of the current call, carried in a contextvar.

Its own module so that errors (which carry the id) and events (which stamp
it) can both read it without importing each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
from collections.abc import Iterator

__all__ = ["current", "get_request_id", "new_request_id", "request_context"]

current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resilient_request_id", default=None
)

# Ids correlate log lines and events, they guard nothing: a private PRNG seeded
# from the OS is enough and ten times cheaper than uuid4. Reseeded in forked
# children so two workers of one server never share a sequence.
_rng = random.Random(os.urandom(16))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(16)))


def new_request_id() -> str:
    """A fresh id: 32 hex digits, like ``uuid4().hex``."""
    return f"{_rng.getrandbits(128):032x}"


def get_request_id() -> str | None:
    """The request id of the current context, or ``None`` outside any."""
    return current.get()


@contextlib.contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Set (or generate) the request id for every call inside the block.

    A web framework's own id (``X-Request-ID``) passed here flows into every
    event and every :class:`~resilient.ResilienceError` raised inside.
    """
    if request_id is not None and not isinstance(request_id, str):
        raise TypeError(f"request_context(request_id) must be a str or None, got {request_id!r}")
    rid = request_id if request_id is not None else new_request_id()
    token = current.set(rid)
    try:
        yield rid
    finally:
        current.reset(token)
