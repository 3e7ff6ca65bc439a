"""The circuit breaker.

Every form (``call``, ``call_async``, ``@breaker``, ``with``, ``async with``) is built on
three primitives: ``_acquire`` admits a call and hands out a ticket, and ``_succeeded`` /
``_failed`` (or ``_ignored``) record its outcome. The ticket is the breaker's generation
when the call was admitted: every transition starts a new generation, so an outcome that
arrives after the state has moved on still counts in the totals but cannot steer the new
state.

Locking: the lock guards the state machine and is held only for a few integer updates,
never while the user's function runs and never across an ``await``. A success in a closed
circuit under ``ConsecutiveFailures`` takes no lock at all: it draws the next value of an
``itertools.count`` (atomic in CPython) and stores it, which is enough for a failure,
under the lock, to see that a success came between it and the failure before. A
rejection by an open circuit takes no lock either: it draws from a second counter.

What only matters while the circuit is away from CLOSED (when it left, when a trial is
due, trips in a row, trial calls) lives in an ``_Episode`` made when it leaves and dropped
when it comes back, which keeps a closed breaker small.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final, NoReturn, ParamSpec, Self, TypeVar, cast

from resilience import _events, _fallback, _named
from resilience._critical import escape, section
from resilience._deadline import remaining
from resilience._policies import ConsecutiveFailures, TripPolicy, _Tracker
from resilience._state import CircuitState
from resilience._validate import (
    check_callable,
    check_int,
    check_name,
    check_number,
    check_sync_callable,
    exception_types,
)
from resilience._wrap import wrap
from resilience.exceptions import CircuitOpenError

if TYPE_CHECKING:
    import types

    from resilience._storage import BreakerStorage
    from resilience._strategy import StrategyInfo
    from resilience._types import Backoff, Clock

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("resilience")
# A library leaves output to the application: nothing prints until logging is configured.
logger.addHandler(logging.NullHandler())

ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
Listener = Callable[["CircuitBreaker", CircuitState, CircuitState], object]
Change = tuple[CircuitState, CircuitState]

_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN
_FORCED_OPEN: Final = CircuitState.FORCED_OPEN
_DISABLED: Final = CircuitState.DISABLED
_METRICS_ONLY: Final = CircuitState.METRICS_ONLY

_TRANSITION_KEYS: Final = tuple("to_" + state.value for state in CircuitState)
_NO_TRANSITIONS: Final = (0,) * len(_TRANSITION_KEYS)

_UNRECORDED: Final = -1  # the ticket of a call admitted while DISABLED
# What _trip returns for a trip that metrics-only mode only counts: not a state change.
_SHADOW_TRIP: Final = (CircuitState.METRICS_ONLY, CircuitState.OPEN)
_HALF_OPEN_FULL_RETRY_AFTER: Final = 0.5  # trial calls are short; look again soon
_FALLBACK_RECOVERY: Final = 30.0

# Open `with breaker:` blocks of this thread or task: (breaker, ticket, started) entries.
_BLOCKS: contextvars.ContextVar[tuple[tuple[CircuitBreaker, int, float | None], ...]] = (
    contextvars.ContextVar("resilience_breaker_blocks", default=())
)


def _filter(name: str, value: object) -> tuple[type[BaseException], ...] | Callable[..., Any]:
    """Normalise ``failure_on``/``ignore``: exception classes to a tuple, else a predicate."""
    if isinstance(value, tuple | type):
        # A class that is not an exception would be called as a predicate, and every
        # instance it returned would count as a match: refuse it.
        return exception_types(name, value)
    if callable(value):
        return cast("Callable[..., Any]", check_sync_callable(name, value))
    raise TypeError(
        f"{name} must be an exception class, a tuple of them or a predicate, got {value!r}"
    )


def _matches(
    spec: tuple[type[BaseException], ...] | Callable[..., Any], exc: BaseException
) -> bool:
    if isinstance(spec, tuple):
        return isinstance(exc, spec)
    try:
        return bool(spec(exc))
    except Exception:
        logger.exception("exception predicate %r raised; treating %r as not matching", spec, exc)
        return False


@dataclass(frozen=True, slots=True)
class _Settings:
    """A breaker's validated configuration; equal settings are shared between breakers."""

    failure_threshold: int
    recovery_timeout: float | Backoff
    success_threshold: int
    half_open_max_calls: int
    policy: TripPolicy
    failure_on: tuple[type[BaseException], ...] | Callable[..., Any]
    ignore: tuple[type[BaseException], ...] | Callable[..., Any]
    failure_on_result: Callable[[Any], bool] | None
    fallback: Callable[..., Any] | None
    clock: Clock
    timed: bool  # the policy needs each call's start time
    slow_after: float | None  # the policy's slow_call_duration
    fast: bool  # closed successes need neither the lock, the clock nor the result

    @classmethod
    def build(
        cls,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float | Backoff = 30.0,
        success_threshold: int = 1,
        half_open_max_calls: int | None = None,
        policy: TripPolicy | None = None,
        failure_on: ExceptionFilter = Exception,
        ignore: ExceptionFilter = (),
        failure_on_result: Callable[[Any], bool] | None = None,
        fallback: Callable[..., Any] | None = None,
        clock: Clock = time.monotonic,
    ) -> _Settings:
        """Validate the options and return shared settings for them."""
        check_int("failure_threshold", failure_threshold, minimum=1)
        if callable(recovery_timeout) and not isinstance(recovery_timeout, bool):
            recovery: float | Backoff = check_sync_callable("recovery_timeout", recovery_timeout)
        else:
            recovery = check_number("recovery_timeout", recovery_timeout, positive=True)
        check_int("success_threshold", success_threshold, minimum=1)
        if half_open_max_calls is None:
            half_open_max_calls = success_threshold
        check_int("half_open_max_calls", half_open_max_calls, minimum=1)
        if policy is None:
            policy = ConsecutiveFailures(failure_threshold)
        elif not isinstance(policy, TripPolicy):
            raise TypeError(f"policy must be a TripPolicy such as FailureRate(...), got {policy!r}")
        settings = cls(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery,
            success_threshold=success_threshold,
            half_open_max_calls=half_open_max_calls,
            policy=policy,
            failure_on=_filter("failure_on", failure_on),
            ignore=_filter("ignore", ignore),
            failure_on_result=check_sync_callable(
                "failure_on_result", failure_on_result, optional=True
            ),
            fallback=check_callable("fallback", fallback, optional=True),
            clock=check_sync_callable("clock", clock),
            timed=policy.timed,
            slow_after=getattr(policy, "slow_call_duration", None),
            fast=(
                policy._lock_free_successes  # noqa: SLF001  # policies are ours
                and not policy.timed
                and failure_on_result is None
            ),
        )
        return _intern(settings)

    def effective(self, option: str, value: Any) -> Any:
        """Return what passing ``option=value`` would make this setting, for comparison."""
        if option in {"failure_on", "ignore"}:
            return _filter(option, value)
        if option == "half_open_max_calls" and value is None:
            return self.success_threshold
        if option == "policy" and value is None:
            return ConsecutiveFailures(self.failure_threshold)
        if option == "recovery_timeout" and isinstance(value, int | float):
            return float(value)
        return value

    def outcome_of(self, exc: BaseException) -> int:
        """Classify an exception: ``_IGNORED``, ``_FAILURE`` or ``_SUCCESS``."""
        if not isinstance(exc, Exception):
            if _expired_cancellation(exc):
                # Our timeout() (or a Timeout/Deadline strategy) cancelled the call: judge
                # it as the TimeoutError the same timeout raises in sync code.
                exc = TimeoutError()
            else:
                return _IGNORED  # any other cancellation, interpreter exits: never failures
        ignore = self.ignore
        if isinstance(exc, ignore) if type(ignore) is tuple else _matches(ignore, exc):
            return _IGNORED
        failure_on = self.failure_on
        if isinstance(exc, failure_on) if type(failure_on) is tuple else _matches(failure_on, exc):
            return _FAILURE
        return _SUCCESS


