"""Type aliases shared across modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]
"""A zero-argument callable returning monotonic seconds (``time.monotonic`` by default)."""

Sleep: TypeAlias = Callable[[float], None]
"""A callable that blocks for the given seconds (``time.sleep`` by default)."""

AsyncSleep: TypeAlias = Callable[[float], Awaitable[None] | None]
"""A sleep for async code: a coroutine function (awaited) or a plain function."""

Backoff: TypeAlias = Callable[[int], float]
"""Any callable mapping an attempt number (from 1) to seconds: a delay strategy."""
