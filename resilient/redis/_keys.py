"""Redis key names for named things: names are data, never key syntax.

A name (any ``str``: colons, ``*``, braces, newlines, lone surrogates) is
encoded as unpadded base64url of its UTF-8 bytes (``surrogatepass``), which
holds none of ``:``, ``{`` and ``}``, inside a ``{...}`` hash tag:

    NS:cb:{b64(name)}          the breaker's hash
    NS:cb:{b64(name)}:run      ... and its other keys, suffixed

So no two names share a key (the encoding is one-to-one and the tag ends
where it ends), and every key of one thing hashes to one Redis Cluster slot:
a script on them runs on one node. Other kinds (a rate limiter, ...) use
``tagged`` with their own ``kind``.
"""

from __future__ import annotations

import base64

__all__ = ["decode_name", "encode_name", "name_bytes", "tagged", "validate_namespace"]


def name_bytes(name: str) -> bytes:
    """The bytes that stand for ``name`` in Redis (any str round-trips)."""
    return name.encode("utf-8", "surrogatepass")


def decode_name(raw: bytes | str) -> str:
    """The name ``name_bytes`` made ``raw`` from."""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "surrogatepass")


def encode_name(name: str) -> str:
    return base64.urlsafe_b64encode(name_bytes(name)).rstrip(b"=").decode("ascii")


def tagged(namespace: str, kind: str, name: str) -> str:
    """The base key of the ``kind`` thing called ``name``; suffix it with
    ``:part`` for its other keys, which then share its cluster slot."""
    return f"{namespace}:{kind}:{{{encode_name(name)}}}"


def validate_namespace(owner: str, namespace: object) -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"{owner}.namespace must be a non-empty str, got {namespace!r}")
    if "{" in namespace or "}" in namespace:
        # A brace in the prefix would become every key's cluster hash tag.
        raise ValueError(f"{owner}.namespace must not contain '{{' or '}}', got {namespace!r}")
    return namespace
