"""Quota hints from response headers (pure), and a host's quota state.

What a provider says is left, in the header families LLM and API providers
send on every response:

- ``x-ratelimit-remaining-{requests,tokens,...}`` with
  ``x-ratelimit-reset-{...}``: a duration (``1s``, ``6m0s``, ``20ms``,
  ``1h2m3.5s``) or a number of seconds; the bare ``x-ratelimit-remaining``
  / ``x-ratelimit-reset`` too (a reset past 10^9 is a Unix time);
- ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining``
  with ``...-reset``: an RFC 3339 time;
- the IETF ``RateLimit`` field, as a list of quotas
  (``"default";r=0;t=30``) or the earlier dictionary
  (``limit=100, remaining=0, reset=30``), and ``RateLimit-Remaining`` /
  ``RateLimit-Reset``; ``RateLimit-Policy`` describes quotas and holds
  nothing left to read.

``exhausted_for(headers, now)`` is how long until every quota that has
nothing left resets (``None``: none is spent, or nothing said when). A
value that cannot be read is ignored, never an error. ``now`` is the wall
clock (for the absolute times); no clock is read here.

``QuotaState`` keeps one host's: until when it refuses requests, on the
monotonic clock, raised by every answer that says so (a 429's
``Retry-After`` included) and never lowered before it passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["QuotaState", "exhausted_for", "parse_duration"]

# A Unix time rather than a number of seconds to wait (about 2001-09-09).
_EPOCH_FLOOR = 1e9
_DIGITS = frozenset("0123456789.")
_FIRST = frozenset("xXaArR")
_NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# Go's time.Duration format, as OpenAI sends it: 1h2m3.5s, 6m0s, 20ms.
_DURATION = re.compile(
    f"(?:{_NUM}h)?(?:{_NUM}m(?!s))?(?:{_NUM}s)?(?:{_NUM}ms)?(?:{_NUM}(?:us|µs))?(?:{_NUM}ns)?"
)
_UNITS = (3600.0, 60.0, 1.0, 0.001, 1e-6, 1e-9)
_PARAM = re.compile(r"\s*([a-zA-Z][a-zA-Z0-9_*-]*)\s*=\s*(\"[^\"]*\"|[^;,\s]+)")


def parse_duration(text: str) -> float | None:
    """Seconds from ``6m0s``, ``1h2m3.5s``, ``20ms`` or a plain number;
    ``None`` when unreadable or negative."""
    text = text.strip()
    if not text:
        return None
    if text[-1] in _DIGITS:
        try:
            seconds = float(text)
        except ValueError:
            return None
        return seconds if 0 <= seconds < math.inf else None
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    total = 0.0
    for value, unit in zip(match.groups(), _UNITS, strict=True):
        if value is not None:
            total += float(value) * unit
    return total if match.end() else None


def _count(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value else None  # NaN is no count


def _reset_seconds(text: str, now: float) -> float | None:
    """A reset given as a duration, seconds, or a Unix time."""
    seconds = parse_duration(text)
    if seconds is None:
        return None
    if seconds >= _EPOCH_FLOOR:
        return max(0.0, seconds - now)
    return seconds


def _rfc3339(text: str, now: float) -> float | None:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _structured(value: str, now: float) -> float | None:
    """The longest reset of the spent quotas in an IETF ``RateLimit`` value."""
    longest: float | None = None
    for member in value.split(","):
        params = dict((key.lower(), raw.strip('"')) for key, raw in _PARAM.findall(member))
        left = _count(params["r"]) if "r" in params else None
        if left is None and "remaining" in params:
            left = _count(params["remaining"])
        reset_raw = params.get("t", params.get("reset"))
        if left is None or left > 0 or reset_raw is None:
            continue
        reset = _reset_seconds(reset_raw, now)
        if reset is not None and (longest is None or reset > longest):
            longest = reset
    if longest is None and "remaining=" in value and "," in value:
        # The earlier dictionary form spreads one quota over the members.
        params = dict((k.lower(), v.strip('"')) for k, v in _PARAM.findall(value))
        left = _count(params.get("remaining", ""))
        if left is not None and left <= 0 and "reset" in params:
            longest = _reset_seconds(params["reset"], now)
    return longest


def _classify(name: str) -> tuple[str, str] | None:
    """What a header name is to the quota families: ``(kind, quota)`` with
    kind ``"left"``, ``"reset"`` or ``"field"`` (the IETF ``RateLimit``),
    and the quota's key (its family's letter, then its name); ``None`` for
    any other header."""
    low = name.lower()
    if low.startswith("x-ratelimit-"):
        rest = low[12:]
        if rest.startswith("remaining"):
            return ("left", "x" + rest[9:])
        if rest.startswith("reset"):
            return ("reset", "x" + rest[5:])
    elif low.startswith("anthropic-ratelimit-"):
        rest = low[20:]
        if rest.endswith("-remaining"):
            return ("left", "a" + rest[:-10])
        if rest.endswith("-reset"):
            return ("reset", "a" + rest[:-6])
    elif low == "ratelimit":
        return ("field", "")
    elif low == "ratelimit-remaining":
        return ("left", "r")
    elif low == "ratelimit-reset":
        return ("reset", "r")
    return None


# Header names, as they come, to what they are (``_classify``): a response
# carries the same few names every time, so each is worked out once. This
# is most of what reading a response's headers costs (measured: the
# "quota header parsing" row of ``python -m benchmarks``). Bounded: past
# ``_NAMES_KEPT`` names (a server inventing them), it starts over.
_names: dict[str, tuple[str, str] | None] = {}
_NAMES_KEPT = 512
_UNSEEN: Any = ("", "")


def exhausted_for(headers: Iterable[tuple[str, str]], now: float) -> float | None:
    """Seconds until every spent quota in ``headers`` (name, value pairs, any
    case) resets, or ``None`` when none is spent (see the module)."""
    names = _names
    spent: list[str] | None = None  # the quotas with nothing left
    resets: dict[str, str] = {}
    longest: float | None = None
    for name, value in headers:
        what = names.get(name, _UNSEEN)
        if what is None:
            continue
        if what is _UNSEEN:
            what = _classify(name) if name[:1] in _FIRST else None
            if len(names) >= _NAMES_KEPT:
                names.clear()
            names[name] = what
            if what is None:
                continue
        kind, quota = what
        if kind == "left":
            left = _count(value)
            if left is not None and left <= 0:
                if spent is None:
                    spent = []
                spent.append(quota)
        elif kind == "reset":
            resets[quota] = value
        else:
            found = _structured(value, now)
            if found is not None and (longest is None or found > longest):
                longest = found
    if spent is None:
        return longest
    for quota in spent:
        reset_text = resets.get(quota)
        if reset_text is None:
            continue
        reset = _rfc3339(reset_text, now) if quota[0] == "a" else _reset_seconds(reset_text, now)
        if reset is not None and (longest is None or reset > longest):
            longest = reset
    return longest


class QuotaState:
    """One host's quota: the monotonic time until which it refuses requests."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = -math.inf

    def spent_for(self, seconds: float, now: float) -> None:
        """The host said its quota is spent for ``seconds`` from ``now``."""
        until = now + seconds
        if until > self.until:
            self.until = until

    def left(self, now: float) -> float:
        """Seconds until the host takes requests again (0: it does now)."""
        left = self.until - now
        return left if left > 0.0 else 0.0
