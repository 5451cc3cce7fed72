from __future__ import annotations

import gc


def pytest_runtest_setup() -> None:
    # Policies of earlier tests, not collected yet, would still be read (a
    # breaker left open under a name a test reuses, say).
    gc.collect()
