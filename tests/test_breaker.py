"""The circuit breaker's promises (SPEC §1 and §8)."""

from __future__ import annotations

import asyncio
import logging
import math
import pickle
from typing import Any

import pytest

from _helpers import boom, fail, ok
from resilience import (
    CircuitBreaker,
    CircuitBreakerError,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    FailureRate,
    ResilienceError,
)
from resilience.testing import FakeClock


def test_closed_breaker_returns_the_result(run: Any) -> None:
    """A closed breaker passes the call through and returns its value."""
    breaker = CircuitBreaker()
    assert run(breaker, lambda x: x * 2, 21) == 42
    assert breaker.state is CircuitState.CLOSED


def test_opens_after_threshold_consecutive_failures(run: Any) -> None:
    """``failure_threshold`` failures in a row open the circuit, not one fewer."""
    breaker = CircuitBreaker(failure_threshold=3)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            run(breaker, boom())
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(ConnectionError):
        run(breaker, boom())
    assert breaker.state is CircuitState.OPEN


def test_success_restarts_the_failure_run() -> None:
    """A success between failures starts the consecutive count again."""
    breaker = CircuitBreaker(failure_threshold=3)
    fail(breaker, 2)
    ok(breaker)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["failure_count"] == 2
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_open_circuit_rejects_without_calling(run: Any, clock: FakeClock) -> None:
    """An open circuit raises CircuitOpenError and never runs the function."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0, name="db", clock=clock)
    fail(breaker)
    calls: list[int] = []
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as info:
        run(breaker, lambda: calls.append(1))
    assert calls == []
    error = info.value
    assert error.name == "db"
    assert error.state is CircuitState.OPEN
    assert error.retry_after == pytest.approx(6.0)
    assert isinstance(error, CircuitBreakerError)
    assert isinstance(error, ResilienceError)
    assert "db" in str(error)


def test_state_reads_half_open_lazily_at_the_boundary(clock: FakeClock) -> None:
    """Reading ``state`` once ``recovery_timeout`` has passed (inclusive) gives HALF_OPEN."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(4.999)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.001)
    assert breaker.state is CircuitState.HALF_OPEN


def test_trial_success_closes(run: Any, clock: FakeClock) -> None:
    """A successful trial call in HALF_OPEN closes the circuit."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)
    assert run(breaker, lambda: "up") == "up"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["success_count"] == 0  # every transition starts counts afresh


def test_trial_failure_reopens_with_a_fresh_timeout(run: Any, clock: FakeClock) -> None:
    """A failed trial re-opens the circuit and restarts the recovery wait."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)
    with pytest.raises(ConnectionError):
        run(breaker, boom())
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(5.0)


def test_success_threshold_needs_that_many_trials(clock: FakeClock) -> None:
    """``success_threshold`` successful trials are needed to close."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, success_threshold=3, clock=clock
    )
    fail(breaker)
    clock.advance(1.0)
    ok(breaker, 2)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.get_stats()["success_count"] == 2
    ok(breaker)
    assert breaker.state is CircuitState.CLOSED


def test_half_open_admits_at_most_max_calls_at_once(clock: FakeClock) -> None:
    """While ``half_open_max_calls`` trials run, further calls are rejected."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=2, success_threshold=2,
        clock=clock,
    )  # fmt: skip
    fail(breaker)
    clock.advance(1.0)
    with breaker, breaker:
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: None)
        assert info.value.state is CircuitState.HALF_OPEN
        assert info.value.retry_after is not None
        assert 0.0 <= info.value.retry_after <= 1.0
    assert breaker.state is CircuitState.CLOSED


