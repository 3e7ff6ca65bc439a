"""Timeouts and cancellation, counted right (SPEC §8): the async form counts as the sync one."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from resilience import CircuitBreaker, CircuitState, deadline, timeout


async def _hang() -> None:
    await asyncio.sleep(3600)


def test_async_timeout_around_a_call_counts_as_a_failure() -> None:
    """``async with timeout(): await breaker.call_async(hanging)`` trips after the threshold."""
    breaker = CircuitBreaker(failure_threshold=3)

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(TimeoutError):
                async with timeout(0.01):
                    await breaker.call_async(_hang)

    asyncio.run(main())
    stats = breaker.get_stats()
    assert (stats["total_failures"], stats["total_ignored"]) == (3, 0)
    assert breaker.state is CircuitState.OPEN


def test_async_timeout_around_a_decorated_call_counts_as_a_failure() -> None:
    """The decorator and ``async with breaker`` count the timeout too."""
    breaker = CircuitBreaker(failure_threshold=10)
    wrapped = breaker(_hang)

    async def block() -> None:
        async with breaker:
            await _hang()

    async def main() -> None:
        for run in (wrapped, block):
            with pytest.raises(TimeoutError):
                async with timeout(0.01):
                    await run()

    asyncio.run(main())
    assert breaker.get_stats()["total_failures"] == 2


def test_a_timeout_counts_only_where_failure_on_takes_timeout_errors() -> None:
    """The cancellation is judged as a TimeoutError: ``ignore=TimeoutError`` ignores it."""
    breaker = CircuitBreaker(ignore=TimeoutError)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with timeout(0.01):
                await breaker.call_async(_hang)

    asyncio.run(main())
    stats = breaker.get_stats()
    assert (stats["total_failures"], stats["total_ignored"]) == (0, 1)


def test_plain_cancellation_stays_ignored() -> None:
    """``task.cancel()``, with or without a deadline that has time left, is no failure."""
    breaker = CircuitBreaker(failure_threshold=1)

    async def guarded() -> None:
        async with deadline(60.0):
            await breaker.call_async(_hang)

    async def main() -> None:
        for body in (breaker.call_async(_hang), guarded()):
            task = asyncio.ensure_future(body)
            await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
    stats = breaker.get_stats()
    assert (stats["total_failures"], stats["total_ignored"]) == (0, 2)
    assert breaker.state is CircuitState.CLOSED


def test_a_cancelled_half_open_trial_frees_its_slot_at_once() -> None:
    """A trial task cancelled while it runs frees the only slot for the next call."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=0.01)

    async def main() -> None:
        with contextlib.suppress(ConnectionError):
            await breaker.call_async(_fail)
        await asyncio.sleep(0.02)
        task = asyncio.ensure_future(breaker.call_async(_hang))  # takes the only slot
        await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await breaker.call_async(_ok) == 1  # the slot is free again
        assert breaker.state is CircuitState.CLOSED

    asyncio.run(main())


async def _fail() -> None:
    raise ConnectionError


async def _ok() -> int:
    return 1
