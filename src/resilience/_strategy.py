"""What makes an object a strategy that a ``Pipeline`` can compose.

A strategy runs one call under its rule: ``strategy.call(func, *args, **kwargs)`` for sync
code, ``await strategy.call_async(func, *args, **kwargs)`` for async code, where ``func`` is
whatever is inside it (the user's function, or the next strategy's runner). It describes
itself with ``_strategy_info()`` so ``Pipeline.describe()`` and the order warnings need no
``isinstance`` chain. Existing objects (``CircuitBreaker``, ``Retry``) are strategies by
having these three methods; nothing is subclassed.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Protocol,
    TypeAlias,
    TypedDict,
    TypeVar,
    runtime_checkable,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

R = TypeVar("R")

StrategyKind: TypeAlias = Literal[
    "fallback",
    "timeout",
    "deadline",
    "retry",
    "hedge",
    "circuit_breaker",
    "bulkhead",
    "rate_limiter",
    "adaptive_throttle",
    "chaos",
]


class StrategyInfo(TypedDict):
    """How a strategy describes itself: its kind, its name and its constructor options."""

    kind: StrategyKind
    name: str | None
    options: dict[str, Any]


@runtime_checkable
class Strategy(Protocol):
    """The three methods a pipeline needs from each of its strategies."""

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``func(*args, **kwargs)`` under this strategy and return its result."""
        ...

    async def call_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``func(*args, **kwargs)`` under this strategy and return its result."""
        ...

    def _strategy_info(self) -> StrategyInfo:
        """Describe this strategy: kind, name and options keyed by constructor parameter."""
        ...
