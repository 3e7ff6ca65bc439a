"""AdaptiveLimit: AIMD, gradient and vegas move the limit as their descriptions say."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience import AdaptiveLimit, Bulkhead
from resilience.testing import FakeClock


def _windows(limit: AdaptiveLimit, rtt: float, count: int, *, failed: bool = False) -> None:
    """Feed ``count`` full windows of samples with latency ``rtt``, the limit fully in use."""
    for _ in range(count):
        for _ in range(max(10, limit.limit)):
            limit._sample(rtt, limit.limit, failed=failed)


def test_aimd_grows_by_one_per_success_while_in_use() -> None:
    """AIMD adds 1 for each success when at least half the limit is in flight."""
    limit = AdaptiveLimit("aimd", initial=10)
    assert limit._sample(0.01, 5, failed=False) == 11
    assert limit._sample(0.01, 6, failed=False) == 12


def test_aimd_does_not_grow_while_the_limit_is_not_in_use() -> None:
    """A success with less than half the limit in flight leaves AIMD's limit alone."""
    limit = AdaptiveLimit("aimd", initial=10)
    assert limit._sample(0.01, 4, failed=False) == 10


def test_aimd_cuts_by_a_tenth_on_a_failure_and_respects_its_bounds() -> None:
    """A failure multiplies AIMD's limit by 0.9; the limit stays in [min_limit, max_limit]."""
    limit = AdaptiveLimit("aimd", initial=20, min_limit=15, max_limit=21)
    assert limit._sample(0.01, 20, failed=True) == 18
    assert limit._sample(0.01, 20, failed=True) == 16
    assert limit._sample(0.01, 20, failed=True) == 15
    assert limit._sample(0.01, 20, failed=True) == 15
    for _ in range(10):
        limit._sample(0.01, 20, failed=False)
    assert limit.limit == 21


@pytest.mark.parametrize("algorithm", ["gradient", "vegas"])
def test_latency_algorithms_grow_while_latency_stays_at_no_load(algorithm: Any) -> None:
    """At the no-load latency, with the limit in use, gradient and vegas raise the limit."""
    limit = AdaptiveLimit(algorithm, initial=20)
    _windows(limit, 0.010, 30)
    assert limit.limit > 25


@pytest.mark.parametrize("algorithm", ["gradient", "vegas"])
def test_latency_algorithms_shrink_when_latency_climbs(algorithm: Any) -> None:
    """Latency well above the no-load latency lowers the limit of gradient and vegas."""
    limit = AdaptiveLimit(algorithm, initial=50)
    _windows(limit, 0.010, 1)
    _windows(limit, 0.050, 20)
    assert limit.limit < 40


@pytest.mark.parametrize("algorithm", ["gradient", "vegas"])
def test_latency_algorithms_shrink_on_failures(algorithm: Any) -> None:
    """A window with a failure lowers the limit of gradient and vegas."""
    limit = AdaptiveLimit(algorithm, initial=50)
    _windows(limit, 0.010, 1)
    _windows(limit, 0.010, 3, failed=True)
    assert limit.limit < 50


@pytest.mark.parametrize("algorithm", ["gradient", "vegas"])
def test_latency_algorithms_do_not_grow_an_unused_limit(algorithm: Any) -> None:
    """While less than half the limit is in flight, latency-driven growth pauses."""
    limit = AdaptiveLimit(algorithm, initial=40)
    for _ in range(40 * 20):
        limit._sample(0.010, 3, failed=False)
    assert limit.limit == 40


def test_vegas_holds_a_moderate_queue() -> None:
    """Vegas keeps its limit when the estimated queue is between alpha and beta."""
    limit = AdaptiveLimit("vegas", initial=100)
    _windows(limit, 0.010, 1)
    # queue = 100 * (1 - 0.010 / rtt) = 9 calls, between alpha = 6 and beta = 12
    _windows(limit, 0.010 / 0.91, 5)
    assert limit.limit == 100


def test_the_no_load_latency_is_measured_again_every_500_windows() -> None:
    """Every 500 windows the limit drops to its square root and the no-load latency is re-taken."""
    limit = AdaptiveLimit("gradient", initial=16, max_limit=16)
    _windows(limit, 0.010, 1)
    assert limit._no_load == pytest.approx(0.010)
    _windows(limit, 0.030, 498)
    assert limit._no_load == pytest.approx(0.010)
    before = limit._estimate
    _windows(limit, 0.030, 1)  # the 500th window: the probe
    assert limit.limit == max(1, int(math.sqrt(before)))
    assert limit._no_load is None
    _windows(limit, 0.030, 1)  # the queue drains; this window is not measured
    assert limit._no_load is None
    _windows(limit, 0.020, 1)
    assert limit._no_load == pytest.approx(0.020)


