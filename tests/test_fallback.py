"""Fallback: a failed call answered by a handler; the breaker's fallback= shares the code."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from resilience import CircuitBreaker, Fallback, Outcome


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise ConnectionError("down")


async def _aboom(*args: Any, **kwargs: Any) -> Any:
    raise ConnectionError("down")


def test_a_matching_exception_is_answered_with_the_outcome() -> None:
    """The handler gets the exception and the call's arguments; its value is returned."""
    seen: list[Outcome] = []

    def handler(outcome: Outcome) -> str:
        seen.append(outcome)
        return "cached"

    fallback = Fallback(handler, on=ConnectionError)
    assert fallback.call(_boom, 1, key="a") == "cached"
    (outcome,) = seen
    assert isinstance(outcome.exception, ConnectionError)
    assert (outcome.result, outcome.args, outcome.kwargs) == (None, (1,), {"key": "a"})


def test_a_success_and_an_unmatched_exception_pass_through() -> None:
    """A result is returned as is; an exception outside ``on`` propagates unchanged."""
    fallback = Fallback(lambda outcome: "cached", on=ConnectionError)
    assert fallback.call(lambda: "fresh") == "fresh"
    with pytest.raises(KeyError):
        fallback.call({}.__getitem__, "missing")


def test_on_result_answers_a_refused_result() -> None:
    """A result that ``on_result`` refuses is replaced by the handler's answer."""
    fallback = Fallback(
        lambda outcome: f"default for {outcome.result!r}", on_result=lambda r: r is None
    )
    assert fallback.call(lambda: None) == "default for None"
    assert fallback.call(lambda: 3) == 3


def test_a_handler_that_raises_propagates_its_own_error() -> None:
    """The handler's own error reaches the caller."""

    def handler(outcome: Outcome) -> None:
        raise RuntimeError("no fallback either") from outcome.exception

    with pytest.raises(RuntimeError, match="no fallback either"):
        Fallback(handler).call(_boom)


def test_cancellation_is_not_answered_by_default() -> None:
    """A BaseException that is not an Exception passes through the default ``on``."""

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Fallback(lambda outcome: 0).call(interrupted)


def test_async_calls_await_a_coroutine_handler_or_take_a_plain_one() -> None:
    """In async code the handler may be a coroutine function or a plain function."""

    async def ahandler(outcome: Outcome) -> str:
        return "async answer"

    async def refused() -> int:
        return -1

    async def main() -> list[Any]:
        return [
            await Fallback(ahandler).call_async(_aboom),
            await Fallback(lambda outcome: "plain answer").call_async(_aboom),
            await Fallback(lambda o: o.result * 2, on_result=lambda r: r < 0).call_async(refused),
            await Fallback(ahandler, on_result=lambda r: r < 0).call_async(refused),
        ]

    assert asyncio.run(main()) == ["async answer", "plain answer", -2, "async answer"]


def test_async_success_and_unmatched_errors_pass_through() -> None:
    """An awaited result is returned; an exception outside ``on`` propagates."""

    async def fine() -> int:
        return 7

    fallback = Fallback(lambda outcome: 0, on=KeyError, on_result=lambda r: False)
    assert asyncio.run(fallback.call_async(fine)) == 7
    with pytest.raises(ConnectionError):
        asyncio.run(fallback.call_async(_aboom))


def test_the_decorator_wraps_sync_and_async_functions() -> None:
    """``@fallback`` keeps the function's kind and name and answers its failures."""
    fallback = Fallback(lambda outcome: "answer")

    @fallback
    def fetch() -> str:
        raise ConnectionError

    @fallback
    async def afetch() -> str:
        raise ConnectionError

    assert fetch() == "answer"
    assert asyncio.run(afetch()) == "answer"
    assert inspect.iscoroutinefunction(afetch)
    assert fetch.__name__ == "fetch"


def test_strategy_info_and_repr() -> None:
    """The strategy describes itself with kind ``fallback`` and its constructor options."""

    def handler(outcome: Outcome) -> int:
        return 0

    fallback = Fallback(handler, on=(KeyError, ValueError))
    assert fallback._strategy_info() == {
        "kind": "fallback",
        "name": None,
        "options": {"handler": handler, "on": (KeyError, ValueError), "on_result": None},
    }
    assert repr(fallback).startswith("Fallback(<function")


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((42,), {}, "handler must be callable"),
        ((print,), {"on": "oops"}, "on must be an exception class"),
        ((print,), {"on_result": 3}, "on_result must be callable"),
    ],
    ids=["handler", "on", "on_result"],
)
def test_bad_options_fail_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    """Bad options raise TypeError naming the parameter and the value."""
    with pytest.raises(TypeError, match=match):
        Fallback(*args, **kwargs)


def test_the_breakers_fallback_is_called_with_the_arguments(run: Any) -> None:
    """A rejected call through a breaker with ``fallback=`` gets its arguments' answer."""
    breaker = CircuitBreaker(fallback=lambda x, y=0: ("fallback", x, y))
    breaker.open()
    assert run(breaker, lambda x, y=0: ("ran", x, y), 1) == ("fallback", 1, 0)


def test_the_breakers_async_fallback_may_be_a_coroutine_function() -> None:
    """In async code the breaker's fallback may be a coroutine function."""

    async def cached(x: int) -> str:
        return f"cached {x}"

    async def fetch(x: int) -> str:
        return f"fresh {x}"

    breaker = CircuitBreaker(fallback=cached)
    breaker.open()
    assert asyncio.run(breaker.call_async(fetch, 2)) == "cached 2"