def test_half_open_max_calls_defaults_to_success_threshold(clock: FakeClock) -> None:
    """Without ``half_open_max_calls``, as many trials as ``success_threshold`` run at once."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, success_threshold=2, clock=clock
    )
    fail(breaker)
    clock.advance(1.0)
    with breaker, breaker, pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)


def test_ignored_exceptions_count_as_neither(run: Any) -> None:
    """An ``ignore``d exception propagates and counts neither as success nor failure."""
    breaker = CircuitBreaker(failure_threshold=2, ignore=KeyError)
    fail(breaker)
    with pytest.raises(KeyError):
        run(breaker, boom(KeyError("k")))
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    stats = breaker.get_stats()
    assert stats["total_ignored"] == 1
    assert stats["total_failures"] == 2


def test_exceptions_outside_failure_on_count_as_success(run: Any) -> None:
    """An exception not in ``failure_on`` propagates unchanged and counts as a success."""
    breaker = CircuitBreaker(failure_threshold=2, failure_on=ConnectionError)
    fail(breaker)
    error = ValueError("bad input")
    with pytest.raises(ValueError, match="bad input") as info:
        run(breaker, boom(error))
    assert info.value is error
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["total_successes"] == 1


def test_ignore_wins_over_failure_on() -> None:
    """An exception matching both ``ignore`` and ``failure_on`` is ignored."""
    breaker = CircuitBreaker(failure_threshold=1, failure_on=OSError, ignore=ConnectionError)
    fail(breaker, exc=ConnectionError)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["total_ignored"] == 1


def test_predicates_classify_exceptions() -> None:
    """``failure_on`` and ``ignore`` accept predicates on the exception."""
    breaker = CircuitBreaker(
        failure_threshold=1,
        failure_on=lambda e: getattr(e, "status", 0) >= 500,
        ignore=lambda e: getattr(e, "status", 0) == 404,
    )

    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status

    for status in (404, 400):
        with pytest.raises(HTTPError):
            breaker.call(boom(HTTPError(status)))
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(HTTPError):
        breaker.call(boom(HTTPError(503)))
    assert breaker.state is CircuitState.OPEN
    stats = breaker.get_stats()
    assert (stats["total_ignored"], stats["total_successes"], stats["total_failures"]) == (1, 1, 1)


def test_a_predicate_that_raises_does_not_match(caplog: pytest.LogCaptureFixture) -> None:
    """A classifying predicate that raises is logged and treated as not matching."""

    def broken(exc: BaseException) -> bool:
        raise RuntimeError("predicate bug")

    breaker = CircuitBreaker(failure_threshold=1, failure_on=broken)
    with caplog.at_level(logging.ERROR, logger="resilience"), pytest.raises(ConnectionError):
        breaker.call(boom())
    assert breaker.state is CircuitState.CLOSED
    assert "predicate" in caplog.text


@pytest.mark.parametrize(
    "exc",
    [KeyboardInterrupt(), SystemExit(1), GeneratorExit(), asyncio.CancelledError()],
    ids=["KeyboardInterrupt", "SystemExit", "GeneratorExit", "CancelledError"],
)
def test_base_exceptions_are_never_failures(exc: BaseException) -> None:
    """Interrupts and cancellation propagate and count as ignored, never as failures."""
    breaker = CircuitBreaker(failure_threshold=1, failure_on=BaseException)
    with pytest.raises(type(exc)):
        breaker.call(boom(exc))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["total_ignored"] == 1


def test_failure_on_result_marks_failures(run: Any) -> None:
    """A result the predicate flags counts as a failure but is still returned."""
    breaker = CircuitBreaker(failure_threshold=2, failure_on_result=lambda r: r is None)
    assert run(breaker, lambda: None) is None
    assert run(breaker, lambda: 1) == 1
    assert run(breaker, lambda: None) is None
    assert breaker.state is CircuitState.CLOSED
    assert run(breaker, lambda: None) is None
    assert breaker.state is CircuitState.OPEN


def test_failure_on_result_that_raises_counts_as_success(caplog: pytest.LogCaptureFixture) -> None:
    """A result predicate that raises is logged; the call's result is returned."""

    def broken(result: object) -> bool:
        raise RuntimeError("predicate bug")

    breaker = CircuitBreaker(failure_threshold=1, failure_on_result=broken)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert breaker.call(lambda: 7) == 7
    assert breaker.get_stats()["total_successes"] == 1
    assert "failure_on_result" in caplog.text


def test_fallback_answers_rejected_calls_with_the_same_arguments(run: Any) -> None:
    """With a fallback, a rejected call returns ``fallback(*args)`` instead of raising."""
    seen: list[tuple[Any, ...]] = []

    def fallback(*args: Any) -> str:
        seen.append(args)
        return "cached"

    breaker = CircuitBreaker(failure_threshold=1, fallback=fallback)
    fail(breaker)
    assert run(breaker, lambda x, y: x + y, 1, 2) == "cached"
    assert seen == [(1, 2)]
    assert breaker.get_stats()["total_rejected"] == 1


