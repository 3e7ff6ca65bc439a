"""Pipeline: an explicit order, one context per call, warnings for risky orders."""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import inspect
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from resilience import (
    AdaptiveLimit,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    Deadline,
    Fallback,
    Pipeline,
    ResilienceWarning,
    Retry,
    Timeout,
    _context,
)
from resilience._events import Event, Timing, subscribe, subscribe_timings
from resilience._strategy import StrategyInfo


class _Recorder:
    """A minimal strategy that records when it is entered and left."""

    def __init__(self, tag: str, log: list[str], kind: Any = "hedge") -> None:
        self.tag = tag
        self.log = log
        self.kind = kind

    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.log.append(f"{self.tag}>")
        try:
            return func(*args, **kwargs)
        finally:
            self.log.append(f"<{self.tag}")

    async def call_async(
        self, func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        self.log.append(f"{self.tag}>")
        try:
            return await func(*args, **kwargs)
        finally:
            self.log.append(f"<{self.tag}")

    def _strategy_info(self) -> StrategyInfo:
        return {"kind": self.kind, "name": self.tag, "options": {}}


def _no_retry_delay() -> Retry:
    return Retry(max_retries=2, base_delay=0.0, jitter=False)


@pytest.fixture
def events() -> Iterator[list[Event]]:
    """Collect the events emitted during the test."""
    seen: list[Event] = []
    stop = subscribe(seen.append)
    yield seen
    stop()


def test_the_first_strategy_listed_is_outermost() -> None:
    """``Pipeline(a, b, c)`` runs ``a(b(c(fn)))`` in sync and async code alike."""
    log: list[str] = []
    pipeline = Pipeline(_Recorder("a", log), _Recorder("b", log), _Recorder("c", log))
    assert pipeline.call(lambda x: log.append("fn") or x, 5) == 5
    assert log == ["a>", "b>", "c>", "fn", "<c", "<b", "<a"]
    log.clear()

    async def fn(x: int) -> int:
        log.append("fn")
        return x

    assert asyncio.run(pipeline.call_async(fn, 6)) == 6
    assert log == ["a>", "b>", "c>", "fn", "<c", "<b", "<a"]


def test_describe_lists_kind_name_and_options_outermost_first() -> None:
    """``describe()`` reports each strategy's kind, name and constructor options."""
    pipeline = Pipeline(
        Fallback(print),
        Deadline(10.0),
        Retry(max_retries=1, name="r"),
        CircuitBreaker(name="db", failure_threshold=3),
        Bulkhead(4, name="pool"),
        Timeout(1.0),
        name="api",
    )
    steps = pipeline.describe()
    assert [(s["kind"], s["name"]) for s in steps] == [
        ("fallback", None),
        ("deadline", None),
        ("retry", "r"),
        ("circuit_breaker", "db"),
        ("bulkhead", "pool"),
        ("timeout", None),
    ]
    assert steps[2]["options"]["max_retries"] == 1
    assert steps[3]["options"]["failure_threshold"] == 3
    assert steps[3]["options"]["half_open_max_calls"] == 1  # the effective value
    assert steps[4]["options"] == {"max_concurrent": 4, "max_queue": 0, "max_wait": 0.0}
    assert steps[5]["options"] == {"seconds": 1.0}
    assert pipeline.name == "api"
    assert len(pipeline.strategies) == 6
    assert repr(pipeline).startswith("Pipeline(fallback, deadline, retry 'r', ")


def test_standard_builds_the_recommended_order_and_skips_what_is_none() -> None:
    """The standard order: limiter, total timeout, retry, breaker, bulkhead, attempt timeout."""
    pipeline = Pipeline.standard(
        name="api",
        total_timeout=30.0,
        retry=Retry(),
        breaker=CircuitBreaker(),
        attempt_timeout=5.0,
        bulkhead=Bulkhead(8),
    )
    assert [s["kind"] for s in pipeline.describe()] == [
        "deadline",
        "retry",
        "circuit_breaker",
        "bulkhead",
        "timeout",
    ]
    assert pipeline.describe()[0]["options"] == {"seconds": 30.0}
    limiter = _Recorder("limiter", [], kind="rate_limiter")
    only = Pipeline.standard(name=None, rate_limiter=limiter, attempt_timeout=Timeout(2.0))
    assert [s["kind"] for s in only.describe()] == ["rate_limiter", "timeout"]


def test_standard_rejects_a_strategy_in_the_wrong_slot() -> None:
    """Passing a breaker as ``retry`` (or a non-strategy) is a TypeError naming the slot."""
    with pytest.raises(TypeError, match="retry must be a strategy of kind 'retry'"):
        Pipeline.standard(name="x", retry=CircuitBreaker())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bulkhead must be a strategy of kind 'bulkhead'"):
        Pipeline.standard(name="x", bulkhead=42)  # type: ignore[arg-type]


def test_a_non_strategy_or_bad_name_fails_at_construction() -> None:
    """Anything without the strategy methods is a TypeError; a bad name is rejected."""
    with pytest.raises(TypeError, match="strategy 1 must be a strategy"):
        Pipeline(Timeout(1.0), print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must not be empty"):
        Pipeline(Timeout(1.0), name="")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: Pipeline(CircuitBreaker(name="db"), Retry(name="r")),
            "retry 'r' is inside circuit_breaker 'db'",
        ),
        (lambda: Pipeline(Bulkhead(2), Timeout(1.0), Retry()), "retry is inside bulkhead"),
        (
            lambda: Pipeline(_Recorder("monkey", [], kind="chaos"), Bulkhead(2)),
            "chaos 'monkey' is outside bulkhead",
        ),
    ],
    ids=["retry-in-breaker", "retry-in-bulkhead", "chaos-outside"],
)
def test_risky_orders_are_warned_about_once_at_construction(
    make: Callable[[], Pipeline], expected: str
) -> None:
    """A risky order warns once, naming both strategies; calls do not warn again."""
    with pytest.warns(ResilienceWarning, match=expected) as caught:
        pipeline = make()
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(Exception):  # only the absence of warnings matters here
            pipeline.call(int)


