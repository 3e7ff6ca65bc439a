"""Hedge: who wins, when hedges start, what the budget allows, and that nothing leaks."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilience
from resilience import BreakerRegistry, CircuitBreaker, Hedge, RetryBudget, _events
from resilience._pool import WorkerPool
from resilience._strategy import Strategy
from resilience.hedging import LatencyPercentile, latency_percentile
from resilience.testing import FakeClock

FOREVER = math.inf


class Attempts:
    """A function whose n-th call does what the script says, counting the calls."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self) -> Any:
        with self.lock:
            step = self.script[min(self.calls, len(self.script) - 1)]
            self.calls += 1
            self.threads.append(threading.current_thread())
        if step == "block":
            self.release.wait(10)
            return "late"
        if isinstance(step, BaseException) or (
            isinstance(step, type) and issubclass(step, BaseException)
        ):
            raise step
        return step


@pytest.fixture
def heard() -> Any:
    """The events emitted during the test."""
    events: list[_events.Event] = []
    stop = _events.subscribe(events.append)
    yield events
    stop()


# ---------------------------------------------------------------------- sync


def test_fast_primary_wins_without_a_hedge() -> None:
    """A call that answers before the delay starts no hedge."""
    hedge = Hedge(delay=FOREVER)
    func = Attempts("first")
    assert hedge.call(func) == "first"
    assert func.calls == 1
    assert hedge.get_stats() == {
        "primary_won": 1,
        "hedge_won": 0,
        "failed": 0,
        "hedges": 0,
        "budget_denied": 0,
    }


def test_slow_primary_loses_to_a_hedge_whose_result_is_returned(heard: Any) -> None:
    """After the delay a hedge starts; the attempt that answers wins, the stuck one is left.

    Which worker thread reaches the function first is up to the scheduler, so the test
    lets whichever attempt arrives first get stuck (the async tests pin the order).
    """
    hedge = Hedge(delay=0.0, name="sync-hedge")
    func = Attempts("block", "hedged")
    try:
        assert hedge.call(func) == "hedged"
    finally:
        func.release.set()
    assert func.calls == 2
    stats = hedge.get_stats()
    assert (stats["primary_won"] + stats["hedge_won"], stats["hedges"]) == (1, 1)
    assert [(e.name, e.kind, e.strategy, dict(e.attributes)) for e in heard] == [
        ("hedge", "hedge", "sync-hedge", {"hedge": 1, "reason": "delay"})
    ]


def test_attempts_run_in_workers_not_in_the_caller() -> None:
    """Sync attempts run in the pool's daemon threads."""
    func = Attempts("x")
    Hedge(delay=FOREVER).call(func)
    assert func.threads[0] is not threading.current_thread()
    assert func.threads[0].daemon


def test_a_failure_matching_on_starts_the_next_hedge_at_once(heard: Any) -> None:
    """With no timed hedge at all, a failing primary still gets a hedge at once."""
    hedge = Hedge(delay=FOREVER, on=ConnectionError)
    error = ConnectionError("primary down")
    func = Attempts(error, "second")
    assert hedge.call(func) == "second"
    assert heard[0].exception is error
    assert heard[0].attributes["reason"] == "failure"


def test_an_error_not_matching_on_is_raised_at_once() -> None:
    """An error outside `on` is the call's answer: no hedge starts."""
    hedge = Hedge(delay=FOREVER, on=ConnectionError)
    func = Attempts(ValueError("bad request"), "never")
    with pytest.raises(ValueError, match="bad request"):
        hedge.call(func)
    assert func.calls == 1
    assert hedge.get_stats()["failed"] == 1


def test_when_every_attempt_fails_the_last_error_is_raised() -> None:
    """Primary and both hedges fail: the error of the last one is raised."""
    hedge = Hedge(delay=FOREVER, max_hedges=2)
    func = Attempts(ConnectionError("1"), ConnectionError("2"), ConnectionError("3"))
    with pytest.raises(ConnectionError, match="3"):
        hedge.call(func)
    assert func.calls == 3
    assert hedge.get_stats()["failed"] == 1
    assert hedge.get_stats()["hedges"] == 2


