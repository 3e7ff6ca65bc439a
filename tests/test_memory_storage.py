"""resilience.testing.InMemoryStorage: the Redis script's state machine, in this process."""

from __future__ import annotations

import threading

import pytest

from resilience import (
    CircuitBreaker,
    CircuitState,
    ConsecutiveFailures,
    CountWindow,
    FailureRate,
    TimeWindow,
)
from resilience._stored import storage_config
from resilience.testing import FakeClock, InMemoryStorage

CONSECUTIVE = storage_config(
    CircuitBreaker(failure_threshold=2, recovery_timeout=5.0)._settings,
    lambda _n: 5.0,
)


def test_bad_arguments_are_refused_naming_the_parameter() -> None:
    """A clock that is not a sync callable, a bad cache_ttl or mode: errors at construction."""
    with pytest.raises(TypeError, match="clock"):
        InMemoryStorage(clock=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_ttl"):
        InMemoryStorage(cache_ttl=1.0)
    with pytest.raises(ValueError, match="on_storage_error"):
        InMemoryStorage(on_storage_error="maybe")  # type: ignore[arg-type]
    assert InMemoryStorage(cache_ttl=0.05, on_storage_error="open").cache_ttl == 0.05


def test_reads_and_orders_on_unknown_circuits() -> None:
    """An unknown circuit reads None; a non-creating order leaves it alone; bad states raise."""
    storage = InMemoryStorage(clock=FakeClock(1000.0))
    assert storage.read("nope") is None
    assert storage.force("nope", CircuitState.FORCED_OPEN, create=False) is None
    assert storage.names() == []
    with pytest.raises(ValueError, match="state"):
        storage.force("nope", CircuitState.OPEN)
    reply = storage.force("made", CircuitState.FORCED_OPEN)
    assert reply is not None
    assert reply.state is CircuitState.FORCED_OPEN
    assert reply.retry_after is None
    assert storage.names() == ["made"]
    assert repr(storage) == "InMemoryStorage(circuits=1)"


def test_a_trip_and_a_trial_with_the_storage_clock() -> None:
    """Two failures open; retry_after counts down on the storage's clock; a trial closes it."""
    clock = FakeClock(1000.0)
    storage = InMemoryStorage(clock=clock)
    gen = storage.admit("svc", CONSECUTIVE).generation
    reply = storage.record("svc", CONSECUTIVE, generation=gen, outcomes="ff")
    assert (reply.state, reply.retry_after, reply.opened_at) == (CircuitState.OPEN, 5.0, 1000.0)
    clock.advance(2.0)
    assert storage.admit("svc", CONSECUTIVE).admitted is False
    assert storage.read("svc")["retry_after"] == 3.0  # type: ignore[index]
    clock.advance(3.0)
    trial = storage.admit("svc", CONSECUTIVE)
    assert (trial.state, trial.admitted) == (CircuitState.HALF_OPEN, True)
    assert storage.admit("svc", CONSECUTIVE).admitted is False  # one trial slot
    reply = storage.record("svc", CONSECUTIVE, generation=trial.generation, outcomes="s")
    assert reply.state is CircuitState.CLOSED
    stats = storage.read("svc")
    assert stats is not None
    assert (stats["total_rejected"], stats["total_failures"], stats["total_successes"]) == (
        2,
        2,
        1,
    )


def test_a_lost_trial_slot_is_given_back_after_its_lease() -> None:
    """A trial whose outcome never comes frees its slot after 30 s, as the script's lease."""
    clock = FakeClock(1000.0)
    storage = InMemoryStorage(clock=clock)
    gen = storage.admit("svc", CONSECUTIVE).generation
    storage.record("svc", CONSECUTIVE, generation=gen, outcomes="ff")
    clock.advance(5.0)
    assert storage.admit("svc", CONSECUTIVE).admitted is True
    clock.advance(29.0)
    assert storage.admit("svc", CONSECUTIVE).admitted is False
    clock.advance(1.0)
    assert storage.admit("svc", CONSECUTIVE).admitted is True


def test_outcomes_of_an_old_generation_count_in_totals_only() -> None:
    """Stale outcomes and outcomes after a mid-batch transition steer nothing."""
    storage = InMemoryStorage(clock=FakeClock(1000.0))
    gen = storage.admit("svc", CONSECUTIVE).generation
    reply = storage.record("svc", CONSECUTIVE, generation=gen, outcomes="fffs", stale="F")
    assert reply.state is CircuitState.OPEN
    stats = storage.read("svc")
    assert stats is not None
    assert (stats["failure_count"], stats["total_failures"], stats["total_successes"]) == (
        2,
        4,
        1,
    )


def test_a_time_window_forgets_idle_buckets_and_a_clock_stepping_back() -> None:
    """Buckets leave one by one, all at once after a long idle; a step back stays put."""
    now = [1000.0]  # a wall clock, which (unlike FakeClock) may step back
    storage = InMemoryStorage(clock=lambda: now[0])
    breaker = CircuitBreaker(
        policy=FailureRate(threshold=1.0, window=TimeWindow(3.0), minimum_calls=100)
    )
    config = storage_config(breaker._settings, lambda _n: 5.0)
    gen = storage.admit("svc", config).generation

    def counts() -> tuple[int, int]:
        stats = storage.read("svc")
        assert stats is not None
        return stats["failure_count"], stats["success_count"]

    storage.record("svc", config, generation=gen, outcomes="f")
    now[0] += 1.0
    storage.record("svc", config, generation=gen, outcomes="s")
    now[0] -= 0.5  # the clock stepped back: the calls go to the newest bucket
    storage.record("svc", config, generation=gen, outcomes="s")
    assert counts() == (1, 2)
    now[0] += 2.5  # the first bucket has left the window
    assert counts() == (0, 2)
    now[0] += 100.0
    assert counts() == (0, 0)


def test_threads_sharing_one_storage_lose_no_update() -> None:
    """Eight threads recording through their own breakers on one storage: every count lands."""
    storage = InMemoryStorage()
    policy = ConsecutiveFailures(10**6)
    breakers = [CircuitBreaker(name="svc", policy=policy, storage=storage) for _ in range(8)]

    def work(breaker: CircuitBreaker) -> None:
        for _ in range(500):
            breaker.call(lambda: None)

    threads = [threading.Thread(target=work, args=(b,)) for b in breakers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = storage.read("svc")
    assert stats is not None
    assert stats["total_successes"] == stats["success_count"] == 4000


def test_a_full_count_window_drops_its_oldest_call() -> None:
    """In a CountWindow(2), a third call pushes the first out of the counts."""
    storage = InMemoryStorage(clock=FakeClock(1000.0))
    breaker = CircuitBreaker(
        policy=FailureRate(threshold=1.0, window=CountWindow(2), minimum_calls=2)
    )
    config = storage_config(breaker._settings, lambda _n: 5.0)
    gen = storage.admit("svc", config).generation
    storage.record("svc", config, generation=gen, outcomes="fsS")
    stats = storage.read("svc")
    assert stats is not None
    assert (stats["failure_count"], stats["success_count"], stats["slow_calls"]) == (0, 2, 1)
    assert stats["failure_rate"] == 0.0


def test_an_ignored_trial_frees_its_slot_and_forced_open_records_totals_only() -> None:
    """A cancelled trial's "i" gives its slot back; outcomes while FORCED_OPEN steer nothing."""
    clock = FakeClock(1000.0)
    storage = InMemoryStorage(clock=clock)
    gen = storage.admit("svc", CONSECUTIVE).generation
    storage.record("svc", CONSECUTIVE, generation=gen, outcomes="ff")
    clock.advance(5.0)
    trial = storage.admit("svc", CONSECUTIVE)
    storage.record("svc", CONSECUTIVE, generation=trial.generation, outcomes="i")
    assert storage.admit("svc", CONSECUTIVE).admitted is True
    reply = storage.force("svc", CircuitState.FORCED_OPEN)
    assert reply is not None
    reply = storage.record("svc", CONSECUTIVE, generation=reply.generation, outcomes="fs")
    stats = storage.read("svc")
    assert stats is not None
    assert reply.state is CircuitState.FORCED_OPEN
    assert (stats["failure_count"], stats["success_count"]) == (0, 0)  # from HALF_OPEN: none
    assert (stats["total_failures"], stats["total_successes"], stats["total_ignored"]) == (
        3,
        1,
        1,
    )


def test_an_idle_process_reports_the_fleets_failure_rate_in_its_metrics() -> None:
    """The failure-rate series of a shared breaker is the fleet's, held while OPEN (§5, §8)."""
    clock = FakeClock(1000.0)
    storage = InMemoryStorage(clock=clock)
    policy = FailureRate(threshold=0.5, window=CountWindow(4), minimum_calls=4)
    busy = CircuitBreaker(name="api", policy=policy, clock=clock, storage=storage)
    idle = CircuitBreaker(name="api", policy=policy, clock=clock, storage=storage)
    assert idle._metrics_row()[2] is None  # nothing measured yet
    busy.call(lambda: 1)
    for _ in range(3):
        with pytest.raises(ZeroDivisionError):
            busy.call(lambda: 1 / 0)
    assert busy.state is CircuitState.OPEN
    # Within refresh_after the idle process's view (and rate) stays as read...
    assert idle._metrics_row()[0] == "closed"
    clock.advance(1.0)
    # ...and after it, one read brings the fleet's state and the rate that opened it.
    state, _, rate, _, _ = idle._metrics_row()
    assert (state, rate) == ("open", 0.75)
    assert idle.get_stats()["failure_rate"] == 0.75
    assert busy._metrics_row()[2] == 0.75
