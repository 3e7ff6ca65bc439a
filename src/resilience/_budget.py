"""``RetryBudget``: retries limited to a share of first attempts, so outages cannot snowball."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from resilience._validate import check_callable, check_number

if TYPE_CHECKING:
    from resilience._types import Clock

__all__ = ["RetryBudget"]

WINDOW: Final = 10.0  # seconds the budget measures over


class _Tally:
    """Events over the window: one ``(expiry, count)`` entry per distinct event time.

    ``expiry`` is the event's time plus the window; entries are appended in time order,
    so the oldest is always on the left and leaves first.
    """

    __slots__ = ("counts", "expiries", "total")

    def __init__(self) -> None:
        self.expiries: deque[float] = deque()
        self.counts: deque[int] = deque()
        self.total = 0

    def add(self, expiry: float) -> None:
        """Count one event expiring at ``expiry`` (never earlier than the newest entry)."""
        expiries = self.expiries
        if expiries and expiries[-1] == expiry:
            self.counts[-1] += 1
        else:
            expiries.append(expiry)
            self.counts.append(1)
        self.total += 1

    def expire(self, now: float) -> None:
        """Drop every entry whose expiry is ``now`` or earlier."""
        expiries = self.expiries
        while expiries and expiries[0] <= now:
            expiries.popleft()
            self.total -= self.counts.popleft()


class RetryBudget:
    """Allow retries to be at most ``ratio`` of first attempts, plus a small floor.

    Share one budget between every call to a dependency (pass it as
    ``retry_with_backoff(budget=...)``). Over the last 10 seconds, ``(now - 10, now]``, it
    allows ``floor(ratio * first_attempts + min_per_second * 10)`` retries, the asking
    call's own first attempt included. When they are spent a call that fails stops
    retrying at once and raises its error: during an outage the load on the dependency
    grows by at most ``ratio`` instead of multiplying by the number of retries. The floor
    lets a quiet service still retry its occasional failure.

    The window is exact: an attempt made when ``clock`` read ``t`` counts until the clock
    reads ``t + 10``, fractions of a second included. (The comparison is ``now < t + 10``
    rather than ``t > now - 10``, so an attempt leaves exactly when a clock advanced by 10
    from ``t`` says so, whatever the float rounding.) A clock that steps back, which only
    an injected one can, is read as standing still.

    Memory: the budget keeps one small entry (about 40 bytes) per distinct time of a first
    attempt and one per distinct time of a retry in the last 10 seconds; attempts made at
    the same clock reading share an entry. With ``time.monotonic`` that is up to one entry
    per call, so 1,000 calls a second hold about 10,000 entries (roughly 0.4 MB). Recording
    and asking are amortised O(1) and thread-safe.

    Args:
        ratio: retries allowed per first attempt, a finite number >= 0.
        min_per_second: retries allowed per second whatever the traffic, a finite
            number >= 0.
        clock: monotonic seconds.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is out of range.

    Examples:
        >>> from resilience import RetryBudget, retry_with_backoff
        >>> budget = RetryBudget(ratio=0.1, min_per_second=1.0)
        >>> @retry_with_backoff(budget=budget, base_delay=0.0)
        ... def fetch() -> str:
        ...     return "ok"
        >>> fetch()
        'ok'
    """

    __slots__ = ("_clock", "_first", "_floor", "_latest", "_lock", "_ratio", "_retries")

    def __init__(
        self, ratio: float = 0.2, min_per_second: float = 10.0, clock: Clock = time.monotonic
    ) -> None:
        self._ratio = check_number("ratio", ratio, minimum=0.0)
        self._floor = check_number("min_per_second", min_per_second, minimum=0.0) * WINDOW
        self._clock: Clock = check_callable("clock", clock)
        self._lock = threading.Lock()
        self._first = _Tally()
        self._retries = _Tally()
        self._latest = -math.inf  # the newest clock reading seen

    @property
    def ratio(self) -> float:
        """Retries allowed per first attempt."""
        return self._ratio

    @property
    def min_per_second(self) -> float:
        """Retries allowed per second whatever the traffic."""
        return self._floor / WINDOW

    def _now(self) -> float:
        """Read the clock and expire what has left the window (lock held)."""
        now = self._clock()
        if now > self._latest:
            self._latest = now
            # Look before calling: most readings expire nothing.
            first, retries = self._first, self._retries
            if first.expiries and first.expiries[0] <= now:
                first.expire(now)
            if retries.expiries and retries.expiries[0] <= now:
                retries.expire(now)
        return self._latest

    def _allowed(self) -> int:
        return math.floor(self._ratio * self._first.total + self._floor)

    def _deposit(self) -> None:
        """Record a first attempt."""
        with self._lock:
            self._first.add(self._now() + WINDOW)

    def _withdraw(self) -> bool:
        """Record a retry and return True if the budget allows one now, else False."""
        with self._lock:
            now = self._now()
            if self._retries.total >= self._allowed():
                return False
            self._retries.add(now + WINDOW)
            return True

    def stats(self) -> dict[str, int]:
        """Return ``{"first_attempts", "retries", "allowed"}`` over the current window."""
        with self._lock:
            self._now()
            return {
                "first_attempts": self._first.total,
                "retries": self._retries.total,
                "allowed": self._allowed(),
            }

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self._ratio!r}, min_per_second={self.min_per_second!r})"


RetryBudget.__module__ = "resilience"