_SUCCESS, _FAILURE, _IGNORED = 0, 1, 2

# asyncio.timeout() may fire a hair before the deadline's time.monotonic() due time.
_EXPIRY_SLACK: Final = 0.001


def _expired_cancellation(exc: BaseException) -> bool:
    """Tell whether ``exc`` is an asyncio cancellation made by an expired deadline.

    ``timeout()`` sets the deadline it enforces, so a ``CancelledError`` that arrives when
    the innermost deadline has (just) passed is that timeout's doing; one that arrives
    with time left, or with no deadline at all, is a plain cancellation.
    """
    asyncio = sys.modules.get("asyncio")  # no asyncio loaded: no CancelledError either
    if asyncio is None or not isinstance(exc, asyncio.CancelledError):
        return False
    left = remaining()
    return left is not None and left <= _EXPIRY_SLACK


_INTERNED: dict[_Settings, _Settings] = {}
_INTERN_LIMIT = 1024


def _intern(settings: _Settings) -> _Settings:
    """Share equal settings between breakers, which saves memory per breaker."""
    try:
        return _INTERNED.setdefault(settings, settings)
    except TypeError:  # an unhashable predicate or clock: keep this one to itself
        return settings
    finally:
        if len(_INTERNED) > _INTERN_LIMIT:
            _INTERNED.clear()


