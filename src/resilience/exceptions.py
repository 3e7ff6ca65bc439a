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
