"""One clock: a deadline on an injected clock, and everything that reads it (issue 10, item 9)."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience import (
    CircuitBreaker,
    Deadline,
    Pipeline,
    Retry,
    call_with_timeout,
    check_deadline,
    deadline,
    remaining,
    retry_with_backoff,
    timeout,
)
from resilience.backoff import Constant
from resilience.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

# Far from any real time.monotonic() reading, so a check that mixed the two clocks would
# see a deadline decades away (or long passed) instead of the fake one.
FAR = 1e8

HAVE_ALARM = hasattr(signal, "setitimer")


class Always:
    """Raise ConnectionError on every call, recording the fake time of each attempt."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.times: list[float] = []

    def __call__(self) -> None:
        """Record the time and fail."""
        self.times.append(self.clock())
        raise ConnectionError("down")


@pytest.fixture
def quiet_alarm() -> Iterator[None]:
    """Give the test SIGALRM with no handler and no timer (pytest-timeout's are put back)."""
    if not HAVE_ALARM:
        yield
        return
    handler = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, handler)
    if delay > 0:
        signal.setitimer(signal.ITIMER_REAL, delay, interval)


# --- remaining() on the deadline's own clock ----------------------------------------


@given(
    start=st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    seconds=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    steps=st.lists(st.floats(min_value=0.0, max_value=1e5, allow_nan=False), max_size=20),
)
def test_remaining_is_due_minus_the_clock_clamped_at_zero(
    start: float, seconds: float, steps: list[float]
) -> None:
    """With a FakeClock, remaining() == max(0, due - clock()) after any sequence of advances."""
    clock = FakeClock(start)
    with deadline(seconds, clock=clock):
        due = start + seconds
        assert remaining() == max(0.0, due - clock())
        for step in steps:
            clock.advance(step)
            assert remaining() == max(0.0, due - clock())
    assert remaining() is None


def test_real_time_does_not_move_a_fake_deadline() -> None:
    """A deadline on a FakeClock reads only that clock: real time passing changes nothing."""
    clock = FakeClock(FAR)
    with deadline(5.0, clock=clock):
        assert remaining() == 5.0
        time.sleep(0.001)  # a deliberate sliver of real time
        assert remaining() == 5.0
        clock.advance(5.0)
        assert remaining() == 0.0


def test_check_deadline_follows_the_fake_clock() -> None:
    """check_deadline() reads the innermost deadline's clock too."""
    clock = FakeClock(FAR)
    with deadline(2.0, clock=clock):
        assert check_deadline(2.0) == 2.0
        clock.advance(1.5)
        with pytest.raises(TimeoutError, match=r"only 0\.500 s left"):
            check_deadline(1.0)
        clock.advance(0.5)
        with pytest.raises(TimeoutError, match="has passed"):
            check_deadline()


@pytest.mark.asyncio
async def test_a_task_inherits_the_deadline_with_its_clock() -> None:
    """A task created inside the block reads the deadline on its fake clock."""
    clock = FakeClock()

    async def read() -> float | None:
        return remaining()

    async with deadline(3.0, clock=clock):
        clock.advance(1.0)
        task = asyncio.create_task(read())
    assert await task == 2.0


def test_a_thread_in_a_copied_context_reads_the_fake_clock() -> None:
    """contextvars.copy_context() carries the deadline and its clock into a thread."""
    clock = FakeClock()
    seen: list[float | None] = []
    with deadline(4.0, clock=clock):
        context = contextvars.copy_context()
    clock.advance(1.0)
    thread = threading.Thread(target=context.run, args=(lambda: seen.append(remaining()),))
    thread.start()
    thread.join()
    assert seen == [3.0]


# --- nesting on two clocks -----------------------------------------------------------


