"""The public error hierarchy.

```
ResilienceError(Exception)
├── CircuitBreakerError
│   └── CircuitOpenError        .name, .state, .retry_after
└── RetryError                  .last_result, .attempts
```
Timeouts raise the builtin ``TimeoutError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resilience._state import CircuitState

__all__ = ["CircuitBreakerError", "CircuitOpenError", "ResilienceError", "RetryError"]


class ResilienceError(Exception):
    """Base class of every error this library raises itself."""


class CircuitBreakerError(ResilienceError):
    """Base class of the errors a circuit breaker raises."""


class CircuitOpenError(CircuitBreakerError):
    """A call was rejected because its circuit does not admit calls now.

    Attributes:
        name: the breaker's name, or ``None`` for an unnamed breaker.
        state: the breaker's state when it rejected the call.
        retry_after: seconds until a trial call may be admitted, or ``None`` when no
            time is known (a forced-open breaker). Retries honour it.
    """

    def __init__(self, name: str | None, state: CircuitState, retry_after: float | None) -> None:
        super().__init__(name, state, retry_after)
        self.name = name
        self.state = state
        self.retry_after = retry_after

    def __str__(self) -> str:
        who = f"circuit {self.name!r}" if self.name is not None else "circuit"
        when = "" if self.retry_after is None else f"; retry after {self.retry_after:.3f}s"
        return f"{who} is {self.state.value}{when}"


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