@given(
    algorithm=st.sampled_from(["aimd", "gradient", "vegas"]),
    samples=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=10.0),
            st.integers(min_value=0, max_value=500),
            st.booleans(),
        ),
        max_size=400,
    ),
)
def test_the_limit_always_stays_within_its_bounds(algorithm: Any, samples: list[Any]) -> None:
    """Whatever the samples, the limit is an int in [min_limit, max_limit]."""
    limit = AdaptiveLimit(algorithm, initial=5, min_limit=2, max_limit=30)
    for rtt, in_flight, failed in samples:
        value = limit._sample(rtt, in_flight, failed=failed)
        assert isinstance(value, int)
        assert 2 <= value <= 30
        assert value == limit.limit


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("cubic",), {}, ValueError, "algorithm must be one of"),
        ((), {"initial": 0}, ValueError, "initial must be >= 1"),
        ((), {"initial": 300}, ValueError, "initial must be <= max_limit"),
        ((), {"min_limit": 0}, ValueError, "min_limit must be >= 1"),
        ((), {"min_limit": 5, "max_limit": 4, "initial": 5}, ValueError, "max_limit must be >= 5"),
        ((), {"initial": 2.0}, TypeError, "initial must be an int"),
        ((), {"max_limit": True}, TypeError, "max_limit must be an int"),
        ((), {"clock": 3}, TypeError, "clock must be callable"),
    ],
    ids=["algorithm", "initial", "initial-high", "min", "max", "float", "bool", "clock"],
)
def test_bad_options_fail_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Bad options raise TypeError/ValueError naming the parameter and the value."""
    with pytest.raises(error, match=match):
        AdaptiveLimit(*args, **kwargs)


def test_one_adaptive_limit_serves_one_bulkhead() -> None:
    """Giving one AdaptiveLimit to a second bulkhead is a ValueError."""
    limit = AdaptiveLimit()
    Bulkhead(limit)
    with pytest.raises(ValueError, match="already serves another bulkhead"):
        Bulkhead(limit)
    assert limit.algorithm == "gradient"


def test_a_bulkhead_feeds_its_adaptive_limit_durations_and_failures() -> None:
    """The bulkhead times calls on the limit's clock; failures lower an AIMD limit."""
    clock = FakeClock()
    pool = Bulkhead(AdaptiveLimit("aimd", initial=2, clock=clock))

    def slow() -> None:
        clock.advance(0.5)

    def boom() -> None:
        raise OSError

    with pool:
        pool.call(slow)  # two in flight, limit 2: in use, so it grows
    assert pool.limit == 3
    with pytest.raises(OSError):  # any failure counts
        pool.call(boom)
    assert pool.limit == 2  # int(3.0 * 0.9)
    assert pool.get_stats()["limit"] == 2


def test_a_cancelled_call_is_no_sample() -> None:
    """A call ended by a BaseException that is not an Exception leaves the limit alone."""
    pool = Bulkhead(AdaptiveLimit("aimd", initial=1))

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool.call(interrupted)
    assert pool.limit == 1


def test_a_raised_limit_admits_queued_callers_at_once() -> None:
    """When the limit grows, waiting callers get the new slots without another release."""
    pool = Bulkhead(AdaptiveLimit("aimd", initial=1), max_queue=5)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def hold() -> None:
        entered.release()
        assert release.wait(30)

    holder = threading.Thread(target=lambda: pool.call(hold))
    holder.start()
    entered.acquire()
    waiters = [threading.Thread(target=lambda: pool.call(hold)) for _ in range(2)]
    for thread in waiters:
        thread.start()
    for _ in range(30_000):
        if pool.get_stats()["queued"] == 2:
            break
        release.wait(0.001)
    release.set()
    for thread in [holder, *waiters]:
        thread.join()
    # 1 -> 2 when the holder finished (the raise handed a waiter its slot at once), then
    # 2 -> 3 for the first waiter; the second finished with the limit no longer in use.
    assert pool.limit == 3
    assert pool.get_stats()["total_admitted"] == 3