def test_max_hedges_bounds_the_extra_calls() -> None:
    """With every attempt stuck, exactly 1 + max_hedges attempts start."""
    hedge = Hedge(delay=0.0, max_hedges=3)
    func = Attempts("block", "block", "block", "block", "block")
    done = threading.Event()
    result: list[Any] = []
    caller = threading.Thread(target=lambda: (result.append(hedge.call(func)), done.set()))
    caller.start()
    while hedge.get_stats()["hedges"] < 3:
        done.wait(0.01)
    func.release.set()
    caller.join(10)
    assert result == ["late"]
    assert func.calls == 4


def test_a_spent_budget_stops_hedges_and_counts_the_refusals() -> None:
    """A budget with nothing to give lets the slow primary finish unhedged."""
    hedge = Hedge(delay=0.0, budget=RetryBudget(ratio=0.0, min_per_second=0.0))
    func = Attempts("primary")
    # The primary may or may not answer before the zero delay runs out: either way no
    # hedge may start.
    assert hedge.call(func) == "primary"
    stats = hedge.get_stats()
    assert stats["hedges"] == 0
    assert func.calls == 1


def test_budget_allows_hedges_up_to_its_floor(clock: FakeClock) -> None:
    """A budget allowing one retry in the window allows exactly one hedge."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, clock=clock)
    hedge = Hedge(delay=FOREVER, budget=budget)
    assert hedge.call(Attempts(ConnectionError("a"), "hedged")) == "hedged"
    with pytest.raises(ConnectionError, match="b"):
        hedge.call(Attempts(ConnectionError("b"), "never"))
    assert budget.stats() == {"first_attempts": 2, "retries": 1, "allowed": 1}
    assert hedge.get_stats()["budget_denied"] == 1


def test_a_full_pool_runs_the_call_inline_unhedged() -> None:
    """When every worker is busy a sync call runs in the caller's thread."""
    hedge = Hedge(delay=FOREVER, max_workers=2)
    blocked = Attempts("block")
    callers = [threading.Thread(target=hedge.call, args=(blocked,)) for _ in range(2)]
    for caller in callers:
        caller.start()
    while blocked.calls < 2:
        blocked.release.wait(0.01)
    func = Attempts("inline")
    assert hedge.call(func) == "inline"
    assert func.threads == [threading.current_thread()]
    with pytest.raises(KeyError):
        hedge.call(Attempts(KeyError("inline failure")))
    blocked.release.set()
    for caller in callers:
        caller.join(10)
    assert hedge.get_stats()["primary_won"] == 3
    assert hedge.get_stats()["failed"] == 1


def test_context_variables_reach_the_worker() -> None:
    """A context variable set by the caller is seen inside the attempt."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller's")
    assert Hedge(delay=FOREVER).call(var.get) == "caller's"


def test_base_exceptions_in_workers_reach_the_caller() -> None:
    """A SystemExit raised by an attempt is re-raised in the caller, not lost in a thread."""
    with pytest.raises(SystemExit):
        Hedge(delay=FOREVER).call(Attempts(SystemExit(3)))


def test_hedge_composes_around_a_breaker() -> None:
    """A hedge runs a breaker-protected call; the breaker sees each attempt."""
    breaker = CircuitBreaker(failure_threshold=10)
    hedge = Hedge(delay=FOREVER)
    assert isinstance(hedge, Strategy)
    func = Attempts(ConnectionError("x"), "ok")
    assert hedge.call(breaker.call, func) == "ok"
    stats = breaker.get_stats()
    assert (stats["total_failures"], stats["total_successes"]) == (1, 1)


def test_decorator_hedges_sync_functions() -> None:
    """@hedge keeps the name and hedges each call."""
    hedge = Hedge(delay=FOREVER)

    @hedge
    def lookup(key: str) -> str:
        """Upper-case a key."""
        return key.upper()

    assert lookup("a") == "A"
    assert lookup.__name__ == "lookup"


def test_delay_callable_is_asked_per_call_and_bad_answers_are_handled() -> None:
    """A callable delay is asked once per call; NaN means no timed hedge, negatives 0."""
    answers = iter([math.nan, -5.0])
    hedge = Hedge(delay=lambda: next(answers), max_hedges=1)
    func = Attempts("block", "hedged")
    assert hedge.call(Attempts("fast")) == "fast"  # NaN: waits for the primary
    try:
        assert hedge.call(func) == "hedged"  # negative: hedges at once
    finally:
        func.release.set()
    with pytest.raises(TypeError, match="not a number"):
        Hedge(delay=lambda: "soon").call(Attempts("x"))  # type: ignore[arg-type,return-value]


def test_latency_percentile_delay_learns_from_won_calls() -> None:
    """A latency_percentile delay is fed the winners' latencies and becomes finite."""
    delay = latency_percentile(q=0.5, window=10, minimum=0.25)
    hedge = Hedge(delay=delay)
    assert delay() == math.inf
    for _ in range(10):
        hedge.call(Attempts("x"))
    assert delay() == 0.25  # the calls were far faster than the floor


