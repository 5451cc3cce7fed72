from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import resilient
from resilient import CircuitBreakerConfig, config


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    config.reload()


def test_without_variables_the_defaults_are_the_documented_ones() -> None:
    d = config.reload({})
    assert (d.enabled, d.timeout, d.retry_max_attempts) == (True, 30.0, 3)
    assert (d.cb_failure_threshold, d.cb_recovery_timeout) == (5, 30.0)
    assert CircuitBreakerConfig() == CircuitBreakerConfig.DEFAULT


@pytest.mark.parametrize(
    ("raw", "enabled"),
    [
        *[("false", False), ("FALSE", False), (" 0 ", False), ("no", False), ("off", False)],
        *[("true", True), ("True", True), ("1", True), ("yes", True), ("on", True)],
    ],
)
def test_enabled_takes_the_usual_words(raw: str, enabled: bool) -> None:
    assert config.parse({"RESILIENT_ENABLED": raw}).enabled is enabled


def test_enabled_false_makes_every_policy_a_pass_through() -> None:
    config.reload({"RESILIENT_ENABLED": "false"})
    assert not resilient.is_active()
    breaker = resilient.CircuitBreaker("x", CircuitBreakerConfig(failure_threshold=1))

    def boom() -> None:
        raise OSError

    for _ in range(3):
        with pytest.raises(OSError):
            breaker.call(boom)
    assert breaker.state is resilient.CircuitState.CLOSED
    config.reload({"RESILIENT_ENABLED": "true"})
    assert resilient.is_active()


def test_numbers_are_parsed() -> None:
    d = config.parse(
        {
            "RESILIENT_DEFAULT_TIMEOUT": " 2.5 ",
            "RESILIENT_RETRY_MAX_ATTEMPTS": "7",
            "RESILIENT_CB_FAILURE_THRESHOLD": "11",
            "RESILIENT_CB_RECOVERY_TIMEOUT": "90",
        }
    )
    assert (d.timeout, d.retry_max_attempts) == (2.5, 7)
    assert (d.cb_failure_threshold, d.cb_recovery_timeout) == (11, 90.0)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("RESILIENT_ENABLED", "maybe"),
        ("RESILIENT_ENABLED", ""),
        ("RESILIENT_DEFAULT_TIMEOUT", "soon"),
        ("RESILIENT_DEFAULT_TIMEOUT", "0"),
        ("RESILIENT_DEFAULT_TIMEOUT", "-1"),
        ("RESILIENT_DEFAULT_TIMEOUT", "nan"),
        ("RESILIENT_DEFAULT_TIMEOUT", "inf"),
        ("RESILIENT_RETRY_MAX_ATTEMPTS", "0"),
        ("RESILIENT_RETRY_MAX_ATTEMPTS", "2.5"),
        ("RESILIENT_RETRY_MAX_ATTEMPTS", "three"),
        ("RESILIENT_CB_FAILURE_THRESHOLD", "-3"),
        ("RESILIENT_CB_FAILURE_THRESHOLD", ""),
        ("RESILIENT_CB_RECOVERY_TIMEOUT", "1e999"),
        ("RESILIENT_CB_RECOVERY_TIMEOUT", "30s"),
        # Beyond what threading and the clock represent: accepted once, these
        # failed every call with OverflowError.
        ("RESILIENT_DEFAULT_TIMEOUT", "1e10"),
        ("RESILIENT_DEFAULT_TIMEOUT", "10000000000"),
        # ASCII decimal only: no underscores, other scripts' digits, huge numbers.
        ("RESILIENT_RETRY_MAX_ATTEMPTS", "1_000"),
        ("RESILIENT_RETRY_MAX_ATTEMPTS", "\u0663"),
        ("RESILIENT_CB_FAILURE_THRESHOLD", "9" * 400),
        ("RESILIENT_DEFAULT_TIMEOUT", "1_0"),
        ("RESILIENT_DEFAULT_TIMEOUT", "\u0663"),
        ("RESILIENT_DEFAULT_TIMEOUT", "1" * 400),
        ("RESILIENT_CB_RECOVERY_TIMEOUT", "0x10"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(variable: str, raw: str) -> None:
    with pytest.raises(ValueError, match=rf"^{variable} must be .*, got {raw!r}$"):
        config.parse({variable: raw})


def test_a_bad_value_leaves_the_current_defaults_alone() -> None:
    config.reload({"RESILIENT_CB_FAILURE_THRESHOLD": "8"})
    with pytest.raises(ValueError, match="RESILIENT_DEFAULT_TIMEOUT"):
        config.reload({"RESILIENT_CB_FAILURE_THRESHOLD": "9", "RESILIENT_DEFAULT_TIMEOUT": "x"})
    assert config.defaults.cb_failure_threshold == 8


def test_breaker_config_defaults_follow_the_environment() -> None:
    config.reload({"RESILIENT_CB_FAILURE_THRESHOLD": "7", "RESILIENT_CB_RECOVERY_TIMEOUT": "12.5"})
    cfg = CircuitBreakerConfig()
    assert (cfg.failure_threshold, cfg.recovery_timeout) == (7, 12.5)
    explicit = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=1.0)
    assert (explicit.failure_threshold, explicit.recovery_timeout) == (2, 1.0)
    # Presets are fixed numbers, whatever the environment says.
    preset = CircuitBreakerConfig.DEFAULT
    assert (preset.failure_threshold, preset.recovery_timeout) == (5, 30.0)