def test_async_fallback_is_awaited() -> None:
    """A coroutine-function fallback is awaited by ``call_async``."""

    async def fallback(x: int) -> int:
        return -x

    async def work(x: int) -> int:
        return x

    breaker = CircuitBreaker(failure_threshold=1, fallback=fallback)
    fail(breaker)
    assert asyncio.run(breaker.call_async(work, 5)) == -5


def test_fallback_does_not_catch_errors_from_inside_the_call() -> None:
    """A CircuitOpenError raised by a nested breaker is not answered by the outer fallback."""
    inner = CircuitBreaker(failure_threshold=1)
    fail(inner)
    outer = CircuitBreaker(failure_threshold=5, fallback=lambda: "fallback")
    with pytest.raises(CircuitOpenError):
        outer.call(inner.call, lambda: None)


def test_decorator_protects_sync_and_async_functions() -> None:
    """``@breaker`` works on plain and coroutine functions and exposes ``.breaker``."""
    breaker = CircuitBreaker(failure_threshold=1)

    @breaker
    def double(x: int) -> int:
        return 2 * x

    @breaker
    async def triple(x: int) -> int:
        return 3 * x

    assert double(2) == 4
    assert asyncio.run(triple(2)) == 6
    assert double.breaker is breaker  # type: ignore[attr-defined]
    assert asyncio.iscoroutinefunction(triple)
    assert double.__name__ == "double"
    assert breaker.get_stats()["total_successes"] == 2


def test_decorator_works_on_methods() -> None:
    """A decorated method receives ``self`` as usual."""
    breaker = CircuitBreaker()

    class Client:
        factor = 10

        @breaker
        def scale(self, x: int) -> int:
            return self.factor * x

    assert Client().scale(3) == 30


def test_decorating_a_generator_function_is_a_type_error() -> None:
    """Generator functions are refused: their body would run outside the breaker."""
    breaker = CircuitBreaker()

    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        breaker(gen)


def test_with_block_records_its_outcome() -> None:
    """``with breaker:`` counts a clean exit as success and an exception as failure."""
    breaker = CircuitBreaker(failure_threshold=2)
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker:
            raise ConnectionError
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("an open circuit must not run the block")
    stats = breaker.get_stats()
    assert (stats["total_successes"], stats["total_failures"], stats["total_rejected"]) == (1, 2, 1)


def test_async_with_block_records_its_outcome() -> None:
    """``async with breaker:`` records like ``with``."""
    breaker = CircuitBreaker(failure_threshold=1)

    async def main() -> None:
        async with breaker:
            await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError

    asyncio.run(main())
    assert breaker.state is CircuitState.OPEN


