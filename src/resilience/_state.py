"""The breaker's states."""

from __future__ import annotations

import enum
from typing import Final


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


# The members as module constants, for the modules that test states on hot paths
# (``state is CLOSED`` reads a global, ``CircuitState.CLOSED`` a global and an attribute).
CLOSED: Final = CircuitState.CLOSED
OPEN: Final = CircuitState.OPEN
HALF_OPEN: Final = CircuitState.HALF_OPEN
FORCED_OPEN: Final = CircuitState.FORCED_OPEN
DISABLED: Final = CircuitState.DISABLED
METRICS_ONLY: Final = CircuitState.METRICS_ONLY
