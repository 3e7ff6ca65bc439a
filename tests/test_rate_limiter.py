"""RateLimiter: exact GCRA, costs, keys, waiting, the strategy forms, events and metrics."""

from __future__ import annotations

import asyncio
import inspect
import math
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import RateLimitedError, RateLimiter, _events, _observed, retry_with_backoff
from resilience.testing import FakeClock


def limiter(clock: FakeClock, rate: float = 2.0, **options: Any) -> RateLimiter:
    """A limiter on the fake clock."""
    return RateLimiter(rate, clock=clock, sleep=clock.sleep, **options)


# ---------------------------------------------------------------------- the algorithm


def test_a_burst_passes_at_once_then_one_per_interval(clock) -> None:
    """From idle burst calls pass; then exactly one per T = per / rate."""
    limit = limiter(clock, rate=4, per=2.0, burst=3)  # T = 0.5 s
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.49)
    assert not limit.try_acquire()
    clock.advance(0.01)
    assert limit.try_acquire()
    assert not limit.try_acquire()
    clock.advance(1.0)
    assert [limit.try_acquire() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("rate", "burst"), [(2.5, 3), (0.5, 1), (10, 10), (1e-3, 1)], ids=["2.5", "0.5", "10", "tiny"]
)
def test_burst_defaults_to_the_rate_rounded_up(clock, rate, burst) -> None:
    """burst=None means ceil(rate), at least 1."""
    assert RateLimiter(rate, clock=clock).burst == burst


def test_retry_after_is_when_the_same_request_would_pass(clock) -> None:
    """retry_after = max(tat, t) + c*T - t - burst*T, and it is then allowed."""
    limit = limiter(clock, rate=1, burst=2, max_wait=0.0)
    limit.acquire(2)
    with pytest.raises(RateLimitedError) as caught:
        limit.acquire(2)
    assert caught.value.retry_after == pytest.approx(2.0)
    assert caught.value.name is None
    assert caught.value.key is None
    clock.advance(1.999)
    assert not limit.try_acquire(2)
    clock.advance(0.001)
    assert limit.try_acquire(2)


def test_a_cost_takes_that_many_units(clock) -> None:
    """A request of cost c moves the limit by c intervals."""
    limit = limiter(clock, rate=10, burst=10)
    assert limit.try_acquire(7)
    assert limit.try_acquire(3)
    assert not limit.try_acquire(1)
    clock.advance(0.5)
    assert limit.try_acquire(5)
    assert not limit.try_acquire()


@pytest.mark.parametrize(
    ("cost", "error", "match"),
    [
        (0, ValueError, ">= 1"),
        (-1, ValueError, ">= 1"),
        (4, ValueError, "burst=3"),
        (1.0, TypeError, "int"),
        (True, TypeError, "int"),
        ("1", TypeError, "int"),
    ],
    ids=["zero", "negative", "over-burst", "float", "bool", "str"],
)
def test_a_cost_that_can_never_fit_is_refused(clock, cost, error, match) -> None:
    """A cost must be an int in [1, burst]: anything else is an error, not a denial."""
    limit = limiter(clock, rate=3)
    for attempt in (
        lambda: limit.try_acquire(cost),
        lambda: limit.acquire(cost),
        lambda: asyncio.run(limit.acquire_async(cost)),
    ):
        with pytest.raises(error, match=match):
            attempt()
    assert limit.get_stats()["total_allowed"] == 0


# ---------------------------------------------------------------------- keys


def test_keys_are_separate_limits(clock) -> None:
    """Each key has its own burst; the unkeyed limit is one more."""
    limit = limiter(clock, rate=1, burst=1)
    assert limit.try_acquire(key="a")
    assert limit.try_acquire(key="b")
    assert limit.try_acquire()
    assert not limit.try_acquire(key="a")
    with pytest.raises(RateLimitedError) as caught:
        limit.acquire(key="b")
    assert caught.value.key == "b"


def test_idle_keys_take_no_memory(clock) -> None:
    """Keys back at full burst are dropped as other keys are used, and by get_stats()."""
    limit = limiter(clock, rate=1, burst=1)
    for n in range(100):
        limit.try_acquire(key=f"tenant-{n}")
    assert limit.get_stats()["keys"] == 100
    clock.advance(1.0)
    for n in range(60):
        limit.try_acquire(key=f"new-{n}")
    assert sorted(limit._tats) == sorted(f"new-{n}" for n in range(60))  # the memory
    clock.advance(1.0)
    assert limit.get_stats()["keys"] == 0
    assert limit._tats == {}


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (1, TypeError),
        ([1], TypeError),
        (b"a", TypeError),
        ("", ValueError),
        ("a\nb", ValueError),
        ("k" * 201, ValueError),
    ],
    ids=["int", "list", "bytes", "empty", "newline", "long"],
)
def test_a_bad_key_is_refused(clock, key, error) -> None:
    """A key is a non-empty printable str of at most 200 characters."""
    limit = limiter(clock)
    with pytest.raises(error, match="key"):
        limit.try_acquire(key=key)
    with pytest.raises(error, match="key"):
        asyncio.run(limit.acquire_async(key=key))


