"""Deadlines carried in a context variable, so they flow into threads' copies and tasks.

A deadline is a ``Due``: the time at which it passes *and the clock that time is read on*
(``time.monotonic`` unless ``deadline(clock=...)`` injects another, such as a
``resilience.testing.FakeClock``). The innermost one sits in a ``ContextVar``. Tasks copy
the context when they are created, so a task started inside ``with deadline(...)`` inherits
the deadline; ``contextvars.copy_context().run`` carries it into a thread (as
``call_with_timeout`` does). A deadline interrupts nothing by itself: the code that waits
(retries, ``timeout()``, ``call_with_timeout``, bulkheads) reads what is left and stops in
time.

Readers inside the library go through ``innermost()`` and ``left()`` (or
``remaining()``), never through the raw context variable, so every check reads the
deadline on its own clock: a retry driven by a fake clock inside a fake-clock deadline stops
on fake time, and never compares fake time with real time.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Final, TypeAlias

from resilience._types import Clock
from resilience._validate import check_number, check_sync_callable

if TYPE_CHECKING:
    import types

__all__ = ["check_deadline", "deadline", "remaining"]


Due: TypeAlias = tuple[float, Clock]
"""One deadline: the time at which it passes, and the clock that time is read on.

A plain tuple, not a class: entering a deadline makes one, and a tuple costs a fifth of
an instance of a slotted class to make. Never mutated: a nested deadline is a new one (or
the enclosing one again, when that leaves less time).
"""

# The innermost deadline, or None outside any.
_DEADLINE: ContextVar[Due | None] = ContextVar("resilience_deadline", default=None)


def innermost() -> Due | None:
    """Return the innermost deadline of this context, or None outside any.

    With ``left()``, the one way the library reads the deadline: what is left is always
    read on the deadline's own clock, never by comparing its time with another clock.
    """
    return _DEADLINE.get()


def left(due: Due) -> float:
    """Return the seconds left before ``due`` on its own clock; negative once it has passed."""
    at, clock = due
    return at - clock()


def enter(due: Due) -> Token[Due | None]:
    """Make ``due`` the innermost deadline of this context until ``leave(token)``.

    The caller has already made sure it is no later than the enclosing one (``timeout()``
    and ``call_with_timeout()`` narrow their limit to ``remaining()`` first).
    """
    return _DEADLINE.set(due)


def leave(token: Token[Due | None]) -> None:
    """Restore the deadline that ``enter()`` replaced."""
    _DEADLINE.reset(token)


_INF: Final = float("inf")

LONGEST: Final = 1e9
"""The longest limit a deadline or timeout accepts, in seconds (about 31 years).

Beyond it the platform's timers cannot count: ``setitimer`` and ``threading`` waits hold
nanoseconds in 64 bits (about 9.2e9 seconds), and ``time.monotonic() + seconds`` would lose
all precision long before ``1e308``.
"""


def check_limit(name: str, value: object, *, zero: bool = False) -> float:
    """Return a time limit: a finite number of seconds > 0 (>= 0 with ``zero``), <= LONGEST."""
    # Every deadline() and timeout() is made here: an ordinary float in range (NaN fails
    # both comparisons) skips the general check, which costs a quarter of a microsecond.
    if type(value) is float and (value >= 0.0 if zero else value > 0.0) and value <= LONGEST:
        return value
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

    __slots__ = ("_clock", "_seconds", "_token")

    def __init__(self, seconds: float, clock: Clock) -> None:
        self._seconds = check_limit("seconds", seconds, zero=True)
        if clock is not time.monotonic:  # the default needs no check (deadline() is hot)
            check_sync_callable("clock", clock)
        self._clock = clock
        self._token: Token[Due | None] | None = None

    def __enter__(self) -> None:
        if self._token is not None:
            raise RuntimeError("this deadline is already active; make a new one with deadline()")
        clock = self._clock
        now = clock()
        outer = _DEADLINE.get()
        if outer is not None:
            # Nested deadlines only shrink: compare what is left on each one's own clock,
            # once, now. When the enclosing deadline leaves no more time it stays the
            # innermost, read on its own clock, so an inner deadline on another clock can
            # never extend it.
            at, outer_clock = outer
            if at - (now if outer_clock is clock else outer_clock()) <= self._seconds:
                self._token = _DEADLINE.set(outer)
                return
        self._token = _DEADLINE.set((now + self._seconds, clock))

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
        if self._clock is time.monotonic:
            return f"deadline({self._seconds!r})"
        return f"deadline({self._seconds!r}, clock={self._clock!r})"


def deadline(seconds: float, *, clock: Clock = time.monotonic) -> _Deadline:
    """Set a deadline ``seconds`` from entering the block, for the code inside it.

    Use it as ``with deadline(s):`` or ``async with deadline(s):``. A deadline interrupts
    nothing by itself: retries stop before sleeping past it, ``timeout()`` and
    ``call_with_timeout()`` never outlive it, and ``check_deadline()`` refuses to start work
    that cannot finish in time. Nested deadlines only shrink: an inner deadline later than
    the outer one keeps the outer one. Tasks created inside the block inherit it, and so does
    the worker of ``call_with_timeout()``.

    The deadline is kept on ``clock``: ``remaining()`` inside the block reads that clock,
    and so does every retry's deadline check. Give the ``FakeClock`` that drives your
    retries (``clock=`` and ``sleep=``) to the deadline too, and the retries stop exactly on
    fake time. An inner deadline on another clock than the outer one is compared with it
    once, on entry, by the seconds each has left. ``timeout()``, ``call_with_timeout()``
    and bulkhead waits use real timers: inside a deadline on an injected clock they take
    ``remaining()`` as real seconds.

    Args:
        seconds: how long from entering the block, a finite number >= 0.
        clock: a zero-argument callable returning monotonic seconds, read when the block
            is entered and whenever the deadline is checked.

    Raises:
        TypeError: ``seconds`` is not a number (or is a ``bool``), or ``clock`` is not a
            plain callable (a coroutine function is refused).
        ValueError: ``seconds`` is negative, NaN or infinite.

    Examples:
        >>> with deadline(5.0):
        ...     assert 0 < remaining() <= 5.0

        >>> from resilience.testing import FakeClock
        >>> clock = FakeClock()
        >>> with deadline(5.0, clock=clock):
        ...     clock.advance(2.0)
        ...     remaining()
        3.0
    """
    return _Deadline(seconds, clock)


def remaining() -> float | None:
    """Return the seconds left before the innermost deadline (never negative), or None.

    ``None`` means no deadline is set in this context; ``0.0`` means it has passed. The
    seconds are read on the innermost deadline's own clock (see ``deadline(clock=...)``).
    """
    due = _DEADLINE.get()
    if due is None:
        return None
    at, clock = due
    left = at - clock()
    return left if left > 0.0 else 0.0  # noqa: FURB136  # max() is a call, 5x slower here


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
    # A float in range (NaN and infinities fail the comparisons) skips the general check:
    # this is called right before protected calls, often outside any deadline.
    if type(min_remaining) is float and 0.0 <= min_remaining < _INF:
        needed = min_remaining
    else:
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