def test_with_blocks_of_concurrent_tasks_keep_their_own_tickets(clock: FakeClock) -> None:
    """Interleaved ``async with`` blocks in different tasks each settle their own trial."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=2, success_threshold=2,
        clock=clock,
    )  # fmt: skip
    fail(breaker)
    clock.advance(1.0)

    async def trial(delay: int) -> None:
        async with breaker:
            for _ in range(delay):
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(trial(3), trial(1))

    asyncio.run(main())
    assert breaker.state is CircuitState.CLOSED


def test_exiting_a_block_never_entered_is_an_error() -> None:
    """``__exit__`` without ``__enter__`` in this context raises RuntimeError."""
    with pytest.raises(RuntimeError, match="without being entered"):
        CircuitBreaker().__exit__(None, None, None)


def test_cancelled_trial_frees_its_slot(clock: FakeClock) -> None:
    """A trial call cancelled mid-flight releases its half-open slot for the next caller."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    fail(breaker)
    clock.advance(1.0)

    async def main() -> str:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.sleep(3600)

        task = asyncio.create_task(breaker.call_async(hang))
        await started.wait()
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(asyncio.sleep, 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def answer() -> str:
            return "trial ran"

        return await breaker.call_async(answer)

    assert asyncio.run(main()) == "trial ran"
    assert breaker.state is CircuitState.CLOSED


def test_stale_outcome_does_not_steer_a_new_state(clock: FakeClock) -> None:
    """A call admitted while closed that fails after the circuit re-closed does not count."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)

    def admitted_then_reset() -> None:
        breaker.open()
        breaker.reset()
        raise ConnectionError

    with pytest.raises(ConnectionError):
        breaker.call(admitted_then_reset)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_stats()["total_failures"] == 1


def test_reset_clears_counts_but_not_totals() -> None:
    """``reset()`` closes and clears the policy's counts; totals keep growing."""
    breaker = CircuitBreaker(failure_threshold=3)
    ok(breaker)
    fail(breaker, 2)
    breaker.reset()
    stats = breaker.get_stats()
    assert stats["failure_count"] == 0
    assert stats["success_count"] == 0
    assert stats["total_calls"] == 3
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("operate", "state"),
    [
        ("open", CircuitState.FORCED_OPEN),
        ("disable", CircuitState.DISABLED),
        ("metrics_only", CircuitState.METRICS_ONLY),
        ("close", CircuitState.CLOSED),
        ("reset", CircuitState.CLOSED),
    ],
    ids=["open", "disable", "metrics_only", "close", "reset"],
)
@pytest.mark.parametrize(
    "start",
    ["closed", "open", "half_open", "forced_open", "disabled", "metrics_only"],
)
def test_operator_methods_work_from_every_state(
    clock: FakeClock, start: str, operate: str, state: CircuitState
) -> None:
    """Any operator method may be called from any state and lands in its state."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    _drive_to(breaker, clock, start)
    getattr(breaker, operate)()
    assert breaker.state is state


def _drive_to(breaker: CircuitBreaker, clock: FakeClock, start: str) -> None:
    if start in {"open", "half_open"}:
        fail(breaker)
    if start == "half_open":
        clock.advance(1.0)
    if start == "forced_open":
        breaker.open()
    if start == "disabled":
        breaker.disable()
    if start == "metrics_only":
        breaker.metrics_only()
    assert breaker.state.value == start


def test_forced_open_rejects_with_no_retry_after(clock: FakeClock) -> None:
    """FORCED_OPEN rejects every call with ``retry_after`` None, whatever the time."""
    breaker = CircuitBreaker(recovery_timeout=1.0, clock=clock)
    breaker.open()
    clock.advance(3600.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.state is CircuitState.FORCED_OPEN
    assert info.value.retry_after is None
    assert breaker.state is CircuitState.FORCED_OPEN
    assert breaker.get_stats()["opened_at"] is not None


def test_disabled_passes_everything_and_records_nothing(run: Any) -> None:
    """DISABLED lets every call through and counts none of them."""
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.disable()
    for _ in range(5):
        with pytest.raises(ConnectionError):
            run(breaker, boom())
    assert run(breaker, lambda: 1) == 1
    with breaker:
        pass
    assert breaker.state is CircuitState.DISABLED
    stats = breaker.get_stats()
    assert stats["total_calls"] == 0
    assert stats["failure_count"] == 0


def test_metrics_only_never_rejects_and_counts_shadow_trips(run: Any) -> None:
    """METRICS_ONLY records like CLOSED, never rejects, and counts the trips it would make."""
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.metrics_only()
    for _ in range(5):
        with pytest.raises(ConnectionError):
            run(breaker, boom())
    assert breaker.state is CircuitState.METRICS_ONLY
    stats = breaker.get_stats()
    assert stats["total_failures"] == 5
    assert stats["shadow_trips"] == 2
    assert stats["failure_count"] == 1  # counts restart after each shadow trip
    assert stats["total_rejected"] == 0


def test_recovery_backoff_grows_with_trips_in_a_row(clock: FakeClock) -> None:
    """A backoff as ``recovery_timeout`` waits longer after each trip until the circuit closes."""
    waits = {1: 1.0, 2: 2.0, 3: 4.0}
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=waits.__getitem__, clock=clock)
    fail(breaker)
    for n in (1, 2, 3):
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: None)
        assert info.value.retry_after == pytest.approx(waits[n])
        clock.advance(waits[n])
        if n < 3:
            fail(breaker)  # the trial fails: trip n + 1
    ok(breaker)
    fail(breaker)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(1.0)  # the count restarted on close


def test_recovery_backoff_that_raises_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken backoff never breaks the call; the breaker waits 30 s instead."""

    def broken(n: int) -> float:
        raise ZeroDivisionError

    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=broken, clock=clock)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        fail(breaker)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(30.0)
    assert "recovery_timeout" in caplog.text


