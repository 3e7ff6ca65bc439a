"""``Hedge``: when a call is slow, start an identical one and take whichever answers first.

SPEC §12. One call runs as a small race:

- the primary attempt starts at once;
- if no attempt has finished after ``delay``, a hedge starts (up to ``max_hedges``), and
  the clock for the next one restarts;
- an attempt that fails with an exception matching ``on`` starts the next hedge at once;
- the first success wins; an exception not matching ``on`` is an answer too, and is raised
  at once; when every attempt has failed, the last error is raised.

Async attempts are tasks: the losers are cancelled and awaited before the call returns, so
nothing outlives it. Sync attempts run in a bounded pool of daemon worker threads (the
caller waits for the first answer); the losers are abandoned and their results discarded,
because a thread cannot be stopped. When every worker is busy, a sync call runs in the
caller's thread without hedging rather than wait for a worker.

A shared ``RetryBudget`` bounds the extra load: each call records a first attempt, each
hedge withdraws one retry, and a hedge the budget refuses is not started.
"""

from __future__ import annotations

import contextvars
import math
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from resilience import _events, _observed
from resilience._budget import RetryBudget
from resilience._critical import section
from resilience._latency import LatencyPercentile
from resilience._pool import WorkerPool
from resilience._validate import check_int, check_name, check_number, exception_types
from resilience._wrap import wrap

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    from resilience._observed import Family
    from resilience._strategy import StrategyInfo

__all__ = ["Hedge"]

P = ParamSpec("P")
R = TypeVar("R")

OUTCOMES: Final = ("primary_won", "hedge_won", "failed")


def _budget_allows(budget: RetryBudget | None, *, first: bool) -> bool:
    """Record a first attempt in ``budget``, or withdraw one retry for a hedge.

    The only place the Hedge touches the budget, so a change in ``RetryBudget``'s
    internals is adapted here alone.
    """
    if budget is None:
        return True
    if first:
        budget._deposit()  # noqa: SLF001  # the budget's recording half, as Retry uses it
        return True
    return budget._withdraw()  # noqa: SLF001  # one hedge is one retry withdrawn


