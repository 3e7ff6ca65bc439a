"""Trip policies and their O(1) windows."""

from __future__ import annotations

import math
import tracemalloc

import hypothesis.strategies as st
import pytest
from hypothesis import given

from _helpers import fail, ok
from resilience import (
    CircuitBreaker,
    CircuitState,
    ConsecutiveFailures,
    CountWindow,
    FailureRate,
    TimeWindow,
)
from resilience._windows import bucket_count
from resilience.testing import FakeClock


@given(
    size=st.integers(1, 30),
    outcomes=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=120),
)
def test_count_window_totals_match_the_last_n_calls(
    size: int, outcomes: list[tuple[bool, bool]]
) -> None:
    """A count window's running totals equal a recount of the last ``size`` calls."""
    ring = CountWindow(size)._ring()
    for failed, slow in outcomes:
        ring.add(0.0, failed, slow)
    last = outcomes[-size:]
    assert ring.calls == len(last)
    assert ring.failures == sum(f for f, _ in last)
    assert ring.slow == sum(s for _, s in last)


@given(
    seconds=st.sampled_from([1.0, 2.5, 3.0, 10.0, 60.0, 300.0, 86400.0]),
    steps=st.lists(
        st.tuples(st.floats(0, 4, allow_nan=False), st.booleans(), st.booleans()), max_size=80
    ),
)
def test_time_window_totals_match_a_recount(
    seconds: float, steps: list[tuple[float, bool, bool]]
) -> None:
    """A time window holds exactly the calls of its latest ``bucket_count(seconds)`` buckets."""
    ring = TimeWindow(seconds)._ring()
    count = bucket_count(seconds)
    width = seconds / count
    now = 100.0
    seen: list[tuple[float, bool, bool]] = []
    for gap, failed, slow in steps:
        now += gap
        ring.add(now, failed, slow)
        seen.append((now, failed, slow))
    now += 1.0
    ring.advance(now)
    current = math.floor(now / width)
    kept = [c for c in seen if math.floor(c[0] / width) > current - count]
    assert ring.calls == len(kept)
    assert ring.failures == sum(c[1] for c in kept)
    assert ring.slow == sum(c[2] for c in kept)


def test_recording_is_constant_memory_whatever_the_calls() -> None:
    """Recording many calls in a window allocates nothing per call."""
    ring = CountWindow(1000)._ring()
    for _ in range(2000):
        ring.add(0.0, True, False)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(20_000):
        ring.add(0.0, i % 2 == 0, False)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 1024


def test_failure_rate_waits_for_minimum_calls() -> None:
    """The rate is None and nothing trips before ``minimum_calls``; then >= threshold opens."""
    breaker = CircuitBreaker(policy=FailureRate(threshold=0.5, minimum_calls=4))
    fail(breaker, 3)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["failure_rate"] is None
    ok(breaker)
    assert breaker.state is CircuitState.OPEN  # 3 / 4 >= 0.5


def test_failure_rate_boundary_is_inclusive() -> None:
    """A rate exactly at the threshold opens, even where float products would round."""
    breaker = CircuitBreaker(policy=FailureRate(threshold=0.3, minimum_calls=10))
    ok(breaker, 7)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["failure_rate"] is None
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_reports_the_window_rate() -> None:
    """``failure_rate``, ``failure_count`` and ``success_count`` describe the window."""
    breaker = CircuitBreaker(
        policy=FailureRate(threshold=0.9, window=CountWindow(4), minimum_calls=2)
    )
    ok(breaker, 3)
    fail(breaker, 2)  # the window now holds ok, ok, fail, fail
    stats = breaker.get_stats()
    assert stats["failure_rate"] == 0.5
    assert (stats["failure_count"], stats["success_count"]) == (2, 2)


def test_small_count_window_caps_minimum_calls() -> None:
    """A count window smaller than ``minimum_calls`` judges the rate once it is full."""
    breaker = CircuitBreaker(policy=FailureRate(threshold=1.0, window=CountWindow(3)))
    fail(breaker, 3)
    assert breaker.state is CircuitState.OPEN


def test_time_window_forgets_old_failures(clock: FakeClock) -> None:
    """Failures older than the time window no longer count."""
    policy = FailureRate(threshold=0.5, window=TimeWindow(10.0), minimum_calls=3)
    breaker = CircuitBreaker(policy=policy, clock=clock)
    fail(breaker, 2)
    clock.advance(10.0)
    ok(breaker, 2)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED  # 1 failure of 3 in the window
    assert breaker.get_stats()["failure_rate"] == pytest.approx(1 / 3)


