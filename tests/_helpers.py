"""Small helpers the breaker tests share."""

from __future__ import annotations

import os
import shutil
import socket
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


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, hint: str) -> str:
    """Return the path of executable ``name``, or skip the test saying how to get it.

    With ``RESILIENCE_REQUIRE_SERVERS=1`` (as CI sets it) a missing binary fails the test
    instead: a green run must mean the real servers ran.
    """
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed ({hint})"
        if os.environ.get("RESILIENCE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason}; RESILIENCE_REQUIRE_SERVERS=1 forbids skipping")
        pytest.skip(reason)
    return path
