"""``Retry`` as a strategy: what ``retry_with_backoff`` returns, and what a Pipeline composes."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import resilience
from resilience import Retry, RetryBudget, retry_with_backoff
from resilience._context import CallContext, _current
from resilience._strategy import Strategy
from resilience.testing import FakeClock


class Flaky:
    """Raise ``ConnectionError`` for the first ``failures`` calls, then return ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> str:
        """Fail or succeed as configured."""
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("reset")
        return "ok"


def test_retry_with_backoff_returns_a_retry() -> None:
    """The decorator factory returns the public Retry class, exported from resilience."""
    retry = retry_with_backoff(max_retries=1)
    assert isinstance(retry, Retry)
    assert resilience.Retry is Retry
    assert Retry.__module__ == "resilience"


def test_retry_is_a_strategy() -> None:
    """Retry satisfies the Strategy protocol a Pipeline composes."""
    assert isinstance(Retry(), Strategy)


def test_retry_decorates_like_retry_with_backoff() -> None:
    """A Retry made directly decorates sync functions with the same retries."""
    flaky = Flaky(2)

    @Retry(max_retries=2, base_delay=0.0)
    def fetch(x: int) -> str:
        """Docstring kept."""
        return flaky() + str(x)

    assert fetch(1) == "ok1"
    assert flaky.calls == 3
    assert fetch.__doc__ == "Docstring kept."


def test_retry_decorates_coroutine_functions() -> None:
    """A decorated coroutine function stays one and retries."""
    flaky = Flaky(1)

    @Retry(max_retries=1, base_delay=0.0)
    async def fetch() -> str:
        return flaky()

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch()) == "ok"
    assert flaky.calls == 2


def test_call_retries_and_passes_arguments() -> None:
    """Retry.call passes positional and keyword arguments to every attempt."""
    seen: list[tuple[object, ...]] = []
    flaky = Flaky(2)

    def work(a: int, *, b: int) -> str:
        seen.append((a, b))
        return flaky()

    assert Retry(max_retries=3, base_delay=0.0).call(work, 1, b=2) == "ok"
    assert seen == [(1, 2)] * 3


def test_call_gives_up_with_the_last_error() -> None:
    """Retry.call re-raises the last exception when the retries run out."""
    flaky = Flaky(5)
    with pytest.raises(ConnectionError) as info:
        Retry(max_retries=1, base_delay=0.0).call(flaky)
    assert flaky.calls == 2
    assert any("gave up after 2 attempts" in note for note in info.value.__notes__)


def test_call_async_retries() -> None:
    """Retry.call_async awaits every attempt and sleeps with the given sleep."""
    clock = FakeClock()
    flaky = Flaky(2)

    async def work(x: int) -> str:
        return flaky() + str(x)

    retry = Retry(max_retries=2, base_delay=1.0, jitter=False, sleep=clock.asleep, clock=clock)
    assert asyncio.run(retry.call_async(work, 7)) == "ok7"
    assert clock() == 3.0


def test_call_sets_the_context_attempt_before_each_attempt() -> None:
    """Inside a call context the retry moves ``attempt`` forward before each try."""
    seen: list[int] = []
    flaky = Flaky(2)
    context = CallContext("p")
    token = _current.set(context)
    try:

        def work() -> str:
            current = _current.get()
            assert current is not None
            seen.append(current.attempt)
            return flaky()

        assert Retry(max_retries=3, base_delay=0.0).call(work) == "ok"
    finally:
        _current.reset(token)
    assert seen == [1, 2, 3]


def test_call_async_sets_the_context_attempt() -> None:
    """call_async moves the context's attempt forward too."""
    seen: list[int] = []
    flaky = Flaky(1)

    async def work() -> str:
        current = _current.get()
        assert current is not None
        seen.append(current.attempt)
        return flaky()

    async def main() -> str:
        _current.set(CallContext(None))
        return await Retry(max_retries=1, base_delay=0.0).call_async(work)

    assert asyncio.run(main()) == "ok"
    assert seen == [1, 2]


