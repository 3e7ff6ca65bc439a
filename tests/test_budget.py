import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import RetryBudget, retry_with_backoff
from resilience.testing import FakeClock


@pytest.fixture
def clock():
    """A fake clock at 100 s."""
    return FakeClock(100.0)


def test_the_floor_allows_min_per_second_times_ten_retries(clock):
    """With no traffic, min_per_second * 10 retries are allowed in the window."""
    budget = RetryBudget(ratio=0.0, min_per_second=1.0, clock=clock)
    assert [budget._withdraw() for _ in range(11)] == [True] * 10 + [False]


def test_retries_are_limited_to_the_ratio_of_first_attempts(clock):
    """Without a floor, retries are floor(ratio * first attempts)."""
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=clock)
    for _ in range(9):
        budget._deposit()
    assert sum(budget._withdraw() for _ in range(10)) == math.floor(0.5 * 9)


def test_the_asking_calls_own_first_attempt_counts(clock):
    """A budget of ratio 1 lets a single call retry once."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    budget._deposit()
    assert budget._withdraw()
    assert not budget._withdraw()


def test_attempts_leave_the_window_after_ten_seconds(clock):
    """An attempt at t counts in (now - 10, now]: still at t + 9.9, gone at t + 10."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    budget._deposit()
    clock.advance(9.9)
    assert budget.stats()["first_attempts"] == 1
    clock.advance(0.1)
    assert budget.stats() == {"first_attempts": 0, "retries": 0, "allowed": 0}


@pytest.mark.parametrize(
    "start",
    [0.5, 0.1, 100.0, 123.456, 1e6 + 0.3],
    ids=["half", "tenth", "whole", "fraction", "large"],
)
def test_an_attempt_counts_for_between_9_9_and_10_seconds(start):
    """Kept in 0.1 s buckets, an attempt at t counts at t + 9.89 and not at t + 10."""
    clock = FakeClock(start)
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    budget._deposit()
    clock.advance(9.89)
    assert budget.stats()["first_attempts"] == 1
    clock._now = start + 10
    assert budget.stats()["first_attempts"] == 0


def test_the_reviewers_case_is_counted_for_its_full_ten_seconds():
    """An attempt at 0.5 is still counted at 10.0 (it was dropped a second early before)."""
    clock = FakeClock(0.5)
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    budget._deposit()
    clock.advance(9.5)
    assert budget.stats() == {"first_attempts": 1, "retries": 0, "allowed": 1}


def test_a_retry_leaves_the_window_at_its_own_time_plus_ten(clock):
    """A retry spent at t frees its unit by t + 10, not at a whole second."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, clock=clock)
    clock.advance(0.25)
    assert budget._withdraw()
    clock.advance(9.7)
    assert not budget._withdraw()
    clock._now = 100.25 + 10
    assert budget._withdraw()


def test_memory_does_not_grow_with_the_call_rate(clock):
    """Half a million attempts at distinct times leave the budget's size unchanged."""
    import tracemalloc

    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    for _ in range(1000):  # every bucket used once
        budget._deposit()
        clock._now += 0.01
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(500_000):
            budget._deposit()
            clock._now += 1e-5
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000  # bytes: a few ints changing size, nothing per call
    assert len(budget._stamps) == len(budget._firsts) == 100


# Times a clock may read: whole seconds, fractions, and the awkward floats between.
_steps = st.one_of(
    st.just(0.0),
    st.integers(min_value=0, max_value=12).map(float),
    st.floats(min_value=0.0, max_value=12.0, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 0.3, 9.999, 10.0, 1e-9]),
)
_operations = st.lists(
    st.tuples(_steps, st.sampled_from(["deposit", "withdraw", "stats"])), max_size=80
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    ratio=st.sampled_from([0.0, 0.2, 0.5, 1.0, 3.0]),
    floor=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
    operations=_operations,
)
def test_the_budget_matches_a_naive_list_of_timestamps(start, ratio, floor, operations):
    """Over random times, the budget agrees with lists of timestamps in 0.1 s buckets."""
    clock = FakeClock(start)
    budget = RetryBudget(ratio=ratio, min_per_second=floor, clock=clock)
    first: list[float] = []
    retries: list[float] = []
    for step, operation in operations:
        clock.advance(step)
        now = clock()

        def live(times: list[float], now: float = now) -> list[float]:
            # Bucket floor(10 t) counts while the current bucket is less than 100 later:
            # for between 9.9 and 10 seconds, never past t + 10.
            kept = [t for t in times if math.floor(now * 10) < math.floor(t * 10) + 100]
            assert all(now < t + 10 for t in kept)
            return kept

        first, retries = live(first), live(retries)
        allowed = math.floor(ratio * len(first) + floor * 10)
        if operation == "deposit":
            budget._deposit()
            first.append(now)
        elif operation == "withdraw":
            expected = len(retries) < allowed
            assert budget._withdraw() is expected
            if expected:
                retries.append(now)
        else:
            assert budget.stats() == {
                "first_attempts": len(first),
                "retries": len(retries),
                "allowed": allowed,
            }


