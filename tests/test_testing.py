"""``resilience.testing``: ``FakeClock`` and ``instant_retries``."""

from __future__ import annotations

import asyncio
import threading

import pytest

from resilience.testing import FakeClock, instant_retries


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


@pytest.mark.parametrize("func", [5, None, "f"], ids=["int", "none", "str"])
def test_instant_retries_refuses_a_non_callable_at_decoration(func: object) -> None:
    """``instant_retries(5)`` raises TypeError naming func at once, not when called."""
    with pytest.raises(TypeError, match=f"^func must be callable, got {func!r}$"):
        instant_retries()(func)  # type: ignore[arg-type]


def test_instant_retries_refuses_a_non_callable_positional_argument() -> None:
    """The bare form checks its argument too."""
    with pytest.raises(TypeError, match=r"^func must be callable, got 5$"):
        instant_retries(5)  # type: ignore[call-overload]


def test_instant_retries_still_decorates_callables() -> None:
    """A callable (a class, say) is decorated and called as before."""
    assert instant_retries(int)("7") == 7
