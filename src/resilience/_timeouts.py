"""Timeouts: the per-operation table, validation, ``timeout()`` and ``call_with_timeout()``.

``timeout()`` picks its mechanism when the block is entered, and each one promises exactly
what it can deliver:

- ``async with``: ``asyncio.timeout`` cancels the awaited work of the current task only.
- ``with`` in the main thread on POSIX: a one-shot ``ITIMER_REAL`` timer and a ``SIGALRM``
  handler interrupt the block. All sync timeouts of the main thread share that one timer
  (``_Alarms``): it is armed for the earliest due time, including a timer someone else had
  armed before (whose handler is called when its time comes and which is re-armed with its
  remaining time once the last timeout exits).
- ``with`` anywhere else (other threads, no ``SIGALRM``, a running event loop in the
  thread): nothing can interrupt the block, so ``TimeoutError`` is raised as it exits late.

Every form also narrows the context's deadline for the block, so retries inside it stop in
time, and a block that runs past its limit never ends normally.
"""

from __future__ import annotations

import collections
import contextvars
import itertools
import math
import os
import signal
import sys
import threading
import time
import types
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Self, TypeVar, cast

from resilience import _deadline
from resilience._critical import interrupted, section
from resilience._deadline import check_limit, remaining
from resilience._validate import (
    check_callable,
    check_name,
    check_number,
    is_coroutine_function,
)

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Mapping
    from contextvars import Token

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "TIMEOUTS",
    "call_with_timeout",
    "get_timeout",
    "timeout",
    "validate_timeout",
]

P = ParamSpec("P")
R = TypeVar("R")

# ---------------------------------------------------------------------------------------
# The table

_NETWORK: Final = {"dns": 5.0, "connect": 10.0, "ssl_handshake": 10.0, "read": 30.0, "write": 30.0}
_API: Final = {"api_call": 30.0, "http_request": 30.0, "llm_api_call": 120.0}
_AGENT: Final = {"agent_create": 120.0, "agent_command": 300.0, "agent_task": 1800.0}

