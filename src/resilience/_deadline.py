"""Deadlines carried in a context variable, so they flow into threads' copies and tasks.

A deadline is an absolute ``time.monotonic()`` value stored in a ``ContextVar``. Tasks copy
the context when they are created, so a task started inside ``with deadline(...)`` inherits
the deadline; ``contextvars.copy_context().run`` carries it into a thread (as
``call_with_timeout`` does). A deadline interrupts nothing by itself: the code that waits
(retries, ``timeout()``, ``call_with_timeout``) reads ``remaining()`` and stops in time.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Final

from resilience._validate import check_number

if TYPE_CHECKING:
    import types

__all__ = ["check_deadline", "deadline", "remaining"]

# The absolute time.monotonic() at which the innermost deadline passes, or None.
_DEADLINE: ContextVar[float | None] = ContextVar("resilience_deadline", default=None)


LONGEST: Final = 1e9
"""The longest limit a deadline or timeout accepts, in seconds (about 31 years).

Beyond it the platform's timers cannot count: ``setitimer`` and ``threading`` waits hold
nanoseconds in 64 bits (about 9.2e9 seconds), and ``time.monotonic() + seconds`` would lose
all precision long before ``1e308``.
"""


def check_limit(name: str, value: object, *, zero: bool = False) -> float:
    """Return a time limit: a finite number of seconds > 0 (>= 0 with ``zero``), <= LONGEST."""
    if zero:
        seconds = check_number(name, value, minimum=0.0)
    else:
        seconds = check_number(name, value, positive=True)
    if seconds > LONGEST:
        raise ValueError(
            f"{name} must be at most {LONGEST:g} seconds (what the platform's timers can "
            f"count), got {value!r}"
        )
    return seconds


class _Deadline:
    """The context manager ``deadline()`` returns; usable with ``with`` and ``async with``."""

    __slots__ = ("_seconds", "_token")

    def __init__(self, seconds: float) -> None:
        self._seconds = check_limit("seconds", seconds, zero=True)
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        if self._token is not None:
            raise RuntimeError("this deadline is already active; make a new one with deadline()")
        at = time.monotonic() + self._seconds
        outer = _DEADLINE.get()
        if outer is not None and outer < at:
            at = outer
        self._token = _DEADLINE.set(at)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _DEADLINE.reset(token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"deadline({self._seconds!r})"


def deadline(seconds: float) -> _Deadline:
    """Set a deadline ``seconds`` from entering the block, for the code inside it.

    Use it as ``with deadline(s):`` or ``async with deadline(s):``. A deadline interrupts
    nothing by itself: retries stop before sleeping past it, ``timeout()`` and
    ``call_with_timeout()`` never outlive it, and ``check_deadline()`` refuses to start work
    that cannot finish in time. Nested deadlines only shrink: an inner deadline later than
    the outer one keeps the outer one. Tasks created inside the block inherit it, and so does
    the worker of ``call_with_timeout()``.

    Args:
        seconds: how long from entering the block, a finite number >= 0.

    Raises:
        TypeError: ``seconds`` is not a number (or is a ``bool``).
        ValueError: ``seconds`` is negative, NaN or infinite.

    Examples:
        >>> with deadline(5.0):
        ...     assert 0 < remaining() <= 5.0
    """
    return _Deadline(seconds)


def remaining() -> float | None:
    """Return the seconds left before the innermost deadline (never negative), or None.

    ``None`` means no deadline is set in this context; ``0.0`` means it has passed.
    """
    at = _DEADLINE.get()
    if at is None:
        return None
    return max(0.0, at - time.monotonic())


def check_deadline(min_remaining: float = 0.0) -> float | None:
    """Raise ``TimeoutError`` now unless at least ``min_remaining`` seconds are left.

    Call it before starting work that is not worth starting without enough time to finish,
    for instance right before a breaker-protected call. Called *outside* the protected
    function, the refusal is not a call: the breaker neither sees nor counts it. Outside any
    deadline it does nothing.

    Args:
        min_remaining: the seconds the work needs, a finite number >= 0. With the default,
            it raises only once the deadline has passed.

    Returns:
        The seconds left (as ``remaining()``), or None outside any deadline.

    Raises:
        TimeoutError: the deadline has passed, or fewer than ``min_remaining`` seconds are left.
        TypeError: ``min_remaining`` is not a number (or is a ``bool``).
        ValueError: ``min_remaining`` is negative, NaN or infinite.

    Examples:
        >>> from resilience import CircuitBreaker
        >>> breaker = CircuitBreaker()
        >>> with deadline(5.0):
        ...     left = check_deadline(0.5)  # raises TimeoutError if < 0.5 s are left
        ...     breaker.call(print, "started with enough time")
        started with enough time
    """
    needed = check_number("min_remaining", min_remaining, minimum=0.0)
    left = remaining()
    if left is None:
        return None
    if left <= 0.0:
        raise TimeoutError("the deadline has passed")
    if left < needed:
        raise TimeoutError(f"only {left:.3f} s left before the deadline, {needed:g} s needed")
    return left


deadline.__module__ = remaining.__module__ = check_deadline.__module__ = "resilience"
