"""Helpers for testing code that uses ``resilience`` without waiting for real time."""

from __future__ import annotations

import asyncio
import threading

from resilience._validate import check_number

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that moves only when told to.

    Pass it as ``clock=`` (and its ``sleep``/``asleep`` as ``sleep=``) to breakers and
    retries to drive them deterministically: a recovery timeout of a minute passes in an
    instant. It is safe to share between threads.

    Args:
        start: the time it reads first.

    Example:
        >>> clock = FakeClock()
        >>> clock.advance(2.5)
        >>> clock()
        2.5
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_number("start", start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current time."""
        return self._now

    def monotonic(self) -> float:
        """Return the current time, as ``time.monotonic`` would."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (a finite number >= 0)."""
        step = check_number("seconds", seconds, minimum=0.0)
        with self._lock:
            self._now += step

    def sleep(self, seconds: float) -> None:
        """Advance the clock instead of blocking; a drop-in for ``time.sleep``."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Advance the clock and yield to the event loop once; a drop-in for ``asyncio.sleep``."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