def test_listeners_hear_every_change_once(clock: FakeClock) -> None:
    """Listeners get (breaker, old, new) for each change, including the lazy half-open one."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    heard: list[tuple[str, str]] = []
    breaker.add_listener(lambda b, old, new: heard.append((old.value, new.value)))
    fail(breaker)
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    ok(breaker)
    breaker.open()
    breaker.open()
    breaker.reset()
    breaker.reset()
    assert heard == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("closed", "forced_open"),
        ("forced_open", "closed"),
    ]


def test_listener_is_called_outside_the_lock() -> None:
    """A listener may call back into the breaker without deadlocking."""
    breaker = CircuitBreaker(failure_threshold=1)
    seen: list[dict[str, Any]] = []
    breaker.add_listener(lambda b, old, new: seen.append(b.get_stats()))
    fail(breaker)
    assert seen[0]["state"] == "open"


def test_a_raising_listener_breaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged; the call and the other listeners go on."""
    breaker = CircuitBreaker(failure_threshold=1)
    heard: list[CircuitState] = []

    def bad(*_: Any) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    breaker.add_listener(lambda b, old, new: heard.append(new))
    with caplog.at_level(logging.ERROR, logger="resilience"):
        fail(breaker)
    assert heard == [CircuitState.OPEN]
    assert "listener bug" in caplog.text


