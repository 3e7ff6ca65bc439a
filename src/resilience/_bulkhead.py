"""The bulkhead: at most N calls at once, a bounded first-in-first-out queue behind them.

Threads and tasks share one bulkhead. Its free slots are tokens in a ``collections.deque``:
taking one is ``pop()`` and giving it back is ``append()``, each atomic in CPython, so a call
that finds a free slot and no queue takes no lock at all. A lock round trip costs 110-220 ns
on the machines we measure (``benchmarks/bench_pipeline.py``), two of them per call would
double the bulkhead's cost. The lock guards only the slow paths: the queue of waiters,
limit changes and rejections, held for a few updates, never while a call runs or a caller
waits.

A caller that finds no free slot joins the queue with a waiter of its own kind: a thread
blocks on a private lock, a task awaits a future of its loop, so waiting never blocks an
event loop. Free tokens go to the oldest waiters first (FIFO). A release puts its token
back and then looks at the queue; a waiter joins the queue and then looks for a token;
whichever comes second sees the other, so no token is left idle while someone waits.

Slots are released on every exit path. Two things make that hold even when a sync
``timeout()`` interrupts the caller with ``SIGALRM`` at an arbitrary bytecode:

- the bookkeeping functions (``_arrive``, ``_enqueue``, ``_leave``, ``_release``, the block
  forms' exit steps) are critical sections (``resilience._critical.section``): the
  library's alarm handler defers its interrupt while one of them runs, so each finishes
  or never starts;
- between those functions there is no point where CPython runs a signal handler with a
  slot held and not yet covered by the ``try`` that releases it: handlers run at function
  entry, backward jumps and after calls into C, and the calling code holds none of those
  between taking the slot and entering its ``try``.
"""

from __future__ import annotations

import collections
import contextvars
import enum
import itertools
import threading
from typing import TYPE_CHECKING, Any, Final, NoReturn, ParamSpec, Self, TypeVar

from resilience import _events, _observed
from resilience._adaptive import AdaptiveLimit
from resilience._critical import section
from resilience._deadline import remaining
from resilience._observed import Family
from resilience._validate import check_int, check_name, check_number
from resilience._wrap import wrap
from resilience.exceptions import BulkheadFullError

if TYPE_CHECKING:
    import asyncio
    import types
    from collections.abc import Awaitable, Callable, Coroutine

    from resilience._strategy import StrategyInfo

__all__ = ["Bulkhead"]

P = ParamSpec("P")
R = TypeVar("R")


class _Queue(enum.Enum):
    """The marker ``_arrive`` returns when the caller has to wait for a slot."""

    QUEUE = "queue"


_QUEUE: Final = _Queue.QUEUE

# A ticket is what releasing a slot needs: the call's start time when an AdaptiveLimit
# wants samples, else None.
Ticket = float | None

# Open `with bulkhead:` blocks of this thread or task: (bulkhead, ticket) entries.
_BLOCKS: contextvars.ContextVar[tuple[tuple[Bulkhead, Ticket], ...]] = contextvars.ContextVar(
    "resilience_bulkhead_blocks", default=()
)


def _drawn(counter: itertools.count[int]) -> int:
    """Return how many values ``counter`` has handed out, without drawing one.

    ``next()`` on a count is the one atomic increment CPython offers without a lock (see
    the module docstring for why the hot path takes none); its repr is ``count(N)``.
    """
    return int(repr(counter)[6:-1])