# ---------------------------------------------------------------------- async


def test_async_slow_primary_is_cancelled_and_awaited() -> None:
    """The losing task is cancelled, its cleanup has run, and no task is left over."""
    cleaned: list[str] = []
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] == 1:
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append("primary")
        return "hedge"

    async def main() -> tuple[str, int]:
        value = await Hedge(delay=0.0).call_async(attempt)
        return value, len(asyncio.all_tasks())

    assert asyncio.run(main()) == ("hedge", 1)
    assert cleaned == ["primary"]


def test_async_failure_starts_a_hedge_and_fatal_error_cancels_the_rest() -> None:
    """Async: a matching failure hedges at once; a fatal one is raised, siblings cancelled."""
    calls = [0]
    cancelled: list[int] = []

    async def flaky() -> str:
        calls[0] += 1
        if calls[0] == 1:
            raise ConnectionError
        return "ok"

    async def stuck_then_fatal() -> str:
        calls[0] += 1
        number = calls[0]
        if number == 1:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.append(number)
        raise ValueError("fatal")

    hedge = Hedge(delay=FOREVER, on=ConnectionError)
    assert asyncio.run(hedge.call_async(flaky)) == "ok"
    calls[0] = 0
    with pytest.raises(ValueError, match="fatal"):
        asyncio.run(Hedge(delay=0.0, on=ConnectionError).call_async(stuck_then_fatal))
    assert cancelled == [1]


def test_async_every_attempt_failing_raises_the_last_error() -> None:
    """Async: when all attempts fail the last error is raised."""
    calls = [0]

    async def failing() -> str:
        calls[0] += 1
        raise ConnectionError(str(calls[0]))

    hedge = Hedge(delay=FOREVER, max_hedges=2)
    with pytest.raises(ConnectionError, match="3"):
        asyncio.run(hedge.call_async(failing))
    assert hedge.get_stats()["failed"] == 1


def test_async_cancelling_the_caller_cancels_every_attempt() -> None:
    """A caller cancelled mid-race leaves no attempt running."""
    started = 0
    finished: list[str] = []
    all_started = asyncio.Event()

    async def stuck() -> str:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.append("cleaned")
        return "never"

    async def main() -> int:
        caller = asyncio.ensure_future(Hedge(delay=0.0, max_hedges=2).call_async(stuck))
        await all_started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        return len(asyncio.all_tasks())

    assert asyncio.run(main()) == 1
    assert finished == ["cleaned"] * 3


def test_async_attempt_cancelled_by_someone_else_is_an_error() -> None:
    """An attempt cancelled from outside counts as an error outside `on`."""

    async def main() -> None:
        async def self_cancelling() -> str:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
            return "never"

        await Hedge(delay=FOREVER).call_async(self_cancelling)

    with pytest.raises(asyncio.CancelledError, match="was cancelled"):
        asyncio.run(main())


def test_async_decorator_stays_a_coroutine_function() -> None:
    """@hedge on an async def gives an async def."""

    @Hedge(delay=FOREVER)
    async def fetch() -> int:
        """Answer at once."""
        return 1

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch()) == 1


# ---------------------------------------------------------------------- reading


def test_named_hedge_is_in_metrics() -> None:
    """A named hedge exports its outcome and hedge counters."""
    pytest.importorskip("prometheus_client", reason="needs the prometheus extra")
    from prometheus_client import CollectorRegistry, generate_latest

    from resilience.metrics import register_metrics

    hedge = Hedge(delay=FOREVER, name="hedge-metrics")
    hedge.call(Attempts(ConnectionError("x"), "ok"))
    registry = CollectorRegistry()
    register_metrics(registry, BreakerRegistry())
    text = generate_latest(registry).decode()
    assert 'resilience_hedge_calls_total{name="hedge-metrics",outcome="hedge_won"} 1.0' in text
    assert 'resilience_hedge_calls_total{name="hedge-metrics",outcome="primary_won"} 0.0' in text
    assert 'resilience_hedge_hedges_total{name="hedge-metrics"} 1.0' in text
    assert hedge._health() is None


