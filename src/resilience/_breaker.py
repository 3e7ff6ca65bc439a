"""The circuit breaker: the facade every call form goes through.

``CircuitBreaker`` owns what a user touches: the call forms (``call``, ``call_async``,
``@breaker``, ``with``, ``async with``), the listeners, the operator methods and the stats.
The circuit itself sits behind a small internal interface, picked in ``__init__``:

- ``_local.LocalCircuit``: this process's memory (no storage);
- ``_stored.StoredCircuit``: a ``BreakerStorage`` shared by many processes, with a
  ``LocalCircuit`` inside as its cached view and as its fallback.

Both run the one state machine of ``_transition``. The interface: ``acquire()`` hands out a
ticket (or the ``CircuitOpenError`` that rejects the call); ``finish_exception``,
``finish_result``, ``succeeded`` and ``ignored_call`` record the outcome of a ticket (and
their ``*_async`` forms, which a storage-backed circuit awaits); ``operate(state)``,
``current_state()``, ``stats()`` and ``metrics_row()``. A closed in-process circuit also
exposes ``fast``, ``gen``, ``successes`` and ``last_ok`` for the lock-free hot path that
``call`` and the decorator inline (see ``_local``).
"""

from __future__ import annotations

import contextvars
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, Self, TypeVar, cast

from resilience import _events, _fallback, _named
from resilience._critical import section
from resilience._local import LazyCircuit, logger
from resilience._settings import ExceptionFilter, Settings
from resilience._state import CLOSED, DISABLED, FORCED_OPEN, METRICS_ONLY, CircuitState
from resilience._validate import check_name, check_sync_callable
from resilience._wrap import wrap
from resilience.exceptions import CircuitOpenError

if TYPE_CHECKING:
    import types

    from resilience._circuit import Circuit, MetricsRow
    from resilience._policies import TripPolicy
    from resilience._storage import BreakerStorage
    from resilience._strategy import StrategyInfo
    from resilience._types import Backoff, Clock

__all__ = ["CircuitBreaker", "ExceptionFilter", "Listener"]

P = ParamSpec("P")
R = TypeVar("R")

# A library leaves output to the application: nothing prints until logging is configured.
logger.addHandler(logging.NullHandler())

Listener = Callable[["CircuitBreaker", CircuitState, CircuitState], object]


# Open `with breaker:` blocks of this thread or task: (breaker, ticket, started) entries.
_BLOCKS: contextvars.ContextVar[tuple[tuple[CircuitBreaker, int, float | None], ...]] = (
    contextvars.ContextVar("resilience_breaker_blocks", default=())
)


def _emit_rejected(error: CircuitOpenError) -> None:
    """Report a rejection on the event path (only called when someone subscribes)."""
    _events.emit(
        "rejected",
        "circuit_breaker",
        error.name,
        error,
        state=error.state.value,
        retry_after=error.retry_after,
    )


