"""Fallback: answer a failed call with a handler's value instead of its error.

One implementation serves two surfaces: the ``Fallback`` strategy, and the ``fallback=``
option of ``CircuitBreaker`` (called with the call's own arguments when the circuit rejects
it). Both hand an ``Outcome`` to ``answer`` / ``answer_async``, which run the handler and,
in async code, await what it returns when that is awaitable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from resilience._validate import check_callable, check_sync_callable, exception_types
from resilience._wrap import wrap

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from resilience._strategy import StrategyInfo

__all__ = ["Fallback", "Outcome", "answer", "answer_async"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a fallback handler is told about the call it answers for.

    Attributes:
        exception: the exception the call raised, or ``None`` when its result was refused.
        result: the refused result (``on_result`` held), or ``None`` after an exception.
        args: the call's positional arguments.
        kwargs: the call's keyword arguments.
    """

    exception: BaseException | None
    result: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def answer(handler: Callable[[Outcome], Any], outcome: Outcome) -> Any:
    """Return the handler's answer for ``outcome`` (sync code)."""
    return handler(outcome)


async def answer_async(handler: Callable[[Outcome], Any], outcome: Outcome) -> Any:
    """Return the handler's answer for ``outcome``, awaiting it if it is awaitable."""
    value = handler(outcome)
    import inspect  # noqa: PLC0415  # asyncio has loaded it already; kept off import time

    if inspect.isawaitable(value):
        value = await value
    return value


def by_arguments(fallback: Callable[..., Any]) -> Callable[[Outcome], Any]:
    """Adapt a breaker's ``fallback(*args, **kwargs)`` to a handler of an ``Outcome``."""

    def handler(outcome: Outcome) -> Any:
        return fallback(*outcome.args, **outcome.kwargs)

    return handler


class Fallback:
    """Answer a failed call with ``handler(outcome)`` instead of raising.

    When the call raises an exception matching ``on``, or returns a result for which
    ``on_result`` is true, the handler is called with an ``Outcome`` (the exception or the
    result, and the call's arguments) and its value is returned in place of the failure. A
    handler that raises propagates its own error. In async code the handler may be a
    coroutine function (its result is awaited) or a plain one; in sync code it must be a
    plain one.

    Use it as ``fallback.call(func, ...)``, ``await fallback.call_async(func, ...)`` or
    ``@fallback``; in a ``Pipeline`` it is a strategy of kind ``"fallback"``, usually the
    outermost. The handler should return what the function returns: the decorated function
    keeps its declared type.

    Args:
        handler: called with an ``Outcome``; its value is the call's answer.
        on: the exception classes answered (default ``Exception``; cancellations and
            interrupts pass through).
        on_result: a predicate on a result that asks for the handler's answer instead.

    Raises:
        TypeError: an option has the wrong type.

    Examples:
        >>> cached = Fallback(lambda outcome: "cached page", on=ConnectionError)
        >>> def fetch() -> str:
        ...     raise ConnectionError("reset by peer")
        >>> cached.call(fetch)
        'cached page'
    """

    __slots__ = ("_handler", "_on", "_on_result", "_options")

    def __init__(
        self,
        handler: Callable[[Outcome], Any],
        *,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        on_result: Callable[[Any], bool] | None = None,
    ) -> None:
        self._handler = check_callable("handler", handler)
        self._on = exception_types("on", on)
        self._on_result = check_sync_callable("on_result", on_result, optional=True)
        self._options = {"handler": handler, "on": on, "on_result": on_result}

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)``; on a matching failure return the handler's answer.

        Raises:
            BaseException: what ``func`` raises when it does not match ``on``, or what the
                handler raises.
        """
        return self._run(func, args, kwargs)

    def _run(self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        try:
            result = func(*args, **kwargs)
        except self._on as exc:
            return cast("R", answer(self._handler, Outcome(exc, None, args, kwargs)))
        on_result = self._on_result
        if on_result is not None and on_result(result):
            return cast("R", answer(self._handler, Outcome(None, result, args, kwargs)))
        return result

    def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Await ``func(*args, **kwargs)``; on a matching failure return the handler's answer.

        Raises:
            BaseException: what ``func`` raises when it does not match ``on``, or what the
                handler raises.
        """
        return self._run_async(func, args, kwargs)

    async def _run_async(
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        try:
            result = await func(*args, **kwargs)
        except self._on as exc:
            return cast("R", await answer_async(self._handler, Outcome(exc, None, args, kwargs)))
        on_result = self._on_result
        if on_result is not None and on_result(result):
            return cast("R", await answer_async(self._handler, Outcome(None, result, args, kwargs)))
        return result

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so its failures get the handler's answer."""
        return wrap(func, self._run, self._run_async)

    def _strategy_info(self) -> StrategyInfo:
        return {"kind": "fallback", "name": None, "options": dict(self._options)}

    def __repr__(self) -> str:
        return f"Fallback({self._handler!r}, on={self._options['on']!r})"


Fallback.__module__ = Outcome.__module__ = "resilience"