def test_strategy_info_and_repr() -> None:
    """_strategy_info names kind "hedge" and the constructor options."""
    budget = RetryBudget()
    hedge = Hedge(delay=0.5, max_hedges=2, on=OSError, budget=budget, name="h")
    info = hedge._strategy_info()
    assert info == {
        "kind": "hedge",
        "name": "h",
        "options": {
            "delay": 0.5,
            "max_hedges": 2,
            "on": (OSError,),
            "budget": budget,
            "name": "h",
            "max_workers": 64,
        },
    }
    assert hedge.name == "h"
    assert repr(hedge) == "Hedge(delay=0.5, max_hedges=2, name='h')"
    assert resilience.Hedge is Hedge


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"delay": -1.0}, ValueError, "delay"),
        ({"delay": math.nan}, ValueError, "delay"),
        ({"delay": "1"}, TypeError, "delay"),
        ({"delay": True}, TypeError, "delay"),
        ({"delay": 1.0, "max_hedges": 0}, ValueError, "max_hedges"),
        ({"delay": 1.0, "max_hedges": 1.0}, TypeError, "max_hedges"),
        ({"delay": 1.0, "on": "x"}, TypeError, "on"),
        ({"delay": 1.0, "budget": 3}, TypeError, "budget"),
        ({"delay": 1.0, "name": ""}, ValueError, "name"),
        ({"delay": 1.0, "max_workers": 1}, ValueError, "max_workers"),
    ],
    ids=[
        "negative-delay",
        "nan-delay",
        "str-delay",
        "bool-delay",
        "zero-hedges",
        "float-hedges",
        "bad-on",
        "bad-budget",
        "empty-name",
        "one-worker",
    ],
)
def test_bad_arguments_fail_at_construction(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    """Every bad option is refused when the Hedge is made, naming the parameter."""
    with pytest.raises(error, match=match):
        Hedge(**kwargs)


# ---------------------------------------------------------------------- latency_percentile


def test_latency_percentile_warms_up_then_follows_the_nearest_rank() -> None:
    """Infinite until enough samples, then the ceil(q (n + 1))-th smallest, floored."""
    delay = latency_percentile(q=0.9, window=100, minimum=0.0)
    for n in range(1, 10):
        delay.record(n / 100)
    assert delay() == math.inf
    delay.record(0.10)
    assert delay() == pytest.approx(0.10)  # k = ceil(0.9 * 11) = 10 of 10
    assert (delay.q, delay.window, delay.minimum) == (0.9, 100, 0.0)
    assert repr(delay) == "latency_percentile(q=0.9, window=100, minimum=0.0)"
    assert isinstance(delay, LatencyPercentile)


@given(
    st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=20, max_size=200),
    st.sampled_from([0.5, 0.9, 0.95, 1.0]),
)
def test_latency_percentile_matches_a_sorted_reference(samples: list[float], q: float) -> None:
    """With a window of at most 50 (recomputed every record) it equals the reference."""
    window = 20
    delay = latency_percentile(q=q, window=window, minimum=0.001)
    for sample in samples:
        delay.record(sample)
    recent = sorted(samples[-window:])
    expected = recent[min(window, math.ceil(q * (window + 1))) - 1]
    assert delay() == max(0.001, expected)


def test_latency_percentile_recomputes_every_fiftieth_of_its_window() -> None:
    """A large window refreshes its value every window // 50 records, not every record."""
    delay = latency_percentile(q=0.5, window=1000, minimum=0.0)
    for _ in range(10):  # warm: the first value is computed at once
        delay.record(1.0)
    assert delay() == 1.0
    for _ in range(19):
        delay.record(100.0)
    assert delay() == 1.0  # stale: the true median of these 29 is 100
    delay.record(100.0)
    assert delay() == 100.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"q": 0.0}, ValueError),
        ({"q": 1.5}, ValueError),
        ({"window": 0}, ValueError),
        ({"window": 2.0}, TypeError),
        ({"minimum": -1.0}, ValueError),
    ],
    ids=["q-zero", "q-high", "window-zero", "window-float", "minimum-negative"],
)
def test_latency_percentile_validates(kwargs: dict[str, Any], error: type) -> None:
    """Bad percentile options fail at once."""
    with pytest.raises(error):
        latency_percentile(**kwargs)