def test_an_inner_deadline_that_leaves_less_time_reads_its_own_clock() -> None:
    """The inner deadline wins when it has less left, and remaining() follows its clock."""
    outer_clock, inner_clock = FakeClock(FAR), FakeClock(0.0)
    with deadline(10.0, clock=outer_clock):
        with deadline(3.0, clock=inner_clock):
            outer_clock.advance(5.0)  # not the innermost deadline's clock
            assert remaining() == 3.0
            inner_clock.advance(1.0)
            assert remaining() == 2.0
        assert remaining() == 5.0  # the outer one again, on its own clock


def test_an_inner_deadline_never_extends_one_on_another_clock() -> None:
    """When the outer deadline has less left, it stays innermost, read on its own clock."""
    outer_clock, inner_clock = FakeClock(0.0), FakeClock(FAR)
    with deadline(2.0, clock=outer_clock):
        outer_clock.advance(1.0)  # 1 s left outside; the inner asks for 30 s
        with deadline(30.0, clock=inner_clock):
            inner_clock.advance(100.0)  # the inner clock does not matter now
            assert remaining() == 1.0
            outer_clock.advance(0.25)
            assert remaining() == 0.75
        assert remaining() == 0.75


def test_the_comparison_is_made_once_on_entry_by_seconds_left() -> None:
    """Equal time left keeps the outer deadline; the clocks are not compared afterwards."""
    outer_clock, inner_clock = FakeClock(0.0), FakeClock(FAR)
    with deadline(4.0, clock=outer_clock):
        outer_clock.advance(1.0)
        with deadline(3.0, clock=inner_clock):  # 3 s left on both: the outer one stays
            inner_clock.advance(3.0)
            assert remaining() == 3.0
        with deadline(2.5, clock=inner_clock):  # less than the outer's 3 s: it wins
            outer_clock.advance(3.0)  # the outer passes, but is no longer consulted
            assert remaining() == 2.5


@given(
    outer_seconds=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    inner_seconds=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    before=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    same_clock=st.booleans(),
    after=st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=100.0, allow_nan=False)),
        max_size=8,
    ),
)
def test_nested_deadlines_only_shrink_whatever_the_clocks(
    outer_seconds: float,
    inner_seconds: float,
    before: float,
    same_clock: bool,
    after: list[tuple[bool, float]],
) -> None:
    """The inner block sees min(outer left, inner seconds) on entry, then only its winner's clock."""
    outer_clock = FakeClock(FAR)
    inner_clock = outer_clock if same_clock else FakeClock(0.0)
    outer_due = FAR + outer_seconds
    with deadline(outer_seconds, clock=outer_clock):
        outer_clock.advance(before)
        outer_left = outer_due - outer_clock()
        with deadline(inner_seconds, clock=inner_clock):
            inner_wins = inner_seconds < outer_left
            winner = inner_clock if inner_wins else outer_clock
            due = inner_clock() + inner_seconds if inner_wins else outer_due
            left = remaining()
            assert left == max(0.0, due - winner())
            assert left == pytest.approx(max(0.0, min(outer_left, inner_seconds)), abs=1e-7)
            for move_outer, step in after:
                (outer_clock if move_outer else inner_clock).advance(step)
                assert remaining() == max(0.0, due - winner())
        assert remaining() == max(0.0, outer_due - outer_clock())


def test_check_deadline_takes_an_int_minimum() -> None:
    """An int min_remaining is as good as a float."""
    clock = FakeClock()
    with deadline(3.0, clock=clock):
        assert check_deadline(2) == 3.0


def test_a_fake_deadline_inside_a_real_one() -> None:
    """A shorter fake deadline inside a real deadline follows the fake clock exactly."""
    clock = FakeClock()
    with deadline(60.0), deadline(5.0, clock=clock):
        assert remaining() == 5.0
        clock.advance(5.0)
        assert remaining() == 0.0


def test_a_real_deadline_inside_a_shorter_fake_one_keeps_the_fake_one() -> None:
    """A longer real deadline inside a fake one does not replace it."""
    clock = FakeClock(FAR)
    with deadline(1.0, clock=clock), deadline(60.0):
        assert remaining() == 1.0


