"""Helpers for testing code that uses ``resilience`` without waiting for real time."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Self, TypeVar, overload

from resilience._memory_storage import InMemoryStorage
from resilience._retry import INSTANT, TESTING
from resilience._validate import check_callable, check_int, check_number
from resilience._wrap import wrap

if TYPE_CHECKING:
    import types
    from collections.abc import Awaitable, Callable

__all__ = ["FakeClock", "InMemoryStorage", "instant_retries", "retries"]

P = ParamSpec("P")
R = TypeVar("R")


class FakeClock:
    """A monotonic clock that moves only when told to.

    Pass it as ``clock=`` (and its ``sleep``/``asleep`` as ``sleep=``) to breakers and
    retries to drive them deterministically: a recovery timeout of a minute passes in an
    instant. Give the same clock to ``deadline(clock=...)`` and retries inside it stop on
    fake time. It is safe to share between threads.

    Args:
        start: the time it reads first.

    Examples:
        >>> clock = FakeClock()
        >>> clock.advance(2.5)
        >>> clock()
        2.5
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_number("start", start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current time."""
        return self._now

    def monotonic(self) -> float:
        """Return the current time, as ``time.monotonic`` would."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (a finite number >= 0)."""
        step = check_number("seconds", seconds, minimum=0.0)
        with self._lock:
            self._now += step

    def sleep(self, seconds: float) -> None:
        """Advance the clock instead of blocking; a drop-in for ``time.sleep``."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Advance the clock and yield to the event loop once; a drop-in for ``asyncio.sleep``."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


class _Switch:
    """A process-wide test switch: a context manager (sync and async) and a decorator."""

    __slots__ = ()

    def __enter__(self) -> Self:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Run every call of ``func`` (sync or async) under this switch.

        The library's one wrapper decides sync or async once, so an object whose
        ``__call__`` is ``async def`` keeps the switch on until it is awaited.

        Raises:
            TypeError: ``func`` is not callable, or is a generator function (its body
                would run after the switch was off again).
        """
        check_callable("func", func)
        return wrap(func, self._run, self._run_async)

    def _run(self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        with self:
            return func(*args, **kwargs)

    async def _run_async(
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        with self:
            return await func(*args, **kwargs)


class _InstantRetries(_Switch):
    """The context manager ``instant_retries()`` returns; also a decorator."""

    __slots__ = ()

    def __enter__(self) -> Self:
        INSTANT.enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        INSTANT.exit()


@overload
def instant_retries() -> _InstantRetries: ...


@overload
def instant_retries(func: Callable[P, R], /) -> Callable[P, R]: ...


def instant_retries(func: Callable[P, R] | None = None, /) -> _InstantRetries | Callable[P, R]:
    """Make every retry skip its sleep while active, for tests of code that retries.

    Retries still happen, as many as they would, and decide as they would (a wait that
    would pass ``max_elapsed`` or a deadline still stops them); only the waiting is
    skipped. Use it as ``with instant_retries():``, ``async with instant_retries():``,
    ``@instant_retries`` or ``@instant_retries()`` (on sync and async functions).

    The switch is process-wide, not per thread or task: code running in threads that
    the block starts (thread pools included) retries instantly too, and so does any other
    code running in the process meanwhile. Uses may nest and overlap; sleeps resume when
    the last one ends.

    Raises:
        TypeError: ``func`` (or what ``@instant_retries()`` decorates) is not callable;
            raised at decoration.

    Examples:
        >>> from resilience import retry_with_backoff
        >>> @retry_with_backoff(max_retries=2, base_delay=30.0)
        ... def flaky(calls: list[int]) -> int:
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise ConnectionError
        ...     return len(calls)
        >>> with instant_retries():
        ...     flaky([])
        3
    """
    if func is None:
        return _InstantRetries()
    return _InstantRetries()(func)


class _Retries(_Switch):
    """The context manager ``retries()`` returns; also a decorator."""

    __slots__ = ("_attempts",)

    def __init__(self, attempts: int) -> None:
        self._attempts = attempts

    def __enter__(self) -> Self:
        TESTING.enter(self._attempts)
        INSTANT.enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        INSTANT.exit()
        TESTING.exit(self._attempts)


def retries(*, active: bool = True, attempts: int | None = None) -> _Retries:
    """Turn retries off, or cap their attempts, process-wide while active; for tests.

    stamina's ``set_testing``: ``with retries(active=False):`` makes every retry try once
    and give up (its error propagates as if no retry were there); ``with
    retries(attempts=2):`` allows at most 2 attempts per call, whatever ``max_retries``
    says. Waits are skipped meanwhile, as with ``instant_retries()``. Use it as a context
    manager (``with`` or ``async with``) or a decorator. Like ``instant_retries()`` it is
    process-wide; uses nest and overlap, and the smallest cap applies.

    Args:
        active: ``False`` allows one attempt per call (no retries).
        attempts: the most attempts per call, an int >= 1; ``None`` leaves the count alone
            (only the waits are skipped).

    Raises:
        TypeError, ValueError: ``active`` is not a bool, ``attempts`` not an int >= 1, or
            both ask for something (``active=False`` with ``attempts``).

    Examples:
        >>> from resilience import retry_with_backoff
        >>> calls = []
        >>> @retry_with_backoff(max_retries=5, base_delay=10.0)
        ... def flaky() -> None:
        ...     calls.append(1)
        ...     raise ConnectionError
        >>> with retries(attempts=2):
        ...     try:
        ...         flaky()
        ...     except ConnectionError:
        ...         pass
        >>> len(calls)
        2
    """
    if not isinstance(active, bool):
        raise TypeError(f"active must be a bool, got {active!r}")
    if attempts is not None:
        if not active:
            raise ValueError("pass active=False or attempts=, not both")
        attempts = check_int("attempts", attempts, minimum=1)
    if not active:
        attempts = 1
    return _Retries(_UNCAPPED if attempts is None else attempts)


_UNCAPPED: Final = 1 << 62  # no cap: more attempts than any call makes
