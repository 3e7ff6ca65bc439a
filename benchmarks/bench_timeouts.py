"""Cost of the timeout tools, as ns per call and as a ratio to a bare call in the same run.

Run: ``python benchmarks/bench_timeouts.py`` (``--quick`` for a short run). Prints a
markdown table. Each figure is the best of several interleaved rounds
(``_timing.compare``) and each ratio that over the bare call's (or bare await's) best.
"""

from __future__ import annotations

import time

import _timing
from resilience import call_with_timeout, check_deadline, deadline, remaining, timeout
from resilience.testing import FakeClock


def work() -> int:
    return 1


def with_timeout() -> int:
    with timeout(10.0):
        return work()


def with_deadline() -> int:
    with deadline(10.0):
        return work()


def deadline_checked() -> int:
    check_deadline(0.1)
    return work()


def remaining_read() -> int:
    remaining()
    return work()


def inside_deadline(n: int) -> float:
    """``check_deadline`` calls made inside one enclosing ``deadline``."""
    with deadline(60.0):
        return _timing.loop(deadline_checked)(n)


def remaining_inside(n: int) -> float:
    """``remaining()`` reads inside one enclosing ``deadline``."""
    with deadline(60.0):
        return _timing.loop(remaining_read)(n)


def remaining_inside_fake(n: int) -> float:
    """``remaining()`` reads inside a deadline on an injected ``FakeClock``."""
    with deadline(60.0, clock=FakeClock()):
        return _timing.loop(remaining_read)(n)


async def bare() -> int:
    return work()


async def limited() -> int:
    async with timeout(10.0):
        return work()


def main() -> None:
    args = _timing.parser(__doc__).parse_args()
    timing = _timing.plan(quick=args.quick)
    rows = _timing.compare(
        {
            "with timeout(), main thread (SIGALRM)": _timing.loop(with_timeout),
            "with timeout(), other thread (late check)": _timing.in_thread(
                _timing.loop(with_timeout)
            ),
            "with deadline()": _timing.loop(with_deadline),
            "check_deadline() inside a deadline": inside_deadline,
            "check_deadline() outside any deadline": _timing.loop(deadline_checked),
            "remaining() inside a deadline": remaining_inside,
            "remaining() inside a FakeClock deadline": remaining_inside_fake,
            "remaining() outside any deadline": _timing.loop(remaining_read),
            # The call runs in a worker thread: the wall clock, not this thread's CPU time.
            "call_with_timeout()": _timing.loop(
                lambda: call_with_timeout(work, 10.0), clock=time.perf_counter
            ),
        },
        _timing.loop(work),
        timing=timing,
    )
    awaited = _timing.compare(
        {"async with timeout()": _timing.awaits(limited)}, _timing.awaits(bare), timing=timing
    )
    first, first_async = next(iter(rows.values())), awaited["async with timeout()"]
    _timing.table(
        ["scenario", "ns/call", "× bare call (× bare await)"],
        [("bare call", _timing.ns(first.baseline_ns), "1.0×")]
        + [(label, _timing.ns(t.ns), _timing.times(t.best_ratio)) for label, t in rows.items()]
        + [("await bare coroutine", _timing.ns(first_async.baseline_ns), "1.0×")]
        + [(label, _timing.ns(t.ns), _timing.times(t.best_ratio)) for label, t in awaited.items()],
    )


if __name__ == "__main__":
    main()
