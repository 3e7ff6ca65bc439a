"""Exceptions raised by signal handlers never leave a lock held or a count half made.

A main-thread ``timeout()`` raises ``TimeoutError`` from a ``SIGALRM`` handler, wherever
the interpreter happens to be. These tests fire thousands of very short timeouts around
breaker and registry calls and then check every lock and every count.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import operator
import random
import signal
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilience import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    FailureRate,
    timeout,
)
from resilience import _breaker as breaker_module
from resilience import _local as local_module
from resilience._critical import escape, interrupted, section
from resilience.testing import FakeClock

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="main-thread timeouts need SIGALRM"
)

ROUNDS = 1000
CALLS_PER_ROUND = 12
PATTERN = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]


def _counted_calls(n: int) -> tuple[Callable[[], float], Callable[[], int]]:
    """Return a C-level callable that fails on a zero divisor, and how often it ran.

    Made of C objects only (``map`` over ``operator.truediv``), so an alarm can land
    only before or after it, never inside it: each run is one pulled divisor.
    """
    divisors = iter(PATTERN * (n // len(PATTERN) + 1))
    total = len(PATTERN) * (n // len(PATTERN) + 1)
    func = map(operator.truediv, itertools.repeat(1.0), divisors).__next__
    return func, lambda: total - operator.length_hint(divisors)


def _locks_free() -> bool:
    """Tell whether every lock the breakers share is free."""
    free = []
    for lock in local_module._LOCKS:
        got = lock.acquire(blocking=False)
        free.append(got)
        if got:
            lock.release()
    return all(free)


def _hammer(body: Callable[[], None], rng: random.Random) -> int:
    """Run ``body`` under ROUNDS very short timeouts; return how many fired.

    The garbage collector is paused meanwhile: an alarm that lands in a gc callback
    (hypothesis installs one) is swallowed by Python as "unraisable", which says nothing
    about the library and which pytest would report as a failure.
    """
    fired = 0
    gc.disable()
    try:
        for _ in range(ROUNDS):
            try:
                with timeout(rng.uniform(2e-6, 3e-4)):
                    body()
            except TimeoutError:
                fired += 1
    finally:
        gc.enable()
    return fired


def _configs() -> Iterator[Any]:
    yield pytest.param({"failure_threshold": 2, "success_threshold": 2}, id="consecutive")
    yield pytest.param(
        {"policy": FailureRate(threshold=0.5, window=CountWindow(8), minimum_calls=4)},
        id="failure-rate",
    )
    yield pytest.param(
        {
            "policy": FailureRate(
                threshold=0.5,
                window=CountWindow(8),
                minimum_calls=4,
                slow_call_duration=1.0,
                slow_call_rate=1.0,
            ),
            "half_open_max_calls": 2,
        },
        id="timed",
    )
    yield pytest.param({"failure_threshold": 3, "ignore": ZeroDivisionError}, id="ignored")


@pytest.mark.parametrize("options", list(_configs()))
def test_short_timeouts_around_calls_leave_locks_free_and_counts_exact(
    options: dict[str, Any],
) -> None:
    """Thousands of alarms around calls: locks free, every run recorded once, no slot held."""
    clock = FakeClock()
    breaker = CircuitBreaker(recovery_timeout=1.0, clock=clock, **options)
    func, runs = _counted_calls(ROUNDS * CALLS_PER_ROUND)
    transitions: list[CircuitState] = []
    breaker.add_listener(lambda _b, _old, new: transitions.append(new))

    def body() -> None:
        for _ in range(CALLS_PER_ROUND):
            clock.advance(0.3)
            with contextlib.suppress(ZeroDivisionError, CircuitOpenError):
                breaker.call(func)

    fired = _hammer(body, random.Random(1))

    assert fired > ROUNDS // 10  # the alarms did land
    assert _locks_free()
    stats = breaker.get_stats()
    recorded = stats["total_successes"] + stats["total_failures"] + stats["total_ignored"]
    if breaker.policy.timed:
        # An alarm while the start time is read interrupts an admitted call before it
        # runs: a failure of that call (it timed out), with no run to match.
        assert runs() <= recorded <= runs() + fired
    else:
        assert recorded == runs()
    if "ignore" not in options:  # there, only the alarms' TimeoutErrors are failures
        assert CircuitState.OPEN in transitions
        assert CircuitState.CLOSED in transitions
    assert breaker._circuit.trial == 0  # no half-open trial slot left taken
    # Still a working breaker: after the recovery time trial calls are admitted and close it.
    clock.advance(10.0)
    for _ in range(2):
        assert breaker.call(lambda: 1) == 1
    assert breaker.state is CircuitState.CLOSED


def test_short_timeouts_around_with_blocks_leave_no_slot_or_block_behind() -> None:
    """``with breaker:`` under alarms: locks free, no trial slot held, no block left open."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=1.0, clock=clock)
    func, _ = _counted_calls(ROUNDS * CALLS_PER_ROUND)

    def body() -> None:
        for _ in range(CALLS_PER_ROUND):
            clock.advance(0.3)
            with contextlib.suppress(ZeroDivisionError, CircuitOpenError), breaker:
                func()

    assert _hammer(body, random.Random(2)) > ROUNDS // 10
    assert _locks_free()
    assert breaker_module._BLOCKS.get() == ()
    assert breaker._circuit.trial == 0  # no half-open trial slot left taken
    clock.advance(10.0)
    assert breaker.call(lambda: 1) == 1
    assert breaker.state is CircuitState.CLOSED


