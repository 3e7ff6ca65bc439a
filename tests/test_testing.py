"""``resilience.testing``: ``FakeClock`` and ``instant_retries``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

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


def test_instant_retries_stays_on_until_an_async_callable_object_is_awaited() -> None:
    """Decorating an object whose ``__call__`` is async keeps the switch on while awaited."""
    import asyncio
    import time

    from resilience import retry_with_backoff

    class Flaky:
        calls = 0

        async def __call__(self) -> str:
            Flaky.calls += 1

            @retry_with_backoff(max_retries=2, base_delay=30.0, jitter=False)
            async def inner() -> str:
                if Flaky.calls < 3:
                    Flaky.calls += 1
                    raise ConnectionError
                return "ok"

            return await inner()

    started = time.monotonic()
    assert asyncio.run(instant_retries()(Flaky())()) == "ok"  # type: ignore[arg-type]
    assert time.monotonic() - started < 5.0  # the 30 s backoffs were skipped

    def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        instant_retries()(numbers)