def test_the_standard_order_does_not_warn() -> None:
    """The recommended order raises no warning (warnings are errors in this suite)."""
    Pipeline.standard(name="ok", retry=Retry(), breaker=CircuitBreaker(), bulkhead=Bulkhead(1))


def test_each_call_has_one_context_with_name_and_attempt() -> None:
    """Inner strategies see the pipeline's name and the attempt the retry is making."""
    seen: list[tuple[str | None, int, float | None]] = []

    def flaky() -> str:
        context = _context.current()
        assert context is not None
        seen.append((context.pipeline, context.attempt, context.deadline))
        if len(seen) < 3:
            raise ConnectionError
        return "ok"

    pipeline = Pipeline(Deadline(60.0), _no_retry_delay(), name="api")
    assert pipeline.call(flaky) == "ok"
    assert [(name, attempt) for name, attempt, _ in seen] == [("api", 1), ("api", 2), ("api", 3)]
    assert all(left is not None and 0 < left <= 60.0 for _, _, left in seen)
    assert _context.current() is None


def test_a_bulkhead_inside_a_retry_is_asked_once_per_attempt() -> None:
    """Every attempt takes and frees its own slot."""
    pool = Bulkhead(1)
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(pool.get_stats()["in_flight"])
        raise ConnectionError

    pipeline = Pipeline(_no_retry_delay(), CircuitBreaker(failure_threshold=10), pool)
    with pytest.raises(ConnectionError):
        pipeline.call(flaky)
    assert attempts == [1, 1, 1]
    assert pool.get_stats()["total_admitted"] == 3
    assert pool.get_stats()["in_flight"] == 0


def test_a_breaker_inside_a_retry_sees_every_attempt() -> None:
    """With the retry outside, the breaker counts each failed attempt and then opens."""
    breaker = CircuitBreaker(failure_threshold=2)

    def down() -> None:
        raise ConnectionError

    pipeline = Pipeline(_no_retry_delay(), breaker)
    with pytest.raises(CircuitOpenError):  # the third attempt meets the open circuit
        pipeline.call(down)
    assert breaker.get_stats()["total_failures"] == 2


def test_a_total_timeout_stops_retrying_before_sleeping_past_it() -> None:
    """A Deadline outside the retry makes it give up instead of sleeping past the deadline."""
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError

    pipeline = Pipeline.standard(
        name="api", total_timeout=0.5, retry=Retry(max_retries=5, base_delay=10.0, jitter=False)
    )
    with pytest.raises(ConnectionError):
        pipeline.call(down)
    assert calls == [1]