TIMEOUTS: Final[Mapping[str, float]] = types.MappingProxyType({**_NETWORK, **_API, **_AGENT})
"""Default timeouts in seconds by operation name (read-only).

Network operations (``dns``, ``connect``, ``ssl_handshake``, ``read``, ``write``), API calls
(``api_call``, ``http_request``, ``llm_api_call``) and agent operations (``agent_create``,
``agent_command``, ``agent_task``). Every agent timeout is longer than every network one.
Read them through ``get_timeout()``, which applies environment overrides.
"""

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds ``get_timeout()`` returns for an unknown operation without a ``default``."""

MIN_TIMEOUT: Final = 0.1
"""The smallest timeout ``validate_timeout()`` returns by default, in seconds."""

MAX_TIMEOUT: Final = 3600.0
"""The largest timeout ``validate_timeout()`` returns by default, in seconds (one hour)."""

_ENV_PREFIX: Final = "RESILIENCE_TIMEOUT_"


def _env_variable(operation: str) -> str:
    """Return the environment variable that overrides ``operation``.

    ASCII letters are upper-cased, digits kept, and every other character (``-``, ``.``,
    space, non-ASCII letters...) becomes ``_``.
    """
    return _ENV_PREFIX + "".join(
        char.upper() if char.isascii() and char.isalnum() else "_" for char in operation
    )


def get_timeout(operation: str, default: float | None = None) -> float:
    """Return the timeout for ``operation`` in seconds.

    The value comes from, in order: the environment variable
    ``RESILIENCE_TIMEOUT_<OPERATION>`` (read at every call, for any name, known or not),
    ``TIMEOUTS[operation]``, ``default``, and ``DEFAULT_TIMEOUT``. In the variable's name the
    operation's ASCII letters are upper-cased, its digits kept, and every other character
    becomes ``_`` (so ``llm-api.call`` reads ``RESILIENCE_TIMEOUT_LLM_API_CALL``). The
    variable must hold a finite number of seconds > 0, such as ``2.5``; it is not clamped
    (pass the result to ``validate_timeout()`` for that).

    Args:
        operation: the operation's name, a non-empty ``str`` of at most 200 printable
            characters.
        default: the seconds for an operation that is not in ``TIMEOUTS``, a finite number
            > 0, or None for ``DEFAULT_TIMEOUT``.

    Raises:
        TypeError: ``operation`` is not a ``str``, or ``default`` not a number.
        ValueError: ``operation`` or ``default`` is out of range, or the environment variable
            is set but is not a finite number > 0 (the message names the variable).

    Examples:
        >>> get_timeout("connect")
        10.0
        >>> get_timeout("resize_image", default=5.0)
        5.0
    """
    name = check_name(operation, param="operation")
    fallback = (
        DEFAULT_TIMEOUT if default is None else check_number("default", default, positive=True)
    )
    assert name is not None  # noqa: S101  # check_name returns None only when optional
    variable = _env_variable(name)
    raw = os.environ.get(variable)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{variable} must be a number of seconds, got {raw!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{variable} must be a finite number of seconds > 0, got {raw!r}")
        return value
    return TIMEOUTS.get(name, fallback)


def validate_timeout(
    value: float, min_timeout: float = MIN_TIMEOUT, max_timeout: float = MAX_TIMEOUT
) -> float:
    """Return ``value`` clamped into ``[min_timeout, max_timeout]``, as a float.

    Every number is clamped, including 0, negatives and infinities: the point is to turn a
    configured value into a usable one. What is not a number at all is an error.

    Args:
        value: the timeout to check, an ``int`` or ``float`` (not a ``bool``), not NaN.
        min_timeout: the lower bound, a finite number >= 0.
        max_timeout: the upper bound, a finite number >= ``min_timeout``.

    Raises:
        TypeError: an argument is not a number, or is a ``bool``.
        ValueError: ``value`` is NaN, a bound is negative, NaN or infinite, or
            ``min_timeout > max_timeout``.

    Examples:
        >>> validate_timeout(0)
        0.1
        >>> validate_timeout(float("inf"))
        3600.0
        >>> validate_timeout(12)
        12.0
    """
    low = check_number("min_timeout", min_timeout, minimum=0.0)
    high = check_number("max_timeout", max_timeout, minimum=0.0)
    if low > high:
        raise ValueError(
            f"min_timeout must be <= max_timeout, got min_timeout={min_timeout!r}, "
            f"max_timeout={max_timeout!r}"
        )
    number = check_number("value", value, finite=False)
    return min(high, max(low, number))


# ---------------------------------------------------------------------------------------
# The timeout() context manager

_HAVE_ALARM: Final = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
_MIN_DELAY: Final = 1e-6  # setitimer(0) would disarm; a due time already past fires at once
_RETRY_DELAY: Final = 1e-3  # when the alarm lands in our own bookkeeping, look again soon
_DRAIN_SECONDS: Final = 0.05  # upper bound on waiting for a just-fired alarm to be handled


def _noop() -> None:
    """Do nothing; calling a Python function lets the interpreter run pending signal handlers."""


class _Alarms:
    """The main thread's ``SIGALRM`` timer, shared by every sync ``timeout()`` in it.

    Only the main thread touches this object (signal handlers also run there), so it needs
    no lock. ``busy`` marks push/pop: a handler that runs then does nothing, because they
    re-arm the timer from the due times as they finish.
    """

    def __init__(self) -> None:
        self.stack: list[_Timeout] = []
        self.busy = False
        self.outstanding = False  # the kernel timer is armed and its handler has not run
        self.saved_handler: Any = signal.SIG_DFL
        self.foreign_due: float | None = None  # when the timer armed before ours fires
        self.foreign_interval = 0.0
        self.missed = False  # an alarm came while busy: look at the due times again after

    def push(self, timer: _Timeout) -> None:
        """Start interrupting for ``timer``; install the handler if it is the first.

        All or nothing: if any step fails, the handler, the timer and the stack are left as
        they were and the error propagates.
        """
        self.busy = True
        try:
            first = not self.stack
            if first:
                _noop()  # let a pending handler of the previous owner run before we take over
                previous = signal.getsignal(signal.SIGALRM)
                delay, interval = signal.getitimer(signal.ITIMER_REAL)
                signal.signal(signal.SIGALRM, self.on_alarm)  # raises before changing anything
                self.saved_handler = previous
                self.foreign_due = time.monotonic() + delay if delay > 0 else None
                self.foreign_interval = interval
            self.stack.append(timer)
            try:
                self.arm(time.monotonic())
            except BaseException:
                self.stack.remove(timer)
                if first:
                    self._restore()
                else:
                    self.arm(time.monotonic())
                raise
        finally:
            self._unbusy()

    def _unbusy(self) -> None:
        """Leave push/pop; an alarm that came meanwhile is looked at again at once."""
        self.busy = False
        if self.missed:
            self.missed = False
            if self.stack:
                self.arm(time.monotonic())

    def _restore(self) -> None:
        """Give ``SIGALRM`` and the timer back to their previous owner."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.outstanding = False
        signal.signal(signal.SIGALRM, self.saved_handler)
        if self.foreign_due is not None:
            left = max(self.foreign_due - time.monotonic(), _MIN_DELAY)
            signal.setitimer(signal.ITIMER_REAL, left, self.foreign_interval)
        self.saved_handler = signal.SIG_DFL
        self.foreign_due = None

    def pop(self, timer: _Timeout) -> None:
        """Stop interrupting for ``timer``; give the signal back if it was the last."""
        self.busy = True
        try:
            self.stack = [entry for entry in self.stack if entry is not timer]
            if self.stack:
                self.arm(time.monotonic())
                return
            delay, _ = signal.setitimer(signal.ITIMER_REAL, 0)
            if delay > 0:
                self.outstanding = False
            # A timer that fired just now may have a handler call pending; let it run (it
            # does nothing while busy) so the previous handler never receives our alarm.
            give_up = time.monotonic() + _DRAIN_SECONDS
            while self.outstanding and time.monotonic() < give_up:
                _noop()
            self.outstanding = False
            self._restore()
        finally:
            self._unbusy()

    def arm(self, now: float) -> None:
        """Arm the timer for the earliest pending due time, or disarm it."""
        dues = [entry.due for entry in self.stack if not entry.fired]
        if self.foreign_due is not None:
            dues.append(self.foreign_due)
        if dues:
            signal.setitimer(signal.ITIMER_REAL, max(min(dues) - now, _MIN_DELAY))
            self.outstanding = True
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.outstanding = False

    def on_alarm(self, signum: int, frame: types.FrameType | None) -> None:
        """Interrupt the outermost expired block, or call the previous owner's handler."""
        self.outstanding = False
        if self.busy:
            self.missed = True  # push/pop look at the due times again as they finish
            return
        if not self.stack:
            return
        if interrupted(frame) or _swallowed_there(frame):
            # Raising inside our own __enter__/__exit__ would skip their cleanup, inside a
            # critical section (a breaker's locked update) would leave it half done, and
            # inside a gc callback or a __del__ the interpreter would swallow it: the
            # block would run on as if it had no limit.
            signal.setitimer(signal.ITIMER_REAL, _RETRY_DELAY)
            self.outstanding = True
            return
        now = time.monotonic()
        if self.foreign_due is not None and self.foreign_due <= now:
            handler = self.saved_handler
            interval = self.foreign_interval
            self.foreign_due = now + interval if interval > 0 else None
            self.arm(now)
            _call_previous_handler(handler, signum, frame)
        for index, entry in enumerate(self.stack):
            if not entry.fired and entry.due <= now:
                # The exception unwinds every block inside this one too.
                for inner in self.stack[index:]:
                    inner.fired = True
                self.arm(now)
                raise _ours(TimeoutError(entry.interrupt_message()))
        self.arm(now)


