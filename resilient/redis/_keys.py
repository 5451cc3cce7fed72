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

A per-key breaker is known by the pair (group, key), not by its label
``group[key]``: its bytes are ``0xFF group 0xFF key`` (``identity_bytes``).
No UTF-8 text holds the byte 0xFF, so the pair splits one way only and no
plain name's bytes are ever a pair's.
"""

from __future__ import annotations

import base64

__all__ = [
    "decode_name",
    "encode_name",
    "identity_bytes",
    "name_bytes",
    "tagged",
    "validate_namespace",
]

# Never in UTF-8 (``surrogatepass`` included): a pair's mark and separator.
_PAIR = b"\xff"


def name_bytes(name: str) -> bytes:
    """The bytes that stand for ``name`` in Redis (any str round-trips)."""
    return name.encode("utf-8", "surrogatepass")


def identity_bytes(identity: str | tuple[str, str]) -> bytes:
    """The bytes of a breaker's identity: its name's, or a per-key pair's."""
    if isinstance(identity, str):
        return name_bytes(identity)
    group, key = identity
    return _PAIR + name_bytes(group) + _PAIR + name_bytes(key)


def decode_name(raw: bytes | str) -> str:
    """The name ``name_bytes`` made ``raw`` from (a pair's label for a pair)."""
    if isinstance(raw, str):
        return raw
    if raw.startswith(_PAIR):
        group, key = raw[1:].split(_PAIR, 1)
        return f"{decode_name(group)}[{decode_name(key)}]"
    return raw.decode("utf-8", "surrogatepass")


def encode_name(name: str | bytes) -> str:
    raw = name if isinstance(name, bytes) else name_bytes(name)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def tagged(namespace: str, kind: str, name: str | bytes) -> str:
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