# --- retries stop on the deadline's clock --------------------------------------------


def test_a_fake_retry_inside_a_fake_deadline_stops_on_fake_time() -> None:
    """Attempts at 0, 2 and 4 s; the next sleep would reach the 5 s deadline, so it stops."""
    clock = FakeClock(FAR)
    flaky = Always(clock)
    retry = Retry(max_retries=10, backoff=Constant(2.0), clock=clock, sleep=clock.sleep)
    with deadline(5.0, clock=clock), pytest.raises(ConnectionError) as caught:
        retry.call(flaky)
    assert [t - FAR for t in flaky.times] == [0.0, 2.0, 4.0]
    assert clock() - FAR == 4.0  # it never slept to or past the deadline
    assert "would reach the deadline (1.000s left)" in "\n".join(caught.value.__notes__)


def test_a_sleep_that_would_land_exactly_on_the_deadline_is_not_taken() -> None:
    """A delay equal to the time left stops the retry: the next attempt would start too late."""
    clock = FakeClock()
    flaky = Always(clock)
    retry = Retry(max_retries=10, backoff=Constant(2.0), clock=clock, sleep=clock.sleep)
    with deadline(4.0, clock=clock), pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.times == [0.0, 2.0]


@given(
    seconds=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    delays=st.lists(
        st.floats(min_value=0.0, max_value=1e3, allow_nan=False), min_size=1, max_size=12
    ),
)
def test_fake_time_never_passes_the_deadline(seconds: float, delays: list[float]) -> None:
    """Whatever the delays, a fake retry sleeps only while the next attempt starts in time."""
    clock = FakeClock(FAR)
    flaky = Always(clock)
    retry = Retry(
        max_retries=len(delays), backoff=lambda n: delays[n - 1], clock=clock, sleep=clock.sleep
    )
    due = FAR + seconds
    with deadline(seconds, clock=clock), pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.times[-1] == clock()  # it stopped after an attempt, not after a sleep
    assert all(t <= due for t in flaky.times)
    made = len(flaky.times)
    if made <= len(delays):  # it stopped early: the next sleep would have reached the deadline
        assert delays[made - 1] >= due - clock()


def test_the_decorator_stops_on_fake_time_too() -> None:
    """@retry_with_backoff with a fake clock and sleep stops at a fake deadline."""
    clock = FakeClock()
    flaky = Always(clock)
    wrapped = retry_with_backoff(
        max_retries=10, base_delay=1.0, jitter=False, clock=clock, sleep=clock.sleep
    )(flaky)
    with deadline(6.0, clock=clock), pytest.raises(ConnectionError):
        wrapped()
    assert flaky.times == [0.0, 1.0, 3.0]  # the next wait, 4 s, would reach 6 s at 7 s


def test_unlimited_attempts_stop_at_a_fake_deadline() -> None:
    """max_retries=None is bounded by a fake deadline, and stops on fake time."""
    clock = FakeClock()
    flaky = Always(clock)
    retry = Retry(max_retries=None, backoff=Constant(1.0), clock=clock, sleep=clock.sleep)
    with deadline(10.0, clock=clock), pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.times == [float(n) for n in range(10)]


def test_the_extras_path_checks_the_fake_deadline() -> None:
    """With max_elapsed and min_delay set, the deadline is still read on its own clock."""
    clock = FakeClock(FAR)
    flaky = Always(clock)
    retry = Retry(
        max_retries=10,
        backoff=Constant(1.0),
        min_delay=2.0,
        max_elapsed=100.0,
        clock=clock,
        sleep=clock.sleep,
    )
    with deadline(5.0, clock=clock), pytest.raises(ConnectionError):
        retry.call(flaky)
    assert [t - FAR for t in flaky.times] == [0.0, 2.0, 4.0]


