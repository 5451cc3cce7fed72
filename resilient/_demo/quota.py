"""Quota: a provider that meters tokens and announces its quota, called
with and without protection, in simulated time.

The provider (an ``httpx.MockTransport``: the real transports, no network)
allows ``TOKENS_PER_MINUTE`` tokens in each clock minute. It admits a
request while the minute has tokens left, deducts what the request used
(prompt and completion), and announces on every answer what is left and
when the minute resets (``x-ratelimit-remaining-tokens``,
``x-ratelimit-reset-tokens``); once nothing is left it answers 429 with
``Retry-After`` until the reset.

Requests arrive at a steady pace asking for about twice the quota. The
unprotected client sends each one. The protected one sends it through a
token limit (``with_rate_limit(cost=..., actual=...)``: the prompt plus
``max_tokens`` before, the usage after) inside the quota and a resilient
client that reads the quota headers, and holds a request back rather than
send what the provider would refuse.

Everything runs on resilient's fake clock: instant and deterministic.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["QuotaRun", "TOKENS_PER_MINUTE", "quota_rows", "run_quota", "simulate_quota"]

TOKENS_PER_MINUTE = 40_000
PROMPT_TOKENS = 300
MAX_TOKENS = 500
ARRIVALS_PER_SECOND = 2.0  # about 1,200 tokens a second asked: 1.8 times the quota


@dataclass(slots=True)
class QuotaRun:
    """What one client saw."""

    protected: bool
    requests: int = 0  # requests the application made
    sent: int = 0  # requests that reached the provider
    answered: int = 0  # ... that it answered with a completion
    refused: int = 0  # ... that it refused (429)
    held_back: int = 0  # requests the client did not send (protected only)
    tokens: int = 0  # completion tokens delivered
    minutes: float = 0.0
    #: 429s received after the provider first announced its quota.
    refused_after_announcement: int = 0

    @property
    def goodput(self) -> float:
        """Completions a minute."""
        return self.answered / self.minutes if self.minutes else 0.0


class _Provider:
    """The metered provider: a fixed window of tokens per clock minute."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.window = -1
        self.left = TOKENS_PER_MINUTE
        self.announced = False

    def __call__(self, request: Any) -> Any:
        import httpx

        from .._runtime import clock as _clock

        now = _clock.monotonic()
        window = math.floor(now / 60.0)
        if window != self.window:
            self.window, self.left = window, TOKENS_PER_MINUTE
        reset = (window + 1) * 60.0 - now
        if self.left <= 0:
            return httpx.Response(429, headers={"Retry-After": f"{math.ceil(reset)}"})
        asked = json.loads(request.content)
        completion = self.rng.randint(MAX_TOKENS // 5, asked["max_tokens"])
        used = asked["prompt_tokens"] + completion
        self.left = max(0, self.left - used)
        self.announced = True
        headers = {
            "x-ratelimit-limit-tokens": str(TOKENS_PER_MINUTE),
            "x-ratelimit-remaining-tokens": str(self.left),
            "x-ratelimit-reset-tokens": f"{int(reset // 60)}m{reset % 60:.3f}s",
        }
        body = {"usage": {"prompt_tokens": asked["prompt_tokens"], "completion_tokens": completion}}
        return httpx.Response(200, headers=headers, json=body)


def simulate_quota(seconds: float, seed: int, *, protected: bool) -> QuotaRun:
    """``seconds`` of simulated traffic through one client."""
    import httpx

    from .._registry.registry import Registry
    from ..decorators import with_rate_limit
    from ..errors import RateLimitExceededError
    from ..http import RateLimitError, client
    from ..policy import ResiliencePolicy
    from ..testing import fake_clock

    provider = _Provider(seed)
    run = QuotaRun(protected)
    payload = {"prompt_tokens": PROMPT_TOKENS, "max_tokens": MAX_TOKENS}
    with fake_clock() as clock:
        mock = httpx.MockTransport(provider)
        if protected:
            # The provider's own requests go through the transport's quota.
            policy = ResiliencePolicy(retry=None, circuit_breaker=None, timeout=None)
            http = client(policy, transport=mock, registry=Registry(), base_url="http://llm")
            # The quota's pace, in tokens; the headers catch what a minute's
            # edge lets through.
            limit = with_rate_limit(
                "demo-quota-tokens",
                rate=TOKENS_PER_MINUTE,
                period=60.0,
                burst=2 * (PROMPT_TOKENS + MAX_TOKENS),
                registry=Registry(),
                cost=lambda body: body["prompt_tokens"] + body["max_tokens"],
                actual=lambda usage: usage["prompt_tokens"] + usage["completion_tokens"],
            )

            @limit
            def complete(body: dict[str, int]) -> dict[str, int]:
                usage: dict[str, int] = http.post("/v1/complete", json=body).json()["usage"]
                return usage

        else:
            http = httpx.Client(transport=mock, base_url="http://llm")

            def complete(body: dict[str, int]) -> dict[str, int]:
                response = http.post("/v1/complete", json=body)
                if response.status_code == 429:
                    raise RateLimitError("429", status_code=429)
                usage: dict[str, int] = response.json()["usage"]
                return usage

        step = 1.0 / ARRIVALS_PER_SECOND
        with http:
            for n in range(int(seconds * ARRIVALS_PER_SECOND)):
                if n * step > clock.now():
                    clock.advance(n * step - clock.now())
                run.requests += 1
                announced = provider.announced
                try:
                    usage = complete(payload)
                except RateLimitError:
                    run.sent += 1
                    run.refused += 1
                    run.refused_after_announcement += announced
                    continue
                except RateLimitExceededError:
                    run.held_back += 1
                    continue
                run.sent += 1
                run.answered += 1
                run.tokens += usage["completion_tokens"]
        run.minutes = clock.now() / 60.0
    return run


def quota_rows(bare: QuotaRun, guarded: QuotaRun) -> list[tuple[str, str, str]]:
    def both(value: Any) -> tuple[str, str]:
        return str(value(bare)), str(value(guarded))

    return [
        ("requests made", *both(lambda r: r.requests)),
        ("requests sent", *both(lambda r: r.sent)),
        ("429s received", *both(lambda r: r.refused)),
        ("429s after the quota was announced", *both(lambda r: r.refused_after_announcement)),
        ("requests held back, unsent", *both(lambda r: r.held_back)),
        ("completions (goodput) / min", *both(lambda r: f"{r.goodput:.1f}")),
        ("completion tokens / min", *both(lambda r: f"{r.tokens / r.minutes:.0f}")),
    ]


def run_quota(args: Any, out: TextIO) -> int:
    """``python -m resilient demo --scenario quota``."""
    try:
        import httpx  # noqa: F401
    except ImportError:
        print("the quota scenario needs httpx: pip install 'resilient-kit[http]'", file=out)
        return 1
    from .view import print_table

    seconds = args.duration * 15.0
    print(
        f"resilient demo: scenario 'quota' (a provider allowing {TOKENS_PER_MINUTE:,} tokens "
        f"a minute and announcing what is left, asked for about twice that), "
        f"{seconds / 60:g} simulated minutes, seed {args.seed}",
        file=out,
    )
    bare = simulate_quota(seconds, args.seed, protected=False)
    guarded = simulate_quota(seconds, args.seed, protected=True)
    print_table(quota_rows(bare, guarded), ("unprotected", "protected"), out, cell=12)
    print(
        "\nprotected: a token limit (cost: prompt + max_tokens, settled from the usage) "
        "and the provider's quota headers",
        file=out,
    )
    return 0
