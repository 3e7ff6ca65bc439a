"""Small helpers the breaker tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from resilience import CircuitBreaker


def boom(exc: BaseException | type[BaseException] = ConnectionError) -> Callable[[], Any]:
    """Return a function that raises ``exc``."""

    def raiser(*_: Any) -> Any:
        raise exc

    return raiser


def fail(
    breaker: CircuitBreaker, times: int = 1, exc: type[BaseException] = ConnectionError
) -> None:
    """Make ``times`` failing calls through ``breaker``, swallowing their errors."""
    for _ in range(times):
        with pytest.raises(exc):
            breaker.call(boom(exc))


def ok(breaker: CircuitBreaker, times: int = 1) -> None:
    """Make ``times`` successful calls through ``breaker``."""
    for _ in range(times):
        assert breaker.call(lambda: "ok") == "ok"
