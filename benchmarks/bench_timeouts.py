"""Cost of the timeout tools, as ns per call and as a ratio to a bare call in the same run.

Run: PYTHONPATH=src python benchmarks/bench_timeouts.py
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

from resilience import call_with_timeout, check_deadline, deadline, remaining, timeout
from resilience.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

N = 20_000


def work() -> int:
    return 1


def measure(body: Callable[[], object], n: int = N) -> float:
    """Return the best of three runs of ``body`` ``n`` times, in ns per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for _ in range(n):
            body()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


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


def in_thread(body: Callable[[], object]) -> float:
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(measure(body)))
    thread.start()
    thread.join()
    return result[0]


async def async_timeout_ns() -> tuple[float, float]:
    async def bare() -> int:
        return work()

    async def limited() -> int:
        async with timeout(10.0):
            return work()

    figures = []
    for body in (bare, limited):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter_ns()
            for _ in range(N):
                await body()
            best = min(best, (time.perf_counter_ns() - start) / N)
        figures.append(best)
    return figures[0], figures[1]


def main() -> None:
    bare = measure(work)
    rows = [
        ("with timeout(), main thread (SIGALRM)", measure(with_timeout)),
        ("with timeout(), other thread (late check)", in_thread(with_timeout)),
        ("with deadline()", measure(with_deadline)),
    ]
    with deadline(60.0):
        rows.append(("check_deadline() inside a deadline", measure(deadline_checked)))
        rows.append(("remaining() inside a deadline", measure(remaining_read)))
    with deadline(60.0, clock=FakeClock()):
        rows.append(("remaining() inside a FakeClock deadline", measure(remaining_read)))
    rows.append(("check_deadline() outside any deadline", measure(deadline_checked)))
    rows.append(("remaining() outside any deadline", measure(remaining_read)))
    rows.append(("call_with_timeout()", measure(lambda: call_with_timeout(work, 10.0), 2_000)))
    print(f"{'bare call':45s} {bare:10.0f} ns/call  1.0x")
    for label, ns in rows:
        print(f"{label:45s} {ns:10.0f} ns/call  {ns / bare:.1f}x")
    abare, alimited = asyncio.run(async_timeout_ns())
    print(f"{'await bare coroutine':45s} {abare:10.0f} ns/call  1.0x")
    print(f"{'async with timeout()':45s} {alimited:10.0f} ns/call  {alimited / abare:.1f}x")


if __name__ == "__main__":
    main()