class Hedge:
    """Start a second identical call when the first is slow; return whichever wins.

    Args:
        delay: seconds to wait before each hedge, or a callable returning them, asked
            once per call (``resilience.hedging.latency_percentile()`` follows observed
            latencies). ``math.inf`` means: hedge only on failures.
        max_hedges: extra calls allowed per call (an int >= 1).
        on: the exceptions that count as a failed attempt and start the next hedge at
            once; any other exception is raised at once, as the call's answer.
        budget: a ``RetryBudget`` shared with other calls to the same dependency; each
            hedge withdraws one retry from it, and is skipped when it is spent.
        name: names the strategy in metrics, events and ``get_stats()``.
        max_workers: for sync calls, the most worker threads this hedge runs at once
            (an int >= 2); a sync call that finds them all busy runs unhedged.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is out of range.

    Examples:
        >>> from resilience import Hedge
        >>> hedge = Hedge(delay=0.05)
        >>> @hedge
        ... def lookup(key: str) -> str:
        ...     return key.upper()
        >>> lookup("a")
        'A'
    """

    __slots__ = (
        "__weakref__",
        "_budget",
        "_counts",
        "_delay",
        "_lock",
        "_max_hedges",
        "_max_workers",
        "_name",
        "_on",
        "_pool",
    )

    def __init__(
        self,
        *,
        delay: float | Callable[[], float],
        max_hedges: int = 1,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        budget: RetryBudget | None = None,
        name: str | None = None,
        max_workers: int = 64,
    ) -> None:
        if not callable(delay):
            delay = check_number("delay", delay, minimum=0.0, finite=False)
        self._delay: float | Callable[[], float] = delay
        self._max_hedges = check_int("max_hedges", max_hedges, minimum=1)
        self._on = exception_types("on", on)
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget or None, got {budget!r}")
        self._budget = budget
        self._name = check_name(name, optional=True)
        self._max_workers = check_int("max_workers", max_workers, minimum=2)
        # Made now, cheaply: its threads start only when sync calls need them.
        label = f"resilience-hedge-{self._name or id(self)}"
        self._pool = WorkerPool(self._max_workers, label)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys((*OUTCOMES, "hedges", "budget_denied"), 0)
        if self._name is not None:
            _observed.observe(self)

    @property
    def name(self) -> str | None:
        """The name given, or ``None``."""
        return self._name

    # ------------------------------------------------------------------ shared steps

    def _current_delay(self) -> float:
        """The delay for this call: the fixed one, or what the callable says now."""
        delay = self._delay
        if not callable(delay):
            return delay
        value = delay()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"delay callable {delay!r} returned {value!r}, not a number")
        if value != value:  # noqa: PLR0124  # NaN: no sensible delay, so no timed hedge
            return math.inf
        return max(0.0, float(value))

    @section
    def _count(self, key: str, seconds: float | None = None) -> None:
        with self._lock:
            self._counts[key] += 1
        if seconds is not None and isinstance(self._delay, LatencyPercentile):
            self._delay.record(seconds)

    def _may_hedge(self) -> bool:
        """Ask the budget for one more hedge; count a refusal."""
        if _budget_allows(self._budget, first=False):
            return True
        self._count("budget_denied")
        return False

    def _started(self, number: int, exception: BaseException | None) -> None:
        """Count hedge ``number`` as started and report it."""
        self._count("hedges")
        if _events.subscribers:
            reason = "delay" if exception is None else "failure"
            _events.emit("hedge", "hedge", self._name, exception, hedge=number, reason=reason)

    def _timed(self, index: int, seconds: float, error: BaseException | None) -> None:
        """Report one attempt's duration to duration subscribers (OpenTelemetry)."""
        if _events.timers:
            handled = error is not None and not self._fatal(error)
            _events.emit_timing(
                "attempt", "hedge", self._name, seconds, number=index + 1, handled=handled
            )

    def _fatal(self, exception: BaseException) -> bool:
        return not isinstance(exception, self._on)

    # ------------------------------------------------------------------ sync

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``func(*args, **kwargs)`` with hedges in worker threads; return the winner.

        Raises:
            BaseException: the first error not matching ``on``, or the last error when
                every attempt failed.
        """
        return self._run(func, args, kwargs)  # type: ignore[no-any-return]  # func's result

    def _run(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        _budget_allows(self._budget, first=True)
        race = _Race(self, self._current_delay(), time.monotonic())
        answers: queue.SimpleQueue[tuple[int, BaseException | None, Any]]
        answers = queue.SimpleQueue()
        pool = self._pool

        def attempt(index: int, context: contextvars.Context) -> None:
            started = time.monotonic()
            try:
                value = context.run(func, *args, **kwargs)
            except BaseException as exc:  # delivered to the caller, who decides
                answers.put((index, exc, None))
                context.run(self._timed, index, time.monotonic() - started, exc)
            else:
                answers.put((index, None, value))
                context.run(self._timed, index, time.monotonic() - started, None)

        def launch(index: int) -> bool:
            context = contextvars.copy_context()
            return pool.try_submit(lambda: attempt(index, context))

        if not race.start(launch):
            return self._inline(func, args, kwargs)
        while True:
            try:
                answer = answers.get(timeout=race.wait(time.monotonic()))
            except queue.Empty:
                race.slow(launch, time.monotonic())
                continue
            finished, value = race.answer(*answer, launch=launch, now=time.monotonic())
            if finished:
                return value

    def _inline(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Every worker is busy: run the call here, unhedged, and count its outcome."""
        started = time.monotonic()
        try:
            value = func(*args, **kwargs)
        except BaseException:
            self._count("failed")
            raise
        self._count("primary_won", time.monotonic() - started)
        return value

    # ------------------------------------------------------------------ async

    async def call_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``func(*args, **kwargs)`` with hedges as tasks; cancel and await the losers.

        Raises:
            BaseException: the first error not matching ``on``, or the last error when
                every attempt failed.
        """
        return await self._arun(func, args, kwargs)  # type: ignore[no-any-return]  # its result

    async def _arun(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        import asyncio  # noqa: PLC0415  # loaded by then: the caller is async

        _budget_allows(self._budget, first=True)
        loop = asyncio.get_running_loop()
        race = _Race(self, self._current_delay(), loop.time())
        tasks: dict[asyncio.Task[Any], int] = {}

        async def attempt(index: int) -> Any:
            started = loop.time()
            try:
                value = await func(*args, **kwargs)
            except asyncio.CancelledError:
                raise  # a loser: it has no duration worth reporting
            except BaseException as exc:
                self._timed(index, loop.time() - started, exc)
                raise
            self._timed(index, loop.time() - started, None)
            return value

        def launch(index: int) -> bool:
            tasks[asyncio.ensure_future(attempt(index))] = index
            return True

        race.start(launch)
        try:
            while True:
                done, _ = await asyncio.wait(
                    tasks, timeout=race.wait(loop.time()), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    race.slow(launch, loop.time())
                    continue
                for task in done:
                    index = tasks.pop(task)
                    error = _cancelled(task) if task.cancelled() else task.exception()
                    value = None if error is not None else task.result()
                    finished, value = race.answer(
                        index, error, value, launch=launch, now=loop.time()
                    )
                    if finished:
                        return value
        finally:
            await _cancel_all(tasks)

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate ``func`` (sync or async) so every call is hedged."""
        return wrap(func, self._run, self._arun)

    # ------------------------------------------------------------------ reading

    def get_stats(self) -> dict[str, int]:
        """Return the totals: ``primary_won``, ``hedge_won``, ``failed``, ``hedges``, ...

        ``hedges`` counts extra calls started; ``budget_denied`` the hedges the budget
        refused. A call whose caller was cancelled before it finished is in no outcome.
        """
        with self._lock:
            return dict(self._counts)

    def _strategy_info(self) -> StrategyInfo:
        return {
            "kind": "hedge",
            "name": self._name,
            "options": {
                "delay": self._delay,
                "max_hedges": self._max_hedges,
                "on": self._on,
                "budget": self._budget,
                "name": self._name,
                "max_workers": self._max_workers,
            },
        }

    def _families(self) -> list[Family]:
        stats = self.get_stats()
        name = self._name or ""
        return [
            _observed.Family(
                "resilience_hedge_calls_total",
                "counter",
                "Hedged calls by outcome: the primary won, a hedge won, or all failed.",
                ("name", "outcome"),
                [((name, outcome), float(stats[outcome])) for outcome in OUTCOMES],
            ),
            _observed.Family(
                "resilience_hedge_hedges_total",
                "counter",
                "Extra calls started by a hedge.",
                ("name",),
                [((name,), float(stats["hedges"]))],
            ),
        ]

    def _health(self) -> dict[str, Any] | None:
        # Hedging is a latency tool; failures show in the breaker and retry health.
        return None

    def __repr__(self) -> str:
        return f"Hedge(delay={self._delay!r}, max_hedges={self._max_hedges!r}, name={self._name!r})"