def test_strategy_info_names_every_constructor_option() -> None:
    """_strategy_info gives kind "retry", the name, and options keyed by parameter names."""
    budget = RetryBudget()
    retry = Retry(max_retries=4, name="orders", budget=budget)
    info = retry._strategy_info()
    assert info["kind"] == "retry"
    assert info["name"] == "orders"
    assert info["options"]["max_retries"] == 4
    assert info["options"]["budget"] is budget
    assert set(info["options"]) == set(inspect.signature(Retry).parameters)
    assert retry.name == "orders"
    assert "orders" in repr(retry)


def test_bad_options_fail_at_construction() -> None:
    """Retry validates its options when made, like retry_with_backoff."""
    with pytest.raises(ValueError, match="max_retries"):
        Retry(max_retries=-1)
    with pytest.raises(TypeError, match="max_retries"):
        Retry(max_retries=1.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ one engine


def test_retry_and_give_up_events_reach_subscribers() -> None:
    """Every retry emits a "retry" event and the last failure a "give_up" event."""
    from resilience import _events

    seen: list[_events.Event] = []
    unsubscribe = _events.subscribe(seen.append)
    try:
        with pytest.raises(ConnectionError):
            Retry(max_retries=2, base_delay=0.0, name="events").call(Flaky(9))
    finally:
        unsubscribe()
    assert [(e.name, e.kind, e.strategy, e.attributes["attempt"]) for e in seen] == [
        ("retry", "retry", "events", 1),
        ("retry", "retry", "events", 2),
        ("give_up", "retry", "events", 3),
    ]
    assert seen[0].attributes["delay"] == 0.0
    assert seen[-1].attributes["reason"] == "max_retries=2 reached"
    assert isinstance(seen[-1].exception, ConnectionError)


def test_events_name_the_enclosing_pipeline() -> None:
    """Events emitted inside a call context carry its pipeline name."""
    from resilience import _events

    seen: list[_events.Event] = []
    unsubscribe = _events.subscribe(seen.append)
    token = _current.set(CallContext("checkout"))
    try:
        Retry(max_retries=1, base_delay=0.0).call(Flaky(1))
    finally:
        _current.reset(token)
        unsubscribe()
    assert [(e.name, e.pipeline) for e in seen] == [("retry", "checkout")]


def test_a_decorated_function_keeps_its_defaults() -> None:
    """The wrapper keeps __defaults__ and __kwdefaults__ besides what functools.wraps copies."""

    @Retry()
    def fetch(url: str, retries: int = 2, *, timeout: float = 1.0) -> str:
        return url

    assert fetch.__defaults__ == (2,)
    assert fetch.__kwdefaults__ == {"timeout": 1.0}
    assert fetch("u") == "u"


def test_every_surface_drives_the_same_engine() -> None:
    """The decorator, retry_on_failure, RetryContext and Retry.call give up identically."""
    from resilience import RetryContext, retry_on_failure

    notes = []
    options = {"max_retries": 2, "base_delay": 0.0, "name": "same"}
    for run in (
        lambda f: Retry(**options)(f)(),
        lambda f: Retry(**options).call(f),
        lambda f: retry_on_failure(f, **options),
    ):
        flaky = Flaky(9)
        with pytest.raises(ConnectionError) as info:
            run(flaky)
        notes.append((flaky.calls, info.value.__notes__[-1].split(" in ")[0]))
    flaky = Flaky(9)

    def loop() -> None:
        for attempt in RetryContext(**options):
            with attempt:
                flaky()

    with pytest.raises(ConnectionError) as info:
        loop()
    notes.append((flaky.calls, info.value.__notes__[-1].split(" in ")[0]))
    assert notes == [(3, "retry 'same' gave up after 3 attempts")] * 4
