"""``RetryBudget``: retries limited to a share of first attempts, so outages cannot snowball."""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any, Final, cast

from resilience import _observed
from resilience._critical import section
from resilience._validate import check_name, check_number, check_sync_callable

if TYPE_CHECKING:
    from resilience._types import Clock

__all__ = ["RetryBudget"]

WINDOW: Final = 10.0  # seconds the budget measures over
BUCKETS_PER_SECOND: Final = 10  # buckets of 0.1 s: an event leaves up to 0.1 s early
_SLOTS: Final = int(WINDOW * BUCKETS_PER_SECOND)  # 100 buckets cover the window


class RetryBudget:
    """Allow retries to be at most ``ratio`` of first attempts, plus a small floor.

    Share one budget between every call to a dependency (pass it as
    ``retry_with_backoff(budget=...)``). Over the last 10 seconds, ``(now - 10, now]``, it
    allows ``floor(ratio * first_attempts + min_per_second * 10)`` retries, the asking
    call's own first attempt included. When they are spent a call that fails stops
    retrying at once and raises its error: during an outage the load on the dependency
    grows by at most ``ratio`` instead of multiplying by the number of retries. The floor
    lets a quiet service still retry its occasional failure.

    The window is kept in 100 buckets of 0.1 s: an attempt made when ``clock`` read ``t``
    is in bucket ``floor(10 * t)`` and counts until the clock reaches the end of that
    bucket plus 10 s, so for between 9.9 and 10 seconds (it may leave the window up to
    0.1 s early, never late). A clock that steps back, which only an injected one can, is
    read as standing still.

    Memory: fixed. The budget holds three lists of 100 small integers however many calls
    go through it (2 million calls a second use the same few kilobytes as one). Recording a
    first attempt is O(1); asking for a retry adds up the 100 buckets.

    A named budget is observed by the metrics (``resilience_retry_budget_calls_total``
    with ``outcome`` ``allowed`` or ``denied``) for as long as it is alive; drop every
    reference to it and its series go with it.

    Args:
        ratio: retries allowed per first attempt, a finite number >= 0.
        min_per_second: retries allowed per second whatever the traffic, a finite
            number >= 0.
        clock: monotonic seconds.
        name: names the budget in the metrics, or ``None``.

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
        "__weakref__",
        "_allowed_total",
        "_clock",
        "_denied_total",
        "_firsts",
        "_floor",
        "_latest",
        "_lock",
        "_ratio",
        "_retries",
        "_stamps",
        "name",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        clock: Clock = time.monotonic,
        *,
        name: str | None = None,
    ) -> None:
        self._ratio = check_number("ratio", ratio, minimum=0.0)
        self._floor = check_number("min_per_second", min_per_second, minimum=0.0) * WINDOW
        self._clock: Clock = check_sync_callable("clock", clock)
        self.name = check_name(name, optional=True)
        self._lock = threading.Lock()
        # Slot i holds the counts of the bucket whose index is _stamps[i] (index % 100 == i).
        # Every change is one store of an int, made under the lock, so an interrupt (a
        # timeout's alarm) between two of them leaves counts that are each whole: a slot
        # is emptied before it is stamped for a new bucket, and re-emptied if it was not;
        # totals are summed when asked, never kept beside the buckets. An alarm during
        # the lock's acquire makes the acquire fail, holding nothing.
        self._stamps = [-1] * _SLOTS
        self._firsts = [0] * _SLOTS
        self._retries = [0] * _SLOTS
        self._latest = -1  # the newest bucket index seen
        self._allowed_total = 0
        self._denied_total = 0
        if name is not None:
            _observed.observe(self)

    @property
    def ratio(self) -> float:
        """Retries allowed per first attempt."""
        return self._ratio

    @property
    def min_per_second(self) -> float:
        """Retries allowed per second whatever the traffic."""
        return self._floor / WINDOW

    def _slot(self) -> int:
        """Read the clock; return the slot of the current bucket, emptied if stale (lock held)."""
        bucket = math.floor(self._clock() * BUCKETS_PER_SECOND)
        bucket = max(bucket, self._latest)  # a clock that stepped back stands still
        self._latest = bucket
        slot = bucket % _SLOTS
        if self._stamps[slot] != bucket:
            self._firsts[slot] = 0
            self._retries[slot] = 0
            self._stamps[slot] = bucket
        return slot

    def _totals(self) -> tuple[int, int]:
        """First attempts and retries in the window (lock held, after ``_slot``)."""
        oldest = self._latest - _SLOTS
        firsts = retries = 0
        for slot, stamp in enumerate(self._stamps):
            if stamp > oldest:
                firsts += self._firsts[slot]
                retries += self._retries[slot]
        return firsts, retries

    def _allowed(self, firsts: int) -> int:
        return math.floor(self._ratio * firsts + self._floor)

    @section
    def _deposit(self) -> None:
        """Record a first attempt."""
        with self._lock:
            slot = self._slot()
            self._firsts[slot] += 1

    @section
    def _withdraw(self) -> bool:
        """Record a retry and return True if the budget allows one now, else False."""
        with self._lock:
            slot = self._slot()
            firsts, retries = self._totals()
            if retries >= self._allowed(firsts):
                self._denied_total += 1
                return False
            self._retries[slot] += 1
            self._allowed_total += 1
            return True

    def stats(self) -> dict[str, int]:
        """Return ``{"first_attempts", "retries", "allowed"}`` over the current window."""
        with self._lock:
            self._slot()
            firsts, retries = self._totals()
            return {"first_attempts": firsts, "retries": retries, "allowed": self._allowed(firsts)}

    def _families(self) -> list[_observed.Family]:
        """The budget's series: retries allowed and denied, totals since it was made."""
        with self._lock:
            allowed, denied = self._allowed_total, self._denied_total
        name = cast("str", self.name)
        return [
            _observed.Family(
                "resilience_retry_budget_calls_total",
                "counter",
                "Retries asked of a named retry budget, by outcome.",
                ("name", "outcome"),
                [((name, "allowed"), float(allowed)), ((name, "denied"), float(denied))],
            )
        ]

    def _health(self) -> dict[str, Any] | None:
        """A budget never makes health degraded: denying retries is its job."""
        return None

    def __repr__(self) -> str:
        shown = "" if self.name is None else f", name={self.name!r}"
        return f"RetryBudget(ratio={self._ratio!r}, min_per_second={self.min_per_second!r}{shown})"


RetryBudget.__module__ = "resilience"
