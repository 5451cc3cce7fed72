"""One instance of a fleet sharing a rate limit, in its own process.

    python tests/redis_limit_worker.py URL NAME RATE BURST START SECONDS

Waits until wall-clock time START, then calls through the limiter as fast
as it can for SECONDS, and prints the wall-clock times of its admitted
calls as one JSON list.
"""

from __future__ import annotations

import json
import sys
import time

from resilient import RateLimitConfig, RateLimiter, RateLimitExceededError
from resilient.redis import RedisStorage


def main() -> None:
    url, name, rate, burst, start, seconds = sys.argv[1:7]
    storage = RedisStorage.from_url(url)
    limiter = RateLimiter(name, RateLimitConfig(float(rate), burst=int(burst), storage=storage))
    delay = float(start) - time.time()
    if delay > 0:
        time.sleep(delay)
    end = time.time() + float(seconds)
    admitted: list[float] = []
    while time.time() < end:
        try:
            limiter.call(lambda: None)
        except RateLimitExceededError:
            continue
        admitted.append(time.time())
    storage.close()
    print(json.dumps(admitted), flush=True)


if __name__ == "__main__":
    main()