class _Waiter:
    """One queued caller: a thread blocked on ``lock`` or a task awaiting ``future``."""

    __slots__ = ("future", "granted", "lock", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.granted = False  # set, under the bulkhead's lock, when a slot is handed over
        self.loop = loop
        if loop is None:
            self.lock = threading.Lock()
            self.lock.acquire()
        else:
            self.future: asyncio.Future[bool] = loop.create_future()
            self.thread = threading.get_ident()

    def wake(self) -> bool:
        """Tell the waiter it holds a slot now; False if it can no longer hear it."""
        loop = self.loop
        if loop is None:
            self.lock.release()
        elif threading.get_ident() == self.thread:
            self._resolve(granted=True)
        else:
            try:
                loop.call_soon_threadsafe(self.grant)
            except RuntimeError:  # its loop is closed: the task will never take the slot
                return False
        return True

    def grant(self) -> None:
        self._resolve(granted=True)

    def expire(self) -> None:
        self._resolve(granted=False)

    def _resolve(self, *, granted: bool) -> None:
        if not self.future.done():  # a cancelled task's future is done already
            self.future.set_result(granted)


class Bulkhead:
    """Run at most ``max_concurrent`` calls at once; queue or reject the rest.

    Threads and asyncio tasks share one bulkhead. A call that finds every slot busy waits
    in a first-in-first-out queue of up to ``max_queue`` callers (tasks wait without
    blocking their event loop); when the queue is full, or the call has waited
    ``max_wait`` seconds, it raises ``BulkheadFullError`` and does not run. A slot is
    released however the call ends: a result, an exception, a cancellation, a timeout.

    Use it as ``bulkhead.call(func, ...)``, ``await bulkhead.call_async(func, ...)``,
    ``@bulkhead``, ``with bulkhead:`` or ``async with bulkhead:``; in a ``Pipeline`` it is a
    strategy of kind ``"bulkhead"``.

    Args:
        max_concurrent: the number of calls allowed at once (int >= 1), or an
            ``AdaptiveLimit`` that moves the limit with observed latency and failures.
        max_queue: callers allowed to wait for a slot (int >= 0; 0 rejects at once).
        max_wait: the longest a queued caller waits, in seconds; 0 (the default) waits as
            long as it takes. A queued caller never waits past an enclosing ``deadline()``.
        name: names the bulkhead in errors, events, ``get_stats()``, metrics and
            ``health()``; a named bulkhead is observed by ``resilience.metrics``.

    Raises:
        TypeError, ValueError: an option has the wrong type or is out of range.

    Examples:
        >>> pool = Bulkhead(2, max_queue=10, name="reports")
        >>> @pool
        ... def render(n: int) -> str:
        ...     return f"report {n}"
        >>> render(1)
        'report 1'
        >>> pool.get_stats()["total_admitted"]
        1
    """

    __slots__ = (
        "__weakref__",
        "_adaptive",
        "_admitted",
        "_debt",
        "_limit",
        "_lock",
        "_max_concurrent",
        "_max_queue",
        "_max_wait",
        "_name",
        "_pool",
        "_rejected",
        "_waiters",
    )

    def __init__(
        self,
        max_concurrent: int | AdaptiveLimit,
        *,
        max_queue: int = 0,
        max_wait: float = 0.0,
        name: str | None = None,
    ) -> None:
        if isinstance(max_concurrent, AdaptiveLimit):
            self._adaptive: AdaptiveLimit | None = max_concurrent
            self._limit = max_concurrent.limit
        else:
            if not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool):
                raise TypeError(
                    f"max_concurrent must be an int or an AdaptiveLimit, got {max_concurrent!r}"
                )
            self._limit = check_int("max_concurrent", max_concurrent, minimum=1)
            self._adaptive = None
        self._max_concurrent = max_concurrent
        self._max_queue = check_int("max_queue", max_queue, minimum=0)
        self._max_wait = check_number("max_wait", max_wait, minimum=0.0)
        self._name = check_name(name, optional=True)
        if self._adaptive is not None:  # claimed last: a refused Bulkhead claims nothing
            self._adaptive._claim(self)  # noqa: SLF001  # our own class
        self._lock = threading.Lock()
        self._pool: collections.deque[bool] = collections.deque([True] * self._limit)
        self._debt = 0  # tokens to destroy on release after the limit went down
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._admitted = itertools.count()  # next() is atomic: the lock-free path counts
        self._rejected = 0
        if self._name is not None:
            _observed.observe(self)

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str | None:
        """The bulkhead's name, or ``None``."""
        return self._name

    @property
    def limit(self) -> int:
        """The concurrency limit in force now (it moves with an ``AdaptiveLimit``)."""
        return self._limit

    # ------------------------------------------------------------------ calling

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` in a slot of the bulkhead and return its result.

        Raises:
            BulkheadFullError: no slot, and no room or time in the queue; ``func`` did not run.
            BaseException: whatever ``func`` raises, unchanged.
        """
        ticket = self._arrive()
        if ticket is _QUEUE:
            ticket = self._wait()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._release(ticket, exc)
            raise
        self._release(ticket, None)
        return result

    def _run(self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """The decorator's runner: ``call`` without unpacking the arguments again."""
        ticket = self._arrive()
        if ticket is _QUEUE:
            ticket = self._wait()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._release(ticket, exc)
            raise
        self._release(ticket, None)
        return result

    def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Await ``func(*args, **kwargs)`` in a slot of the bulkhead and return its result.

        Use it as ``await bulkhead.call_async(func, ...)``. Waiting for a slot suspends the
        task, never the event loop.

        Raises:
            BulkheadFullError: no slot, and no room or time in the queue; ``func`` did not run.
            BaseException: whatever ``func`` raises, unchanged.
        """
        return self._run_async(func, args, kwargs)

    async def _run_async(
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        ticket = self._arrive()
        if ticket is _QUEUE:
            ticket = await self._wait_async()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._release(ticket, exc)
            raise
        self._release(ticket, None)
        return result

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so each call takes a slot.

        The wrapper keeps the function's signature and type and has ``.bulkhead``.
        """
        wrapped = wrap(func, self._run, self._run_async)
        wrapped.bulkhead = self  # type: ignore[attr-defined]  # documented attribute
        return wrapped

    def __enter__(self) -> Self:
        ticket = self._arrive()
        if ticket is _QUEUE:
            ticket = self._wait()
        if ticket is not None:
            self._push(ticket)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self._release(self._exit_ticket(), exc)

    async def __aenter__(self) -> Self:
        ticket = self._arrive()
        if ticket is _QUEUE:
            ticket = await self._wait_async()
        if ticket is not None:
            self._push(ticket)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self._release(self._exit_ticket(), exc)

    def _exit_ticket(self) -> Ticket:
        """The ticket of the block being left; an exit with nothing in flight is an error."""
        if self._adaptive is not None:
            return self._pop()
        if len(self._pool) >= self._limit + self._debt:  # releasing would add a slot
            raise RuntimeError("bulkhead block exited without being entered")
        return None

    # Only an adaptive bulkhead's tickets (start times) need carrying from enter to exit.
    def _push(self, ticket: float) -> None:
        _BLOCKS.set((*_BLOCKS.get(), (self, ticket)))

    def _pop(self) -> Ticket:
        blocks = _BLOCKS.get()
        for i in range(len(blocks) - 1, -1, -1):
            if blocks[i][0] is self:
                _BLOCKS.set(blocks[:i] + blocks[i + 1 :])
                return blocks[i][1]
        raise RuntimeError("bulkhead block exited without being entered in this context")

    # ------------------------------------------------------------------ slots

    def _start(self) -> Ticket:
        adaptive = self._adaptive
        return None if adaptive is None else adaptive._clock()  # noqa: SLF001  # our own class

    def _arrive(self) -> Ticket | _Queue:
        """Take a free slot, or say the caller must queue, or reject it."""
        if not self._waiters:  # nobody queued: a free token may be taken without the lock
            try:
                self._pool.pop()
            except IndexError:
                pass
            else:
                next(self._admitted)
                return None if self._adaptive is None else self._start()
        with self._lock:
            if not self._waiters:
                try:
                    self._pool.pop()
                except IndexError:  # the lock-free path took the last token meanwhile
                    pass
                else:
                    next(self._admitted)
                    return self._start()
            if len(self._waiters) < self._max_queue:
                return _QUEUE
            self._rejected += 1
            limit = self._limit
        return self._full(limit)

    def _full(self, limit: int) -> NoReturn:
        if _events.subscribers:
            _events.emit("bulkhead_full", "bulkhead", self._name, None, limit=limit)
        raise BulkheadFullError(self._name, limit)

    def _enqueue(self, waiter: _Waiter) -> None:
        """Queue ``waiter``, handing it a token at once if one is free; or reject it."""
        with self._lock:
            if len(self._waiters) < self._max_queue:
                self._waiters.append(waiter)
                # A release may have put its token back before we joined: look for it now.
                woken = self._hand_over()
            else:
                self._rejected += 1
                limit = self._limit
                woken = None
        if woken is None:
            self._full(limit)
        self._wake(woken)

    def _wait_limit(self) -> float | None:
        """Seconds a queued caller may wait: ``max_wait`` and the deadline, or None."""
        wait = self._max_wait or None
        left = remaining()
        if left is not None and (wait is None or left < wait):
            return left
        return wait

    def _wait(self) -> Ticket:
        """Queue this thread until a slot is handed to it; return the slot's ticket."""
        waiter = _Waiter()
        try:
            self._enqueue(waiter)
            wait = self._wait_limit()
            if not waiter.lock.acquire(timeout=-1 if wait is None else wait):
                self._leave(waiter, cancelled=False)
            ticket = self._start()
        except BaseException:
            self._leave(waiter, cancelled=True)
            raise
        return ticket

    async def _wait_async(self) -> Ticket:
        """Queue this task until a slot is handed to it; return the slot's ticket."""
        import asyncio  # noqa: PLC0415  # only async callers that must wait pay for it

        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop)
        expiry: asyncio.TimerHandle | None = None
        try:
            self._enqueue(waiter)
            wait = self._wait_limit()
            if wait is not None:
                expiry = loop.call_later(wait, waiter.expire)
            if not await waiter.future:
                self._leave(waiter, cancelled=False)
            ticket = self._start()
        except BaseException:
            self._leave(waiter, cancelled=True)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        return ticket

    def _leave(self, waiter: _Waiter, *, cancelled: bool) -> None:
        """A waiter gives up: timed out (``cancelled=False``) or interrupted.

        A slot handed over meanwhile is kept by a timed-out waiter and passed on by an
        interrupted one; a waiter still queued leaves the queue, and a timed-out one is
        rejected. Calling it again for the same waiter does nothing.
        """
        woken: list[_Waiter] | None = None
        with self._lock:
            if waiter.granted:
                if not cancelled:
                    return
                waiter.granted = False
                self._give_back_locked()
                woken = self._hand_over()
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # never queued, or already gone
                    return
                if cancelled:
                    return
                self._rejected += 1
                limit = self._limit
        if woken is not None:
            self._wake(woken)
            return
        self._full(limit)

    def _release(self, ticket: Ticket, exc: BaseException | None) -> None:
        """Free a slot: its token goes back to the pool, or to the oldest waiter."""
        if ticket is not None:
            self._adapt(ticket, exc)
        if self._debt:
            with self._lock:
                self._give_back_locked()
        else:
            self._pool.append(True)
        if self._waiters:  # checked after the token is back: see the module docstring
            with self._lock:
                woken = self._hand_over()
            self._wake(woken)

    def _give_back_locked(self) -> None:
        """Return one token, or destroy it while the limit owes tokens (the lock is held)."""
        if self._debt:
            self._debt -= 1
        else:
            self._pool.append(True)

    def _adapt(self, started: float, exc: BaseException | None) -> None:
        adaptive = self._adaptive
        if adaptive is None or (exc is not None and not isinstance(exc, Exception)):
            return  # a cancelled call's duration says nothing about the service
        rtt = adaptive._clock() - started  # noqa: SLF001  # our own class
        limit = adaptive._sample(rtt, self._in_flight(), failed=exc is not None)  # noqa: SLF001
        if limit == self._limit:
            return
        with self._lock:
            change = limit - self._limit
            self._limit = limit
            if change > 0:
                repaid = min(change, self._debt)
                self._debt -= repaid
                self._pool.extend([True] * (change - repaid))
                woken = self._hand_over()
            else:
                owed = -change
                while owed:
                    try:
                        self._pool.pop()
                    except IndexError:  # the rest are in flight: destroy them on release
                        break
                    owed -= 1
                self._debt += owed
                woken = []
        self._wake(woken)

    def _in_flight(self) -> int:
        return self._limit + self._debt - len(self._pool)

    def _hand_over(self) -> list[_Waiter]:
        """Give free tokens to the oldest waiters (the lock is held); return them."""
        woken = []
        waiters, pool = self._waiters, self._pool
        while waiters:
            try:
                pool.pop()
            except IndexError:
                break
            waiter = waiters.popleft()
            waiter.granted = True
            next(self._admitted)
            woken.append(waiter)
        return woken

    def _wake(self, woken: list[_Waiter]) -> None:
        for waiter in woken:
            if not waiter.wake():
                self._leave(waiter, cancelled=True)

    # ------------------------------------------------------------------ observing

    def get_stats(self) -> dict[str, Any]:
        """Return the bulkhead's counts and totals.

        Keys: ``name``, ``in_flight``, ``queued``, ``limit``, ``total_admitted`` and
        ``total_rejected``. Totals only grow; a caller cancelled while queued is neither.
        """
        with self._lock:
            return {
                "name": self._name,
                "in_flight": self._in_flight(),
                "queued": len(self._waiters),
                "limit": self._limit,
                "total_admitted": _drawn(self._admitted),
                "total_rejected": self._rejected,
            }

    def _strategy_info(self) -> StrategyInfo:
        return {
            "kind": "bulkhead",
            "name": self._name,
            "options": {
                "max_concurrent": self._max_concurrent,
                "max_queue": self._max_queue,
                "max_wait": self._max_wait,
            },
        }

    def _families(self) -> list[Family]:
        stats = self.get_stats()
        label = (str(self._name),)
        return [
            Family(
                "resilience_bulkhead_calls_total",
                "counter",
                "Calls that asked a bulkhead for a slot, by outcome.",
                ("name", "outcome"),
                [
                    ((*label, "admitted"), stats["total_admitted"]),
                    ((*label, "rejected"), stats["total_rejected"]),
                ],
            ),
            Family(
                "resilience_bulkhead_in_flight",
                "gauge",
                "Calls running in a bulkhead's slots.",
                ("name",),
                [(label, stats["in_flight"])],
            ),
            Family(
                "resilience_bulkhead_queued",
                "gauge",
                "Calls waiting in a bulkhead's queue.",
                ("name",),
                [(label, stats["queued"])],
            ),
            Family(
                "resilience_bulkhead_limit",
                "gauge",
                "A bulkhead's concurrency limit (it moves with an adaptive limit).",
                ("name",),
                [(label, stats["limit"])],
            ),
        ]

    def _health(self) -> dict[str, Any] | None:
        """Report the bulkhead when it is saturated: the next call would be rejected."""
        stats = self.get_stats()
        if stats["in_flight"] < stats["limit"] or stats["queued"] < self._max_queue:
            return None
        return {
            "name": self._name,
            "kind": "bulkhead",
            "reason": "saturated",
            "in_flight": stats["in_flight"],
            "queued": stats["queued"],
            "limit": stats["limit"],
        }

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self._max_concurrent!r}, max_queue={self._max_queue}, "
            f"max_wait={self._max_wait!r}, name={self._name!r})"
        )


Bulkhead.__module__ = "resilience"

# The bookkeeping that must finish once started (see the module docstring).
for _step in (
    Bulkhead._arrive,  # noqa: SLF001  # our own class
    Bulkhead._enqueue,  # noqa: SLF001
    Bulkhead._leave,  # noqa: SLF001
    Bulkhead._release,  # noqa: SLF001
    Bulkhead._push,  # noqa: SLF001
    Bulkhead.__exit__,
    Bulkhead.__aexit__,
    Bulkhead._exit_ticket,  # noqa: SLF001
):
    section(_step)
