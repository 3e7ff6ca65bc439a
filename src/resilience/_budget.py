"""``RetryBudget``: retries limited to a share of first attempts, so outages cannot snowball."""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Final

from resilience._validate import check_callable, check_number

if TYPE_CHECKING:
    from resilience._types import Clock

__all__ = ["RetryBudget"]

WINDOW: Final = 10  # seconds the budget measures over, one bucket each


class RetryBudget:
    """Allow retries to be at most ``ratio`` of first attempts, plus a small floor.

    Share one budget between every call to a dependency (pass it as
    ``retry_with_backoff(budget=...)``). Over the last 10 seconds it allows
    ``floor(ratio * first_attempts + min_per_second * 10)`` retries, the asking call's
    own first attempt included. When they are spent a call that fails stops retrying at
    once and raises its error: during an outage the load on the dependency grows by at
    most ``ratio`` instead of multiplying by the number of retries. The floor lets a
    quiet service still retry its occasional failure.

    Time is counted in whole seconds of ``clock``: an attempt made at time ``t`` counts
    while ``floor(now) - floor(t) < 10``, which is the window ``(now - 10, now]`` whenever
    the clock reads whole seconds and at most a second shorter otherwise. Recording and
    asking are O(1) (a ring of ten buckets with running totals) and thread-safe.

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

    __slots__ = (
        "_clock",
        "_first",
        "_floor",
        "_latest",
        "_lock",
        "_ratio",
        "_retries",
        "_total_first",
        "_total_retries",
    )

    def __init__(
        self, ratio: float = 0.2, min_per_second: float = 10.0, clock: Clock = time.monotonic
    ) -> None:
        self._ratio = check_number("ratio", ratio, minimum=0.0)
        self._floor = check_number("min_per_second", min_per_second, minimum=0.0) * WINDOW
        self._clock: Clock = check_callable("clock", clock)
        self._lock = threading.Lock()
        self._first = [0] * WINDOW
        self._retries = [0] * WINDOW
        self._total_first = 0
        self._total_retries = 0
        self._latest: int | None = None  # the newest second seen

    @property
    def ratio(self) -> float:
        """Retries allowed per first attempt."""
        return self._ratio

    @property
    def min_per_second(self) -> float:
        """Retries allowed per second whatever the traffic."""
        return self._floor / WINDOW

    def _bucket(self) -> int:
        """Expire what has left the window and return the current bucket (lock held)."""
        second = math.floor(self._clock())
        latest = self._latest
        if latest is None or second - latest >= WINDOW:
            self._first = [0] * WINDOW
            self._retries = [0] * WINDOW
            self._total_first = self._total_retries = 0
            self._latest = second
        elif second > latest:
            for expired in range(latest + 1, second + 1):
                i = expired % WINDOW
                self._total_first -= self._first[i]
                self._total_retries -= self._retries[i]
                self._first[i] = self._retries[i] = 0
            self._latest = second
        else:
            # A clock that stepped back (only an injected one can) counts in the newest
            # bucket rather than corrupting an old one.
            second = latest
        return second % WINDOW

    def _allowed(self) -> int:
        return math.floor(self._ratio * self._total_first + self._floor)

    def _deposit(self) -> None:
        """Record a first attempt."""
        with self._lock:
            i = self._bucket()
            self._first[i] += 1
            self._total_first += 1

    def _withdraw(self) -> bool:
        """Record a retry and return True if the budget allows one now, else False."""
        with self._lock:
            i = self._bucket()
            if self._total_retries + 1 > self._allowed():
                return False
            self._retries[i] += 1
            self._total_retries += 1
            return True

    def stats(self) -> dict[str, int]:
        """Return ``{"first_attempts", "retries", "allowed"}`` over the current window."""
        with self._lock:
            self._bucket()
            return {
                "first_attempts": self._total_first,
                "retries": self._total_retries,
                "allowed": self._allowed(),
            }

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self._ratio!r}, min_per_second={self.min_per_second!r})"


RetryBudget.__module__ = "resilience"
