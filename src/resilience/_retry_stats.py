"""Process-wide counters for named retries, read by the metrics collector at scrape time.

A named retry records one entry when a call through it finishes: how many attempts it
made (the first included) and its outcome. Nothing here is on the path of an attempt.
"""

from __future__ import annotations

import itertools
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
    """Live totals of one decorated function's calls: read it like a dict.

    Keys: ``calls`` (calls started), ``attempts`` (the first included), ``retries``
    (attempts after a failure), ``failures`` (calls that raised after giving up or without
    a retry), ``idle_for`` (seconds waited between attempts). Thread-safe and exact: a call
    that succeeds at once costs one atomic counter step; the rest is counted on the
    failure path.

    Examples:
        >>> from resilience import retry_statistics, retry_with_backoff
        >>> @retry_with_backoff(base_delay=0.0)
        ... def ping() -> str:
        ...     return "pong"
        >>> ping()
        'pong'
        >>> retry_statistics(ping)["calls"]
        1
    """

    __slots__ = ("_failures", "_idle", "_lock", "_retries", "calls")

    def __init__(self) -> None:
        self.calls = itertools.count()  # next(calls) per call: one atomic C step
        self._lock = threading.Lock()
        self._retries = 0
        self._failures = 0
        self._idle = 0.0

    def add(self, retries: int, idle: float, *, failed: bool) -> None:
        """Count a call that retried ``retries`` times, waiting ``idle`` seconds in all."""
        with self._lock:
            self._retries += retries
            self._idle += idle
            if failed:
                self._failures += 1

    def _snapshot(self) -> dict[str, float]:
        # itertools.count shows its next value in its repr, the one read that takes no step.
        calls = int(repr(self.calls)[6:-1])
        with self._lock:
            retries, failures, idle = self._retries, self._failures, self._idle
        return {
            "calls": calls,
            "attempts": calls + retries,
            "retries": retries,
            "failures": failures,
            "idle_for": idle,
        }

    def __getitem__(self, key: str) -> float:
        return self._snapshot()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("calls", "attempts", "retries", "failures", "idle_for"))

    def __len__(self) -> int:
        return 5

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