_LOCKS = tuple(threading.Lock() for _ in range(64))
_LOCK_PICKER = itertools.count()


def _read_count(counter: itertools.count[int]) -> int:
    """Return how many values ``counter`` has handed out, without drawing one."""
    return int(repr(counter)[6:-1])


@section
def _log(level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log on the ``resilience`` logger.

    A section: the standard library's handlers take a lock before their ``try``, so an
    interrupt landing there would leave that handler's lock held for every logger.
    """
    logger.log(level, message, *args, exc_info=exc_info)


class _Episode:
    """What a breaker keeps from the moment it leaves CLOSED until it is back."""

    __slots__ = ("held", "retry_at", "since", "trial_ok", "trial_running", "trips")

    def __init__(self, since: float) -> None:
        self.since = since  # clock time when the circuit left CLOSED
        # While OPEN or FORCED_OPEN: the policy's counts when it opened (SPEC §8), as
        # (failure_count, success_count, failure_rate, slow_calls).
        self.held: tuple[int, int, float | None, int] | None = None
        self.retry_at: float | None = None  # when OPEN: clock time a trial is allowed
        self.trips = 0  # trips in a row: the n of a backoff recovery_timeout
        self.trial_running = 0
        self.trial_ok = 0


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


class _InitSignature:
    """``inspect.signature(CircuitBreaker)`` and ``help()``: the options of ``__init__``.

    Without it they would show ``__new__``'s ``(**options)``. On an instance it is
    absent, so a breaker's own signature stays that of ``__call__``.
    """

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is not None:
            raise AttributeError("__signature__")
        import inspect  # noqa: PLC0415  # only help() and introspection need it

        init = inspect.signature(owner.__init__)  # type: ignore[misc]  # the class's own
        return init.replace(
            parameters=list(init.parameters.values())[1:],
            return_annotation=inspect.Signature.empty,
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

    __slots__ = (
        "__weakref__",
        "_episode",
        "_extras",
        "_failures",
        "_fast",
        "_gen",
        "_ignored",
        "_last_ok",
        "_listeners",
        "_lock",
        "_name",
        "_next_wait",
        "_rejected",
        "_settings",
        "_state",
        "_successes",
        "_tracker",
    )

    _settings: _Settings
    _name: str | None
    __signature__ = _InitSignature()

    def __new__(cls, **options: Any) -> Self:
        # A breaker with storage is a SharedBreaker, whose primitives consult the storage:
        # a subclass leaves the in-memory breaker's paths without a single extra check.
        if options.get("storage") is not None and cls is CircuitBreaker:
            from resilience._shared import SharedBreaker  # noqa: PLC0415  # imports this module

            return cast("Self", object.__new__(SharedBreaker))
        return object.__new__(cls)

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
        settings = _Settings.build(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            success_threshold=success_threshold,
            half_open_max_calls=half_open_max_calls,
            policy=policy,
            failure_on=failure_on,
            ignore=ignore,
            failure_on_result=failure_on_result,
            fallback=fallback,
            clock=clock,
        )
        self._setup(check_name(name, optional=True), settings)
        if storage is not None:
            self._attach(storage)

    @classmethod
    def _from_settings(
        cls, name: str | None, settings: _Settings, storage: BreakerStorage | None = None
    ) -> CircuitBreaker:
        """Make a breaker from settings validated before (the registry's fast path)."""
        self = object.__new__(cls) if storage is None else cls.__new__(cls, storage=storage)
        self._setup(name, settings)
        if storage is not None:
            self._attach(storage)
        return self

    def _fast_allowed(self) -> bool:
        """Whether a closed circuit may take the lock-free hot path (settings allowing)."""
        return self._settings.fast

    def _attach(self, storage: BreakerStorage) -> None:
        """Share the circuit through ``storage``: only breakers made with one can."""
        raise TypeError(f"{type(self).__name__} cannot take storage, got {storage!r}")

    def _setup(self, name: str | None, settings: _Settings) -> None:
        self._name = name
        if name is not None:
            _named.add(self)  # observed by metrics and health(), held weakly
        self._settings = settings
        # A lock per breaker would cost more memory than the breaker; hold times are a few
        # integer updates, so breakers share a stripe of locks.
        self._lock = _LOCKS[next(_LOCK_PICKER) % len(_LOCKS)]
        self._state = _CLOSED
        self._fast = settings.fast  # a SharedBreaker turns it off in _attach
        self._gen = 0
        self._successes = itertools.count()
        self._last_ok = -1  # the last success's draw from _successes
        self._failures = 0
        self._ignored = 0
        # Rejections happen only away from CLOSED; the counter is made on first leaving.
        self._rejected: itertools.count[int] | None = None
        self._tracker: _Tracker = settings.policy._tracker()  # noqa: SLF001  # policies are ours
        self._episode: _Episode | None = None
        self._listeners: tuple[Listener, ...] = ()
        self._extras: dict[str, int] | None = None
        # A backoff recovery_timeout's next value, evaluated outside the lock.
        self._next_wait = self._recovery(1) if callable(settings.recovery_timeout) else None

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str | None:
        """The breaker's name, or ``None``."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose recovery time has come reads HALF_OPEN."""
        state = self._state
        episode = self._episode
        if state is _OPEN and episode is not None:
            retry_at = episode.retry_at
            now = self._settings.clock()
            if retry_at is not None and now >= retry_at:
                self._notify(self._observe_due(now))
                return self._state
        return state

    @property
    def policy(self) -> TripPolicy:
        """The trip policy in force."""
        return self._settings.policy

    @property
    def clock(self) -> Clock:
        """The clock the breaker reads."""
        return self._settings.clock

    # ------------------------------------------------------------------ calling

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: the circuit rejected the call and no ``fallback`` is set.
            BaseException: whatever ``func`` raises, unchanged.
        """
        # The hot path again, as in _run: a frame fewer for the most used entry point.
        gen = self._gen
        if self._fast:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._finish_exception(gen, exc, None)
                raise
            if result.__class__ is CoroutineType:
                self._refuse_coroutine(gen, func, result)
            for drawn in self._successes:  # noqa: B007  # a draw without a call: see _run
                break
            if gen == self._gen:
                self._last_ok = drawn
            return result
        return self._run(func, args, kwargs)

    def _run(  # noqa: C901  # the hot path is inlined on purpose, as in call()
        self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """Run one call: the decorator's runner (``call`` inlines the same hot path)."""
        # Hot path: a closed circuit with a lock-free policy. Read the generation before
        # the mode, which transitions clear first and set last.
        gen = self._gen
        if self._fast:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._finish_exception(gen, exc, None)
                raise
            if result.__class__ is CoroutineType:
                self._refuse_coroutine(gen, func, result)
            # A draw with no call in it: no signal handler can run between drawing and
            # storing, so an interrupt cannot leave a success half recorded.
            for drawn in self._successes:  # noqa: B007  # the loop is the draw
                break
            if gen == self._gen:  # a call from before a transition cannot end a new run
                self._last_ok = drawn
            return result
        # From here to the ``try`` nothing may call a function: a call lets a signal
        # handler run after it (even ``isinstance`` does, under a tracer such as
        # coverage), and an interrupt there would leave the ticket, perhaps a half-open
        # slot, unrecorded. tests/test_interrupts.py holds us to it.
        ticket: Any = self._acquire()
        if ticket.__class__ is CircuitOpenError:
            if _events.subscribers:
                _emit_rejected(ticket)
            fallback = self._settings.fallback
            if fallback is None:
                raise ticket
            outcome = _fallback.Outcome(ticket, None, args, kwargs)
            return cast("R", _fallback.answer(_fallback.by_arguments(fallback), outcome))
        started = None
        try:
            if self._settings.timed:
                started = self._settings.clock()
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._finish_exception(ticket, exc, started)
            raise
        if result.__class__ is CoroutineType:
            self._refuse_coroutine(ticket, func, result)
        self._finish_result(ticket, result, started)
        return result

    def _refuse_coroutine(self, ticket: int, func: object, coroutine: object) -> NoReturn:
        """Refuse a coroutine function given to a sync form; the call counts as ignored."""
        self._ignored_call(ticket)  # frees a half-open slot; nothing of it ran
        # Never awaited: close it rather than leave a "never awaited" warning behind.
        cast("CoroutineType[Any, Any, Any]", coroutine).close()
        raise TypeError(
            f"func must be a plain function for call() or a sync decorator, got {func!r}, "
            "which returned a coroutine: use `await breaker.call_async(func, ...)`"
        )

    def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Await ``func(*args, **kwargs)`` through the breaker and return its result.

        Use it as ``await breaker.call_async(func, ...)``; it hands back the coroutine of
        the breaker's own runner rather than wrapping it in another, a frame less per call.
        A fallback may be a coroutine function or a plain one.

        Raises:
            CircuitOpenError: the circuit rejected the call and no ``fallback`` is set.
            BaseException: whatever ``func`` raises, unchanged.
        """
        return self._run_async(func, args, kwargs)

    async def _run_async(  # the hot path is inlined on purpose, as in _run
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """Run one awaited call; ``call_async`` and the async wrapper both land here."""
        gen = self._gen
        if self._fast:
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                self._finish_exception(gen, exc, None)
                raise
            # A draw with no call in it: no signal handler can run between drawing and
            # storing, so an interrupt cannot leave a success half recorded.
            for drawn in self._successes:  # noqa: B007  # the loop is the draw
                break
            if gen == self._gen:  # a call from before a transition cannot end a new run
                self._last_ok = drawn
            return result
        ticket: Any = await self._acquire_async()
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
            await self._finish_exception_async(ticket, exc, started)
            raise
        await self._finish_result_async(ticket, result, started)
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
                "storage": getattr(self, "storage", None),
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
        return self._enter_block(self._acquire())

    @section
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        ticket, started = self._exit_block()
        if exc is None:
            self._succeeded(ticket, started)
        else:
            self._finish_exception(ticket, exc, started)

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
        return self._enter_block(await self._acquire_async())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        ticket, started = self._exit_block()
        if exc is None:
            await self._succeeded_async(ticket, started)
        else:
            await self._finish_exception_async(ticket, exc, started)

    # The async forms call the primitives through these awaitable hooks, so a breaker
    # whose state lives elsewhere (a SharedBreaker) can await its storage there. An
    # in-memory breaker needs no await: they call the sync primitives.

    async def _acquire_async(self) -> int | CircuitOpenError:
        return self._acquire()

    async def _succeeded_async(self, ticket: int, started: float | None) -> None:
        self._succeeded(ticket, started)

    async def _finish_exception_async(
        self, ticket: int, exc: BaseException, started: float | None
    ) -> None:
        self._finish_exception(ticket, exc, started)

    async def _finish_result_async(
        self, ticket: int, result: object, started: float | None
    ) -> None:
        self._finish_result(ticket, result, started)

    # ------------------------------------------------------------------ primitives

    def _acquire(self) -> int | CircuitOpenError:
        """Admit a call and return its ticket, or return the error that rejects it."""
        gen = self._gen  # before the state, which transitions write first
        state = self._state
        if state is _CLOSED or state is _METRICS_ONLY:
            return gen
        if state is _DISABLED:
            return _UNRECORDED
        episode = self._episode
        rejected = self._rejected
        if state is _FORCED_OPEN and rejected is not None:
            next(rejected)  # lock-free, like the OPEN rejection below
            return CircuitOpenError(self._name, state, None)
        now = self._settings.clock()
        if episode is not None and rejected is not None:
            # Lock-free rejection while open: the common case of an outage.
            retry_at = episode.retry_at
            if state is _OPEN and retry_at is not None and now < retry_at:
                next(rejected)
                return CircuitOpenError(self._name, state, retry_at - now)
        return self._acquire_locked(now)

    def _acquire_locked(self, now: float) -> int | CircuitOpenError:
        """Admit a call where the state may change: a due or running half-open trial."""
        # Listeners hear a due OPEN -> HALF_OPEN change before the trial is admitted: an
        # interrupt raised in a listener must not find a slot taken and not yet handed out.
        change = self._observe_due(now)
        if change is not None:
            self._notify(change)
        return self._admit(now)

    @section
    def _observe_due(self, now: float) -> Change | None:
        """Move a due OPEN circuit to HALF_OPEN and return that change, if any."""
        with self._lock:
            return self._half_open_if_due(now)

    @section
    def _admit(self, now: float) -> int | CircuitOpenError:
        """Admit a trial call, or count and return the rejection (never a transition)."""
        retry_after: float | None = None
        with self._lock:
            state = self._state
            episode = self._episode
            ticket: int | None
            if state is _HALF_OPEN and episode is not None:
                if episode.trial_running < self._settings.half_open_max_calls:
                    episode.trial_running += 1
                    ticket = self._gen
                else:
                    ticket = None
                    retry_after = _HALF_OPEN_FULL_RETRY_AFTER
            elif state is _OPEN and episode is not None and episode.retry_at is not None:
                # Due only when a trip just now set a retry time already past: the next
                # call (or read of ``state``) moves it to HALF_OPEN.
                ticket = None
                retry_after = max(0.0, episode.retry_at - now)
            elif state is _FORCED_OPEN:
                ticket = None
            else:  # another thread closed, disabled or shadowed it meanwhile
                ticket = _UNRECORDED if state is _DISABLED else self._gen
            if ticket is None:
                self._count_rejection()
                return CircuitOpenError(self._name, state, retry_after)
            return ticket

    def _count_rejection(self) -> None:
        """Count one rejected call (outside the lock-free path)."""
        rejected = self._rejected
        if rejected is None:
            rejected = self._rejected = itertools.count()
        next(rejected)

    @section
    def _succeeded(self, ticket: int, started: float | None) -> None:
        """Record a successful call admitted with ``ticket``."""
        if ticket == _UNRECORDED:
            return
        if ticket != self._gen:
            next(self._successes)  # counted, but it cannot steer the state it outlived
            return
        if started is None and self._state is not _HALF_OPEN and not self._tracker.counts_successes:
            drawn = next(self._successes)
            if ticket == self._gen:
                self._last_ok = drawn
            return
        now = self._settings.clock()
        change = None
        with self._lock:
            drawn = next(self._successes)
            if ticket == self._gen:
                self._last_ok = drawn
                state = self._state
                episode = self._episode
                if state is _HALF_OPEN and episode is not None:
                    episode.trial_running -= 1
                    episode.trial_ok += 1
                    if episode.trial_ok >= self._settings.success_threshold:
                        change = self._to(_CLOSED, now)
                elif (state is _CLOSED or state is _METRICS_ONLY) and self._tracker.record(
                    now,
                    self._last_ok,
                    False,  # noqa: FBT003  # positional: the tracker's hot call
                    self._is_slow(started, now),
                ):
                    change = self._trip(now)
        if change is not None:
            self._notify(change)

    @section
    def _failed(self, ticket: int, started: float | None) -> None:
        """Record a failed call admitted with ``ticket``."""
        if ticket == _UNRECORDED:
            return
        # Read before the lock: the clock may be the user's code.
        now = self._settings.clock()
        change = None
        with self._lock:
            self._failures += 1
            if ticket == self._gen:
                state = self._state
                if state is _HALF_OPEN:
                    episode = self._episode
                    if episode is not None:
                        episode.trial_running -= 1
                    change = self._to(_OPEN, now)
                elif (state is _CLOSED or state is _METRICS_ONLY) and self._tracker.record(
                    now,
                    self._last_ok,
                    True,  # noqa: FBT003  # positional: the tracker's hot call
                    self._is_slow(started, now),
                ):
                    change = self._trip(now)
        if change is not None:
            self._notify(change)

    @section
    def _ignored_call(self, ticket: int) -> None:
        """Record a call whose outcome counts as neither success nor failure."""
        if ticket == _UNRECORDED:
            return
        with self._lock:
            self._ignored += 1
            episode = self._episode
            if ticket == self._gen and self._state is _HALF_OPEN and episode is not None:
                episode.trial_running -= 1  # a cancelled trial frees its slot

    @section
    def _finish_exception(self, ticket: int, exc: BaseException, started: float | None) -> None:
        outcome = self._settings.outcome_of(exc)
        if outcome == _FAILURE:
            self._failed(ticket, started)
        elif outcome == _SUCCESS:
            self._succeeded(ticket, started)
        else:
            self._ignored_call(ticket)

    def _result_failed(self, result: object) -> bool:
        """Whether ``failure_on_result`` marks ``result`` (a predicate that raises: no)."""
        predicate = self._settings.failure_on_result
        if predicate is None:
            return False
        try:
            return bool(predicate(result))
        except Exception:
            logger.exception("failure_on_result of breaker %r raised", self._name)
            return False

    @section
    def _finish_result(self, ticket: int, result: object, started: float | None) -> None:
        if self._result_failed(result):
            self._failed(ticket, started)
        else:
            self._succeeded(ticket, started)

    def _is_slow(self, started: float | None, now: float) -> bool:
        limit = self._settings.slow_after
        return started is not None and limit is not None and now - started >= limit

    # ------------------------------------------------------------------ transitions
    # The methods below run with the lock held.

    def _half_open_if_due(self, now: float) -> Change | None:
        episode = self._episode
        if (
            self._state is _OPEN
            and episode is not None
            and episode.retry_at is not None
            and now >= episode.retry_at
        ):
            return self._to(_HALF_OPEN, now)
        return None

    def _trip(self, now: float) -> Change | None:
        if self._state is _METRICS_ONLY:
            extras = self._extras_dict()
            extras["shadow_trips"] = extras.get("shadow_trips", 0) + 1
            self._restart()
            return _SHADOW_TRIP  # logged by _notify, outside the lock
        return self._to(_OPEN, now)

    def _restart(self) -> None:
        """Start a new generation: the policy's counts and the trial slots begin afresh."""
        self._gen += 1
        self._tracker.restart(self._last_ok)
        episode = self._episode
        if episode is not None:
            episode.trial_running = 0
            episode.trial_ok = 0

    def _to(self, new: CircuitState, now: float) -> Change | None:
        old = self._state
        if old is new:
            return None
        self._fast = False  # cleared first, set last: see call()
        if new is _OPEN or new is _FORCED_OPEN or new is _HALF_OPEN:
            if self._rejected is None:
                self._rejected = itertools.count()  # before the state that rejects
            episode = self._episode
            if episode is None:
                episode = self._episode = _Episode(now)
            if new is not _HALF_OPEN and old is not _OPEN:
                # Operators look at the counts that opened it: keep them while it is open.
                episode.held = (
                    (int(new is _OPEN), episode.trial_ok, None, 0)  # a failed trial
                    if old is _HALF_OPEN
                    else self._tracker.counts(now, self._last_ok)
                )
            if new is _OPEN:
                episode.trips += 1
                # A backoff was evaluated ahead, outside the lock (see _notify).
                wait = self._next_wait
                episode.retry_at = now + (
                    wait if wait is not None else cast("float", self._settings.recovery_timeout)
                )
            elif new is _FORCED_OPEN:
                episode.retry_at = None
        else:
            self._episode = None
        self._state = new
        self._restart()
        extras = self._extras_dict()
        key = "to_" + new.value
        extras[key] = extras.get(key, 0) + 1
        self._fast = (new is _CLOSED or new is _METRICS_ONLY) and self._fast_allowed()
        return old, new

    def _recovery(self, trips: int) -> float:
        """Return the wait after trip ``trips``; a backoff runs here, never under the lock."""
        timeout = self._settings.recovery_timeout
        if not callable(timeout):
            return timeout
        try:
            wait = float(timeout(trips))
        except Exception:
            _log(
                logging.ERROR,
                "recovery_timeout backoff of breaker %r raised; waiting %ss",
                self._name,
                _FALLBACK_RECOVERY,
                exc_info=True,
            )
            return _FALLBACK_RECOVERY
        if not math.isfinite(wait):
            _log(
                logging.ERROR,
                "recovery_timeout backoff of breaker %r returned %r; waiting %ss",
                self._name,
                wait,
                _FALLBACK_RECOVERY,
            )
            return _FALLBACK_RECOVERY
        return max(0.0, wait)

    def _prepare_next_wait(self) -> None:
        """Evaluate a backoff ``recovery_timeout`` for the next trip, outside the lock.

        Two trips so close together that this has not run between them share one value.
        """
        if callable(self._settings.recovery_timeout):
            episode = self._episode
            self._next_wait = self._recovery(1 if episode is None else episode.trips + 1)

    def _extras_dict(self) -> dict[str, int]:
        extras = self._extras
        if extras is None:
            extras = self._extras = {}
        return extras

    @escape
    def _notify(self, change: Change | None) -> None:
        """Log a transition and tell the listeners, outside the lock."""
        if change is None:
            return
        if change is _SHADOW_TRIP:
            _log(
                logging.WARNING,
                "circuit breaker %r would have opened (metrics-only mode)",
                self._name,
            )
            return
        old, new = change
        if new is _OPEN or new is _CLOSED:
            self._prepare_next_wait()
        level = logging.WARNING if new is _OPEN or new is _FORCED_OPEN else logging.INFO
        _log(level, "circuit breaker %r: %s -> %s", self._name, old.value, new.value)
        if _events.subscribers:
            _events.emit(
                "state_change",
                "circuit_breaker",
                self._name,
                from_state=old.value,
                to_state=new.value,
            )
        for listener in self._listeners:
            try:
                listener(self, old, new)
            except Exception:
                _log(
                    logging.ERROR,
                    "listener %r of circuit breaker %r raised",
                    listener,
                    self._name,
                    exc_info=True,
                )

    # ------------------------------------------------------------------ operators

    @section
    def _operate(self, new: CircuitState) -> None:
        now = self._settings.clock()
        with self._lock:
            change = self._to(new, now)
            if change is None and new is _CLOSED:
                self._restart()
        self._notify(change)

    def reset(self) -> None:
        """Close the circuit and clear the policy's counts (totals keep counting)."""
        self._operate(_CLOSED)

    def close(self) -> None:
        """Close the circuit; the same as ``reset()``."""
        self._operate(_CLOSED)

    def open(self) -> None:
        """Force the circuit open: every call is rejected until an operator changes it."""
        self._operate(_FORCED_OPEN)

    def disable(self) -> None:
        """Let every call pass and record nothing until an operator changes it."""
        self._operate(_DISABLED)

    def metrics_only(self) -> None:
        """Shadow mode: record and report like a closed circuit, but never reject.

        Each trip it would have made is counted in ``get_stats()["shadow_trips"]``.
        """
        self._operate(_METRICS_ONLY)

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
        with self._lock:
            self._listeners = (*self._listeners, listener)

    @section
    def remove_listener(self, listener: Listener, /) -> None:
        """Stop calling ``listener``.

        Raises:
            ValueError: ``listener`` was not added.
        """
        with self._lock:
            listeners = list(self._listeners)
            try:
                listeners.remove(listener)
            except ValueError:
                raise ValueError(f"listener {listener!r} is not registered") from None
            self._listeners = tuple(listeners)

    # ------------------------------------------------------------------ stats

    @section
    def get_stats(self) -> dict[str, Any]:
        """Return a snapshot of the breaker's state and counters.

        Keys: ``name``, ``state`` (the enum's value), ``failure_count`` and
        ``success_count`` (what the policy holds now), ``total_calls``,
        ``total_successes``, ``total_failures``, ``total_rejected``, ``total_ignored``
        (totals only grow), ``opened_at`` (wall-clock epoch seconds when it left CLOSED,
        or None), ``open_for`` (seconds since then on the breaker's clock, or None),
        ``failure_rate`` (0..1 where the policy measures it and has enough calls, else
        None), ``slow_calls`` (slow calls in the window), ``shadow_trips`` and
        ``transitions`` (entries into each state, by the state's value).
        """
        state = self.state  # observes a due OPEN -> HALF_OPEN change first
        now = self._settings.clock()  # read before the lock: the clock may be user code
        with self._lock:
            state = self._state
            successes = _read_count(self._successes)
            rejected = 0 if self._rejected is None else _read_count(self._rejected)
            episode = self._episode
            if state is _HALF_OPEN and episode is not None:
                failure_count, success_count = 0, episode.trial_ok
                rate: float | None = None
                slow = 0
            elif episode is not None and episode.held is not None:
                failure_count, success_count, rate, slow = episode.held
            else:
                failure_count, success_count, rate, slow = self._tracker.counts(now, self._last_ok)
            extras = dict(self._extras or {})
            since = None if episode is None else episode.since
            stats: dict[str, Any] = {
                "name": self._name,
                "state": state.value,
                "failure_count": failure_count,
                "success_count": success_count,
                "total_calls": successes + self._failures + rejected + self._ignored,
                "total_successes": successes,
                "total_failures": self._failures,
                "total_rejected": rejected,
                "total_ignored": self._ignored,
                "failure_rate": rate,
                "slow_calls": slow,
            }
        stats["opened_at"] = None if since is None else time.time() - (now - since)
        stats["open_for"] = None if since is None else now - since
        stats["shadow_trips"] = extras.get("shadow_trips", 0)
        stats["transitions"] = {s.value: extras.get("to_" + s.value, 0) for s in CircuitState}
        return stats

    @section
    def _metrics_row(
        self,
    ) -> tuple[str, tuple[int, int, int, int], float | None, float | None, tuple[int, ...]]:
        """Return what metrics and health read, as ``get_stats()`` would report it, cheaply.

        ``(state, (successes, failures, rejected, ignored), failure_rate, open_for,
        transitions)``, transitions being entries into each ``CircuitState`` in
        definition order. A scrape of many breakers calls this once per breaker.
        """
        if self._state is _OPEN:
            self.state  # noqa: B018  # observes a due OPEN -> HALF_OPEN change first
        now = self._settings.clock()
        with self._lock:
            state = self._state
            episode = self._episode
            if state is _HALF_OPEN:
                rate = None
            elif episode is not None and episode.held is not None:
                rate = episode.held[2]  # while open: the rate that opened it
            else:
                rate = self._tracker.counts(now, self._last_ok)[2]
            rejected = 0 if self._rejected is None else _read_count(self._rejected)
            totals = (_read_count(self._successes), self._failures, rejected, self._ignored)
            since = None if episode is None else episode.since
            extras = self._extras
            entered = (
                _NO_TRANSITIONS
                if extras is None
                else tuple(extras.get(key, 0) for key in _TRANSITION_KEYS)
            )
        return state.value, totals, rate, None if since is None else now - since, entered

    def __repr__(self) -> str:
        return f"<CircuitBreaker name={self._name!r} state={self._state.value}>"


CircuitBreaker.__module__ = "resilience"
