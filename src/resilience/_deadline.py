"""Deadlines carried in a context variable, so they flow into threads' copies and tasks."""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from resilience._validate import check_number

if TYPE_CHECKING:
    from collections.abc import Iterator

# The absolute time.monotonic() at which the innermost deadline passes, or None.
_DEADLINE: ContextVar[float | None] = ContextVar("resilience_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Set a deadline ``seconds`` from now for the code inside the block.

    A deadline interrupts nothing by itself: retries stop before sleeping past it and
    ``timeout()`` never outlives it. Nested deadlines only shrink: an inner deadline later
    than the outer one keeps the outer one. Tasks created inside the block inherit it.

    Args:
        seconds: how long from now, a finite number >= 0.

    Raises:
        TypeError, ValueError: ``seconds`` is not a finite number >= 0.

    Example:
        >>> with deadline(5.0):
        ...     assert 0 < remaining() <= 5.0
    """
    budget = check_number("seconds", seconds, minimum=0.0)
    at = time.monotonic() + budget
    outer = _DEADLINE.get()
    if outer is not None and outer < at:
        at = outer
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Return the seconds left before the innermost deadline (never negative), or None."""
    at = _DEADLINE.get()
    if at is None:
        return None
    return max(0.0, at - time.monotonic())


deadline.__module__ = remaining.__module__ = "resilience"