class CircuitBreaker:
    """Stop calling a dependency that keeps failing, and try it again after a while.

    A closed breaker passes calls through and records their outcomes. When the trip
    policy says so (by default ``failure_threshold`` failures in a row) it opens: calls
    are rejected with ``CircuitOpenError`` (or answered by ``fallback``) without running.
    After ``recovery_timeout`` it admits up to ``half_open_max_calls`` trial calls; a
    failed trial opens it again, ``success_threshold`` good ones close it.

    Every option is keyword-only and validated here, not at call time.

    Args:
        failure_threshold: consecutive failures that open the circuit (int >= 1).
        recovery_timeout: seconds to stay open before a trial call, or a backoff
            ``(n) -> seconds`` giving the wait after the n-th trip in a row.
        name: a name for logs, stats and metrics; ``None`` for an anonymous breaker.
        success_threshold: successful trial calls that close the circuit (int >= 1).
        half_open_max_calls: trial calls admitted at once (default: ``success_threshold``).
        policy: a ``TripPolicy`` replacing ``failure_threshold``, e.g. ``FailureRate()``.
        failure_on: exceptions that count as failures: classes, or a predicate.
        ignore: exceptions that count as neither success nor failure (and win over
            ``failure_on``). Exceptions outside both count as successes; every one
            propagates unchanged.
        failure_on_result: a predicate on the return value that marks a failure.
        fallback: called with the call's arguments instead of raising when rejected.
        clock: monotonic seconds; also times windows and slow calls.
        storage: a ``BreakerStorage`` (such as ``resilience.redis.RedisStorage``) that
            shares the circuit with every process using the same storage and name; the
            breaker then needs a ``name``. Default: this process's memory only.

    Raises:
        TypeError, ValueError: an option has the wrong type or is out of range.

    Examples:
        >>> breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=10.0, name="db")
        >>> @breaker
        ... def query() -> int:
        ...     return 42
        >>> query()
        42
    """

    __slots__ = ("__weakref__", "_circuit", "_listeners", "_name", "_settings")

    _settings: Settings
    _name: str | None
    _circuit: Circuit

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float | Backoff = 30.0,
        name: str | None = None,
        success_threshold: int = 1,
        half_open_max_calls: int | None = None,
        policy: TripPolicy | None = None,
        failure_on: ExceptionFilter = Exception,
        ignore: ExceptionFilter = (),
        failure_on_result: Callable[[Any], bool] | None = None,
        fallback: Callable[..., Any] | None = None,
        clock: Clock = time.monotonic,
        storage: BreakerStorage | None = None,
    ) -> None:
        settings = Settings.build(
            failure_threshold,
            recovery_timeout,
            success_threshold,
            half_open_max_calls,
            policy,
            failure_on,
            ignore,
            failure_on_result,
            fallback,
            clock,
        )
        self._setup(check_name(name, optional=True), settings, storage)

    @classmethod
    def _from_settings(
        cls, name: str | None, settings: Settings, storage: BreakerStorage | None = None
    ) -> CircuitBreaker:
        """Make a breaker from settings validated before (the registry's fast path)."""
        self = object.__new__(cls)
        self._setup(name, settings, storage)
        return self

    def _setup(self, name: str | None, settings: Settings, storage: BreakerStorage | None) -> None:
        self._name = name
        self._settings = settings
        self._listeners: tuple[Listener, ...] = ()
        if storage is None:
            # Made on first use: creating many breakers stays cheap (see LazyCircuit).
            lazy: Any = LazyCircuit(self, name, settings)  # stands in for a Circuit
            self._circuit = lazy
        else:
            from resilience._stored import StoredCircuit  # noqa: PLC0415  # only with storage

            self._circuit = StoredCircuit(name, settings, storage)
        if name is not None:
            _named.add(self)  # observed by metrics and health(), held weakly

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str | None:
        """The breaker's name, or ``None``."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose recovery time has come reads HALF_OPEN.

        With storage, the shared circuit's state as of at most ``refresh_after`` seconds
        ago (one round trip refreshes an older view).
        """
        return self._circuit.current_state()

    @property
    def policy(self) -> TripPolicy:
        """The trip policy in force."""
        return self._settings.policy

    @property
    def clock(self) -> Clock:
        """The clock the breaker reads."""
        return self._settings.clock

    @property
    def storage(self) -> BreakerStorage | None:
        """The storage that shares this circuit across processes, or None (in-process)."""
        return getattr(self._circuit, "storage", None)

    # ------------------------------------------------------------------ calling

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: the circuit rejected the call and no ``fallback`` is set.
            BaseException: whatever ``func`` raises, unchanged.
        """
        # The hot path again, as in _run: a frame fewer for the most used entry point.
        circuit = self._circuit
        gen = circuit.gen
        if circuit.fast:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                circuit.finish_exception(gen, exc, None)
                raise
            if result.__class__ is CoroutineType:
                self._refuse_coroutine(gen, func, result)
            for drawn in circuit.successes:  # noqa: B007  # a draw without a call: see _run
                break
            if gen == circuit.gen:
                circuit.last_ok = drawn
            else:
                circuit.stray(drawn)
            return result
        return self._run(func, args, kwargs)

    def _run(  # noqa: C901  # the hot path is inlined on purpose, as in call()
        self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """Run one call: the decorator's runner (``call`` inlines the same hot path)."""
        # Hot path: a closed circuit with a lock-free policy. Read the generation before
        # the mode, which transitions clear first and set last.
        circuit = self._circuit
        gen = circuit.gen
        if circuit.fast:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                circuit.finish_exception(gen, exc, None)
                raise
            if result.__class__ is CoroutineType:
                self._refuse_coroutine(gen, func, result)
            # A draw with no call in it: no signal handler can run between drawing and
            # storing, so an interrupt cannot leave a success half recorded.
            for drawn in circuit.successes:  # noqa: B007  # the loop is the draw
                break
            if gen == circuit.gen:  # a call from before a transition cannot end a new run
                circuit.last_ok = drawn
            else:
                circuit.stray(drawn)
            return result
        # From here to the ``try`` nothing may call a function: a call lets a signal
        # handler run after it (even ``isinstance`` does, under a tracer such as
        # coverage), and an interrupt there would leave the ticket, perhaps a half-open
        # slot, unrecorded. tests/test_interrupts.py holds us to it.
        ticket: Any = circuit.acquire()
        if ticket.__class__ is CircuitOpenError:
            if _events.subscribers:
                _emit_rejected(ticket)
            fallback = self._settings.fallback
            if fallback is None:
                raise ticket  # here, not in a helper: a frame less for the raise to unwind
            outcome = _fallback.Outcome(ticket, None, args, kwargs)
            return cast("R", _fallback.answer(_fallback.by_arguments(fallback), outcome))
        started = None
        try:
            if self._settings.timed:
                started = self._settings.clock()
            result = func(*args, **kwargs)
        except BaseException as exc:
            circuit.finish_exception(ticket, exc, started)
            raise
        if result.__class__ is CoroutineType:
            self._refuse_coroutine(ticket, func, result)
        circuit.finish_result(ticket, result, started)
        return result

    def _refuse_coroutine(self, ticket: int, func: object, coroutine: object) -> NoReturn:
        """Refuse a coroutine function given to a sync form; the call counts as ignored."""
        self._circuit.ignored_call(ticket)  # frees a half-open slot; nothing of it ran
        # Never awaited: close it rather than leave a "never awaited" warning behind.
        cast("CoroutineType[Any, Any, Any]", coroutine).close()
        raise TypeError(
            f"func must be a plain function for call() or a sync decorator, got {func!r}, "
            "which returned a coroutine: use `await breaker.call_async(func, ...)`"
        )

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)`` through the breaker and return its result.

        A fallback may be a coroutine function or a plain one.

        Raises:
            CircuitOpenError: the circuit rejected the call and no ``fallback`` is set.
            BaseException: whatever ``func`` raises, unchanged.
        """
        # The hot path again, as in _run_async: one coroutine fewer per call.
        circuit = self._circuit
        gen = circuit.gen
        if circuit.fast:
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                circuit.finish_exception(gen, exc, None)
                raise
            for drawn in circuit.successes:  # noqa: B007  # a draw without a call: see _run
                break
            if gen == circuit.gen:
                circuit.last_ok = drawn
            else:
                circuit.stray(drawn)
            return result
        return await self._run_async(func, args, kwargs)

    async def _run_async(  # the hot path is inlined on purpose, as in _run
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """Run one awaited call; ``call_async`` and the async wrapper both land here."""
        circuit = self._circuit
        gen = circuit.gen
        if circuit.fast:
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                circuit.finish_exception(gen, exc, None)
                raise
            # A draw with no call in it: no signal handler can run between drawing and
            # storing, so an interrupt cannot leave a success half recorded.
            for drawn in circuit.successes:  # noqa: B007  # the loop is the draw
                break
            if gen == circuit.gen:  # a call from before a transition cannot end a new run
                circuit.last_ok = drawn
            else:
                circuit.stray(drawn)
            return result
        ticket: Any = await circuit.acquire_async()
        if ticket.__class__ is CircuitOpenError:  # no call before the try: see _run
            if _events.subscribers:
                _emit_rejected(ticket)
            fallback = self._settings.fallback
            if fallback is None:
                raise ticket
            outcome = _fallback.Outcome(ticket, None, args, kwargs)
            handler = _fallback.by_arguments(fallback)
            return cast("R", await _fallback.answer_async(handler, outcome))
        started = None
        try:
            if self._settings.timed:
                started = self._settings.clock()
            result = await func(*args, **kwargs)
        except BaseException as exc:
            await circuit.finish_exception_async(ticket, exc, started)
            raise
        await circuit.finish_result_async(ticket, result, started)
        return result

    def _strategy_info(self) -> StrategyInfo:
        """Describe this breaker for a pipeline: its kind, name and effective options."""
        settings = self._settings
        return {
            "kind": "circuit_breaker",
            "name": self._name,
            "options": {
                "failure_threshold": settings.failure_threshold,
                "recovery_timeout": settings.recovery_timeout,
                "success_threshold": settings.success_threshold,
                "half_open_max_calls": settings.half_open_max_calls,
                "policy": settings.policy,
                "failure_on": settings.failure_on,
                "ignore": settings.ignore,
                "failure_on_result": settings.failure_on_result,
                "fallback": settings.fallback,
                "clock": settings.clock,
                "storage": self.storage,
            },
        }

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so each call goes through the breaker.

        The wrapper keeps the function's signature and type and has ``.breaker``.
        """
        wrapped = wrap(func, self._run, self._run_async)
        wrapped.breaker = self  # type: ignore[attr-defined]  # documented attribute
        return wrapped

    def __enter__(self) -> Self:
        """Admit the block as one call (raises ``CircuitOpenError`` when rejected)."""
        return self._enter_block(self._circuit.acquire())

    @section
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        """Record the block's outcome: its exception, classified, or a success."""
        ticket, started = self._exit_block()
        if exc is None:
            self._circuit.succeeded(ticket, started)
        else:
            self._circuit.finish_exception(ticket, exc, started)

    @section
    def _enter_block(self, ticket: int | CircuitOpenError) -> Self:
        if isinstance(ticket, CircuitOpenError):
            if _events.subscribers:
                _emit_rejected(ticket)
            raise ticket
        started = self._settings.clock() if self._settings.timed else None
        _BLOCKS.set((*_BLOCKS.get(), (self, ticket, started)))
        return self

    def _exit_block(self) -> tuple[int, float | None]:
        blocks = _BLOCKS.get()
        for i in range(len(blocks) - 1, -1, -1):
            if blocks[i][0] is self:
                _, ticket, started = blocks[i]
                _BLOCKS.set(blocks[:i] + blocks[i + 1 :])
                return ticket, started
        raise RuntimeError("breaker block exited without being entered in this context")

    async def __aenter__(self) -> Self:
        """Admit the block as one call, awaiting a storage round trip if any."""
        return self._enter_block(await self._circuit.acquire_async())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        """Record the block's outcome, awaiting a storage round trip if any."""
        ticket, started = self._exit_block()
        if exc is None:
            await self._circuit.succeeded_async(ticket, started)
        else:
            await self._circuit.finish_exception_async(ticket, exc, started)

    # ------------------------------------------------------------------ operators

    def reset(self) -> None:
        """Close the circuit and clear the policy's counts (totals keep counting)."""
        self._circuit.operate(CLOSED)

    def close(self) -> None:
        """Close the circuit; the same as ``reset()``."""
        self._circuit.operate(CLOSED)

    def open(self) -> None:
        """Force the circuit open: every call is rejected until an operator changes it."""
        self._circuit.operate(FORCED_OPEN)

    def disable(self) -> None:
        """Let every call pass and record nothing until an operator changes it."""
        self._circuit.operate(DISABLED)

    def metrics_only(self) -> None:
        """Shadow mode: record and report like a closed circuit, but never reject.

        Each trip it would have made is counted in ``get_stats()["shadow_trips"]``.
        """
        self._circuit.operate(METRICS_ONLY)

    # ------------------------------------------------------------------ listeners

    @section
    def add_listener(self, listener: Listener, /) -> None:
        """Call ``listener(breaker, old_state, new_state)`` after every transition.

        Listeners run outside the breaker's lock, in the thread that caused the change;
        one that raises is logged and breaks nothing.

        Raises:
            TypeError: ``listener`` is not callable.
        """
        check_sync_callable("listener", listener)
        circuit = self._circuit
        with circuit.lock:
            self._listeners = (*self._listeners, listener)
            if circuit.owner is None:
                circuit.owner = weakref.ref(self)  # notified from now on

    @section
    def remove_listener(self, listener: Listener, /) -> None:
        """Stop calling ``listener``.

        Raises:
            ValueError: ``listener`` was not added.
        """
        with self._circuit.lock:
            listeners = list(self._listeners)
            try:
                listeners.remove(listener)
            except ValueError:
                raise ValueError(f"listener {listener!r} is not registered") from None
            self._listeners = tuple(listeners)

    # ------------------------------------------------------------------ stats

    def get_stats(self) -> dict[str, Any]:
        """Return a snapshot of the breaker's state and counters.

        Keys: ``name``, ``state`` (the enum's value), ``failure_count`` and
        ``success_count`` (what the policy holds now; while OPEN, what opened it),
        ``total_calls``, ``total_successes``, ``total_failures``, ``total_rejected``,
        ``total_ignored`` (totals only grow), ``opened_at`` (wall-clock epoch seconds when
        it left CLOSED, or None), ``open_for`` (seconds since then on the breaker's clock,
        or None), ``failure_rate`` (0..1 where the policy measures it and has enough calls,
        else None), ``slow_calls`` (slow calls in the window), ``shadow_trips`` and
        ``transitions`` (entries into each state, by the state's value).

        With storage, ``state``, the policy's counts, ``opened_at`` and ``open_for`` are
        the shared circuit's (read from the storage: one round trip), the ``total_*``
        counts are this process's, ``fleet`` holds the totals of every process, and
        ``storage`` is ``"ok"``, or ``"degraded"`` while the storage cannot be reached and
        the local state stands in.
        """
        return self._circuit.stats()

    def _metrics_row(self) -> MetricsRow:
        """Return what metrics and health read, cheaply (see ``LocalCircuit.metrics_row``)."""
        return self._circuit.metrics_row()

    def __repr__(self) -> str:
        """Show the name and the state as last known."""
        return f"<CircuitBreaker name={self._name!r} state={self._circuit.state.value}>"


CircuitBreaker.__module__ = "resilience"
