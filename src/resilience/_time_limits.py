"""``Timeout`` and ``Deadline``: ``timeout()`` and ``deadline()`` as pipeline strategies.

Thin on purpose: each call enters a fresh ``timeout(seconds)`` or ``deadline(seconds)``
around the function, so the behaviour (how a sync block is interrupted, how limits nest and
never outlive an enclosing deadline) is exactly the one documented for those two.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from resilience._deadline import check_limit, deadline
from resilience._timeouts import timeout
from resilience._validate import check_sync_callable
from resilience._wrap import wrap

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from resilience._strategy import StrategyInfo
    from resilience._types import Clock

__all__ = ["Deadline", "Timeout"]

P = ParamSpec("P")
R = TypeVar("R")


class Timeout:
    """Limit each call to ``seconds``: ``timeout(seconds)`` as a strategy (kind ``"timeout"``).

    A call that runs out of time raises the builtin ``TimeoutError``; how it is stopped is
    ``timeout()``'s rule: an awaited call is cancelled; a sync call in the main thread on
    POSIX is interrupted; elsewhere a sync call runs to its end and then raises. The limit
    never outlives an enclosing deadline. A breaker around it counts the expiry as a failure.
    It takes no ``clock``: its timers count real time (inside a deadline on an injected
    clock, the seconds left there count as real seconds).

    Args:
        seconds: the time limit of each call, a finite number > 0, at most 1e9.

    Raises:
        TypeError, ValueError: ``seconds`` is not a finite number > 0.

    Examples:
        >>> per_attempt = Timeout(2.0)
        >>> per_attempt.call(sum, [1, 2, 3])
        6
    """

    __slots__ = ("_seconds",)

    def __init__(self, seconds: float) -> None:
        self._seconds = check_limit("seconds", seconds)

    @property
    def seconds(self) -> float:
        """The time limit of each call."""
        return self._seconds

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` within the time limit and return its result.

        Raises:
            TimeoutError: the call ran out of time.
        """
        with timeout(self._seconds):
            return func(*args, **kwargs)

    def _run(self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        with timeout(self._seconds):
            return func(*args, **kwargs)

    def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Await ``func(*args, **kwargs)`` within the time limit and return its result.

        Raises:
            TimeoutError: the awaited call ran out of time (it was cancelled).
        """
        return self._run_async(func, args, kwargs)

    async def _run_async(
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        async with timeout(self._seconds):
            return await func(*args, **kwargs)

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so each call is time-limited."""
        return wrap(func, self._run, self._run_async)

    def _strategy_info(self) -> StrategyInfo:
        return {"kind": "timeout", "name": None, "options": {"seconds": self._seconds}}

    def __repr__(self) -> str:
        return f"Timeout({self._seconds!r})"


class Deadline:
    """Give each call ``seconds`` in all: ``deadline(seconds)`` as a strategy (kind ``"deadline"``).

    A deadline interrupts nothing by itself; it bounds what runs inside it. Retries inside
    stop before sleeping past it, ``Timeout`` strategies and ``timeout()`` blocks inside
    never outlive it, and ``check_deadline()`` refuses work that cannot finish in time. As
    the outer "total timeout" of a pipeline, pair it with an attempt ``Timeout`` to cut an
    attempt that hangs. Nested deadlines only shrink.

    Args:
        seconds: the time each call has in all, a finite number >= 0, at most 1e9.
        clock: the clock the deadline is kept on (``deadline(clock=...)``); give it the
            ``FakeClock`` that drives the retries inside to test them on fake time.

    Raises:
        TypeError, ValueError: ``seconds`` is not a finite number >= 0, or ``clock`` is
            not a plain callable.

    Examples:
        >>> from resilience import remaining
        >>> total = Deadline(5.0)
        >>> total.call(lambda: 0 < remaining() <= 5.0)
        True
    """

    __slots__ = ("_clock", "_seconds")

    def __init__(self, seconds: float, *, clock: Clock = time.monotonic) -> None:
        self._seconds = check_limit("seconds", seconds, zero=True)
        if clock is not time.monotonic:
            check_sync_callable("clock", clock)
        self._clock = clock

    @property
    def seconds(self) -> float:
        """The time each call has in all."""
        return self._seconds

    @property
    def clock(self) -> Clock:
        """The clock the deadline is kept on."""
        return self._clock

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` under the deadline and return its result."""
        with deadline(self._seconds, clock=self._clock):
            return func(*args, **kwargs)

    def _run(self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        with deadline(self._seconds, clock=self._clock):
            return func(*args, **kwargs)

    def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Await ``func(*args, **kwargs)`` under the deadline and return its result."""
        return self._run_async(func, args, kwargs)

    async def _run_async(
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        async with deadline(self._seconds, clock=self._clock):
            return await func(*args, **kwargs)

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so each call runs under the deadline."""
        return wrap(func, self._run, self._run_async)

    def _strategy_info(self) -> StrategyInfo:
        options: dict[str, Any] = {"seconds": self._seconds}
        if self._clock is not time.monotonic:  # an injected clock; the default goes unsaid
            options["clock"] = self._clock
        return {"kind": "deadline", "name": None, "options": options}

    def __repr__(self) -> str:
        if self._clock is time.monotonic:
            return f"Deadline({self._seconds!r})"
        return f"Deadline({self._seconds!r}, clock={self._clock!r})"


Timeout.__module__ = Deadline.__module__ = "resilience"