def test_slow_calls_trip_at_the_slow_rate(clock: FakeClock) -> None:
    """Calls lasting at least ``slow_call_duration`` count as slow; enough of them open."""
    policy = FailureRate(threshold=1.0, minimum_calls=4, slow_call_duration=2.0, slow_call_rate=0.5)
    breaker = CircuitBreaker(policy=policy, clock=clock)

    def lasting(seconds: float) -> str:
        clock.advance(seconds)
        return "done"

    breaker.call(lasting, 1.999)
    breaker.call(lasting, 2.0)  # exactly the limit: slow
    breaker.call(lasting, 0.0)
    assert breaker.get_stats()["slow_calls"] == 1
    breaker.call(lasting, 5.0)
    assert breaker.state is CircuitState.OPEN


def test_slow_call_duration_alone_only_reports(clock: FakeClock) -> None:
    """Without ``slow_call_rate``, slow calls are counted but never trip."""
    breaker = CircuitBreaker(
        policy=FailureRate(minimum_calls=1, slow_call_duration=1.0), clock=clock
    )
    for _ in range(5):
        breaker.call(clock.advance, 1.0)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["slow_calls"] == 5


def test_policy_replaces_failure_threshold() -> None:
    """``policy=`` wins over ``failure_threshold``."""
    breaker = CircuitBreaker(failure_threshold=1, policy=ConsecutiveFailures(3))
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.policy == ConsecutiveFailures(3)
    assert not breaker.policy.timed
    assert FailureRate(window=TimeWindow(5.0)).timed


@given(
    size=st.integers(1, 20),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.booleans(), st.booleans()),
            st.tuples(st.just("skip"), st.integers(0, 45), st.just(False)),
            st.tuples(st.just("clear"), st.just(0), st.just(False)),
        ),
        max_size=60,
    ),
)
def test_count_window_skip_equals_that_many_plain_successes(
    size: int, steps: list[tuple[str, object, bool]]
) -> None:
    """``skip(k)`` leaves a count window exactly as k successes added one by one would."""
    ring = CountWindow(size)._ring()
    calls: list[tuple[bool, bool]] = []
    for kind, value, slow in steps:
        if kind == "add":
            ring.add(0.0, bool(value), slow)
            calls.append((bool(value), slow))
        elif kind == "skip":
            ring.skip(int(value))  # type: ignore[call-overload]
            calls.extend([(False, False)] * int(value))  # type: ignore[call-overload]
        else:
            ring.clear()
            calls.clear()
    last = calls[-size:]
    assert ring.calls == len(last)
    assert ring.failures == sum(f for f, _ in last)
    assert ring.slow == sum(s for _, s in last)


def test_a_rate_breaker_takes_the_lock_free_path_once_minimum_calls_are_in() -> None:
    """Over a CountWindow, closed successes go lock-free from minimum_calls on, counts exact."""
    policy = FailureRate(threshold=0.5, window=CountWindow(4), minimum_calls=3)
    breaker = CircuitBreaker(policy=policy, clock=FakeClock())
    for _ in range(2):
        ok(breaker)
        assert not breaker._circuit.fast  # a success may still trip it: under the lock
    ok(breaker)
    circuit = breaker._circuit
    assert circuit.fast
    for _ in range(5):
        ok(breaker)
    fail(breaker)
    stats = breaker.get_stats()
    assert (stats["failure_count"], stats["success_count"], stats["failure_rate"]) == (1, 3, 0.25)
    fail(breaker)
    assert breaker.state is CircuitState.OPEN  # 2 of the last 4
    assert not circuit.fast


@pytest.mark.asyncio
async def test_a_success_that_outlived_a_reset_is_not_in_the_new_window() -> None:
    """A hot-path call admitted before reset() counts in the totals, not in the new window."""
    import asyncio  # this test only

    policy = FailureRate(threshold=1.0, window=CountWindow(10), minimum_calls=2)
    breaker = CircuitBreaker(policy=policy, clock=FakeClock())
    for _ in range(2):
        await breaker.call_async(asyncio.sleep, 0)
    assert breaker._circuit.fast
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 1

    task = asyncio.create_task(breaker.call_async(slow))
    await asyncio.sleep(0)  # admitted on the hot path, now waiting
    breaker.reset()
    release.set()
    assert await task == 1
    fail(breaker)
    ok(breaker)
    stats = breaker.get_stats()
    assert (stats["failure_count"], stats["success_count"]) == (1, 1)
    assert stats["total_successes"] == 4
