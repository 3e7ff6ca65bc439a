"""Circuit breakers, retries, timeouts and deadlines for calls that can fail.

The public API is re-exported here; the modules behind it are private.
"""

from __future__ import annotations

from typing import Any

from resilience._breaker import CircuitBreaker
from resilience._deadline import deadline, remaining
from resilience._policies import ConsecutiveFailures, FailureRate, TripPolicy
from resilience._registry import (
    BreakerRegistry,
    circuit_breaker,
    default_registry,
    get_circuit_breaker,
    reset_all_circuit_breakers,
)
from resilience._state import CircuitState
from resilience._storage import BreakerStorage, StoredState
from resilience._windows import CountWindow, TimeWindow
from resilience.exceptions import (
    CircuitBreakerError,
    CircuitOpenError,
    ResilienceError,
    RetryError,
)

__all__ = [
    "BreakerRegistry",
    "BreakerStorage",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitOpenError",
    "CircuitState",
    "ConsecutiveFailures",
    "CountWindow",
    "FailureRate",
    "ResilienceError",
    "RetryError",
    "StoredState",
    "TimeWindow",
    "TripPolicy",
    "circuit_breaker",
    "deadline",
    "default_registry",
    "get_circuit_breaker",
    "remaining",
    "reset_all_circuit_breakers",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from resilience._version import __version__  # noqa: PLC0415  # read lazily

        return __version__
    raise AttributeError(f"module 'resilience' has no attribute {name!r}")