def test_a_fake_retry_inside_a_long_real_deadline_is_not_cut_short() -> None:
    """Fake sleeps do not use up a real deadline: the retry runs out of attempts instead."""
    clock = FakeClock()
    flaky = Always(clock)
    retry = Retry(max_retries=3, backoff=Constant(10.0), clock=clock, sleep=clock.sleep)
    with deadline(60.0), pytest.raises(ConnectionError) as caught:
        retry.call(flaky)  # 30 fake seconds of waits, each compared with the real 60 s left
    assert flaky.times == [0.0, 10.0, 20.0, 30.0]
    assert "max_retries=3 reached" in "\n".join(caught.value.__notes__)


def test_async_fake_retry_inside_a_fake_deadline_stops_on_fake_time() -> None:
    """The async form with FakeClock.asleep stops before sleeping past the fake deadline."""
    clock = FakeClock(FAR)
    times: list[float] = []

    async def flaky() -> None:
        times.append(clock())
        raise ConnectionError("down")

    retry = Retry(max_retries=10, backoff=Constant(2.0), clock=clock, sleep=clock.asleep)

    async def main() -> None:
        async with deadline(5.0, clock=clock):
            await retry.call_async(flaky)

    with pytest.raises(ConnectionError):
        asyncio.run(main())
    assert [t - FAR for t in times] == [0.0, 2.0, 4.0]
    assert clock() - FAR == 4.0


def test_async_decorator_stops_on_fake_time() -> None:
    """An async function decorated with a fake-clock retry stops at the fake deadline."""
    clock = FakeClock()
    times: list[float] = []

    @retry_with_backoff(
        max_retries=None, base_delay=1.0, jitter=False, clock=clock, sleep=clock.asleep
    )
    async def flaky() -> None:
        times.append(clock())
        raise ConnectionError("down")

    async def main() -> None:
        async with deadline(8.0, clock=clock):
            await flaky()

    with pytest.raises(ConnectionError):
        asyncio.run(main())
    assert times == [0.0, 1.0, 3.0, 7.0]  # waits 1, 2, 4; the next 8 s would pass 8


# --- the Deadline strategy -------------------------------------------------------------


def test_deadline_strategy_keeps_the_deadline_on_its_clock() -> None:
    """Deadline(seconds, clock=...) sets a deadline on that clock for each call."""
    clock = FakeClock()
    strategy = Deadline(5.0, clock=clock)

    def left_after_two() -> float | None:
        clock.advance(2.0)
        return remaining()

    assert strategy.call(left_after_two) == 3.0
    assert strategy.clock is clock
    assert strategy._strategy_info()["options"] == {"seconds": 5.0, "clock": clock}
    assert repr(strategy) == f"Deadline(5.0, clock={clock!r})"


def test_a_pipeline_with_a_fake_deadline_and_a_fake_retry_stops_on_fake_time() -> None:
    """Pipeline(Deadline(clock=fake), Retry(clock=fake, sleep=fake)) stops exactly in time."""
    clock = FakeClock(FAR)
    flaky = Always(clock)
    pipeline = Pipeline(
        Deadline(5.0, clock=clock),
        Retry(max_retries=10, backoff=Constant(2.0), clock=clock, sleep=clock.sleep),
    )
    with pytest.raises(ConnectionError):
        pipeline.call(flaky)
    assert [t - FAR for t in flaky.times] == [0.0, 2.0, 4.0]


def test_async_deadline_strategy_reads_its_clock() -> None:
    """Deadline.call_async sets the deadline on the injected clock too."""
    clock = FakeClock()

    async def left() -> float | None:
        await clock.asleep(1.5)
        return remaining()

    assert asyncio.run(Deadline(2.0, clock=clock).call_async(left)) == 0.5


# --- timeout(), call_with_timeout() and breakers inside a deadline on an injected clock --