def _call_previous_handler(handler: Any, signum: int, frame: types.FrameType | None) -> None:
    """Deliver an alarm the previous owner of ``SIGALRM`` had scheduled, as it would have."""
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        # The default action ends the process (an alarm used as a watchdog); keep it so.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGALRM)
    # SIG_IGN: the alarm was to be ignored.


_ALARMS: Final = _Alarms()


def _ours(error: TimeoutError) -> TimeoutError:
    """Mark ``error`` as raised by a ``timeout()`` of this library, then return it."""
    # A builtin exception takes attributes; the mark is private to this module.
    error._resilience_timeout = True  # type: ignore[attr-defined]  # noqa: SLF001
    return error


def _is_ours(error: BaseException | None) -> bool:
    return isinstance(error, TimeoutError) and getattr(error, "_resilience_timeout", False)


def _interrupt_unavailable() -> str | None:
    """Say why a sync block cannot be interrupted here, or return None if it can."""
    if not _HAVE_ALARM:
        return "this platform has no SIGALRM"
    if threading.current_thread() is not threading.main_thread():
        return "only the main thread can be interrupted"
    aio = sys.modules.get("asyncio")
    if aio is not None:  # without asyncio imported, no event loop can be running
        try:
            aio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return "an event loop runs in this thread; use `async with timeout()`"
    if not _ALARMS.stack and signal.getsignal(signal.SIGALRM) is None:
        return "SIGALRM has a handler that was not installed from Python"
    return None