# ---------------------------------------------------------------------- waiting


def test_acquire_waits_up_to_max_wait(clock) -> None:
    """Acquire sleeps until its slot is due when that is within max_wait, else raises."""
    limit = limiter(clock, rate=1, burst=1, max_wait=2.0)
    start = clock()
    for _ in range(4):
        limit.acquire()
    assert clock() - start == pytest.approx(3.0)  # slept 1 s for each after the first
    waits: list[float] = []
    queued = RateLimiter(1, burst=1, max_wait=2.0, clock=clock, sleep=waits.append)
    for _ in range(3):
        queued.acquire()
    with pytest.raises(RateLimitedError) as caught:
        queued.acquire()
    assert caught.value.retry_after == pytest.approx(3.0)  # behind the 2 reserved slots
    assert waits == pytest.approx([1.0, 2.0])


def test_waiters_queue_in_order_of_arrival(clock) -> None:
    """A reservation is made at once: the next caller waits behind it."""
    waits: list[float] = []
    limit = RateLimiter(1, burst=1, max_wait=10.0, clock=clock, sleep=waits.append)
    for _ in range(4):
        limit.acquire()
    assert waits == pytest.approx([1.0, 2.0, 3.0])


def test_acquire_async_waits_without_blocking_the_loop() -> None:
    """Waiting tasks sleep with asyncio.sleep: another task runs meanwhile."""
    limit = RateLimiter(100, burst=1, max_wait=1.0)
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await asyncio.gather(*(limit.acquire_async() for _ in range(5)))
        stop.set()
        await task

    asyncio.run(main())
    assert ticks > 5
    assert limit.get_stats()["total_allowed"] == 5


def test_acquire_async_with_a_fake_clock(clock) -> None:
    """A coroutine sleep is awaited; a task whose turn is beyond max_wait is refused."""
    waits: list[float] = []

    async def nap(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    limit = RateLimiter(1, burst=1, max_wait=1.0, clock=clock, sleep=nap)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(limit.acquire_async() for _ in range(3)), return_exceptions=True
        )

    first, second, third = asyncio.run(main())
    assert (first, second) == (None, None)
    assert isinstance(third, RateLimitedError)
    assert third.retry_after == pytest.approx(2.0)
    assert waits == pytest.approx([1.0])
    ticks = RateLimiter(1, burst=1, max_wait=1.0, clock=clock, sleep=clock.asleep)
    asyncio.run(ticks.acquire_async())
    asyncio.run(ticks.acquire_async())
    assert clock() == pytest.approx(1001.0)


# ---------------------------------------------------------------------- strategy forms


def test_as_a_decorator_each_call_acquires_once(clock) -> None:
    """A decorated function is refused without running once the limit is spent."""
    limit = limiter(clock, rate=2)
    ran = []

    @limit
    def work(x: int) -> int:
        ran.append(x)
        return x * 2

    assert work(1) == 2
    assert work(2) == 4
    with pytest.raises(RateLimitedError):
        work(3)
    assert ran == [1, 2]
    assert work.__name__ == "work"


def test_as_a_decorator_of_a_coroutine_function(clock) -> None:
    """An async function stays a coroutine function and acquires per call."""
    limit = RateLimiter(1, burst=1, clock=clock, sleep=clock.asleep)

    @limit
    async def work() -> str:
        return "done"

    assert inspect.iscoroutinefunction(work)
    assert asyncio.run(work()) == "done"
    with pytest.raises(RateLimitedError):
        asyncio.run(work())


def test_call_and_call_async_are_the_strategy_forms(clock) -> None:
    """call/call_async acquire one unit and run the function; _strategy_info describes it."""
    limit = limiter(clock, rate=2, name="api", max_wait=0.5)

    async def double(x: int) -> int:
        return x * 2

    assert limit.call(lambda x: x + 1, 1) == 2
    assert asyncio.run(limit.call_async(double, 2)) == 4
    assert limit.call(lambda: "waited") == "waited"  # waited 0.5 s on the fake clock
    info = limit._strategy_info()  # the strategy protocol's hook
    assert info == {
        "kind": "rate_limiter",
        "name": "api",
        "options": {"rate": 2.0, "per": 1.0, "burst": 2, "max_wait": 0.5, "storage": None},
    }


