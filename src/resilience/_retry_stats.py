"""Process-wide counters for named retries, read by the metrics collector at scrape time.

A named retry records one entry when a call through it finishes: how many attempts it
made (the first included) and its outcome. Nothing here is on the path of an attempt.
"""

from __future__ import annotations

import threading
from typing import Any, Final

OUTCOMES: Final = (
    "success_without_retry",
    "success_with_retry",
    "failed_without_retry",
    "failed_with_retry",
)


class RetryCounter:
    """The totals of one named retry; thread-safe."""

    __slots__ = ("_attempts", "_lock", "_outcomes", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._attempts = 0
        self._outcomes = dict.fromkeys(OUTCOMES, 0)

    def record(self, *, attempts: int, succeeded: bool | None) -> None:
        """Count one finished call that made ``attempts`` attempts.

        ``succeeded`` None is a call that was cancelled or interrupted: a cancellation is
        not a failure of the call, so its attempts are counted and no outcome is.
        """
        if succeeded is None:
            with self._lock:
                self._attempts += attempts
            return
        retried = "with_retry" if attempts > 1 else "without_retry"
        outcome = f"{'success' if succeeded else 'failed'}_{retried}"
        with self._lock:
            self._attempts += attempts
            self._outcomes[outcome] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return ``{"name", "attempts", "outcomes": {outcome: count}}``."""
        with self._lock:
            return {"name": self.name, "attempts": self._attempts, "outcomes": dict(self._outcomes)}


_COUNTERS: dict[str, RetryCounter] = {}
_LOCK = threading.Lock()


def counter_for(name: str) -> RetryCounter:
    """Return the counter of the retry called ``name``, creating it once."""
    counter = _COUNTERS.get(name)
    if counter is None:
        with _LOCK:
            counter = _COUNTERS.setdefault(name, RetryCounter(name))
    return counter


def snapshot() -> list[dict[str, Any]]:
    """Return every named retry's totals, in creation order."""
    return [counter.snapshot() for counter in list(_COUNTERS.values())]
