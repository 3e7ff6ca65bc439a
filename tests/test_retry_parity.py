"""Peer parity: statistics, backoff.Random, testing.retries(), generator functions."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator

import pytest

from resilience import RetryStatistics, retry_statistics, retry_with_backoff
from resilience.backoff import Random
from resilience.testing import FakeClock, retries


class Flaky:
    """Raise ``ConnectionError`` for the first ``failures`` calls, then return ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        """Fail or succeed as configured."""
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("reset")
        return "ok"


def test_statistics_count_retries_failures_and_waits() -> None:
    """A decorated function's statistics add up the calls whose first attempt failed."""
    clock = FakeClock()
    flaky = Flaky(2)
    fetch = retry_with_backoff(
        max_retries=2, base_delay=1.0, jitter=False, sleep=clock.sleep, clock=clock
    )(flaky)
    assert fetch() == "ok"  # 3 attempts, waits 1 + 2
    assert fetch() == "ok"  # at once: not counted
    flaky.calls, flaky.failures = 0, 99
    with pytest.raises(ConnectionError):
        fetch()  # 3 attempts, waits 1 + 2, fails
    stats = retry_statistics(fetch)
    assert dict(stats) == {
        "retried_calls": 2,
        "retries": 4,
        "failures": 1,
        "idle_for": 6.0,
        "last_attempts": 3,
    }
    assert fetch.statistics is stats  # type: ignore[attr-defined]
    assert isinstance(stats, RetryStatistics)
    assert len(stats) == 5
    assert "retries" in repr(stats)


def test_a_call_not_retried_counts_as_a_failure_without_retries() -> None:
    """An error that is not retried is a failure with one attempt."""
    fetch = retry_with_backoff(exceptions=KeyError)(Flaky(1))
    with pytest.raises(ConnectionError):
        fetch()
    assert dict(retry_statistics(fetch)) == {
        "retried_calls": 0,
        "retries": 0,
        "failures": 1,
        "idle_for": 0.0,
        "last_attempts": 1,
    }


def test_statistics_are_per_decorated_function() -> None:
    """One retry decorating two functions keeps their statistics apart."""
    retry = retry_with_backoff(base_delay=0.0)
    one = retry(Flaky(1))
    two = retry(Flaky(2))
    one()
    two()
    assert retry_statistics(one)["retries"] == 1
    assert retry_statistics(two)["retries"] == 2


def test_statistics_are_exact_under_threads() -> None:
    """Eight threads retrying at once lose no count."""
    local = threading.local()

    def flaky() -> None:
        # In each thread, every call fails once and then succeeds.
        local.failed = not getattr(local, "failed", False)
        if local.failed:
            raise ConnectionError

    fetch = retry_with_backoff(max_retries=5, base_delay=0.0)(flaky)

    def work() -> None:
        for _ in range(500):
            fetch()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = retry_statistics(fetch)
    assert (stats["retried_calls"], stats["retries"], stats["failures"]) == (4000, 4000, 0)


def test_retry_statistics_refuses_undecorated_functions() -> None:
    """Asking for the statistics of a plain function is a TypeError."""
    with pytest.raises(TypeError, match="not decorated"):
        retry_statistics(print)


def test_random_backoff_draws_between_its_bounds() -> None:
    """backoff.Random(min, max) draws uniformly in [min, max] every time."""
    strategy = Random(0.5, 1.5, rng=random.Random(3))
    draws = [strategy(n) for n in range(1, 200)]
    assert all(0.5 <= d <= 1.5 for d in draws)
    assert max(draws) - min(draws) > 0.5
    assert Random(2.0, 2.0)(1) == 2.0


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((2.0, 1.0), ValueError, "min_delay must be <= max_delay"),
        ((-1.0, 1.0), ValueError, "min_delay"),
        ((0.0, True), TypeError, "max_delay"),
    ],
)
def test_random_backoff_checks_its_bounds(
    args: tuple[float, float], error: type[Exception], match: str
) -> None:
    """Bad bounds fail when the strategy is made."""
    with pytest.raises(error, match=match):
        Random(*args)


def test_random_backoff_checks_rng() -> None:
    """An rng that is not a random.Random is a TypeError."""
    with pytest.raises(TypeError, match="rng"):
        Random(0.0, 1.0, rng=object())  # type: ignore[arg-type]


