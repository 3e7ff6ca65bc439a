"""Circuit breakers, retries, timeouts and deadlines for calls that can fail.

The public API is re-exported here; the modules behind it are private.
"""

from __future__ import annotations

from resilience._adaptive import AdaptiveLimit
from resilience._breaker import CircuitBreaker
from resilience._budget import RetryBudget
from resilience._bulkhead import Bulkhead
from resilience._deadline import check_deadline, deadline, remaining
from resilience._fallback import Fallback, Outcome
from resilience._hedge import Hedge
from resilience._pipeline import Pipeline
from resilience._policies import ConsecutiveFailures, FailureRate, TripPolicy
from resilience._rate_limiter import RateLimiter
from resilience._registry import (
    BreakerOptions,
    BreakerRegistry,
    circuit_breaker,
    default_registry,
    get_circuit_breaker,
    reset_all_circuit_breakers,
)
from resilience._retry import (
    Retry,
    RetryContext,
    RetryState,
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
)
from resilience._retry_stats import RetryStatistics, forget_retry, retry_statistics
from resilience._state import CircuitState
from resilience._storage import BreakerStorage, StoredState
from resilience._throttle import AdaptiveThrottle, RetryThrottle
from resilience._time_limits import Deadline, Timeout
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
from resilience.chaos import Chaos
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
    "AdaptiveLimit",
    "AdaptiveThrottle",
    "BreakerOptions",
    "BreakerRegistry",
    "BreakerStorage",
    "Bulkhead",
    "BulkheadFullError",
    "Chaos",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitOpenError",
    "CircuitState",
    "ConsecutiveFailures",
    "CountWindow",
    "DEFAULT_TIMEOUT",
    "Deadline",
    "FailureRate",
    "Fallback",
    "Hedge",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "Outcome",
    "Pipeline",
    "RateLimitedError",
    "RateLimiter",
    "ResilienceError",
    "ResilienceWarning",
    "Retry",
    "RetryBudget",
    "RetryContext",
    "RetryError",
    "RetryState",
    "RetryStatistics",
    "RetryThrottle",
    "StoredState",
    "TIMEOUTS",
    "ThrottledError",
    "TimeWindow",
    "Timeout",
    "TripPolicy",
    "call_with_timeout",
    "check_deadline",
    "circuit_breaker",
    "deadline",
    "default_registry",
    "forget_retry",
    "get_circuit_breaker",
    "get_timeout",
    "remaining",
    "reset_all_circuit_breakers",
    "retry_api_call",
    "retry_network_operation",
    "retry_on_failure",
    "retry_statistics",
    "retry_with_backoff",
    "timeout",
    "validate_timeout",
]


def __getattr__(name: str) -> object:
    if name == "__version__":
        from resilience._version import __version__  # noqa: PLC0415  # read lazily

        return __version__
    raise AttributeError(f"module 'resilience' has no attribute {name!r}")