def test_retry_honours_retry_after(clock) -> None:
    """A Retry around a limiter waits at least the limiter's retry_after before retrying."""
    limit = limiter(clock, rate=1, burst=1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    @retry_with_backoff(max_retries=2, base_delay=0.01, jitter=False, sleep=sleep, clock=clock)
    def work() -> str:
        limit.acquire()
        return "ok"

    assert work() == "ok"
    assert work() == "ok"
    assert waits == pytest.approx([1.0])


# ---------------------------------------------------------------------- observed


def test_a_limited_call_is_an_event(clock) -> None:
    """Denials emit one `limited` event with the key, cost and retry_after."""
    seen: list[_events.Event] = []
    stop = _events.subscribe(seen.append)
    try:
        limit = limiter(clock, rate=1, name="api")
        limit.try_acquire(key="t1")
        limit.try_acquire(key="t1")
        with pytest.raises(RateLimitedError):
            limit.acquire(key="t1")
    finally:
        stop()
    assert [(e.name, e.kind, e.strategy) for e in seen] == [("limited", "rate_limiter", "api")] * 2
    assert seen[0].attributes["key"] == "t1"
    assert seen[0].attributes["cost"] == 1
    assert seen[0].attributes["retry_after"] == pytest.approx(1.0)


def test_stats_and_metrics_count_calls(clock) -> None:
    """get_stats() and the calls_total series count allowed and limited calls."""
    limit = limiter(clock, rate=2, name="search")
    for _ in range(5):
        limit.try_acquire()
    stats = limit.get_stats()
    assert (stats["total_allowed"], stats["total_limited"]) == (2, 3)
    assert limit in list(_observed.live())
    (family,) = limit._families()  # the observed hook
    assert family.name == "resilience_rate_limiter_calls_total"
    assert family.labels == ("name", "outcome")
    assert dict(family.samples) == {("search", "allowed"): 2.0, ("search", "limited"): 3.0}
    assert limit._health() is None


def test_an_unnamed_limiter_is_not_observed(clock) -> None:
    """Only named limiters appear in metrics."""
    limit = limiter(clock)
    assert limit not in list(_observed.live())
    assert "RateLimiter(2.0" in repr(limit)


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"rate": 0}, ValueError, "rate"),
        ({"rate": -1.0}, ValueError, "rate"),
        ({"rate": math.nan}, ValueError, "rate"),
        ({"rate": math.inf}, ValueError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"rate": "10"}, TypeError, "rate"),
        ({"per": 0}, ValueError, "per"),
        ({"per": math.inf}, ValueError, "per"),
        ({"rate": 1e-300, "per": 1e300}, ValueError, "per / rate"),
        ({"burst": 0}, ValueError, "burst"),
        ({"burst": 2.0}, TypeError, "burst"),
        ({"burst": True}, TypeError, "burst"),
        ({"burst": 2**60}, ValueError, "burst"),
        ({"max_wait": -1}, ValueError, "max_wait"),
        ({"max_wait": math.inf}, ValueError, "max_wait"),
        ({"name": ""}, ValueError, "name"),
        ({"name": 3}, TypeError, "name"),
        ({"clock": 3}, TypeError, "clock"),
        ({"sleep": 3}, TypeError, "sleep"),
        ({"storage": object(), "name": "x"}, TypeError, "storage"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_bad_options_are_refused_at_construction(options, error, match) -> None:
    """Every option is checked when the limiter is made, naming the parameter."""
    options = {"rate": 1.0, **options}
    with pytest.raises(error, match=match):
        RateLimiter(**options)


def test_an_async_clock_is_refused() -> None:
    """A coroutine function as clock would return coroutines, not seconds."""

    async def clock() -> float:
        return 0.0

    with pytest.raises(TypeError, match="clock"):
        RateLimiter(1, clock=clock)


# ---------------------------------------------------------------------- concurrency


def test_threads_never_exceed_the_burst(clock) -> None:
    """Eight threads racing on a frozen clock get exactly burst units between them."""
    limit = limiter(clock, rate=1000, burst=500)
    keyed = limiter(clock, rate=1000, burst=300)
    wins: list[int] = []
    keyed_wins: list[int] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        wins.append(sum(limit.try_acquire() for _ in range(200)))
        keyed_wins.append(sum(keyed.try_acquire(key="k") for _ in range(100)))

    threads = [threading.Thread(target=run) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sum(wins) == 500
    assert limit.get_stats()["total_limited"] == 1600 - 500
    assert sum(keyed_wins) == 300


@pytest.mark.timeout(120, method="thread")  # pytest-timeout's own SIGALRM would nest with ours
def test_interrupts_leave_no_lock_held_and_counts_whole(clock) -> None:
    """Thousands of main-thread timeouts around acquisitions: lock free, tat == counts."""
    from resilience import timeout

    interval = 2.0**-10  # exact in binary, so the sum of intervals is exact
    limit = RateLimiter(1024, burst=10**9, clock=clock)
    interrupted = 0
    for _ in range(3000):
        try:
            with timeout(1e-4):
                for _ in range(50):
                    limit.try_acquire()
                    limit.try_acquire(key="k")
        except TimeoutError:
            interrupted += 1
    assert interrupted > 1000
    assert limit._lock.acquire(blocking=False)  # the lock itself
    limit._lock.release()
    stats = limit.get_stats()
    unkeyed = limit._units  # the state itself
    anchor, keyed, tat = limit._tats["k"]
    assert unkeyed + keyed == stats["total_allowed"]
    assert tat == anchor + keyed * interval


# ---------------------------------------------------------------------- properties

rates = st.floats(min_value=0.01, max_value=1000.0)
pers = st.floats(min_value=0.01, max_value=100.0)
bursts = st.integers(min_value=1, max_value=20)


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    per=pers,
    burst=bursts,
    start=st.floats(min_value=0.0, max_value=1e7),
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=2.0), st.integers(min_value=1, max_value=20)),
        max_size=80,
    ),
)
def test_no_interval_admits_more_than_burst_plus_length_over_t(
    rate: float, per: float, burst: int, start: float, steps: list[tuple[float, int]]
) -> None:
    """Over any interval of length L at most burst + L/T units are admitted."""
    clock = FakeClock(start)
    limit = RateLimiter(rate, per, burst=burst, clock=clock)
    interval = per / rate
    admitted: list[tuple[float, int]] = []
    for advance, cost in steps:
        clock.advance(advance * interval)
        if cost <= burst and limit.try_acquire(cost):
            admitted.append((clock(), cost))
    for i, (first, _) in enumerate(admitted):
        units = 0
        for when, cost in admitted[i:]:
            units += cost
            length = when - first
            assert units <= burst + length / interval + 1e-6 * (1 + units)


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    per=pers,
    burst=bursts,
    start=st.floats(min_value=0.0, max_value=1e9),
    calls=st.integers(min_value=1, max_value=300),
)
def test_a_steady_caller_at_the_rate_is_never_denied(
    rate: float, per: float, burst: int, start: float, calls: int
) -> None:
    """Calls exactly T apart (on a large clock value too) all pass."""
    clock = FakeClock(start)
    limit = RateLimiter(rate, per, burst=burst, clock=clock)
    interval = per / rate
    for n in range(calls):
        clock._now = start + n * interval  # exact times, not summed steps
        assert limit.try_acquire(), f"call {n} at {clock()} denied"


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    per=pers,
    burst=bursts,
    start=st.floats(min_value=0.0, max_value=1e9),
    calls=st.integers(min_value=1, max_value=300),
)
def test_a_caller_at_the_rate_after_spending_the_burst_is_never_denied(
    rate: float, per: float, burst: int, start: float, calls: int
) -> None:
    """With the burst spent at once, calls exactly T apart still all pass, at the boundary."""
    clock = FakeClock(start)
    limit = RateLimiter(rate, per, burst=burst, clock=clock)
    interval = per / rate
    assert limit.try_acquire(burst)
    for n in range(1, calls + 1):
        clock._now = start + n * interval  # exact times, not summed steps
        assert limit.try_acquire(), f"call {n} at {clock()} denied"


