"""Every decorator's keyword settings are typed: each documented form is
accepted, an unknown field and a wrong type are rejected, by mypy and pyright."""

import random

from resilient import (
    BulkheadConfig,
    CircuitBreakerConfig,
    Fallback,
    RetryConfig,
    aretrying,
    retrying,
    with_circuit_breaker,
    with_resilience,
    with_retry,
    with_timeout,
)


def is_bad(result: object) -> bool:
    return result is None


# Every documented form, accepted.
ok_breaker = with_circuit_breaker(
    "a",
    failure_threshold=3,
    failure_rate_threshold=0.5,
    minimum_calls=5,
    window_size=20,
    window_duration=None,
    slow_call_duration=2,
    slow_call_rate_threshold=0.5,
    recovery_timeout=30,
    half_open_max_calls=2,
    success_threshold=1,
    record_on=(ConnectionError,),
    ignore_on=(KeyError,),
    failure_predicate=lambda e: True,
    result_predicate=is_bad,
    timeout=1.5,
    health_check=lambda: True,
    health_check_interval=10.0,
    storage=None,
)
ok_breaker_config = with_circuit_breaker("b", config=CircuitBreakerConfig.STRICT, recovery_timeout=5)
ok_retry = with_retry(
    max_attempts=3,
    initial_delay=0.1,
    max_delay=2,
    multiplier=2,
    jitter="decorrelated",
    retry_on=(ConnectionError, TimeoutError),
    give_up_on=(PermissionError,),
    retry_if_result=is_bad,
    on_retry=lambda attempt, error, delay: None,
    respect_retry_after=False,
    deadline=10,
    rng=random.Random(1),
)
ok_retry_fraction = with_retry(RetryConfig.DEFAULT, jitter=0.2, retry_on=lambda e: True)
ok_timeout = with_timeout(5, mode="signal")
ok_inactivity = with_timeout(inactivity=1.0, name="stream")
ok_resilience = with_resilience(
    "c",
    circuit_breaker=None,
    retry=RetryConfig.AGGRESSIVE,
    timeout=2,
    bulkhead=BulkheadConfig(4),
    fallback=Fallback(value=0),
)

ok_block = retrying(max_attempts=3, initial_delay=0.1, retry_on=(ConnectionError,))
ok_ablock = aretrying(RetryConfig.DEFAULT, deadline=5)

# An unknown field, rejected.
retrying(max_attempt=3)  # type: ignore[call-arg]  # P: No parameter named "max_attempt"
with_circuit_breaker("d", failure_treshold=3)  # type: ignore[call-arg]  # P: No parameter named "failure_treshold"
with_retry(max_attempt=3)  # type: ignore[call-arg]  # P: No parameter named "max_attempt"
with_timeout(5, inactivty=1.0)  # type: ignore[call-arg]  # P: No parameter named "inactivty"
with_resilience("e", retries=None)  # type: ignore[call-arg]  # P: No parameter named "retries"

# A wrong type, rejected.
with_circuit_breaker("f", failure_threshold="3")  # P: "failure_threshold" of type "int"  # E: Argument "failure_threshold" to "with_circuit_breaker" has incompatible type "str"; expected "int"  [arg-type]
with_retry(max_attempts="3")  # P: "max_attempts" of type "int"  # E: Argument "max_attempts" to "with_retry" has incompatible type "str"; expected "int"  [arg-type]
with_retry(jitter="gaussian")  # P: "jitter" of type "JitterStrategy | float"  # E: Argument "jitter" to "with_retry" has incompatible type "Literal['gaussian']"; expected "float | Literal['full', 'equal', 'decorrelated']"  [arg-type]
with_timeout(5, mode="process")  # P: "mode" of type "Literal['thread', 'signal', 'inline']"  # E: Argument "mode" to "with_timeout" has incompatible type "Literal['process']"; expected "Literal['thread', 'signal', 'inline']"  [arg-type]
aretrying(deadline="5s")  # P: "deadline" of type "float | None"  # E: Argument "deadline" to "aretrying" has incompatible type "str"; expected "float | None"  [arg-type]
with_resilience("g", timeout="5s")  # P: "timeout" of type "float | TimeoutConfig | None"  # E: Argument "timeout" to "with_resilience" has incompatible type "str"; expected "float | TimeoutConfig | None"  [arg-type]



@ok_retry
@ok_breaker
@ok_timeout
def fetch(url: str, *, fresh: bool = False) -> bytes:
    return b""


reveal_type(fetch)  # N: Revealed type is "def (url: str, *, fresh: bool =) -> bytes"


def block() -> None:
    for attempt in ok_block:
        reveal_type(attempt.number)  # N: Revealed type is "int"
        with attempt:
            pass