def test_spent_retries_are_refunded_as_they_leave_the_window(clock):
    """Retries spent ten seconds ago no longer count against the budget."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, clock=clock)
    assert budget._withdraw()
    assert not budget._withdraw()
    clock.advance(5)
    assert not budget._withdraw()
    clock.advance(5)
    assert budget._withdraw()


def test_a_long_pause_empties_the_window(clock):
    """After minutes without calls nothing old is counted."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    for _ in range(5):
        budget._deposit()
        clock.advance(1)
    clock.advance(600)
    assert budget.stats()["first_attempts"] == 0


def test_a_clock_stepping_back_counts_at_the_newest_time():
    """An injected clock that goes back is read as standing still."""
    clock = FakeClock(50.0)
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    budget._deposit()
    clock._now = 45.0  # only a fake clock can do this
    budget._deposit()
    assert budget.stats()["first_attempts"] == 2


def test_stats_report_the_window(clock):
    """stats() gives first attempts, retries and what is allowed now."""
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, clock=clock)
    for _ in range(10):
        budget._deposit()
    budget._withdraw()
    assert budget.stats() == {"first_attempts": 10, "retries": 1, "allowed": 12}


def test_counts_are_exact_under_threads(clock):
    """Eight threads recording at once lose no count."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)

    def work():
        for _ in range(1000):
            budget._deposit()
            budget._withdraw()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.stats() == {"first_attempts": 8000, "retries": 8000, "allowed": 8000}


def test_a_failing_dependency_gets_at_most_ratio_more_load_under_threads(clock):
    """With a dead dependency, 8 threads' retries stay within ratio * first attempts + floor."""
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, clock=clock)
    lock = threading.Lock()
    attempts = 0

    @retry_with_backoff(max_retries=3, base_delay=0.0, budget=budget)
    def dead() -> None:
        nonlocal attempts
        with lock:
            attempts += 1
        raise ConnectionError("down")

    def work():
        for _ in range(250):
            with pytest.raises(ConnectionError):
                dead()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = 8 * 250
    retries = attempts - first
    bound = math.floor(0.2 * first + 1.0 * 10)
    assert bound - 3 <= retries <= bound


def test_a_spent_budget_fails_the_call_at_once_with_its_error(clock):
    """When the budget is spent a failing call makes one attempt and raises its error."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock)
    calls = []
    error = ConnectionError("down")

    @retry_with_backoff(max_retries=5, base_delay=0.0, budget=budget)
    def dead() -> None:
        calls.append(1)
        raise error

    with pytest.raises(ConnectionError) as caught:
        dead()
    assert caught.value is error
    assert len(calls) == 1
    assert "the retry budget is spent" in caught.value.__notes__[0]


def test_one_budget_is_shared_by_several_functions(clock):
    """Retries of two functions draw on one budget."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, clock=clock)
    calls = []

    def make():
        @retry_with_backoff(max_retries=5, base_delay=0.0, budget=budget)
        def dead() -> None:
            calls.append(1)
            raise ConnectionError

        return dead

    for dead in (make(), make()):
        with pytest.raises(ConnectionError):
            dead()
    assert len(calls) == 2 + 2


def test_properties_and_repr_show_the_settings():
    """The settings read back, and repr names them."""
    budget = RetryBudget(ratio=0.1, min_per_second=2.0)
    assert (budget.ratio, budget.min_per_second) == (0.1, 2.0)
    assert repr(budget) == "RetryBudget(ratio=0.1, min_per_second=2.0)"


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"ratio": -0.1}, ValueError, "ratio must be >= 0, got -0.1"),
        ({"ratio": True}, TypeError, "ratio must be a number, got True"),
        ({"ratio": float("inf")}, ValueError, "ratio must be finite"),
        ({"min_per_second": -1}, ValueError, "min_per_second must be >= 0, got -1"),
        ({"min_per_second": "10"}, TypeError, "min_per_second must be a number, got '10'"),
        ({"clock": 3.0}, TypeError, "clock must be callable, got 3.0"),
    ],
    ids=["negative-ratio", "bool-ratio", "infinite-ratio", "negative-floor", "str-floor", "clock"],
)
def test_bad_arguments_are_refused(kwargs, error, words):
    """Bad arguments raise TypeError/ValueError naming the parameter and the value."""
    with pytest.raises(error, match=words):
        RetryBudget(**kwargs)
