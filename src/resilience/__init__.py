"""Circuit breakers, retries, timeouts and deadlines for calls that can fail.

The public API is re-exported here; the modules behind it are private.
"""

from __future__ import annotations

from resilience._breaker import CircuitBreaker
from resilience._budget import RetryBudget
from resilience._deadline import check_deadline, deadline, remaining
from resilience._policies import ConsecutiveFailures, FailureRate, TripPolicy
from resilience._registry import (
    BreakerOptions,
    BreakerRegistry,
    circuit_breaker,
    default_registry,
    get_circuit_breaker,
    reset_all_circuit_breakers,
)
from resilience._retry import (
    RetryContext,
    RetryState,
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
)
from resilience._state import CircuitState
from resilience._storage import BreakerStorage, StoredState
from resilience._timeouts import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    TIMEOUTS,
    call_with_timeout,
    get_timeout,
    timeout,
    validate_timeout,
)
from resilience._windows import CountWindow, TimeWindow
from resilience.exceptions import (
    BulkheadFullError,
    CircuitBreakerError,
    CircuitOpenError,
    RateLimitedError,
    ResilienceError,
    ResilienceWarning,
    RetryError,
    ThrottledError,
)

__all__ = [  # noqa: RUF022  # plain sorted() order, as tests/test_public_api.py checks
    "BreakerOptions",
    "BreakerRegistry",
    "BreakerStorage",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitOpenError",
    "CircuitState",
    "ConsecutiveFailures",
    "CountWindow",
    "DEFAULT_TIMEOUT",
    "FailureRate",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "RateLimitedError",
    "ResilienceError",
    "ResilienceWarning",
    "RetryBudget",
    "RetryContext",
    "RetryError",
    "RetryState",
    "StoredState",
    "TIMEOUTS",
    "ThrottledError",
    "TimeWindow",
    "TripPolicy",
    "call_with_timeout",
    "check_deadline",
    "circuit_breaker",
    "deadline",
    "default_registry",
    "get_circuit_breaker",
    "get_timeout",
    "remaining",
    "reset_all_circuit_breakers",
    "retry_api_call",
    "retry_network_operation",
    "retry_on_failure",
    "retry_with_backoff",
    "timeout",
    "validate_timeout",
]


def __getattr__(name: str) -> object:
    if name == "__version__":
        from resilience._version import __version__  # noqa: PLC0415  # read lazily

        return __version__
    raise AttributeError(f"module 'resilience' has no attribute {name!r}")
