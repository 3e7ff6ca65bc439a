"""timeout() keeps its word: no lost alarms, the builtin TimeoutError, clean failed entries."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import pytest

from resilience import call_with_timeout, deadline, remaining, timeout

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM")


def signal_state() -> tuple[object, float, bool]:
    """The SIGALRM handler and the real-time timer's interval and whether it is armed.

    (pytest-timeout may hold the timer for its own watchdog: its remaining time moves.)
    """
    delay, interval = signal.getitimer(signal.ITIMER_REAL)
    return signal.getsignal(signal.SIGALRM), interval, delay > 0


def spin(seconds: float) -> None:
    """Busy-wait in pure Python (an interrupt lands between bytecodes)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.parametrize("block", [time.sleep, spin], ids=["sleep", "spin"])
def test_thousands_of_tiny_limits_all_interrupt(block: object) -> None:
    """Limits from 1 µs to 2 ms each interrupt the block: no alarm is ever lost."""
    rng = random.Random(11)
    before = signal_state()
    for _ in range(1500):
        limit = rng.uniform(1e-6, 2e-3)
        with pytest.raises(TimeoutError, match="interrupted"), timeout(limit):
            block(0.5)  # type: ignore[operator]
    assert signal_state() == before


def test_randomised_nested_deadlines_clip_and_interrupt() -> None:
    """A nearly spent deadline clips a timeout to microseconds; it still interrupts."""
    rng = random.Random(7)
    before = signal_state()
    for _ in range(1000):
        outer, inner, limit = (rng.uniform(1e-6, 3e-3) for _ in range(3))
        with deadline(outer), deadline(inner):
            left = remaining()
            assert left is not None
            assert left <= min(outer, inner)
            try:
                with timeout(limit):
                    assert (remaining() or 0.0) <= min(outer, inner, limit)
                    time.sleep(0.5)
            except TimeoutError as error:
                message = str(error)
            else:  # pragma: no cover - the sleep always outlasts the limits
                pytest.fail("the block was not interrupted")
            # Either interrupted, or refused at entry because the deadline had passed.
            assert "interrupted" in message or "was not started" in message
    assert signal_state() == before


def test_an_interrupt_turned_into_another_error_is_still_a_timeout_error() -> None:
    """A client that wraps our interrupt still gives the caller the builtin TimeoutError."""

    class ClientTimeout(Exception):
        """What a client makes of a socket timeout."""

    def client_read() -> None:
        try:
            time.sleep(1)
        except TimeoutError as error:
            raise ClientTimeout("read timed out") from error

    with pytest.raises(TimeoutError) as caught, timeout(0.01):
        client_read()
    assert type(caught.value) is TimeoutError
    assert isinstance(caught.value.__cause__, ClientTimeout)


def test_nested_timeouts_do_not_wrap_twice() -> None:
    """The outer timeout's interrupt passes the inner one unchanged."""
    with pytest.raises(TimeoutError) as caught, timeout(0.01), timeout(5.0):
        time.sleep(1)
    assert caught.value.__cause__ is None
    assert "0.01 s timeout" in str(caught.value)


def test_an_async_cancellation_turned_into_another_error_is_a_timeout_error() -> None:
    """In async code too, a block that turned the cancellation into its own error times out."""

    async def main() -> None:
        async with timeout(0.01):
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise ValueError("the client's own error") from None

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(main())
    assert isinstance(caught.value.__cause__, ValueError)


def test_an_unrelated_error_after_no_timeout_passes_through() -> None:
    """An error of the block's own, before its time ran out, is untouched."""
    with pytest.raises(KeyError), timeout(5.0):
        raise KeyError("mine")


@pytest.mark.parametrize(
    "make",
    [
        lambda: timeout(1e10),
        lambda: timeout(1e300),
        lambda: deadline(1e308),
        lambda: call_with_timeout(print, 1e10),
    ],
    ids=["timeout-1e10", "timeout-1e300", "deadline-1e308", "call_with_timeout-1e10"],
)
def test_limits_the_platform_cannot_time_are_value_errors(make: object) -> None:
    """Huge finite limits fail when made, naming the limit, and change nothing."""
    before = signal_state()
    with pytest.raises(ValueError, match="at most 1e\\+09 seconds"):
        make()  # type: ignore[operator]
    assert signal_state() == before


def test_the_longest_limit_works() -> None:
    """timeout(1e9) arms and disarms the timer and restores the signal state."""
    before = signal_state()
    with timeout(1e9), deadline(1e9):
        assert 0 < (remaining() or 0) <= 1e9
    assert signal_state() == before


def test_a_failed_entry_leaves_signal_state_and_deadline_unchanged() -> None:
    """Entering after the deadline passed, or entering twice, changes nothing."""
    before = signal_state()
    with deadline(0.0):
        spin(0.001)
        with pytest.raises(TimeoutError, match="not started"), timeout(1.0):
            pass  # pragma: no cover - never runs
        assert remaining() == 0.0
    assert signal_state() == before
    used = timeout(1.0)
    with used:
        pass
    with pytest.raises(RuntimeError, match="only once"), used:
        pass  # pragma: no cover - never runs
    assert signal_state() == before
    assert remaining() is None
