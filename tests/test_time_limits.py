"""Timeout and Deadline strategies: timeout() and deadline() around each call."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import pytest

from resilience import CircuitBreaker, Deadline, Timeout, remaining


def test_timeout_interrupts_a_sync_call_in_the_main_thread() -> None:
    """A sync call past its limit is interrupted with TimeoutError."""
    with pytest.raises(TimeoutError):
        Timeout(0.02).call(threading.Event().wait, 5)


def test_timeout_cancels_an_awaited_call() -> None:
    """An awaited call past its limit is cancelled and raises TimeoutError."""
    with pytest.raises(TimeoutError):
        asyncio.run(Timeout(0.02).call_async(asyncio.sleep, 5))


def test_timeout_returns_results_and_gives_the_call_its_limit_as_deadline() -> None:
    """Inside the call, remaining() is at most the limit; the result is returned."""
    left = Timeout(3.0).call(remaining)
    assert left is not None
    assert 0 < left <= 3.0

    async def check() -> float | None:
        return remaining()

    left = asyncio.run(Timeout(3.0).call_async(check))
    assert left is not None
    assert 0 < left <= 3.0


def test_deadline_sets_the_deadline_for_sync_and_async_calls() -> None:
    """A Deadline gives the call its time in all; nested deadlines only shrink."""
    left = Deadline(4.0).call(remaining)
    assert left is not None
    assert 0 < left <= 4.0

    async def left_now() -> float | None:
        return remaining()

    async def inner() -> float | None:
        return await Deadline(10.0).call_async(left_now)  # shrinks to the outer 2 s

    left = asyncio.run(Deadline(2.0).call_async(inner))
    assert left is not None
    assert 0 < left <= 2.0


def test_a_timeout_expiring_around_a_breaker_call_counts_as_its_failure() -> None:
    """SPEC §8: a Timeout that expires around a protected call is a failure of that call."""
    breaker = CircuitBreaker(failure_threshold=1)
    with pytest.raises(TimeoutError):
        breaker.call(Timeout(0.02).call, threading.Event().wait, 5)
    assert breaker.get_stats()["total_failures"] == 1


@pytest.mark.parametrize("kind", [Timeout, Deadline], ids=["timeout", "deadline"])
def test_decorators_keep_the_function_kind(kind: Any) -> None:
    """``@Timeout(s)`` and ``@Deadline(s)`` wrap sync and async functions alike."""
    strategy = kind(5.0)

    @strategy
    def double(x: int) -> int:
        return 2 * x

    @strategy
    async def adouble(x: int) -> int:
        return 2 * x

    assert double(2) == 4
    assert asyncio.run(adouble(3)) == 6
    assert inspect.iscoroutinefunction(adouble)


@pytest.mark.parametrize(
    ("kind", "name"), [(Timeout, "timeout"), (Deadline, "deadline")], ids=["timeout", "deadline"]
)
def test_strategy_info_and_repr(kind: Any, name: str) -> None:
    """Each describes itself with its kind and ``seconds``."""
    strategy = kind(1.5)
    assert strategy._strategy_info() == {"kind": name, "name": None, "options": {"seconds": 1.5}}
    assert repr(strategy) == f"{kind.__name__}(1.5)"
    assert strategy.seconds == 1.5


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        (Timeout, 0, ValueError),
        (Timeout, float("inf"), ValueError),
        (Timeout, True, TypeError),
        (Deadline, -1, ValueError),
        (Deadline, "1", TypeError),
    ],
    ids=["timeout-zero", "timeout-inf", "timeout-bool", "deadline-negative", "deadline-str"],
)
def test_bad_seconds_fail_at_construction(kind: Any, value: Any, error: type[Exception]) -> None:
    """Bad ``seconds`` raise at construction, naming the parameter."""
    with pytest.raises(error, match="seconds"):
        kind(value)
