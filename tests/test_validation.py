"""Every bad constructor argument fails at construction, naming the parameter and value."""

from __future__ import annotations

import math
from typing import Any

import pytest

from resilience import (
    BreakerRegistry,
    CircuitBreaker,
    ConsecutiveFailures,
    CountWindow,
    FailureRate,
    TimeWindow,
    circuit_breaker,
    get_circuit_breaker,
)
from resilience.testing import FakeClock

BREAKER_CASES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"failure_threshold": 0}, ValueError, "failure_threshold must be >= 1, got 0"),
    ({"failure_threshold": -3}, ValueError, "failure_threshold must be >= 1, got -3"),
    ({"failure_threshold": 2.0}, TypeError, "failure_threshold must be an int, got 2.0"),
    ({"failure_threshold": True}, TypeError, "failure_threshold must be an int, got True"),
    ({"failure_threshold": "5"}, TypeError, "failure_threshold must be an int, got '5'"),
    ({"recovery_timeout": 0}, ValueError, "recovery_timeout must be > 0, got 0"),
    ({"recovery_timeout": -1.0}, ValueError, "recovery_timeout must be > 0, got -1.0"),
    ({"recovery_timeout": math.inf}, ValueError, "recovery_timeout must be finite, got inf"),
    ({"recovery_timeout": math.nan}, ValueError, "recovery_timeout must not be NaN, got nan"),
    ({"recovery_timeout": False}, TypeError, "recovery_timeout must be a number, got False"),
    ({"recovery_timeout": "30"}, TypeError, "recovery_timeout must be a number, got '30'"),
    ({"success_threshold": 0}, ValueError, "success_threshold must be >= 1, got 0"),
    ({"success_threshold": 1.5}, TypeError, "success_threshold must be an int, got 1.5"),
    ({"half_open_max_calls": 0}, ValueError, "half_open_max_calls must be >= 1, got 0"),
    ({"half_open_max_calls": True}, TypeError, "half_open_max_calls must be an int, got True"),
    ({"policy": "rate"}, TypeError, "policy must be a TripPolicy such as FailureRate(...), got 'rate'"),
    ({"failure_on": 42}, TypeError, "failure_on must be an exception class, a tuple of them or a predicate, got 42"),
    ({"failure_on": (ValueError, int)}, TypeError, "failure_on must be an exception class or a tuple of them"),
    ({"ignore": "KeyError"}, TypeError, "ignore must be an exception class, a tuple of them or a predicate"),
    ({"failure_on_result": 1}, TypeError, "failure_on_result must be callable, got 1"),
    ({"fallback": "x"}, TypeError, "fallback must be callable, got 'x'"),
    ({"clock": 0.0}, TypeError, "clock must be callable, got 0.0"),
    ({"name": ""}, ValueError, "name must not be empty, got ''"),
    ({"name": "a" * 201}, ValueError, "name must be at most 200 characters, got 201"),
    ({"name": "bad\nname"}, ValueError, "name must not contain control characters, got 'bad\\nname'"),
    ({"name": 42}, TypeError, "name must be a str, got 42"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error", "message"), BREAKER_CASES, ids=[repr(c[0])[:40] for c in BREAKER_CASES]
)
def test_breaker_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """CircuitBreaker raises the right error with the parameter and value in the message."""
    with pytest.raises(error) as info:
        CircuitBreaker(**kwargs)
    assert message in str(info.value)


