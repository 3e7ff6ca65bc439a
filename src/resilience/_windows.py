"""Sliding windows of call outcomes, each recording a call in O(1) time and memory.

A window is a small immutable description (``CountWindow(100)``, ``TimeWindow(60.0)``);
each breaker gets its own ring from it. A ring keeps running totals beside its buckets, so
recording a call updates a bucket and three integers and never sums a list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from resilience._validate import check_int, check_number

__all__ = ["CountWindow", "TimeWindow"]

_FAILED = 1
_SLOW = 2
MAX_BUCKETS = 120  # a long TimeWindow gets wider buckets, not more of them


def bucket_count(seconds: float) -> int:
    """How many buckets a ``TimeWindow(seconds)`` keeps: one a second, at most 120."""
    return min(math.ceil(seconds), MAX_BUCKETS)


class _Ring:
    """Running totals over a window: ``calls``, ``failures`` and ``slow`` after ``advance``."""

    __slots__ = ("calls", "failures", "slow")

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def advance(self, now: float) -> None:
        """Drop what has left the window by ``now``."""

    def clear(self) -> None:
        """Forget every call, keeping the memory."""
        raise NotImplementedError

    def add(self, now: float, failed: bool, slow: bool) -> None:  # noqa: FBT001  # positional on the hot path
        """Record one call's outcome at ``now``."""
        raise NotImplementedError

    def skip(self, count: int) -> None:
        """Record ``count`` calls that neither failed nor were slow (count windows only)."""
        raise NotImplementedError


class _CountRing(_Ring):
    __slots__ = ("_cells", "_next")

    def __init__(self, size: int) -> None:
        super().__init__()
        # One byte per call: bit 0 failed, bit 1 slow. Cells past `calls` are unused.
        self._cells = bytearray(size)
        self._next = 0

    def clear(self) -> None:
        # Cells past `calls` are never read, so forgetting is resetting the totals.
        self.calls = self.failures = self.slow = 0
        self._next = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:  # noqa: FBT001, ARG002  # positional (hot path); time-free window
        cells = self._cells
        i = self._next
        if self.calls == len(cells):
            old = cells[i]
            self.failures -= old & _FAILED
            self.slow -= (old & _SLOW) >> 1
        else:
            self.calls += 1
        cells[i] = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        self._next = i + 1 if i + 1 < len(cells) else 0
        self.failures += failed
        self.slow += slow

    def skip(self, count: int) -> None:
        """Record ``count`` calls that neither failed nor were slow, all at once.

        The cells they overwrite are counted and zeroed by slice, at C speed: a breaker
        records a closed success without its lock as a draw from a counter, and hands the
        window the successes it drew since, here, at its next locked moment.
        """
        cells = self._cells
        size = len(cells)
        if count <= 0:
            return
        free = size - self.calls  # unused cells, at the head of the region (never read)
        i = self._next
        if count >= size:  # every cell is a success now
            cells[:] = bytes(size)
            self.calls, self.failures, self.slow = size, 0, 0
            self._next = (i + count) % size
            return
        end = i + count
        if end <= size:
            old = bytes(cells[i:end])
            cells[i:end] = bytes(count)
        else:
            old = bytes(cells[i:]) + bytes(cells[: end - size])
            cells[i:] = bytes(size - i)
            cells[: end - size] = bytes(end - size)
        if free < count:
            gone = old[free:]
            both = gone.count(_FAILED | _SLOW)
            self.failures -= gone.count(_FAILED) + both
            self.slow -= gone.count(_SLOW) + both
        self.calls = min(size, self.calls + count)
        self._next = end % size


class _TimeRing(_Ring):
    __slots__ = ("_buckets", "_head", "_width")

    def __init__(self, seconds: float) -> None:
        super().__init__()
        count = bucket_count(seconds)
        self._width = seconds / count
        # Each bucket: [calls, failures, slow]; bucket k covers [k*width, (k+1)*width).
        self._buckets = [[0, 0, 0] for _ in range(count)]
        self._head: int | None = None

    def clear(self) -> None:
        for bucket in self._buckets:
            bucket[0] = bucket[1] = bucket[2] = 0
        self.calls = self.failures = self.slow = 0
        self._head = None

    def _drop(self, bucket: list[int]) -> None:
        self.calls -= bucket[0]
        self.failures -= bucket[1]
        self.slow -= bucket[2]
        bucket[0] = bucket[1] = bucket[2] = 0

    def advance(self, now: float) -> None:
        index = math.floor(now / self._width)
        head = self._head
        if head is None or index <= head:
            if head is None:
                self._head = index
            return
        buckets = self._buckets
        size = len(buckets)
        # Each step clears one bucket that fell out of the window; a jump longer than the
        # window clears them all once, so the cost is bounded by the bucket count.
        for k in range(head + 1, min(index, head + size) + 1):
            self._drop(buckets[k % size])
        self._head = index

    def add(self, now: float, failed: bool, slow: bool) -> None:  # noqa: FBT001  # positional on the hot path
        self.advance(now)
        head = self._head
        assert head is not None  # noqa: S101  # set by advance()
        bucket = self._buckets[head % len(self._buckets)]
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow


MAX_COUNT_WINDOW: Final = 1_000_000  # one byte per call: 1 MB per breaker at most


@dataclass(frozen=True, slots=True)
class CountWindow:
    """A window of the last ``size`` calls.

    Args:
        size: how many recent calls the window holds, an int from 1 to 1,000,000
            (it keeps one byte per call, made when the breaker is).

    Raises:
        TypeError, ValueError: ``size`` is not an int from 1 to 1,000,000.
    """

    size: int = 100

    def __post_init__(self) -> None:
        check_int("size", self.size, minimum=1, maximum=MAX_COUNT_WINDOW)

    def _ring(self) -> _Ring:
        return _CountRing(self.size)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A window of the calls made in the last ``seconds``, kept in a ring of buckets.

    The ring has ``n = min(ceil(seconds), 120)`` buckets, each ``seconds / n`` long (one
    second for windows up to two minutes), so memory stays small whatever the length. The
    window's edge moves a bucket at a time: the calls counted at ``now`` are those in the
    ``n`` most recent buckets.

    Args:
        seconds: the window's length, a finite number >= 1.

    Raises:
        TypeError, ValueError: ``seconds`` is not a finite number >= 1.
    """

    seconds: float = 60.0

    def __post_init__(self) -> None:
        check_number("seconds", self.seconds, minimum=1.0)

    def _ring(self) -> _Ring:
        return _TimeRing(self.seconds)


CountWindow.__module__ = TimeWindow.__module__ = "resilience"