def test_remove_listener() -> None:
    """A removed listener hears nothing; removing an unknown one is a ValueError."""
    breaker = CircuitBreaker(failure_threshold=1)
    heard: list[CircuitState] = []

    def listener(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        heard.append(new)

    breaker.add_listener(listener)
    breaker.remove_listener(listener)
    fail(breaker)
    assert heard == []
    with pytest.raises(ValueError, match="not registered"):
        breaker.remove_listener(listener)
    with pytest.raises(TypeError, match="listener"):
        breaker.add_listener(42)  # type: ignore[arg-type]


def test_transitions_are_logged(caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    """Opening logs a WARNING on the ``resilience`` logger; other transitions INFO."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, name="svc", clock=clock)
    with caplog.at_level(logging.INFO, logger="resilience"):
        fail(breaker)
        clock.advance(1.0)
        ok(breaker)
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "resilience"]
    assert levels[0] == (logging.WARNING, "circuit breaker 'svc': closed -> open")
    assert levels[1] == (logging.INFO, "circuit breaker 'svc': open -> half_open")
    assert levels[2] == (logging.INFO, "circuit breaker 'svc': half_open -> closed")


def test_stats_keys_and_totals(clock: FakeClock) -> None:
    """``get_stats()`` has the SPEC's keys and totals add up."""
    breaker = CircuitBreaker(failure_threshold=2, ignore=KeyError, name="s", clock=clock)
    ok(breaker, 3)
    with pytest.raises(KeyError):
        breaker.call(boom(KeyError()))
    fail(breaker, 2)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    stats = breaker.get_stats()
    assert {
        "name", "state", "failure_count", "success_count", "total_calls", "total_successes",
        "total_failures", "total_rejected", "total_ignored", "opened_at", "failure_rate",
    } <= stats.keys()  # fmt: skip
    assert stats["name"] == "s"
    assert stats["state"] == "open"
    assert stats["total_calls"] == 7
    assert (stats["total_successes"], stats["total_failures"]) == (3, 2)
    assert (stats["total_rejected"], stats["total_ignored"]) == (1, 1)
    assert stats["failure_rate"] is None
    assert isinstance(stats["opened_at"], float)
    assert stats["transitions"]["open"] == 1


def test_opened_at_is_none_while_closed(clock: FakeClock) -> None:
    """``opened_at`` is None in CLOSED and a wall-clock time once open."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    assert breaker.get_stats()["opened_at"] is None
    fail(breaker)
    clock.advance(0.5)
    stats = breaker.get_stats()
    assert stats["open_for"] == pytest.approx(0.5)
    breaker.reset()
    assert breaker.get_stats()["opened_at"] is None


def test_unnamed_breaker_has_no_name() -> None:
    """An unnamed breaker's stats show ``name`` None."""
    breaker = CircuitBreaker()
    assert breaker.name is None
    assert breaker.get_stats()["name"] is None
    assert "None" in repr(breaker)


@pytest.mark.parametrize(
    "error",
    [
        CircuitOpenError("db", CircuitState.OPEN, 1.5),
        CircuitOpenError(None, CircuitState.FORCED_OPEN, None),
    ],
    ids=["open", "forced"],
)
def test_circuit_open_error_pickles(error: CircuitOpenError) -> None:
    """CircuitOpenError survives pickling with its fields."""
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301  # our own data
    assert (copy.name, copy.state, copy.retry_after) == (error.name, error.state, error.retry_after)
    assert str(copy) == str(error)


def test_a_backoff_that_calls_into_breakers_does_not_deadlock() -> None:
    """A recovery backoff runs outside every lock, so it may read any breaker's stats."""
    import threading

    others = [CircuitBreaker(name=f"stripe-{i}") for i in range(64)]
    breaker: CircuitBreaker

    def backoff(n: int) -> float:
        for other in others:  # some share the breaker's lock stripe
            other.get_stats()
        breaker.get_stats()
        return 5.0

    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=backoff)
    done = threading.Event()

    def trip() -> None:
        with pytest.raises(ConnectionError):
            breaker.call(boom())
        done.set()

    thread = threading.Thread(target=trip, daemon=True)
    thread.start()
    assert done.wait(10), "the breaker deadlocked in its recovery backoff"
    assert breaker.state is CircuitState.OPEN


def test_a_non_finite_backoff_waits_the_fallback(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A backoff returning infinity or NaN is logged; the breaker waits 30 s instead."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=lambda n: math.inf, clock=clock)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        fail(breaker)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(30.0)
    assert "returned inf" in caplog.text


def test_a_late_success_does_not_end_a_later_failure_run(clock: FakeClock) -> None:
    """A call admitted before a trip that succeeds after the circuit closed again is stale."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=1.0, clock=clock)
    breaker.__enter__()  # a slow call admitted while CLOSED
    fail(breaker, 2)  # -> OPEN
    clock.advance(1.0)
    ok(breaker)  # the trial closes the circuit
    fail(breaker)
    breaker.__exit__(None, None, None)  # the slow call finally succeeds
    assert breaker.get_stats()["failure_count"] == 1
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_shadow_trips_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Metrics-only mode logs each trip it would have made."""
    breaker = CircuitBreaker(failure_threshold=1, name="shadow")
    breaker.metrics_only()
    with caplog.at_level(logging.WARNING, logger="resilience"):
        fail(breaker)
    assert "circuit breaker 'shadow' would have opened (metrics-only mode)" in caplog.text


def test_open_breaker_reports_the_counts_that_tripped_it(clock: FakeClock) -> None:
    """SPEC §8: three failures with threshold 3 show failure_count 3 while OPEN."""
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=10.0, clock=clock)
    fail(breaker, 3)
    stats = breaker.get_stats()
    assert (stats["state"], stats["failure_count"], stats["failure_rate"]) == ("open", 3, None)
    clock.advance(10.0)
    stats = breaker.get_stats()  # HALF_OPEN starts from zero
    assert (stats["state"], stats["failure_count"], stats["success_count"]) == ("half_open", 0, 0)


def test_open_breaker_keeps_the_failure_rate_that_tripped_it(clock: FakeClock) -> None:
    """A FailureRate trip keeps its rate, counts and the metrics row's rate while OPEN."""
    policy = FailureRate(threshold=0.5, window=CountWindow(4), minimum_calls=4)
    breaker = CircuitBreaker(policy=policy, recovery_timeout=10.0, clock=clock)
    ok(breaker)
    ok(breaker)
    fail(breaker, 2)
    stats = breaker.get_stats()
    assert stats["state"] == "open"
    assert (stats["failure_count"], stats["success_count"], stats["failure_rate"]) == (2, 2, 0.5)
    assert breaker._metrics_row()[2] == 0.5
    clock.advance(10.0)
    assert breaker._metrics_row()[2] is None  # HALF_OPEN measures nothing yet


def test_a_failed_trial_reopens_with_that_one_failure(clock: FakeClock) -> None:
    """Re-opened by a failed trial, the breaker reports the one failure that did it."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=1.0, clock=clock)
    fail(breaker, 2)
    clock.advance(1.0)
    fail(breaker)
    stats = breaker.get_stats()
    assert (stats["state"], stats["failure_count"]) == ("open", 1)


def test_forcing_open_keeps_the_counts_held_then(clock: FakeClock) -> None:
    """``open()`` keeps what the policy held; ``reset()`` clears it."""
    breaker = CircuitBreaker(failure_threshold=5, clock=clock)
    fail(breaker, 2)
    breaker.open()
    assert breaker.get_stats()["failure_count"] == 2
    breaker.reset()
    assert breaker.get_stats()["failure_count"] == 0


def test_options_seen_before_are_still_refused_in_another_type() -> None:
    """Settings are reused by value and type: True after 1, 2.0 after 2 still raise."""
    CircuitBreaker(failure_threshold=1)
    CircuitBreaker(failure_threshold=2)
    with pytest.raises(TypeError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=True)
    with pytest.raises(TypeError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recovery_timeout"):
        CircuitBreaker(recovery_timeout=float("nan"))
    unhashable = [ValueError]
    with pytest.raises(TypeError, match="failure_on"):
        CircuitBreaker(failure_on=unhashable)  # type: ignore[arg-type]
    assert CircuitBreaker(failure_threshold=1).get_stats()["state"] == "closed"


def test_a_breaker_is_freed_without_the_garbage_collector_before_and_after_use() -> None:
    """Neither a new breaker nor a used one is held in a cycle: dropping it frees it."""
    import gc
    import weakref

    gc.disable()
    try:
        fresh = CircuitBreaker(name="lazy-free")
        ref = weakref.ref(fresh)
        del fresh
        assert ref() is None
        used = CircuitBreaker(name="lazy-free")
        used.add_listener(lambda *_: None)
        assert used.call(int) == 0
        ref = weakref.ref(used)
        del used
        assert ref() is None
    finally:
        gc.enable()


def test_threads_first_touching_a_new_breaker_share_one_circuit() -> None:
    """The circuit made on first use is made once: racing first calls lose no count."""
    import threading

    for _ in range(20):
        breaker = CircuitBreaker(failure_threshold=1000)
        start = threading.Barrier(8)

        def work(breaker: CircuitBreaker = breaker, start: threading.Barrier = start) -> None:
            start.wait()
            for _ in range(50):
                breaker.call(int)
            with pytest.raises(ConnectionError):
                breaker.call(boom())

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = breaker.get_stats()
        assert (stats["total_successes"], stats["total_failures"]) == (400, 8)


def test_a_listener_added_before_the_first_call_hears_the_first_trip() -> None:
    """Listeners, operators and stats work on a breaker not used yet."""
    heard: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.add_listener(lambda _b, old, new: heard.append((old, new)))
    assert breaker.get_stats()["state"] == "closed"
    with pytest.raises(ConnectionError):
        breaker.call(boom())
    assert heard == [(CircuitState.CLOSED, CircuitState.OPEN)]
    other = CircuitBreaker()
    other.open()
    assert other.state is CircuitState.FORCED_OPEN


def test_opened_at_ages_on_the_injected_clock(clock: FakeClock) -> None:
    """``open_for`` and the age behind ``opened_at`` follow the breaker's clock, not time."""
    import time

    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=3600.0, clock=clock)
    fail(breaker)
    clock.advance(600.0)  # ten fake minutes, no real time
    stats = breaker.get_stats()
    assert stats["open_for"] == 600.0
    assert stats["opened_at"] == pytest.approx(time.time() - 600.0, abs=5.0)


def test_a_bound_method_option_does_not_keep_its_object_alive() -> None:
    """A fallback that is a bound method is not cached with the settings: its owner is freed."""
    import gc
    import weakref

    class Client:
        def fallback(self) -> str:
            return "cached"

    client = Client()
    breaker = CircuitBreaker(failure_threshold=1, fallback=client.fallback)
    ref = weakref.ref(client)
    del client, breaker
    gc.collect()
    assert ref() is None
