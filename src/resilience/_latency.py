"""A hedge delay that follows observed latencies: a percentile over the latest calls."""

from __future__ import annotations

import math
import threading
from collections import deque

from resilience._validate import check_int, check_number

_MAX_WINDOW = 10_000_000  # latencies kept; a sort of more per refresh would stall callers


class LatencyPercentile:
    """A ``delay`` for ``Hedge``: the ``q``-th percentile of the latest ``window`` latencies.

    Call it for the current delay; a ``Hedge`` given one records, with ``record``, the
    latency its caller saw on every call that succeeded. The percentile is the ``k``-th
    smallest of the ``n`` latencies kept, ``k = ceil(q (n + 1))`` (at most ``n``), so
    that on average at most ``1 - q`` of calls exceed it. It is never below ``minimum``
    and is recomputed every ``window // 50`` records (at least every record), so asking
    costs one attribute read.

    Until it has seen enough latencies for the percentile to mean anything
    (``max(10, ceil(1 / (1 - q)))`` of them, at most ``window``), it returns ``math.inf``:
    no hedge starts on time, so a cold service is not sent double traffic on a guess.
    (Failures still start hedges at once.)

    Why the caller's latency: a call that a hedge won had a primary that would have taken
    at least that long, which is unknown once it is cancelled. The caller's latency is a
    lower bound for it, and one above the delay, so the sample falls on the right side of
    the percentile and about ``1 - q`` of calls are hedged. (Recording the winning
    attempt's own, shorter duration would drag the estimate down: with 1% of calls 100x
    slow, q=0.95 would hedge 6% of calls instead of 5%.)
    """

    __slots__ = ("_current", "_every", "_lock", "_minimum", "_needed", "_q", "_samples", "_since")

    def __init__(self, q: float = 0.95, window: int = 1000, minimum: float = 0.001) -> None:
        self._q = check_number("q", q, positive=True, maximum=1.0)
        window = check_int("window", window, minimum=1, maximum=_MAX_WINDOW)
        self._minimum = check_number("minimum", minimum, minimum=0.0)
        self._samples: deque[float] = deque(maxlen=window)
        # (The tiny subtraction keeps 1 / (1 - 0.9) = 10.000000000000002 from rounding to 11.)
        tail = window if self._q == 1.0 else max(10, math.ceil(1 / (1 - self._q) - 1e-9))
        self._needed = min(window, tail)
        self._every = max(1, window // 50)
        self._since = 0
        self._current = math.inf
        self._lock = threading.Lock()

    @property
    def q(self) -> float:
        """The percentile followed, in (0, 1]."""
        return self._q

    @property
    def window(self) -> int:
        """How many of the latest latencies are kept."""
        return self._samples.maxlen or 0

    @property
    def minimum(self) -> float:
        """The smallest delay returned."""
        return self._minimum

    def __call__(self) -> float:
        """Return the current delay in seconds (``math.inf`` while warming up)."""
        return self._current

    def record(self, seconds: float) -> None:
        """Add one observed latency (seconds); a negative, NaN or infinite one is ignored.

        A NaN would sort anywhere and could make the delay ``minimum`` (hedging every call).
        """
        if not 0.0 <= seconds < math.inf:
            return
        with self._lock:
            samples = self._samples
            samples.append(seconds)
            self._since += 1
            if len(samples) < self._needed:
                return
            if self._since < self._every and self._current != math.inf:
                return
            self._since = 0
            ordered = sorted(samples)
        # The k-th smallest of n, k = ceil(q (n + 1)): a fresh call exceeds it with
        # probability (n + 1 - k) / (n + 1) <= 1 - q on average. The textbook nearest
        # rank, ceil(q n), would hedge 5.1% of calls at q=0.95 over 1,000 latencies.
        rank = min(len(ordered), max(1, math.ceil(self._q * (len(ordered) + 1) - 1e-9)))
        self._current = max(self._minimum, ordered[rank - 1])

    def __repr__(self) -> str:
        return (
            f"latency_percentile(q={self._q!r}, window={self.window!r}, minimum={self._minimum!r})"
        )