class _Race:
    """The decisions of one hedged call, shared by the sync and the async runner.

    The runners own the waiting (a queue in threads, ``asyncio.wait`` in tasks); this
    owns what to do when time passes or an answer arrives. ``launch(index)`` starts
    attempt ``index`` (0 is the primary) and says whether it could.
    """

    __slots__ = ("delay", "hedge", "hedges", "next_at", "running", "started")

    def __init__(self, hedge: Hedge, delay: float, now: float) -> None:
        self.hedge = hedge
        self.delay = delay
        self.started = now
        self.hedges = 0  # hedges considered so far (started or refused)
        self.running = 0
        self.next_at = now + delay

    def start(self, launch: Callable[[int], bool]) -> bool:
        """Start the primary attempt; False if it could not start."""
        if not launch(0):
            return False
        self.running = 1
        return True

    def wait(self, now: float) -> float | None:
        """Seconds to wait for an answer before hedging (``None``: no hedge is due)."""
        if self.hedges >= self.hedge._max_hedges or self.next_at == math.inf:  # noqa: SLF001
            return None
        return max(0.0, self.next_at - now)

    def _next(self, launch: Callable[[int], bool], now: float, error: BaseException | None) -> bool:
        """Consider hedge number ``hedges + 1``; return whether it started."""
        self.hedges += 1
        hedge = self.hedge
        if not (hedge._may_hedge() and launch(self.hedges)):  # noqa: SLF001  # one unit
            return False
        self.running += 1
        self.next_at = now + self.delay
        hedge._started(self.hedges, error)  # noqa: SLF001  # one unit
        return True

    def slow(self, launch: Callable[[int], bool], now: float) -> None:
        """No answer within the delay: start the next hedge (if allowed)."""
        if not self._next(launch, now, None):
            self.next_at = now + self.delay

    def answer(
        self,
        index: int,
        error: BaseException | None,
        value: Any,
        *,
        launch: Callable[[int], bool],
        now: float,
    ) -> tuple[bool, Any]:
        """Take one attempt's answer: ``(True, value)`` when the call is decided.

        Raises:
            BaseException: an error not matching ``on``, or the last error once every
                attempt has failed and no hedge is left.
        """
        hedge = self.hedge
        self.running -= 1
        if error is None:
            outcome = "primary_won" if index == 0 else "hedge_won"
            hedge._count(outcome, now - self.started)  # noqa: SLF001  # one unit
            return True, value
        if hedge._fatal(error):  # noqa: SLF001  # one unit
            hedge._count("failed")  # noqa: SLF001
            raise error
        while self.hedges < hedge._max_hedges and not self._next(launch, now, error):  # noqa: SLF001
            pass
        if self.running == 0:
            hedge._count("failed")  # noqa: SLF001
            raise error
        return False, None


def _cancelled(task: asyncio.Task[Any]) -> BaseException:
    """The error a cancelled attempt stands for (cancelled by someone else than us)."""
    import asyncio  # noqa: PLC0415  # loaded: the caller is async

    return asyncio.CancelledError(f"hedge attempt {task.get_name()} was cancelled")


async def _cancel_all(tasks: dict[asyncio.Task[Any], int]) -> None:
    """Cancel every attempt still running and wait until each has finished."""
    if not tasks:
        return
    import asyncio  # noqa: PLC0415  # loaded: the caller is async

    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # read, so asyncio does not log it as never retrieved


Hedge.__module__ = "resilience"