def test_the_options_are_readable(clock) -> None:
    """rate, per, burst, max_wait and name read back as given (burst defaulted)."""
    limit = RateLimiter(2.5, per=10.0, max_wait=0.25, name="x", clock=clock)
    assert (limit.rate, limit.per, limit.burst, limit.max_wait, limit.name) == (
        2.5,
        10.0,
        3,
        0.25,
        "x",
    )


def test_an_unkeyed_refusal_is_an_event_too(clock) -> None:
    """The inline fast path reports its refusals like the others."""
    seen: list[_events.Event] = []
    stop = _events.subscribe(seen.append)
    try:
        limit = limiter(clock, rate=1, name="fast")
        assert limit.try_acquire()
        assert not limit.try_acquire()
    finally:
        stop()
    assert [(e.name, e.attributes["key"]) for e in seen] == [("limited", None)]
    assert seen[0].attributes["retry_after"] == pytest.approx(1.0)


def test_acquire_async_with_a_plain_sleep(clock) -> None:
    """A plain function as sleep is called, not awaited, by acquire_async."""
    waits: list[float] = []
    limit = RateLimiter(2, burst=1, max_wait=1.0, clock=clock, sleep=waits.append)

    async def main() -> None:
        await limit.acquire_async()
        await limit.acquire_async()

    asyncio.run(main())
    assert waits == pytest.approx([0.5])
