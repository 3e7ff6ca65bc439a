"""The public error hierarchy.

```
ResilienceError(Exception)
├── CircuitBreakerError
│   └── CircuitOpenError        .name, .state, .retry_after
├── RetryError                  .last_result, .attempts
├── BulkheadFullError           .name, .limit
├── RateLimitedError            .name, .key, .retry_after
└── ThrottledError              .name
ResilienceWarning(UserWarning)  risky configurations, warned once at construction
```
Timeouts raise the builtin ``TimeoutError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resilience._state import CircuitState

__all__ = [
    "BulkheadFullError",
    "CircuitBreakerError",
    "CircuitOpenError",
    "RateLimitedError",
    "ResilienceError",
    "ResilienceWarning",
    "RetryError",
    "ThrottledError",
]


class ResilienceError(Exception):
    """Base class of every error this library raises itself."""


class CircuitBreakerError(ResilienceError):
    """Base class of the errors a circuit breaker raises."""


class CircuitOpenError(CircuitBreakerError):
    """A call was rejected because its circuit does not admit calls now.

    Made as ``CircuitOpenError(name, state, retry_after)``; the fields are read from
    ``args``, which keeps raising it cheap on the rejection path and makes it pickle.

    Attributes:
        name: the breaker's name, or ``None`` for an unnamed breaker.
        state: the breaker's state when it rejected the call.
        retry_after: seconds until a trial call may be admitted, or ``None`` when no
            time is known (a forced-open breaker). Retries honour it.
    """

    args: tuple[str | None, CircuitState, float | None]

    @property
    def name(self) -> str | None:
        """The breaker's name, or ``None``."""
        return self.args[0]

    @property
    def state(self) -> CircuitState:
        """The breaker's state when it rejected the call."""
        return self.args[1]

    @property
    def retry_after(self) -> float | None:
        """Seconds until a trial call may be admitted, or ``None`` if unknown."""
        return self.args[2]

    def __str__(self) -> str:
        name, state, retry_after = self.args
        who = f"circuit {name!r}" if name is not None else "circuit"
        when = "" if retry_after is None else f"; retry after {retry_after:.3f}s"
        return f"{who} is {state.value}{when}"


class RetryError(ResilienceError):
    """Retries ran out while the result still asked for another attempt.

    Raised only for ``retry_on_result``; an exception that is retried to exhaustion is
    re-raised unchanged instead.

    Attributes:
        last_result: the result of the final attempt.
        attempts: how many attempts were made.
    """

    def __init__(self, last_result: Any, attempts: int) -> None:
        super().__init__(last_result, attempts)
        self.last_result = last_result
        self.attempts = attempts

    def __str__(self) -> str:
        return f"gave up after {self.attempts} attempts; last result: {self.last_result!r}"


class BulkheadFullError(ResilienceError):
    """A bulkhead had no free slot (and no room or time in its queue); the call did not run.

    Attributes:
        name: the bulkhead's name, or ``None``.
        limit: the concurrency limit in force when the call was turned away.
    """

    args: tuple[str | None, int]

    def __init__(self, name: str | None, limit: int) -> None:
        super().__init__(name, limit)

    @property
    def name(self) -> str | None:
        """The bulkhead's name, or ``None``."""
        return self.args[0]

    @property
    def limit(self) -> int:
        """The concurrency limit in force when the call was turned away."""
        return self.args[1]

    def __str__(self) -> str:
        name, limit = self.args
        who = f"bulkhead {name!r}" if name is not None else "bulkhead"
        return f"{who} is full ({limit} calls in flight)"


class RateLimitedError(ResilienceError):
    """A rate limiter denied the call; it did not run. Retries honour ``retry_after``.

    Attributes:
        name: the limiter's name, or ``None``.
        key: the partition key the call was counted under, or ``None``.
        retry_after: seconds until the same request would be allowed.
    """

    args: tuple[str | None, str | None, float]

    def __init__(self, name: str | None, key: str | None, retry_after: float) -> None:
        super().__init__(name, key, retry_after)

    @property
    def name(self) -> str | None:
        """The limiter's name, or ``None``."""
        return self.args[0]

    @property
    def key(self) -> str | None:
        """The partition key, or ``None``."""
        return self.args[1]

    @property
    def retry_after(self) -> float:
        """Seconds until the same request would be allowed."""
        return self.args[2]

    def __str__(self) -> str:
        name, key, retry_after = self.args
        who = f"rate limiter {name!r}" if name is not None else "rate limiter"
        part = "" if key is None else f" for key {key!r}"
        return f"{who} denied the call{part}; retry after {retry_after:.3f}s"


class ThrottledError(ResilienceError):
    """An adaptive throttle rejected the call locally; it did not run.

    Attributes:
        name: the throttle's name, or ``None``.
    """

    args: tuple[str | None]

    def __init__(self, name: str | None) -> None:
        super().__init__(name)

    @property
    def name(self) -> str | None:
        """The throttle's name, or ``None``."""
        return self.args[0]

    def __str__(self) -> str:
        name = self.args[0]
        who = f"throttle {name!r}" if name is not None else "throttle"
        return f"{who} rejected the call locally: the backend is refusing requests"


class ResilienceWarning(UserWarning):
    """A configuration that works but is risky, such as a retry inside a circuit breaker."""
