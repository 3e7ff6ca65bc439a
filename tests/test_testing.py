"""``resilience.testing.FakeClock``."""

from __future__ import annotations

import asyncio
import threading

from resilience.testing import FakeClock


def test_fake_clock_reads_and_advances() -> None:
    """Calling it and ``monotonic()`` read the time; ``advance`` and ``sleep`` move it."""
    clock = FakeClock(5.0)
    assert clock() == clock.monotonic() == 5.0
    clock.advance(1.5)
    clock.sleep(0.5)
    assert clock() == 7.0
    assert repr(clock) == "FakeClock(7.0)"
    assert FakeClock()() == 0.0


def test_fake_clock_async_sleep_advances_and_yields() -> None:
    """``await asleep(s)`` moves the clock and lets other tasks run."""
    clock = FakeClock()
    order: list[str] = []

    async def sleeper() -> None:
        await clock.asleep(2.0)
        order.append("sleeper")

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        await asyncio.gather(sleeper(), other())

    asyncio.run(main())
    assert clock() == 2.0
    assert order == ["other", "sleeper"]


def test_fake_clock_is_exact_under_threads() -> None:
    """Advances from many threads add up exactly."""
    clock = FakeClock()

    def worker() -> None:
        for _ in range(1000):
            clock.advance(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock() == 8000.0