class _Timeout:
    """The context manager ``timeout()`` returns; see ``timeout()``."""

    __slots__ = (
        "_async_cm",
        "_by_deadline",
        "_entered",
        "_limit",
        "_reason",
        "_seconds",
        "_token",
        "due",
        "fired",
    )

    def __init__(self, seconds: float) -> None:
        self._seconds = check_limit("seconds", seconds)
        self._entered = False
        self._limit = self._seconds
        self._by_deadline = False
        self._reason: str | None = None  # why the block cannot be interrupted, if it cannot
        self._token: Token[_deadline.Due | None] | None = None
        self._async_cm: asyncio.Timeout | None = None
        self.due = math.inf  # on the time.monotonic() clock
        self.fired = False  # the alarm has raised TimeoutError in the block

    def _begin(self) -> float:
        """Fix the limit (never past the enclosing deadline) and narrow the deadline to it."""
        if self._entered:
            raise RuntimeError("a timeout() can be entered only once; make a new one")
        self._entered = True
        left = remaining()
        if left is not None and left < self._seconds:
            if left <= 0.0:
                raise TimeoutError("the enclosing deadline has passed; the block was not started")
            self._limit = left
            self._by_deadline = True
        now = time.monotonic()
        self.due = now + self._limit
        # The block's deadline is on the real clock, the one its timer counts: inside a
        # deadline on an injected clock, the seconds left there were taken as real seconds.
        self._token = _deadline.enter((self.due, time.monotonic))
        return now

    def _end(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            _deadline.leave(token)

    def _what(self) -> str:
        if self._by_deadline:
            return f"the enclosing deadline ({self._limit:.3g} s, sooner than {self._seconds:g} s)"
        return f"its {self._seconds:g} s timeout"

    def interrupt_message(self) -> str:
        """Return the message of the ``TimeoutError`` that interrupts the block."""
        return f"the block was interrupted at {self._what()}"

    def _late(self, now: float) -> TimeoutError:
        elapsed = now - (self.due - self._limit)
        why = f" (it could not be interrupted: {self._reason})" if self._reason else ""
        return TimeoutError(f"the block ran {elapsed:.3f} s, past {self._what()}{why}")

    def __enter__(self) -> Self:
        self._begin()
        try:
            reason = _interrupt_unavailable()
            if reason is None:
                try:
                    _ALARMS.push(self)
                except ValueError as error:  # e.g. the main thread of a sub-interpreter
                    reason = f"SIGALRM is unavailable here ({error})"
        except BaseException:
            self._end()  # push left the signal state as it was; put the deadline back too
            raise
        self._reason = reason
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        now = time.monotonic()
        try:
            if self._reason is None:
                _ALARMS.pop(self)
        finally:
            self._end()
        if self.fired and exc is not None and not _is_ours(exc):
            # Our interrupt landed inside a client that turned it into its own error
            # (httpx's ReadTimeout, a wrapped OSError): the caller still gets the builtin
            # TimeoutError, chained from what the client made of it.
            raise _ours(TimeoutError(self.interrupt_message())) from exc
        # A block that ran past its limit never ends normally (its own exception wins).
        if exc_type is None and now >= self.due:
            raise self._late(now)

    async def __aenter__(self) -> Self:
        import asyncio  # noqa: PLC0415  # only async users pay for importing asyncio

        loop = asyncio.get_running_loop()
        self._begin()
        self._async_cm = asyncio.timeout_at(loop.time() + self._limit)
        try:
            await self._async_cm.__aenter__()
        except BaseException:
            self._end()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        now = time.monotonic()
        cm = cast("asyncio.Timeout", self._async_cm)  # set by __aenter__
        self._async_cm = None
        try:
            # Raises TimeoutError only when it turned its own cancellation into one; the
            # block's own exceptions pass through untouched.
            await cm.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            raise _ours(TimeoutError(f"the awaited work was cancelled at {self._what()}")) from exc
        finally:
            self._end()
        if cm.expired() and exc is not None and not _is_ours(exc):
            # The cancellation was turned into another error inside the block: the time
            # still ran out, and the caller gets the builtin TimeoutError, chained.
            raise _ours(TimeoutError(f"the awaited work was cancelled at {self._what()}")) from exc
        if exc_type is None and now >= self.due:
            raise self._late(now)

    def __repr__(self) -> str:
        return f"timeout({self._seconds!r})"


def timeout(seconds: float) -> _Timeout:
    """Limit a block to ``seconds``; raise the builtin ``TimeoutError`` when time runs out.

    Use ``async with timeout(s):`` in coroutines and ``with timeout(s):`` in sync code. What
    happens when the time runs out depends on where the block runs:

    - ``async with``: the awaited work of the current task is cancelled (by
      ``asyncio.timeout``) and ``TimeoutError`` raised; other tasks are untouched.
    - ``with``, main thread, POSIX: a ``SIGALRM`` interval timer interrupts the block wherever
      it is, including ``time.sleep`` and blocking socket calls. The previous ``SIGALRM``
      handler and timer are restored on exit, nested timeouts share the timer (the shortest
      wins), and no alarm is left pending.
    - ``with`` elsewhere (other threads, platforms without ``SIGALRM``, or a thread running
      an event loop): the block cannot be interrupted. It runs to its end, and then
      ``TimeoutError`` is raised if it took too long. Use ``call_with_timeout()`` to stop
      waiting for blocking work there.

    In every case a block that runs past its limit never ends normally (an exception of its
    own takes precedence), the limit never outlives an enclosing ``deadline()``, and the
    block sees the limit as its deadline (``remaining()`` inside it is at most ``seconds``),
    so retries inside it stop in time. The limit is real time: inside a deadline kept on an
    injected clock (``deadline(clock=...)``), the seconds left there count as real seconds,
    and the block's own deadline is on the real clock. When the enclosing deadline has
    already passed, the block does not start: ``TimeoutError`` is raised on entry. An
    interrupt may land anywhere in the block, like ``KeyboardInterrupt``; code that must not
    be cut short belongs outside.

    Args:
        seconds: the time limit, a finite number > 0.

    Raises:
        TypeError: ``seconds`` is not a number (or is a ``bool``).
        ValueError: ``seconds`` is not > 0, or is NaN or infinite.

    Examples:
        >>> import time
        >>> try:
        ...     with timeout(0.05):
        ...         time.sleep(1)
        ... except TimeoutError:
        ...     print("gave up")
        gave up
    """
    return _Timeout(seconds)


# Functions during which an alarm must not raise: the deadline or the timer would be left
# half set up or half torn down. They are critical sections like the breaker's and the
# bulkhead's, marked the one way the library has (resilience._critical).
for _step in (
    _Timeout.__enter__,
    _Timeout.__exit__,
    _Timeout.__aenter__,
    _Timeout.__aexit__,
    _Timeout._begin,  # noqa: SLF001  # our own class
    _Timeout._end,  # noqa: SLF001  # our own class
    _Alarms.push,
    _Alarms.pop,
    _Alarms._unbusy,  # noqa: SLF001  # our own class
    _Alarms._restore,  # noqa: SLF001  # our own class
    _Alarms.arm,
    _interrupt_unavailable,
    remaining,
):
    section(_step)
del _step


def _swallowed_there(frame: types.FrameType | None) -> bool:
    """Tell whether an exception raised at ``frame`` would be reported as unraisable.

    The garbage collector runs its callbacks and finalizers (``__del__``) at any
    allocation; what they raise is printed and dropped, never seen by the block.
    """
    import gc  # noqa: PLC0415  # already loaded by the interpreter; only an alarm needs it

    callbacks = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code in callbacks:
            return True
        frame = frame.f_back
    return False


# ---------------------------------------------------------------------------------------
# Calls in worker threads

_MAX_WORKERS: Final = 32
_IDLE_SECONDS = 60.0  # a worker with nothing to do for this long exits

_PENDING: Final = 0
_RUNNING: Final = 1
_FINISHED: Final = 2
_CANCELLED: Final = 3


class _Job:
    """One call handed to a worker, and its outcome."""

    __slots__ = ("args", "context", "done", "error", "func", "kwargs", "result", "state")

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context,
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self.done = threading.Event()
        self.state = _PENDING
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.context.run(self.func, *self.args, **self.kwargs)
        except BaseException as error:  # handed to the caller, whatever it is
            self.error = error
        finally:
            self.state = _FINISHED
            self.done.set()


class _Pool:
    """At most ``max_workers`` daemon threads, started when needed, that run ``_Job``s.

    A worker stuck in a call that never returns stays busy; when every worker is busy, new
    jobs wait in the queue and time out without starting.
    """

    def __init__(self, max_workers: int = _MAX_WORKERS) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[_Job] = collections.deque()
        self._idle = 0
        self.workers = 0
        self._numbers = itertools.count(1)

    def submit(self, job: _Job) -> None:
        with self._lock:
            self._queue.append(job)
            if len(self._queue) <= self._idle:
                self._ready.notify()
                return
            if self.workers >= self.max_workers:
                return
            self.workers += 1
            number = next(self._numbers)
        try:
            thread = threading.Thread(
                target=self._work, name=f"resilience-timeout-worker-{number}", daemon=True
            )
            thread.start()
        except BaseException:
            with self._lock:
                self.workers -= 1
            raise

    def cancel(self, job: _Job) -> bool:
        """Withdraw ``job`` if no worker has started it; return whether it was withdrawn."""
        with self._lock:
            if job.state != _PENDING:
                return False
            job.state = _CANCELLED
            self._queue.remove(job)
            return True

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                try:
                    while not self._queue:
                        if not self._ready.wait(_IDLE_SECONDS) and not self._queue:
                            self.workers -= 1
                            return
                finally:
                    self._idle -= 1
                job = self._queue.popleft()
                job.state = _RUNNING
            job.run()
            del job  # drop the result and the arguments before waiting for the next one


_pool_lock = threading.Lock()
_pool: _Pool | None = None


def _get_pool() -> _Pool:
    global _pool  # noqa: PLW0603  # the one pool, made on first use
    with _pool_lock:
        if _pool is None:
            _pool = _Pool()
        return _pool


def _forget_pool_after_fork() -> None:
    """Start afresh in a forked child: the parent's workers do not exist there."""
    global _pool, _pool_lock  # noqa: PLW0603  # the parent's lock may be held by a lost thread
    _pool_lock = threading.Lock()
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def call_with_timeout(
    func: Callable[P, R], seconds: float, /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run ``func(*args, **kwargs)`` in a worker thread; stop waiting after ``seconds``.

    Python cannot stop a thread, so on timeout the call **runs on** in its worker, and its
    eventual result or exception is dropped. What is bounded is the caller's wait, and the
    number of threads: at most 32 daemon workers, started when first needed, named
    ``resilience-timeout-worker-N``, each exiting after a minute with nothing to do. When all
    of them are busy (stuck in calls that never return), new calls wait for a free worker
    within their own time limit and, if none frees up, raise ``TimeoutError`` without ever
    starting. The limit never outlives an enclosing ``deadline()``; the worker runs in a copy
    of the caller's context (so context variables, and the deadline narrowed to this call's
    limit, are seen inside ``func``).

    Args:
        func: a plain (not ``async``) callable.
        seconds: how long to wait, a finite number > 0.
        *args: positional arguments for ``func``.
        **kwargs: keyword arguments for ``func``.

    Returns:
        What ``func`` returned.

    Raises:
        TimeoutError: ``func`` did not finish (or could not start) within the limit, or the
            enclosing deadline had already passed (then ``func`` is not started).
        TypeError: ``func`` is not callable or is a coroutine function, or ``seconds`` is
            not a number (or is a ``bool``).
        ValueError: ``seconds`` is not > 0, or is NaN or infinite.
        BaseException: whatever ``func`` raised, unchanged.

    Examples:
        >>> call_with_timeout(sum, 1.0, [1, 2, 3])
        6
    """
    check_callable("func", func)
    if is_coroutine_function(func):  # an object whose __call__ is async def too
        raise TypeError(
            f"func must be a plain function, got coroutine function {func!r}; "
            "use `async with timeout()` around the await instead"
        )
    limit = check_limit("seconds", seconds)
    left = remaining()
    if left is not None and left < limit:
        if left <= 0.0:
            raise TimeoutError("the enclosing deadline has passed; func was not started")
        limit = left
    context = contextvars.copy_context()
    context.run(_deadline.enter, (time.monotonic() + limit, time.monotonic))
    job = _Job(func, args, kwargs, context)
    pool = _get_pool()
    try:
        pool.submit(job)
        finished = job.done.wait(limit)
    except BaseException:
        pool.cancel(job)
        raise
    if not finished:
        if pool.cancel(job):
            raise TimeoutError(
                f"{func!r} did not start within {limit:g} s: all {pool.max_workers} worker "
                "threads are busy with earlier calls that have not returned"
            )
        if not job.done.is_set():
            raise TimeoutError(
                f"{func!r} did not finish within {limit:g} s; it runs on in its worker thread"
            )
    error = job.error
    if error is not None:
        try:
            raise error
        finally:
            del error, job  # break the cycle through the traceback
    return job.result  # type: ignore[no-any-return]  # func's result, typed R by the signature


timeout.__module__ = get_timeout.__module__ = validate_timeout.__module__ = "resilience"
call_with_timeout.__module__ = "resilience"