def test_worker_pool_reuses_idle_workers_and_refuses_when_full() -> None:
    """An idle worker takes the next task; a full pool says no at once."""
    pool = WorkerPool(1, "test-pool")
    ran = threading.Event()
    assert pool.try_submit(ran.set)
    assert ran.wait(10)
    release = threading.Event()
    busy = threading.Event()
    while not pool.try_submit(lambda: (busy.set(), release.wait(10))):
        ran.wait(0.001)  # the first worker has not yet marked itself idle
    busy.wait(10)
    assert not pool.try_submit(ran.set)
    assert pool.threads == 1
    release.set()


def test_worker_pool_threads_leave_after_idling() -> None:
    """An idle worker exits after its idle time; the pool starts a new one when needed."""
    pool = WorkerPool(2, "test-idle", idle_seconds=0.01)
    ran = threading.Event()
    assert pool.try_submit(ran.set)
    assert ran.wait(10)
    while pool.threads:
        ran.wait(0.01)
    again = threading.Event()
    assert pool.try_submit(again.set)
    assert again.wait(10)


def test_a_refused_timed_hedge_leaves_the_primary_to_finish() -> None:
    """A slow primary whose hedge the budget refuses is still awaited and wins."""
    hedge = Hedge(delay=0.0, budget=RetryBudget(ratio=0.0, min_per_second=0.0))
    func = Attempts("block")
    result: list[Any] = []
    caller = threading.Thread(target=lambda: result.append(hedge.call(func)))
    caller.start()
    while hedge.get_stats()["budget_denied"] == 0:
        func.release.wait(0.01)
    func.release.set()
    caller.join(10)
    assert result == ["late"]
    assert hedge.get_stats()["primary_won"] == 1


def test_async_loser_that_raises_on_cancel_is_retrieved() -> None:
    """A loser that turns its cancellation into an error is awaited and its error read."""
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise RuntimeError("cleanup failed") from None
        return "hedge"

    assert asyncio.run(Hedge(delay=0.0).call_async(attempt)) == "hedge"


def test_hedge_around_chaos_hides_injected_faults() -> None:
    """Composed as strategies (hedge outside, chaos inside), faults on one attempt are hidden."""
    import random

    from resilience.chaos import Chaos

    chaos = Chaos(fault=ConnectionError, rate=0.3, rng=random.Random(5))
    hedge = Hedge(delay=FOREVER, max_hedges=3, on=ConnectionError)
    results = [hedge.call(chaos.call, str, n) for n in range(200)]
    assert results == [str(n) for n in range(200)]
    stats = hedge.get_stats()
    assert stats["hedges"] == chaos.get_stats()["total_injected"]["fault"] > 0
    assert stats["failed"] == 0


def test_async_hedge_around_chaos_hides_injected_faults() -> None:
    """The same composition with call_async: every call answers."""
    import random

    from resilience.chaos import Chaos

    chaos = Chaos(fault=ConnectionError, rate=0.3, rng=random.Random(6))
    hedge = Hedge(delay=FOREVER, max_hedges=3, on=ConnectionError)

    async def echo(n: int) -> int:
        return n

    async def main() -> list[int]:
        return [await hedge.call_async(chaos.call_async, echo, n) for n in range(100)]

    assert asyncio.run(main()) == list(range(100))
    assert hedge.get_stats()["hedges"] == chaos.get_stats()["total_injected"]["fault"]


def test_latency_percentile_ignores_nonsense_and_bounds_its_window() -> None:
    """NaN, negative and infinite latencies are ignored; a huge window is a ValueError."""
    delay = LatencyPercentile(q=0.5, window=10, minimum=0.001)
    for _ in range(20):
        delay.record(math.nan)
        delay.record(-1.0)
        delay.record(math.inf)
    assert delay() == math.inf  # still warming up: nothing real was recorded
    for _ in range(20):
        delay.record(0.2)
    assert delay() == 0.2
    with pytest.raises(ValueError, match="window"):
        LatencyPercentile(window=2**63)