def test_timeout_takes_the_fake_seconds_left_as_real_seconds(quiet_alarm: None) -> None:
    """Inside a fake deadline, timeout() limits the block to remaining() real seconds."""
    clock = FakeClock()
    with (
        pytest.raises(TimeoutError, match="enclosing deadline"),
        deadline(0.05, clock=clock),
        timeout(60.0),
    ):
        time.sleep(2 if HAVE_ALARM else 0.1)  # never advances the fake clock


def test_the_block_of_a_timeout_has_a_real_deadline(quiet_alarm: None) -> None:
    """Inside timeout(), remaining() is on the real clock its timer counts; outside, fake again."""
    clock = FakeClock()
    with deadline(30.0, clock=clock):
        with timeout(60.0):
            left = remaining()
            assert left is not None
            assert 0.0 < left <= 30.0
            clock.advance(100.0)  # the fake clock no longer bounds the block
            assert remaining() == pytest.approx(left, abs=5.0)
        assert remaining() == 0.0


def test_timeout_does_not_start_after_a_passed_fake_deadline(quiet_alarm: None) -> None:
    """When the fake deadline has passed, timeout() refuses to start the block."""
    clock = FakeClock()
    ran = False
    with deadline(1.0, clock=clock):
        clock.advance(1.0)
        with pytest.raises(TimeoutError, match="not started"), timeout(5.0):
            ran = True
    assert not ran


def test_async_timeout_takes_the_fake_seconds_left_as_real_seconds() -> None:
    """``async with timeout()`` inside a fake deadline is cut at remaining() real seconds."""
    clock = FakeClock()

    async def main() -> None:
        async with deadline(0.02, clock=clock), timeout(60.0):
            await asyncio.sleep(3600)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_an_async_timeout_in_a_fake_deadline_still_counts_as_a_breaker_failure() -> None:
    """The timeout's own deadline is real, so the breaker sees the expiry as a failure."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5)

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        async with deadline(30.0, clock=clock), timeout(0.01):
            await breaker.call_async(hang)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    stats = breaker.get_stats()
    assert (stats["total_failures"], stats["total_ignored"]) == (1, 0)


def test_call_with_timeout_takes_the_fake_seconds_left_as_real_seconds() -> None:
    """call_with_timeout() inside a fake deadline gives func a real deadline that long."""
    clock = FakeClock()
    with deadline(3.0, clock=clock):
        clock.advance(1.0)
        left = call_with_timeout(remaining, 60.0)
    assert left is not None
    assert 0.0 < left <= 2.0


# --- bad input ---------------------------------------------------------------------------


async def _async_clock() -> float:
    return 0.0


class _AsyncCallClock:
    async def __call__(self) -> float:
        return 0.0


@pytest.mark.parametrize(
    "clock",
    [None, "monotonic", 1.0, _async_clock, _AsyncCallClock()],
    ids=["none", "str", "float", "coroutine-function", "async-call"],
)
@pytest.mark.parametrize("make", [deadline, Deadline], ids=["deadline", "Deadline"])
def test_a_bad_clock_is_a_type_error_naming_it(make: Any, clock: Any) -> None:
    """deadline(clock=...) and Deadline(clock=...) refuse what is not a plain callable."""
    with pytest.raises(TypeError, match="clock"):
        make(1.0, clock=clock)


def test_a_fake_clock_deadline_repr_names_the_clock() -> None:
    """The repr shows an injected clock, and only then."""
    clock = FakeClock(1.0)
    assert repr(deadline(2.5, clock=clock)) == "deadline(2.5, clock=FakeClock(1.0))"
    assert repr(deadline(2.5)) == "deadline(2.5)"


@pytest.mark.parametrize(
    ("make", "seconds"),
    [(deadline, 2e9), (Deadline, 2e9)],
    ids=["deadline", "Deadline"],
)
def test_limits_past_what_timers_count_are_refused_at_construction(
    make: Any, seconds: float
) -> None:
    """A deadline longer than 1e9 s is a ValueError when it is made, strategy included."""
    with pytest.raises(ValueError, match="seconds must be at most"):
        make(seconds)
