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

    __slots__ = ("_attempts", "_lock", "_outcomes", "listed", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._attempts = 0
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self.listed = True  # in _COUNTERS: exported; False once forget_retry() dropped it

    def record(self, *, attempts: int, succeeded: bool | None) -> None:
        """Count one finished call that made ``attempts`` attempts.

        ``succeeded`` None is a call that was cancelled or interrupted: a cancellation is
        not a failure of the call, so its attempts are counted and no outcome is.
        """
        if not self.listed:
            _relist(self)
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


def _relist(counter: RetryCounter) -> None:
    """Export a forgotten counter again: its retry is in use, so its series returns."""
    with _LOCK:
        current = _COUNTERS.setdefault(counter.name, counter)
        counter.listed = current is counter


def forget_retry(name: str) -> bool:
    """Stop exporting the named retry's series, and drop its totals from the registry.

    The ``resilience_retry_*`` series of ``name`` leave the next scrape, and the memory
    they held is freed once no ``Retry`` of that name is alive. A retry of that name that
    is used again exports its series again, from its own totals (counters never go back).
    Use it when names are made per tenant, per host or per job and come and go.

    Args:
        name: the retry's name.

    Returns:
        True if the name was exported, False if it was unknown.

    Examples:
        >>> from resilience import forget_retry, retry_with_backoff
        >>> fetch = retry_with_backoff(name="tenant-42")(lambda: "ok")
        >>> fetch()
        'ok'
        >>> forget_retry("tenant-42")
        True
        >>> forget_retry("tenant-42")
        False
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    with _LOCK:
        counter = _COUNTERS.pop(name, None)
        if counter is None:
            return False
        counter.listed = False
        return True


forget_retry.__module__ = "resilience"


def snapshot() -> list[dict[str, Any]]:
    """Return every named retry's totals, in creation order."""
    return [counter.snapshot() for counter in list(_COUNTERS.values())]
