"""Process-wide counters for named retries, read by the metrics collector at scrape time.

A named retry records one entry when a call through it finishes: how many attempts it
made (the first included) and its outcome. Nothing here is on the path of an attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
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


class RetryStatistics(Mapping[str, float]):
    """Live totals of one decorated function's retries: read it like a dict.

    Keys: ``retried_calls`` (calls that made at least one retry), ``retries`` (retries
    made in all), ``failures`` (calls that raised in the end: not retried, or given up),
    ``idle_for`` (seconds waited between attempts) and ``last_attempts`` (attempts made by
    the latest call that failed at least once; tenacity's ``attempt_number``). Only calls
    whose first attempt failed are counted: a call that succeeds at once costs nothing
    here, which keeps the first attempt within a few times a bare call. Thread-safe and
    exact.

    Examples:
        >>> from resilience import retry_statistics, retry_with_backoff
        >>> answers = iter([ConnectionError("reset"), "pong"])
        >>> @retry_with_backoff(base_delay=0.0)
        ... def ping() -> str:
        ...     answer = next(answers)
        ...     if isinstance(answer, Exception):
        ...         raise answer
        ...     return answer
        >>> ping()
        'pong'
        >>> retry_statistics(ping)["retries"]
        1
    """

    __slots__ = ("_failures", "_idle", "_last", "_lock", "_retried", "_retries")

    _KEYS: Final = ("retried_calls", "retries", "failures", "idle_for", "last_attempts")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retried = 0
        self._retries = 0
        self._failures = 0
        self._idle = 0.0
        self._last = 0

    def add(self, attempts: int, idle: float, *, failed: bool) -> None:
        """Count a call whose first attempt failed, after ``attempts`` attempts in all."""
        with self._lock:
            if attempts > 1:
                self._retried += 1
                self._retries += attempts - 1
            self._idle += idle
            self._last = attempts
            if failed:
                self._failures += 1

    def _snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "retried_calls": self._retried,
                "retries": self._retries,
                "failures": self._failures,
                "idle_for": self._idle,
                "last_attempts": self._last,
            }

    def __getitem__(self, key: str) -> float:
        return self._snapshot()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __repr__(self) -> str:
        return f"RetryStatistics({self._snapshot()!r})"


RetryStatistics.__module__ = "resilience"


def retry_statistics(func: object) -> RetryStatistics:
    """Return the live statistics of a function decorated with a retry.

    The same object is the decorated function's ``statistics`` attribute (as tenacity
    users expect); this function is the typed way to reach it.

    Raises:
        TypeError: ``func`` was not decorated by ``retry_with_backoff``/``Retry``.
    """
    stats = getattr(func, "statistics", None)
    if not isinstance(stats, RetryStatistics):
        raise TypeError(f"{func!r} is not decorated with a retry; it has no statistics")
    return stats


retry_statistics.__module__ = "resilience"