def test_reload_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESILIENT_CB_FAILURE_THRESHOLD", "4")
    monkeypatch.setenv("RESILIENT_ENABLED", "off")
    config.reload()
    assert CircuitBreakerConfig().failure_threshold == 4
    assert not resilient.is_active()
    monkeypatch.delenv("RESILIENT_CB_FAILURE_THRESHOLD")
    monkeypatch.delenv("RESILIENT_ENABLED")
    config.reload()
    assert CircuitBreakerConfig().failure_threshold == 5
    assert resilient.is_active()


def _import_with(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env, "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_environment_is_read_at_import() -> None:
    done = _import_with(
        {"RESILIENT_ENABLED": "false", "RESILIENT_CB_FAILURE_THRESHOLD": "9"},
        "import resilient; print(resilient.is_active(), "
        "resilient.CircuitBreakerConfig().failure_threshold)",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "9"]


def test_a_bad_value_fails_the_import_naming_the_variable() -> None:
    done = _import_with({"RESILIENT_RETRY_MAX_ATTEMPTS": "lots"}, "import resilient")
    assert done.returncode != 0
    assert "ValueError: RESILIENT_RETRY_MAX_ATTEMPTS must be" in done.stderr
    assert "'lots'" in done.stderr


def test_every_default_built_after_a_reload_follows_it() -> None:
    config.reload(
        {
            "RESILIENT_DEFAULT_TIMEOUT": "4.5",
            "RESILIENT_RETRY_MAX_ATTEMPTS": "6",
            "RESILIENT_CB_FAILURE_THRESHOLD": "2",
            "RESILIENT_CB_RECOVERY_TIMEOUT": "8",
        }
    )
    assert resilient.RetryConfig().max_attempts == 6
    assert resilient.RetryConfig(max_attempts=2).max_attempts == 2
    assert resilient.RetryConfig.DEFAULT.max_attempts == 3  # presets stay fixed
    policy = resilient.ResiliencePolicy()
    assert policy.timeout == 4.5
    assert policy.retry == resilient.RetryConfig(max_attempts=6)
    assert policy.circuit_breaker == CircuitBreakerConfig(failure_threshold=2, recovery_timeout=8)
    assert resilient.ResiliencePolicies.api().timeout == 30.0  # presets stay fixed
    config.reload({})
    assert resilient.ResiliencePolicy() == resilient.ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig.DEFAULT,
        retry=resilient.RetryConfig.DEFAULT,
        timeout=30.0,
    )