def test_the_same_checks_apply_to_the_decorator_and_registry() -> None:
    """``circuit_breaker`` and ``get_circuit_breaker`` validate when called, not at call time."""
    with pytest.raises(ValueError, match="failure_threshold must be >= 1, got 0"):
        circuit_breaker(failure_threshold=0)
    with pytest.raises(ValueError, match="failure_threshold must be >= 1, got 0"):
        get_circuit_breaker("v", failure_threshold=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        CircuitBreaker(failure_treshold=3)  # type: ignore[call-arg]


def test_a_name_of_200_characters_is_fine() -> None:
    """The name limit is inclusive."""
    assert CircuitBreaker(name="n" * 200).name == "n" * 200


POLICY_CASES: list[tuple[Any, type[Exception], str]] = [
    (lambda: ConsecutiveFailures(0), ValueError, "threshold must be >= 1, got 0"),
    (lambda: ConsecutiveFailures(2.0), TypeError, "threshold must be an int, got 2.0"),
    (lambda: FailureRate(threshold=0), ValueError, "threshold must be > 0, got 0"),
    (lambda: FailureRate(threshold=1.01), ValueError, "threshold must be <= 1, got 1.01"),
    (lambda: FailureRate(threshold=math.nan), ValueError, "threshold must not be NaN"),
    (lambda: FailureRate(threshold=True), TypeError, "threshold must be a number, got True"),
    (lambda: FailureRate(window=100), TypeError, "window must be a CountWindow or a TimeWindow, got 100"),
    (lambda: FailureRate(minimum_calls=0), ValueError, "minimum_calls must be >= 1, got 0"),
    (lambda: FailureRate(minimum_calls=1.0), TypeError, "minimum_calls must be an int, got 1.0"),
    (lambda: FailureRate(slow_call_duration=0), ValueError, "slow_call_duration must be > 0, got 0"),
    (lambda: FailureRate(slow_call_duration=math.inf), ValueError, "slow_call_duration must be finite"),
    (lambda: FailureRate(slow_call_duration=1, slow_call_rate=0), ValueError, "slow_call_rate must be > 0, got 0"),
    (lambda: FailureRate(slow_call_duration=1, slow_call_rate=2), ValueError, "slow_call_rate must be <= 1, got 2"),
    (lambda: FailureRate(slow_call_rate=0.5), ValueError, "slow_call_rate needs slow_call_duration"),
    (lambda: CountWindow(0), ValueError, "size must be >= 1, got 0"),
    (lambda: CountWindow(10.0), TypeError, "size must be an int, got 10.0"),
    (lambda: TimeWindow(0.5), ValueError, "seconds must be >= 1, got 0.5"),
    (lambda: TimeWindow(math.inf), ValueError, "seconds must be finite, got inf"),
    (lambda: TimeWindow("60"), TypeError, "seconds must be a number, got '60'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "error", "message"), POLICY_CASES, ids=[c[2][:40] for c in POLICY_CASES]
)
def test_policies_and_windows_reject_bad_arguments(
    make: Any, error: type[Exception], message: str
) -> None:
    """Trip policies and windows validate their arguments."""
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


REGISTRY_CASES: list[tuple[Any, type[Exception], str]] = [
    (lambda: BreakerRegistry(defaults=[("failure_threshold", 3)]), TypeError, "defaults must be a mapping"),
    (lambda: BreakerRegistry(defaults={"name": "x"}), ValueError, "defaults must not set a name, got name='x'"),
    (lambda: BreakerRegistry(defaults={"failure_threshold": 0}), ValueError, "failure_threshold must be >= 1"),
    (lambda: BreakerRegistry().get(""), ValueError, "name must not be empty"),
    (lambda: BreakerRegistry().get(7), TypeError, "name must be a str, got 7"),
    (lambda: BreakerRegistry().get(["a"]), TypeError, "name must be a str, got ['a']"),
    (lambda: BreakerRegistry().get("a\x00b"), ValueError, "control characters"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "error", "message"), REGISTRY_CASES, ids=[c[2][:40] for c in REGISTRY_CASES]
)
def test_registry_rejects_bad_arguments(make: Any, error: type[Exception], message: str) -> None:
    """Registries validate their defaults and names."""
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


FAKE_CLOCK_CASES: list[tuple[Any, type[Exception], str]] = [
    (lambda: FakeClock(math.nan), ValueError, "start must not be NaN"),
    (lambda: FakeClock("0"), TypeError, "start must be a number"),
    (lambda: FakeClock().advance(-1), ValueError, "seconds must be >= 0, got -1"),
    (lambda: FakeClock().sleep(math.inf), ValueError, "seconds must be finite"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "error", "message"), FAKE_CLOCK_CASES, ids=[c[2][:30] for c in FAKE_CLOCK_CASES]
)
def test_fake_clock_rejects_bad_arguments(make: Any, error: type[Exception], message: str) -> None:
    """FakeClock refuses to go backwards or to infinity."""
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)