def test_a_fallback_outermost_answers_a_full_bulkhead() -> None:
    """A Fallback outside a full bulkhead turns its rejection into the handler's answer."""
    pool = Bulkhead(1)
    pipeline = Pipeline(Fallback(lambda outcome: "busy", on=BulkheadFullError), pool)
    with pool:
        assert pipeline.call(lambda: "ran") == "busy"
    assert pipeline.call(lambda: "ran") == "ran"


def test_events_carry_the_pipeline_name(events: list[Event]) -> None:
    """A strategy's event inside a pipeline call names the pipeline."""
    pool = Bulkhead(1, name="pool")
    pipeline = Pipeline(pool, name="checkout")
    with pool, pytest.raises(BulkheadFullError):
        pipeline.call(int)
    assert [(e.name, e.strategy, e.pipeline) for e in events] == [
        ("bulkhead_full", "pool", "checkout")
    ]


def test_the_decorator_keeps_sync_and_async_functions_and_opens_a_context() -> None:
    """``@pipeline`` keeps the function's kind and name; each call has its own context."""
    pipeline = Pipeline(_no_retry_delay(), Bulkhead(2), name="deco")

    @pipeline
    def where(x: int) -> tuple[str | None, int]:
        context = _context.current()
        assert context is not None
        return context.pipeline, x

    @pipeline
    async def awhere(x: int) -> tuple[str | None, int]:
        context = _context.current()
        assert context is not None
        return context.pipeline, x

    assert where(1) == ("deco", 1)
    assert asyncio.run(awhere(2)) == ("deco", 2)
    assert inspect.iscoroutinefunction(awhere)
    assert not inspect.iscoroutinefunction(where)
    assert where.__name__ == "where"
    assert where.pipeline is pipeline  # type: ignore[attr-defined]
    assert _context.current() is None


def test_async_attempts_are_counted_and_each_task_has_its_own_context() -> None:
    """Concurrent async calls through one pipeline count their attempts separately."""
    pipeline = Pipeline(_no_retry_delay(), name="many")

    async def flaky(failures: int, log: list[int]) -> int:
        context = _context.current()
        assert context is not None
        log.append(context.attempt)
        if len(log) <= failures:
            raise ConnectionError
        await asyncio.sleep(0)
        return context.attempt

    async def main() -> list[int]:
        return await asyncio.gather(
            pipeline.call_async(flaky, 0, []),
            pipeline.call_async(flaky, 1, []),
            pipeline.call_async(flaky, 2, []),
        )

    assert asyncio.run(main()) == [1, 2, 3]


def test_nested_pipelines_restore_the_outer_context() -> None:
    """An inner pipeline's call has its own context; the outer one is back afterwards."""
    inner = Pipeline(Timeout(5.0), name="inner")
    outer = Pipeline(Deadline(5.0), name="outer")
    names: list[str | None] = []

    def record() -> None:
        context = _context.current()
        names.append(None if context is None else context.pipeline)

    def body() -> None:
        record()
        inner.call(record)
        record()

    outer.call(body)
    assert names == ["outer", "inner", "outer"]