def test_short_timeouts_around_operators_and_stats_leave_locks_free() -> None:
    """Operator methods, stats and state reads under alarms leave every lock free."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=0.5, clock=clock, name="ops")
    steps = itertools.cycle(
        [breaker.open, breaker.reset, breaker.metrics_only, breaker.disable, breaker.close]
    )

    def body() -> None:
        for _ in range(CALLS_PER_ROUND):
            next(steps)()
            breaker.get_stats()
            breaker._metrics_row()
            clock.advance(0.2)
            _ = breaker.state

    assert _hammer(body, random.Random(3)) > ROUNDS // 10
    assert _locks_free()
    breaker.reset()
    assert breaker.get_stats()["state"] == "closed"


def test_short_timeouts_around_registry_lookups_leave_its_lock_free() -> None:
    """Creating named breakers under alarms never leaves the registry's lock held."""
    registry = BreakerRegistry()
    numbers = itertools.count()

    def body() -> None:
        for _ in range(CALLS_PER_ROUND):
            registry.get(f"svc-{next(numbers)}")

    assert _hammer(body, random.Random(4)) > ROUNDS // 10
    assert registry._lock.acquire(blocking=False)
    registry._lock.release()
    assert _locks_free()


def test_interrupted_tells_sections_from_escapes() -> None:
    """A frame inside a section is interrupted-safe; an escape called from it is not."""
    seen: dict[str, bool] = {}

    @escape
    def notify() -> None:
        seen["escape"] = interrupted(_frame())

    @section
    def critical() -> None:
        seen["section"] = interrupted(_frame())
        notify()

    critical()
    seen["outside"] = interrupted(_frame())
    assert seen == {"section": True, "escape": False, "outside": False}


def _frame() -> types.FrameType | None:
    """Return the caller's frame, as a signal handler would receive it."""
    return sys._getframe(1)


def test_sections_are_not_wrapped() -> None:
    """Marking a section returns the very same function: no cost on the call path."""

    def plain() -> int:
        return 1

    assert section(plain) is plain
    assert escape(plain) is plain


def test_an_alarm_during_a_gc_callback_waits_until_it_can_be_seen() -> None:
    """A timeout firing inside a gc callback is not swallowed: the block still times out."""
    import gc
    import time as _time

    from resilience import timeout

    entered = []

    def slow_callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not entered:
            entered.append(phase)
            deadline = _time.monotonic() + 0.05
            while _time.monotonic() < deadline:  # the alarm lands here, inside the callback
                pass

    def collect_then_spin() -> None:
        with timeout(0.01):
            gc.collect()
            deadline = _time.monotonic() + 2.0
            while _time.monotonic() < deadline:
                pass

    # Only the collection this test makes: the garbage earlier tests left (weak references
    # whose callbacks would run inside it) is collected first, and no automatic one starts.
    gc.collect()
    gc.disable()
    gc.callbacks.append(slow_callback)
    try:
        with pytest.raises(TimeoutError):
            collect_then_spin()
    finally:
        gc.callbacks.remove(slow_callback)
        gc.enable()
    assert entered == ["start"]


def test_an_alarm_during_a_finalizer_waits_until_it_can_be_seen() -> None:
    """A timeout firing inside ``__del__`` is not swallowed: the block still times out."""
    import gc
    import time as _time

    from resilience import timeout

    class Slow:
        def __del__(self) -> None:
            deadline = _time.monotonic() + 0.05
            while _time.monotonic() < deadline:
                pass

    def finalize_then_spin() -> None:
        with timeout(0.01):
            Slow()
            gc.collect()
            deadline = _time.monotonic() + 2.0
            while _time.monotonic() < deadline:
                pass

    with pytest.raises(TimeoutError):
        finalize_then_spin()
