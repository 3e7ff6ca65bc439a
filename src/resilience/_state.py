"""The breaker's states."""

from __future__ import annotations

import enum


class CircuitState(enum.Enum):
    """Where a circuit breaker stands; the value is what stats and metrics show.

    ``CLOSED`` admits calls and counts outcomes; ``OPEN`` rejects them until the recovery
    timeout has passed, when it reads as ``HALF_OPEN`` and admits a few trial calls.
    ``FORCED_OPEN``, ``DISABLED`` and ``METRICS_ONLY`` are operator states: calls and time
    never leave them, only ``reset()``/``close()`` or another operator method does.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"

    __module__ = "resilience"