def test_threads_share_a_pipeline_without_sharing_contexts() -> None:
    """Calls in different threads each see their own context."""
    pipeline = Pipeline(Bulkhead(8), name="threads")
    seen: list[str | None] = []
    lock = threading.Lock()

    def work() -> None:
        context = _context.current()
        with lock:
            seen.append(None if context is None else context.pipeline)

    threads = [threading.Thread(target=pipeline.call, args=(work,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["threads"] * 8


@pytest.mark.parametrize(
    "obj",
    [Pipeline, Bulkhead, AdaptiveLimit, Fallback, Timeout, Deadline],
    ids=lambda obj: obj.__name__,
)
def test_docstring_examples_run(obj: Any) -> None:
    """The examples in the new strategies' docstrings run as written."""
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner()
    for test in finder.find(obj, globs={obj.__name__: obj}):
        runner.run(test)
    assert runner.failures == 0
    assert runner.tries > 0


def test_real_rate_limiter_and_chaos_take_their_places() -> None:
    """A RateLimiter fits the standard order's first slot; a Chaos outside is warned about."""
    from resilience import RateLimiter
    from resilience.chaos import Chaos

    limiter = RateLimiter(100.0, name="api-limit")
    pipeline = Pipeline.standard(name="api", rate_limiter=limiter, bulkhead=Bulkhead(2))
    assert [s["kind"] for s in pipeline.describe()] == ["rate_limiter", "bulkhead"]
    assert pipeline.call(lambda: "ok") == "ok"
    with pytest.warns(ResilienceWarning, match="chaos is outside bulkhead"):
        Pipeline(Chaos(fault=ConnectionError(), rate=0.0), Bulkhead(1))
    Pipeline(Bulkhead(1), Chaos(fault=ConnectionError(), rate=0.0))  # innermost: no warning


# ------------------------------------------------------------------ call durations


@contextlib.contextmanager
def _timings() -> Iterator[list[Timing]]:
    """Subscribe to the duration channel for the block; yield what it hears."""
    heard: list[Timing] = []
    stop = subscribe_timings(heard.append)
    try:
        yield heard
    finally:
        stop()


def _flaky(failures: int) -> Callable[[], str]:
    """A function failing ``failures`` times with ConnectionError, then returning "ok"."""
    left = [failures]

    def func() -> str:
        if left[0]:
            left[0] -= 1
            raise ConnectionError
        return "ok"

    return func


def _summary(heard: list[Timing]) -> list[tuple[Any, ...]]:
    return [(t.name, t.kind, t.strategy, t.pipeline, t.attributes.get("number")) for t in heard]


def test_a_pipeline_call_is_timed_once_after_its_attempts() -> None:
    """call(): the retry's attempts, then one pipeline timing, all inside the pipeline."""
    pipeline = Pipeline(Retry(base_delay=0.0, name="r"), name="checkout")
    with _timings() as heard:
        assert pipeline.call(_flaky(1)) == "ok"
    assert _summary(heard) == [
        ("attempt", "retry", "r", "checkout", 1),
        ("attempt", "retry", "r", "checkout", 2),
        ("pipeline", "pipeline", "checkout", "checkout", None),
    ]
    assert heard[-1].seconds >= heard[0].seconds + heard[1].seconds


def test_a_failing_pipeline_call_is_timed_too() -> None:
    """A call that raises still reports its duration; the decorator form is timed as well."""
    pipeline = Pipeline(Retry(max_retries=0, base_delay=0.0), name="failing")
    with _timings() as heard, pytest.raises(ConnectionError):
        pipeline(_flaky(1))()
    assert _summary(heard)[-1] == ("pipeline", "pipeline", "failing", "failing", None)
    assert len(heard) == 2


def test_an_async_pipeline_call_is_timed_in_both_forms() -> None:
    """call_async() and an async decorated function each report one pipeline timing."""
    pipeline = Pipeline(Retry(base_delay=0.0), name="async")
    flaky = _flaky(1)

    async def fetch() -> str:
        return flaky()

    async def both() -> tuple[str, str]:
        return await pipeline.call_async(fetch), await pipeline(fetch)()

    with _timings() as heard:
        assert asyncio.run(both()) == ("ok", "ok")
    assert [(t.name, t.pipeline, t.attributes.get("number")) for t in heard] == [
        ("attempt", "async", 1),
        ("attempt", "async", 2),
        ("pipeline", "async", None),
        ("attempt", "async", 1),
        ("pipeline", "async", None),
    ]


def test_nested_pipelines_time_each_call_under_its_own_name() -> None:
    """An inner pipeline's timing names the inner pipeline; an unnamed one has no name."""
    inner = Pipeline(Retry(base_delay=0.0), name="inner")
    outer = Pipeline(Retry(base_delay=0.0))
    with _timings() as heard:
        assert outer.call(inner.call, lambda: "ok") == "ok"
    assert [(t.name, t.strategy, t.pipeline) for t in heard] == [
        ("attempt", None, "inner"),
        ("pipeline", "inner", "inner"),
        ("attempt", None, None),
        ("pipeline", None, None),
    ]


def test_without_a_timing_subscriber_calls_and_events_are_unchanged() -> None:
    """With nobody measuring durations (the untimed path) the call and its events are as before."""
    heard: list[Event] = []
    stop = subscribe(heard.append)
    try:
        assert Pipeline(Retry(base_delay=0.0), name="quiet").call(_flaky(1)) == "ok"
    finally:
        stop()
    assert [event.name for event in heard] == ["retry"]