def test_retries_off_tries_once() -> None:
    """retries(active=False): every retry tries once and gives up, noted."""
    flaky = Flaky(1)
    with retries(active=False), pytest.raises(ConnectionError) as caught:
        retry_with_backoff(max_retries=5, base_delay=60.0)(flaky)()
    assert flaky.calls == 1
    assert "allows 1 attempt" in caught.value.__notes__[-1]


def test_retries_caps_attempts_and_skips_waits() -> None:
    """retries(attempts=n) caps every call at n attempts, without waiting."""
    flaky = Flaky(10)
    with retries(attempts=3), pytest.raises(ConnectionError):
        retry_with_backoff(max_retries=9, base_delay=60.0)(flaky)()
    assert flaky.calls == 3


def test_nested_retries_switches_take_the_smallest_cap() -> None:
    """Nested uses compose; after the last one the retries are back."""
    flaky = Flaky(10)
    fetch = retry_with_backoff(max_retries=9, base_delay=0.0)(flaky)
    with retries(attempts=4), retries(attempts=2), pytest.raises(ConnectionError):
        fetch()
    assert flaky.calls == 2
    flaky.calls, flaky.failures = 0, 5
    assert fetch() == "ok"
    assert flaky.calls == 6


def test_retries_works_as_decorator_and_async() -> None:
    """retries() decorates sync and async functions and works with async with."""
    flaky = Flaky(10)
    fetch = retry_with_backoff(max_retries=9, base_delay=0.0)(flaky)

    @retries(attempts=2)
    def run() -> None:
        with pytest.raises(ConnectionError):
            fetch()

    run()
    assert flaky.calls == 2

    @retries(active=False)
    async def arun() -> int:
        async with retries(attempts=3):
            with pytest.raises(ConnectionError):
                fetch()
        return flaky.calls

    assert asyncio.run(arun()) == 3
    with retries():  # no cap: waits skipped only
        flaky.calls, flaky.failures = 0, 2
        assert fetch() == "ok"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"active": 0}, TypeError),
        ({"attempts": 0}, ValueError),
        ({"attempts": 1.5}, TypeError),
        ({"active": False, "attempts": 2}, ValueError),
    ],
)
def test_retries_checks_its_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    """Bad switches fail when made."""
    with pytest.raises(error):
        retries(**kwargs)  # type: ignore[arg-type]


def test_retries_checks_what_it_decorates() -> None:
    """Decorating a non-callable is a TypeError."""
    with pytest.raises(TypeError, match="func"):
        retries()(3)  # type: ignore[arg-type]


def test_a_generator_is_retried_from_the_start_before_its_first_value() -> None:
    """A failure before the first value re-runs the generator function from the start."""
    starts = []

    @retry_with_backoff(max_retries=3, base_delay=0.0)
    def rows(n: int) -> Iterator[int]:
        starts.append(n)
        if len(starts) < 3:
            raise ConnectionError("not yet")
        yield from range(n)

    assert list(rows(3)) == [0, 1, 2]
    assert starts == [3, 3, 3]


def test_a_failure_after_a_value_propagates() -> None:
    """Once a value was yielded, a later failure is the consumer's to handle."""
    starts = []

    @retry_with_backoff(max_retries=3, base_delay=0.0)
    def rows() -> Iterator[int]:
        starts.append(1)
        yield 1
        raise ConnectionError("mid-stream")

    stream = rows()
    assert next(stream) == 1
    with pytest.raises(ConnectionError):
        next(stream)
    assert starts == [1]


def test_a_retried_generator_passes_send_throw_close_and_its_return_value() -> None:
    """The wrapper is transparent to send(), throw(), close() and the return value."""
    closed = []

    @retry_with_backoff(base_delay=0.0)
    def echo() -> Iterator[object]:
        try:
            received = yield "ready"
            while received != "stop":
                try:
                    received = yield f"got {received}"
                except KeyError:
                    received = yield "caught"
        finally:
            closed.append(True)
        return "done"

    stream = echo()
    assert next(stream) == "ready"
    assert stream.send("a") == "got a"
    assert stream.throw(KeyError()) == "caught"
    with pytest.raises(StopIteration) as stop:
        stream.send("stop")
    assert stop.value.value == "done"

    other = echo()
    next(other)
    other.close()
    assert closed == [True, True]

    third = echo()
    next(third)
    with pytest.raises(ValueError, match="boom"):
        third.throw(ValueError("boom"))


def test_an_empty_generator_returns_at_once() -> None:
    """A generator that yields nothing returns its value."""

    @retry_with_backoff()
    def nothing() -> Iterator[int]:
        return
        yield  # pragma: no cover - makes this a generator

    assert list(nothing()) == []
