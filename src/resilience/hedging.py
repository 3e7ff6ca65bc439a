"""Hedging helpers: a ``delay`` for ``resilience.Hedge`` that follows observed latencies.

``Hedge`` itself lives in ``resilience``. A fixed ``delay`` suits a dependency whose
latency you know; ``latency_percentile()`` suits the rest: it hedges a call once it has
taken longer than, say, 95% of recent calls did, so about 5% of calls are hedged whatever
the latency is today ("The Tail at Scale", Dean and Barroso, 2013).

Examples:
    >>> from resilience import Hedge
    >>> from resilience.hedging import latency_percentile
    >>> hedge = Hedge(delay=latency_percentile(q=0.95), max_hedges=1)
    >>> hedge.call(lambda: "fast")
    'fast'
"""

from __future__ import annotations

from resilience._latency import LatencyPercentile

__all__ = ["LatencyPercentile", "latency_percentile"]


def latency_percentile(
    q: float = 0.95, window: int = 1000, minimum: float = 0.001
) -> LatencyPercentile:
    """Return a ``delay`` callable that follows the ``q``-th percentile of recent latencies.

    Args:
        q: the percentile, in (0, 1]: 0.95 hedges the slowest 5% of calls.
        window: how many of the latest latencies it keeps (an int >= 1).
        minimum: the smallest delay it returns, in seconds (>= 0).

    Returns:
        A ``LatencyPercentile``: call it for the current delay. A ``Hedge`` given it
        records the latency of every call it wins. Until enough latencies are seen it
        returns ``math.inf`` (no hedging on time), see ``LatencyPercentile``.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    return LatencyPercentile(q, window, minimum)


LatencyPercentile.__module__ = "resilience.hedging"
