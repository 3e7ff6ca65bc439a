"""Retries with backoff: one immutable policy behind every retry surface.

``retry_with_backoff``, ``retry_on_failure``, ``RetryContext`` and the presets all build a
``_Policy`` (validated once, shared freely) and run calls through its ``call`` /
``call_async``. A policy holds configuration only: each call keeps its attempt count, start
time and delays in local variables, so one decorated function can be called from many
threads and tasks at once without their retries mixing.

The first attempt costs a clock read and a few local checks; everything else (the state handed
to ``on_retry``, the delay, the budget, the deadline) is looked at only once an attempt
has failed.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import reprlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    NamedTuple,
    ParamSpec,
    Protocol,
    Self,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
)

from resilience import _context, _deadline, _events
from resilience._budget import RetryBudget
from resilience._critical import section
from resilience._deadline import check_limit
from resilience._http_hints import (
    is_transient,
    retry_after_of,
    retryable_response,
    retryable_status_error,
)
from resilience._retry_stats import RetryCounter, RetryStatistics, counter_for
from resilience._throttle import RetryThrottle
from resilience._validate import (
    check_callable,
    check_int,
    check_name,
    check_number,
    exception_types,
    is_coroutine_function,
)
from resilience._wrap import wrap
from resilience.backoff import JITTERS, Exponential, Jitter
from resilience.exceptions import CircuitOpenError, RetryError

if TYPE_CHECKING:
    import types

    from resilience._strategy import StrategyInfo
    from resilience._types import Clock

__all__ = [
    "Retry",
    "RetryAttempt",
    "RetryContext",
    "RetryState",
    "retry_api_call",
    "retry_network_operation",
    "retry_on_failure",
    "retry_with_backoff",
]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("resilience")

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]
SleepFunc = Callable[[float], Awaitable[None] | None]
"""``time.sleep``-like, or for async code a coroutine function like ``asyncio.sleep``."""


class SyncRun(Protocol):
    """``call(func, args, kwargs, context=None)``: run one call under a policy."""

    def __call__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: _context.CallContext | None = None,
        /,
    ) -> Any: ...


class AsyncRun(Protocol):
    """``await call_async(func, args, kwargs, context=None)``: the same for coroutines."""

    def __call__(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: _context.CallContext | None = None,
        /,
    ) -> Awaitable[Any]: ...


_INF: Final = math.inf
_DEFAULT_BASE_DELAY: Final = 1.0
_DEFAULT_MAX_DELAY: Final = 60.0
_DEFAULT_EXPONENTIAL_BASE: Final = 2.0


class _InstantSwitch:
    """The process-wide switch behind ``testing.instant_retries()``.

    A counter rather than a flag so nested and overlapping uses (from several threads)
    compose: sleeps are skipped while any use is active.
    """

    __slots__ = ("_lock", "depth")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.depth = 0

    def enter(self) -> None:
        with self._lock:
            self.depth += 1

    def exit(self) -> None:
        with self._lock:
            self.depth -= 1


INSTANT: Final = _InstantSwitch()


class _TestingSwitch:
    """The process-wide cap on attempts behind ``testing.retries()``.

    Each active use holds its cap; the smallest one applies, so nested and overlapping uses
    (from several threads) compose. ``attempts`` is read without the lock: it is replaced
    whole.
    """

    __slots__ = ("_caps", "_lock", "attempts")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caps: list[int] = []
        self.attempts: int | None = None

    @section
    def enter(self, cap: int) -> None:
        with self._lock:
            self._caps.append(cap)
            self.attempts = min(self._caps)

    @section
    def exit(self, cap: int) -> None:
        with self._lock:
            self._caps.remove(cap)
            self.attempts = min(self._caps) if self._caps else None


TESTING: Final = _TestingSwitch()


@dataclass(frozen=True, slots=True)
class RetryState:
    """What ``on_retry`` is told before each retry.

    Attributes:
        attempt: the attempt that just failed, counting from 1.
        exception: the exception it raised, or ``None`` when its result was retried.
        result: the result it returned (``retry_on_result`` held), or ``None``.
        delay: the seconds about to be slept before the next attempt.
        elapsed: seconds since the first attempt started.
        name: the retry's name, or ``None``.
    """

    attempt: int
    exception: BaseException | None
    result: Any
    delay: float
    elapsed: float
    name: str | None


# ---------------------------------------------------------------------- hints and filters


async def _asyncio_sleep(seconds: float) -> None:
    """``asyncio.sleep``, imported when async code first sleeps rather than at import."""
    import asyncio  # noqa: PLC0415  # already loaded by then: the caller is async

    await asyncio.sleep(seconds)


def _number(value: object) -> float | None:
    """Return ``value`` as seconds if it is a real, non-negative, non-NaN number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    if not seconds >= 0.0:  # negative or NaN
        return None
    return seconds


def _seconds(value: object) -> float | None:
    """Return a backoff's result as seconds to wait, or None if it is no finite number.

    A negative number is no wait (0.0); a ``bool``, a string, NaN or an infinity is None.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):  # an int too large, a broken __float__
        return None
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _describe(value: object) -> str:
    """Name a backoff's bad result for a log line and a note, without calling its repr."""
    if value is None or type(value) in (float, str, bool):  # their repr cannot fail
        return reprlib.repr(value)
    return f"an object of type {type(value).__qualname__}"


class _Verdict(NamedTuple):
    """What a policy makes of an exception class (its ``verdicts`` cache).

    ``retried``: in ``exceptions`` (or left to ``ask``) and not in ``give_up_on``. ``ask``:
    not in ``exceptions``, so the preset's filter decides per instance. ``hinted``: the
    class has an attribute a retry-after hint may be read from.
    """

    retried: bool
    ask: bool
    hinted: bool


_NOT_RETRIED: Final = _Verdict(retried=False, ask=False, hinted=False)
_HINT_NAMES: Final = ("retry_after", "headers", "response")
_VERDICTS: Final = 256

_MAX_RETRIES: Final = 1_000_000
"""More retries than anyone means; beyond it ``max_retries`` is a mistake (10**40)."""


def _check_sync(name: str, value: object, *, optional: bool = False) -> Any:
    """Return ``value`` if it is a plain callable (or ``None`` when ``optional``).

    A coroutine function is a TypeError naming the option: called where a value is needed,
    it would return a coroutine object, always true and never awaited.
    """
    check_callable(name, value, optional=optional)
    if value is not None:
        import inspect  # noqa: PLC0415  # ~15 ms to import: loaded where first needed

        if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
            getattr(value, "__call__", None)  # noqa: B004  # an object with an async __call__
        ):
            raise TypeError(
                f"{name} must be a plain callable, not a coroutine function, got {value!r}"
            )
    return value


def _make_backoff(
    base_delay: object, max_delay: object, exponential_base: object, jitter: object
) -> Exponential:
    """Validate the four delay options (named as the caller wrote them) into a strategy."""
    if isinstance(jitter, bool):
        kind: Jitter = "full" if jitter else "none"
    elif isinstance(jitter, str):
        if jitter not in JITTERS:
            raise ValueError(
                f"jitter must be a bool or one of {', '.join(JITTERS)}, got {jitter!r}"
            )
        kind = cast("Jitter", jitter)
    else:
        raise TypeError(f"jitter must be a bool or one of {', '.join(JITTERS)}, got {jitter!r}")
    base = check_number("base_delay", base_delay, minimum=0.0)
    cap = check_limit("max_delay", max_delay, zero=True)  # a sleep can be no longer
    factor = check_number("exponential_base", exponential_base, minimum=1.0)
    if kind == "decorrelated" and base == 0:
        raise ValueError(f"base_delay must be > 0 for decorrelated jitter, got {base_delay!r}")
    return Exponential(base, factor, cap, kind)


# ---------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class _Policy:
    """A validated retry configuration; immutable, so every call and thread may share it."""

    max_retries: int | None  # None: bounded by max_elapsed or a deadline
    delay: Callable[[int], float]
    min_delay: float
    retry_on: tuple[type[BaseException], ...]
    retry_if: Callable[[BaseException], bool] | None  # the presets' extra filter
    retry_on_result: Callable[[Any], bool] | None
    give_up_on: tuple[type[BaseException], ...]
    max_elapsed: float | None
    on_retry: Callable[[RetryState], object] | None
    before: Callable[[int], object] | None
    on_success: Callable[[RetryState], object] | None
    on_giveup: Callable[[RetryState], object] | None
    max_retry_after: float
    hint: Callable[[Any], float | None] | None  # beyond a `retry_after` attribute
    budget: RetryBudget | None
    throttle: RetryThrottle | None
    name: str | None
    counter: RetryCounter | None
    sleep: SleepFunc
    asleep: SleepFunc
    clock: Clock
    # Made from the fields above by __post_init__.
    unbounded: bool = field(init=False, repr=False, compare=False)
    extras: bool = field(init=False, repr=False, compare=False)
    tracked: bool = field(init=False, repr=False, compare=False)  # finished() has work
    fixed_delays: tuple[float, ...] | None = field(init=False, repr=False, compare=False)
    verdicts: dict[type[BaseException], _Verdict] = field(init=False, repr=False, compare=False)
    call: SyncRun = field(init=False, repr=False, compare=False)
    call_async: AsyncRun = field(init=False, repr=False, compare=False)

    @classmethod
    def build(  # the options of retry_with_backoff, as SPEC lists them
        cls,
        *,
        max_retries: int | None = 3,
        base_delay: float = _DEFAULT_BASE_DELAY,
        max_delay: float = _DEFAULT_MAX_DELAY,
        exponential_base: float = _DEFAULT_EXPONENTIAL_BASE,
        jitter: bool | Jitter = True,
        exceptions: ExceptionTypes = Exception,
        retry_on_result: Callable[[Any], bool] | None = None,
        give_up_on: ExceptionTypes = (CircuitOpenError,),
        max_elapsed: float | None = None,
        on_retry: Callable[[RetryState], object] | None = None,
        max_retry_after: float | None = None,
        backoff: Callable[[int], float] | None = None,
        budget: RetryBudget | RetryThrottle | None = None,
        name: str | None = None,
        sleep: SleepFunc = time.sleep,
        clock: Clock = time.monotonic,
        retry_after: Callable[[Any], float | None] | None = None,
        min_delay: float = 0.0,
        before: Callable[[int], object] | None = None,
        on_success: Callable[[RetryState], object] | None = None,
        on_giveup: Callable[[RetryState], object] | None = None,
        retry_if: Callable[[BaseException], bool] | None = None,
    ) -> _Policy:
        """Validate every option, naming the parameter and the value on failure."""
        if max_retries is not None:
            check_int("max_retries", max_retries, minimum=0)
            if max_retries > _MAX_RETRIES:
                raise ValueError(
                    f"max_retries must be at most {_MAX_RETRIES} (use None with max_elapsed "
                    f"for retries bounded by time), got {max_retries!r}"
                )
        strategy = _make_backoff(base_delay, max_delay, exponential_base, jitter)
        if backoff is not None:
            _check_sync("backoff", backoff)
            passed = {
                option: value
                for option, value, default in (
                    ("base_delay", base_delay, _DEFAULT_BASE_DELAY),
                    ("max_delay", max_delay, _DEFAULT_MAX_DELAY),
                    ("exponential_base", exponential_base, _DEFAULT_EXPONENTIAL_BASE),
                    ("jitter", jitter, True),
                )
                if value != default or isinstance(value, bool) != isinstance(default, bool)
            }
            if passed:
                shown = ", ".join(f"{option}={value!r}" for option, value in passed.items())
                raise ValueError(
                    "backoff replaces base_delay, max_delay, exponential_base and jitter; "
                    f"pass one or the other, got backoff={backoff!r} and {shown}"
                )
        if max_elapsed is not None:
            max_elapsed = check_limit("max_elapsed", max_elapsed, zero=True)
        if max_retry_after is None:
            max_retry_after = strategy.max_delay
        else:
            max_retry_after = check_number(
                "max_retry_after", max_retry_after, minimum=0.0, finite=False
            )
        min_delay = check_limit("min_delay", min_delay, zero=True)
        if budget is not None and not isinstance(budget, RetryBudget | RetryThrottle):
            raise TypeError(
                f"budget must be a RetryBudget, a RetryThrottle or None, got {budget!r}"
            )
        name = check_name(name, optional=True)
        check_callable("sleep", sleep)
        return cls(
            max_retries=max_retries,
            delay=strategy if backoff is None else backoff,
            min_delay=min_delay,
            retry_on=exception_types("exceptions", exceptions),
            retry_if=retry_if,
            retry_on_result=_check_sync("retry_on_result", retry_on_result, optional=True),
            give_up_on=exception_types("give_up_on", give_up_on),
            max_elapsed=max_elapsed,
            on_retry=_check_sync("on_retry", on_retry, optional=True),
            before=_check_sync("before", before, optional=True),
            on_success=_check_sync("on_success", on_success, optional=True),
            on_giveup=_check_sync("on_giveup", on_giveup, optional=True),
            max_retry_after=max_retry_after,
            hint=_check_sync("retry_after", retry_after, optional=True),
            budget=budget if isinstance(budget, RetryBudget) else None,
            throttle=budget if isinstance(budget, RetryThrottle) else None,
            name=name,
            counter=None if name is None else counter_for(name),
            sleep=sleep,
            # The default sleep suits sync code; async code gets the event loop's.
            asleep=_asyncio_sleep if sleep is time.sleep else sleep,
            clock=_check_sync("clock", clock),
        )

    # ------------------------------------------------------------------ the engine's parts
    # One call's retries are an `_Attempts` (below); it asks the policy for each decision,
    # `next_delay`, whose checks run in one fixed, documented order.

    def __post_init__(self) -> None:
        unbounded = self.max_retries is None and self.max_elapsed is None
        object.__setattr__(self, "unbounded", unbounded)
        extras = (
            self.min_delay > 0.0
            or self.max_elapsed is not None
            or self.budget is not None
            or self.throttle is not None
        )
        object.__setattr__(self, "extras", extras)
        tracked = (
            self.counter is not None or self.on_success is not None or self.throttle is not None
        )
        object.__setattr__(self, "tracked", tracked)
        delay = self.delay
        fixed = delay._table if type(delay) is Exponential and delay.jitter == "none" else None  # noqa: SLF001
        object.__setattr__(self, "fixed_delays", fixed)
        object.__setattr__(self, "verdicts", {})
        sync_run, async_run = _drivers(self)
        object.__setattr__(self, "call", sync_run)
        object.__setattr__(self, "call_async", async_run)

    def next_delay(  # noqa: C901, PLR0912  # flat on purpose: see the docstring
        self, run: _Attempts, exc: Exception | None, result: Any
    ) -> float | None:
        """Return the delay before the next attempt, or give up (see ``_Attempts``).

        The checks run in the order docs/retry.md documents, each a few lines: the error
        filter, the attempt limits (``max_retries``, ``testing.retries()``), the backoff
        (and ``min_delay``), the retry-after hint, ``max_elapsed``, the deadline, the
        budget. This runs once per failed attempt, so it stays flat: what a policy does not
        use costs one comparison, and the rarer checks are small functions below.
        """
        attempt = run.attempt
        if exc is not None:
            # What this policy thinks of the exception's class, worked out once per class.
            verdict = self.verdicts.get(type(exc))
            if verdict is None:
                verdict = self._verdict(type(exc))
            if not verdict.retried or (
                verdict.ask and not cast("Callable[[Exception], bool]", self.retry_if)(exc)
            ):
                run.give_up(exc, result, None)
                return None
            # A hint may sit on the class (a property) or on this instance (its __dict__).
            hinted = self.hint is not None or verdict.hinted or bool(exc.__dict__)
        else:
            hinted = True  # a retried result: look for a hint on it
        if self.extras and self.throttle is not None:
            self.throttle._failure()  # noqa: SLF001  # every retryable failure takes a token
        reason: str | None = None
        max_retries = self.max_retries
        if max_retries is not None and attempt > max_retries:
            reason = f"max_retries={max_retries} reached"
        elif TESTING.attempts is not None and attempt >= TESTING.attempts:
            reason = _testing_reason(TESTING.attempts)
        if reason is not None:
            run.give_up(exc, result, reason)
            return None
        fixed = self.fixed_delays
        if fixed is not None and attempt <= len(fixed):
            delay = fixed[attempt - 1]  # an un-jittered backoff's table: no call
        else:
            delay, reason = self._backoff_delay(attempt)
        if reason is None and hinted:
            delay, reason = self._hinted(delay, result if exc is None else exc)
        if reason is None:
            if self.extras:  # min_delay, max_elapsed, the deadline, budget, throttle
                delay, reason = self._extras(run, delay)
            elif run.due is not None:
                reason = _past_deadline(run.due, delay)
        if reason is not None:
            run.give_up(exc, result, reason)
            return None
        run.idle += delay
        if run.log or self.on_retry is not None or _events.subscribers:
            run.announce(exc, result, delay)
        return delay

    def _extras(self, run: _Attempts, delay: float) -> tuple[float, str | None]:
        """Apply the optional steps a policy's options ask for, in their documented order.

        ``min_delay`` raises the delay (after the hint: both are lower bounds, so the order
        does not matter), then ``max_elapsed``, the deadline, and last the throttle and the
        budget, since asking the budget spends a retry.
        """
        delay = max(delay, self.min_delay)
        if self.max_elapsed is not None:
            reason = _past_max_elapsed(self, run.start, delay)
            if reason is not None:
                return delay, reason
        if run.due is not None:
            reason = _past_deadline(run.due, delay)
            if reason is not None:
                return delay, reason  # before spending the budget
        if self.throttle is not None and not self.throttle._allows():  # noqa: SLF001
            return delay, "the retry throttle has half its tokens or fewer"
        if self.budget is not None and not self.budget._withdraw():  # noqa: SLF001
            return delay, "the retry budget is spent"
        return delay, None

    def _verdict(self, cls: type[Exception]) -> _Verdict:
        """Classify an exception class for ``verdicts``: retried or not, a class-level hint."""
        hinted = any(hasattr(cls, name) for name in _HINT_NAMES)
        if issubclass(cls, self.give_up_on):
            verdict = _NOT_RETRIED
        elif issubclass(cls, self.retry_on):
            verdict = _Verdict(retried=True, ask=False, hinted=hinted)
        elif self.retry_if is not None:
            verdict = _Verdict(retried=True, ask=True, hinted=hinted)
        else:
            verdict = _NOT_RETRIED
        if len(self.verdicts) < _VERDICTS:  # a bounded cache: classes are few in practice
            self.verdicts[cls] = verdict
        return verdict

    def _backoff_delay(self, attempt: int) -> tuple[float, str | None]:
        """The backoff's delay before retry ``attempt``, or why there is none (logged)."""
        try:
            # Typed as a float, but a custom strategy may return anything.
            returned: object = self.delay(attempt)
        except Exception:
            logger.exception("backoff %r of retry %r raised; not retrying", self.delay, self.name)
            return 0.0, "the backoff strategy raised"
        if type(returned) is float and 0.0 <= returned < _INF:  # the usual case, call-free
            return returned, None
        delay = self._checked_delay(returned)
        if delay is None:
            shown = _describe(returned)
            return 0.0, f"the backoff strategy returned {shown}, not a finite number of seconds"
        return delay, None

    def _checked_delay(self, returned: object) -> float | None:
        """A custom backoff's result as seconds, or None (logged) if it is no finite number."""
        delay = _seconds(returned)
        if delay is None:  # a custom strategy's non-number, NaN or infinity
            logger.error(
                "backoff %r of retry %r returned %s, not a finite number of seconds; not retrying",
                self.delay,
                self.name,
                _describe(returned),
            )
        return delay

    def _hinted(self, delay: float, source: object) -> tuple[float, str | None]:
        """Lengthen ``delay`` to a retry-after hint, or give the reason a hint stops it.

        The hint is the first of: what ``retry_after`` returns, a numeric ``retry_after``
        attribute (as ``CircuitOpenError`` has), an HTTP ``Retry-After`` header on the
        error or the returned response.
        """
        hint = None if self.hint is None else self._read_hint(source)
        if hint is None:
            raw = getattr(source, "retry_after", None)
            hint = None if raw is None else _number(raw)
        if hint is None:
            hint = retry_after_of(source)
        if hint is None:
            return delay, None
        if hint > self.max_retry_after or math.isinf(hint):
            return delay, (
                f"its retry-after hint of {hint:.3f}s exceeds "
                f"max_retry_after={self.max_retry_after:g}s"
            )
        return max(delay, hint), None

    def _read_hint(self, source: object) -> float | None:
        try:
            value = cast("Callable[[object], object]", self.hint)(source)
        except Exception:
            logger.exception("retry_after of retry %r raised on %r; ignoring it", self.name, source)
            return None
        if value is None:
            return None
        seconds = _number(value)
        if seconds is None:
            logger.error(
                "retry_after of retry %r returned %s, not seconds >= 0; ignoring it",
                self.name,
                _describe(value),
            )
        return seconds

    def handles(self, exc: BaseException) -> bool:
        """Whether the policy treats ``exc`` as a failure to retry (an attempt's ``handled``).

        The same classification ``next_delay`` starts with; whether a retry is then left
        (``max_retries``, the budget, ...) does not change that the failure was handled.
        """
        if not isinstance(exc, Exception):
            return False  # a cancellation or an interrupt: never retried
        verdict = self.verdicts.get(type(exc))
        if verdict is None:
            verdict = self._verdict(type(exc))
        if not verdict.retried:
            return False
        return not verdict.ask or cast("Callable[[Exception], bool]", self.retry_if)(exc)

    def result_fails(self, result: Any) -> bool:
        """Whether ``retry_on_result`` asks for another attempt after ``result``."""
        check = self.retry_on_result
        if check is None:
            return False
        try:
            return bool(check(result))
        except Exception:
            logger.exception("retry_on_result of retry %r raised; accepting the result", self.name)
            return False

    def hook(self, which: str, hook: Callable[[Any], object], argument: object) -> None:
        """Call a user hook; what it raises is logged, never passed to the caller."""
        try:
            hook(argument)
        except Exception:
            logger.exception("%s %r of retry %r raised", which, hook, self.name)

    def finished(self, attempts: int, start: float, result: Any) -> None:
        """Count a call whose attempt ``attempts`` succeeded, and tell ``on_success``."""
        if self.throttle is not None:
            self.throttle._success()  # noqa: SLF001  # the throttle and the policy are one unit
        if self.counter is not None:
            self.counter.record(attempts=attempts, succeeded=True)
        if self.on_success is not None:
            state = RetryState(attempts, None, result, 0.0, self.clock() - start, self.name)
            self.hook("on_success", self.on_success, state)

    def decorate(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Wrap ``func`` (sync or async, or a generator function) so its calls retry.

        Each decorated function gets its own drivers, counting its ``statistics``.
        """
        import inspect  # noqa: PLC0415  # ~15 ms to import: loaded where first needed

        if inspect.iscoroutinefunction(self.sleep) and not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"sleep={self.sleep!r} is a coroutine function, which only async functions "
                f"can await; {getattr(func, '__qualname__', func)!r} is not async"
            )
        stats = RetryStatistics()
        call, call_async = _drivers(self, stats)
        generator: Any = func  # isgeneratorfunction would narrow func's type for good
        if inspect.isgeneratorfunction(generator):
            wrapper = _wrap_generator(func, call)
        else:
            wrapper = wrap(func, call, call_async)
        # functools.wraps leaves these out; introspection (and tenacity users) expect them.
        wrapper.__defaults__ = getattr(func, "__defaults__", None)
        wrapper.__kwdefaults__ = getattr(func, "__kwdefaults__", None)
        wrapper.statistics = stats  # type: ignore[attr-defined]
        return wrapper


def _wrap_generator(func: Callable[P, R], call: SyncRun) -> Callable[P, R]:
    """Retry a generator function until it yields its first value, then hand over.

    A failure before the first value re-runs the generator from the start, like a call.
    Once a value has been yielded the consumer holds it, so a later failure propagates
    as is: nothing could be re-run without yielding values twice.
    """
    import functools  # noqa: PLC0415  # already loaded by the wrapper helper

    def start(*args: Any, **kwargs: Any) -> tuple[Any, Any, bool]:
        generator: Any = func(*args, **kwargs)
        try:
            return generator, next(generator), False
        except StopIteration as stop:
            return generator, stop.value, True

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        generator, value, finished = call(start, args, kwargs)
        if finished:
            return value
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                generator.close()
                raise
            except BaseException as error:  # thrown in by the consumer: pass it on
                try:
                    value = generator.throw(error)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                value = generator.send(sent)
            except StopIteration as stop:
                return stop.value

    return cast("Callable[P, R]", functools.update_wrapper(wrapper, func))


def _testing_reason(cap: int) -> str:
    return f"resilience.testing.retries() allows {cap} attempt{'' if cap == 1 else 's'}"


def _past_max_elapsed(policy: _Policy, start: float, delay: float) -> str | None:
    """Why waiting ``delay`` more stops the call: the next attempt would reach max_elapsed."""
    limit: float = policy.max_elapsed  # type: ignore[assignment]  # only called when set
    if policy.clock() - start + delay >= limit:
        return f"waiting {delay:.3f}s more would reach max_elapsed={limit:g}s"
    return None


def _past_deadline(due: _deadline.Due, delay: float) -> str | None:
    """Why waiting ``delay`` more stops the call: the next attempt would reach the deadline.

    What is left is read on the deadline's own clock, which need not be the policy's: a
    ``FakeClock`` deadline around a ``FakeClock`` retry stops it on fake time.
    """
    left = _deadline.left(due)
    if delay >= left:
        return f"waiting {delay:.3f}s more would reach the deadline ({max(left, 0.0):.3f}s left)"
    return None


class _Attempts:
    """The engine: one call's retries, driven by every surface.

    The decorator's sync and async drivers, ``Retry.call``/``call_async``, the presets,
    ``retry_on_failure`` and ``RetryContext`` loops all make their attempts through one of
    these: ``begin()`` before an attempt after the first, then ``failed(exc)``,
    ``returned(result)`` or ``interrupted(error)`` after it. ``failed`` and ``returned`` say
    how long to wait before the next attempt, or that the call is over. The drivers only
    call the function and sleep. A call that succeeds at once never makes one.
    """

    __slots__ = ("attempt", "context", "due", "idle", "log", "policy", "start", "stats")

    def __init__(
        self,
        policy: _Policy,
        start: float,
        context: _context.CallContext | None,
        stats: RetryStatistics | None = None,
    ) -> None:
        self.policy = policy
        self.start = start
        self.context = context
        self.stats = stats
        self.attempt = 1
        self.idle = 0.0  # seconds waited so far
        # Read once per call: neither changes while its attempts run (a deadline entered
        # inside an attempt is left before it ends).
        self.due = _deadline.innermost()  # the enclosing deadline (on its clock), or None
        # logging.Logger.isEnabledFor(INFO), from the logger's cache when it has the answer
        # (logging clears it whenever a level changes).
        known = logger._cache.get(logging.INFO)  # type: ignore[attr-defined]  # noqa: SLF001
        self.log = logger.isEnabledFor(logging.INFO) if known is None else known

    def timed(self, began: float, *, handled: bool) -> None:
        """Report the duration of the attempt that started at ``began`` (``perf_counter``)."""
        _events.emit_timing(
            "attempt",
            "retry",
            self.policy.name,
            time.perf_counter() - began,
            number=self.attempt,
            handled=handled,
        )

    def begin(self) -> None:
        """Start the next attempt: count it, tell the call context and ``before``."""
        self.attempt += 1
        if self.context is not None:
            self.context.attempt = self.attempt
        policy = self.policy
        if policy.before is not None:
            policy.hook("before", policy.before, self.attempt)

    def failed(self, exc: Exception) -> float | None:
        """Return the delay before retrying after ``exc``, or None: re-raise it."""
        return self.policy.next_delay(self, exc, None)

    def returned(self, result: Any) -> float | None:
        """Return None to accept ``result``, or the delay before retrying on it.

        Raises:
            RetryError: ``retry_on_result`` holds and the retries give up.
        """
        policy = self.policy
        if not policy.result_fails(result):
            self.succeeded(result)
            return None
        return policy.next_delay(self, None, result)

    def succeeded(self, result: Any) -> None:
        """Count the call as a success after ``attempt`` attempts."""
        if self.stats is not None:
            self.stats.add(self.attempt, self.idle, failed=False)
        if self.policy.tracked:
            self.policy.finished(self.attempt, self.start, result)

    def interrupted(self, error: BaseException) -> None:
        """Count a call ended by ``error`` raised outside the function's attempts."""
        policy = self.policy
        failed = isinstance(error, Exception)  # a failing sleep; not a cancellation
        if self.stats is not None:
            self.stats.add(self.attempt, self.idle, failed=failed)
        if policy.counter is not None:
            policy.counter.record(attempts=self.attempt, succeeded=False if failed else None)

    def give_up(self, exc: Exception | None, result: Any, reason: str | None) -> None:
        """Stop: note why on the error, count, tell ``on_giveup`` and the event subscribers.

        ``reason`` None means the exception is not retried at all; it is noted only when
        earlier attempts were retried. For a result, raises ``RetryError``.
        """
        policy = self.policy
        attempt = self.attempt
        if policy.counter is not None:
            policy.counter.record(attempts=attempt, succeeded=False)
        if self.stats is not None:
            self.stats.add(attempt, self.idle, failed=True)
        error: BaseException = RetryError(result, attempt) if exc is None else exc
        if reason is None and attempt > 1:
            reason = f"{type(exc).__name__} is not retried"
        elapsed = policy.clock() - self.start
        if reason is not None:
            who = "" if policy.name is None else f"retry {policy.name!r} "
            plural = "" if attempt == 1 else "s"
            error.add_note(
                f"{who}gave up after {attempt} attempt{plural} in {elapsed:.3f}s: {reason}"
            )
        if _events.subscribers:
            _events.emit("give_up", "retry", policy.name, error, attempt=attempt, reason=reason)
        if policy.on_giveup is not None:
            state = RetryState(attempt, exc, result, 0.0, elapsed, policy.name)
            policy.hook("on_giveup", policy.on_giveup, state)
        if exc is None:
            raise error

    def announce(self, exc: Exception | None, result: Any, delay: float) -> None:
        """Tell the log, the event subscribers and ``on_retry`` that a retry is coming."""
        policy = self.policy
        attempt = self.attempt
        if self.log:
            what = "its result" if exc is None else type(exc).__qualname__
            logger.info(
                "retry %s: attempt %d failed (%s); retrying in %.3fs",
                policy.name or "(unnamed)",
                attempt,
                what,
                delay,
                extra={
                    "retry_name": policy.name,
                    "attempt": attempt,
                    "delay": delay,
                    "exception_type": None if exc is None else type(exc).__qualname__,
                },
            )
        if _events.subscribers:
            _events.emit("retry", "retry", policy.name, exc, attempt=attempt, delay=delay)
        if policy.on_retry is not None:
            elapsed = policy.clock() - self.start
            state = RetryState(attempt, exc, result, delay, elapsed, policy.name)
            policy.hook("on_retry", policy.on_retry, state)


def _drivers(policy: _Policy, stats: RetryStatistics | None = None) -> tuple[SyncRun, AsyncRun]:  # noqa: C901, PLR0915  # sync and async twins
    """Make the policy's ``call`` and ``call_async``: thin drivers of ``_Attempts``.

    The first attempt reads only local variables and allocates nothing, which keeps a call
    that succeeds at once within a few times the cost of calling the function bare. After a
    failure the call continues in ``_retry_loop`` / ``_aretry_loop``, outside the ``except``
    block, so a later attempt's exception never gets an earlier one as its __context__.
    """
    budget = policy.budget
    clock = policy.clock
    check = policy.retry_on_result
    prelude = policy.before is not None or policy.unbounded
    counter = policy.counter
    track = policy.tracked

    def call(  # noqa: C901  # flat on purpose: the first attempt costs only what is used
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: _context.CallContext | None = None,
    ) -> Any:
        if _events.timers:  # someone measures attempts (OpenTelemetry): the stopwatch path
            return _timed_loop(_timed_start(policy, context, stats), func, args, kwargs)
        if budget is not None:
            budget._deposit()  # noqa: SLF001  # the budget and the policy are one unit
        start = clock()
        if context is not None or prelude:
            _first_attempt(policy, context)
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            run = _Attempts(policy, start, context, stats)
            delay = policy.next_delay(run, exc, None)
            if delay is None:
                raise
        except BaseException as error:
            if counter is not None:
                _Attempts(policy, start, context, stats).interrupted(error)
            raise
        else:
            if check is None or not policy.result_fails(result):
                if track:
                    policy.finished(1, start, result)
                return result
            run = _Attempts(policy, start, context, stats)
            delay = cast("float", policy.next_delay(run, None, result))
        return _retry_loop(run, func, args, kwargs, delay)

    async def call_async(  # noqa: C901  # the same as call
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: _context.CallContext | None = None,
    ) -> Any:
        if _events.timers:
            return await _atimed_loop(_timed_start(policy, context, stats), func, args, kwargs)
        if budget is not None:
            budget._deposit()  # noqa: SLF001  # the budget and the policy are one unit
        start = clock()
        if context is not None or prelude:
            _first_attempt(policy, context)
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            run = _Attempts(policy, start, context, stats)
            delay = policy.next_delay(run, exc, None)
            if delay is None:
                raise
        except BaseException as error:
            if counter is not None:
                _Attempts(policy, start, context, stats).interrupted(error)
            raise
        else:
            if check is None or not policy.result_fails(result):
                if track:
                    policy.finished(1, start, result)
                return result
            run = _Attempts(policy, start, context, stats)
            delay = cast("float", policy.next_delay(run, None, result))
        return await _aretry_loop(run, func, args, kwargs, delay)

    return call, call_async


def _first_attempt(policy: _Policy, context: _context.CallContext | None) -> None:
    """Tell the call context and ``before`` that the first attempt starts.

    Raises:
        ValueError: ``max_retries=None`` without ``max_elapsed``, outside any deadline:
            nothing would ever stop the retries.
    """
    if policy.unbounded and _deadline.innermost() is None:
        raise ValueError(
            f"retry {policy.name!r} has max_retries=None and no max_elapsed, so it needs an "
            "enclosing deadline() to stop; none is active"
        )
    if context is not None:
        context.attempt = 1
    if policy.before is not None:
        policy.hook("before", policy.before, 1)


def _retry_loop(  # noqa: C901  # flat on purpose: runs once per failed attempt
    run: _Attempts,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    delay: float,
) -> Any:
    """Wait ``delay``, then make attempts 2, 3, ... until one succeeds or it gives up."""
    policy = run.policy
    sleep = policy.sleep
    next_delay = policy.next_delay
    plain = run.context is None and policy.before is None
    judged = policy.retry_on_result is not None
    while True:
        if delay > 0.0 and not INSTANT.depth:  # a zero delay never calls sleep
            try:
                sleep(delay)
            except BaseException as error:
                run.interrupted(error)
                raise
        if plain:
            run.attempt += 1
        else:
            run.begin()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            after = next_delay(run, exc, None)
            if after is None:
                raise
        except BaseException as error:
            run.interrupted(error)
            raise
        else:
            if not judged:
                run.succeeded(result)
                return result
            after = run.returned(result)
            if after is None:
                return result
        delay = after


async def _aretry_loop(  # noqa: C901  # the sync loop's twin, awaits added
    run: _Attempts,
    func: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    delay: float,
) -> Any:
    """The same as ``_retry_loop`` for coroutine functions, waiting without blocking."""
    policy = run.policy
    sleep = policy.asleep
    next_delay = policy.next_delay
    plain = run.context is None and policy.before is None
    while True:
        if delay > 0.0 and not INSTANT.depth:
            try:
                pending = sleep(delay)
                if pending is not None:
                    await pending
            except BaseException as error:  # a task cancelled while it waits ends here, at once
                run.interrupted(error)
                raise
        if plain:
            run.attempt += 1
        else:
            run.begin()
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            after = next_delay(run, exc, None)
            if after is None:
                raise
        except BaseException as error:
            run.interrupted(error)
            raise
        else:
            after = run.returned(result)
            if after is None:
                return result
        delay = after


# ---------------------------------------------------------------------- with a stopwatch
# While a duration subscriber listens (``_events.timers``, read once per call by the
# drivers), a call runs here instead: every attempt, the first included, through one loop
# that times it and says whether the policy handled its outcome as a failure. The drivers
# above stay as they are, so a call with nobody measuring pays that one read and nothing else.


def _timed_start(
    policy: _Policy, context: _context.CallContext | None, stats: RetryStatistics | None
) -> _Attempts:
    """Begin a timed call: what the drivers do before the first attempt, then its engine."""
    if policy.budget is not None:
        policy.budget._deposit()  # noqa: SLF001  # the budget and the policy are one unit
    start = policy.clock()
    if context is not None or policy.before is not None or policy.unbounded:
        _first_attempt(policy, context)
    return _Attempts(policy, start, context, stats)


def _timed_end(run: _Attempts, result: Any) -> None:
    """Count a timed call that succeeded, exactly as the untimed drivers count it."""
    if run.attempt > 1:
        run.succeeded(result)
    elif run.policy.tracked:  # a first-try success: statistics do not count it (see stats)
        run.policy.finished(1, run.start, result)


def _timed_interrupted(run: _Attempts, error: BaseException) -> None:
    """Count a timed call ended by a cancellation or an interrupt, as the drivers do."""
    if run.attempt > 1 or run.policy.counter is not None:
        run.interrupted(error)


def _timed_loop(
    run: _Attempts, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``call`` and ``_retry_loop`` in one, timing each attempt."""
    policy = run.policy
    while True:
        began = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            run.timed(began, handled=policy.handles(exc))
            delay = policy.next_delay(run, exc, None)
            if delay is None:
                raise
        except BaseException as error:
            run.timed(began, handled=False)  # never handled
            _timed_interrupted(run, error)
            raise
        else:
            failed = policy.result_fails(result)
            run.timed(began, handled=failed)
            if not failed:
                _timed_end(run, result)
                return result
            delay = cast("float", policy.next_delay(run, None, result))  # or RetryError
        if delay > 0.0 and not INSTANT.depth:
            try:
                policy.sleep(delay)
            except BaseException as error:
                run.interrupted(error)
                raise
        run.begin()


async def _atimed_loop(
    run: _Attempts,
    func: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The same as ``_timed_loop`` for coroutine functions."""
    policy = run.policy
    while True:
        began = time.perf_counter()
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            run.timed(began, handled=policy.handles(exc))
            delay = policy.next_delay(run, exc, None)
            if delay is None:
                raise
        except BaseException as error:
            run.timed(began, handled=False)  # never handled
            _timed_interrupted(run, error)
            raise
        else:
            failed = policy.result_fails(result)
            run.timed(began, handled=failed)
            if not failed:
                _timed_end(run, result)
                return result
            delay = cast("float", policy.next_delay(run, None, result))  # or RetryError
        if delay > 0.0 and not INSTANT.depth:
            try:
                pending = policy.asleep(delay)
                if pending is not None:
                    await pending
            except BaseException as error:  # a task cancelled while it waits ends here, at once
                run.interrupted(error)
                raise
        run.begin()


# ---------------------------------------------------------------------- public surfaces


class _RetryOptions(TypedDict, total=False):
    """The options of ``retry_with_backoff``, taken by ``retry_on_failure`` and ``RetryContext``.

    Their defaults and checks live in one place: ``_Policy.build``.
    """

    max_retries: int | None
    base_delay: float
    max_delay: float
    exponential_base: float
    jitter: bool | Jitter
    exceptions: ExceptionTypes
    retry_on_result: Callable[[Any], bool] | None
    give_up_on: ExceptionTypes
    max_elapsed: float | None
    on_retry: Callable[[RetryState], object] | None
    max_retry_after: float | None
    backoff: Callable[[int], float] | None
    budget: RetryBudget | RetryThrottle | None
    name: str | None
    sleep: SleepFunc
    clock: Clock
    retry_after: Callable[[Any], float | None] | None
    min_delay: float
    before: Callable[[int], object] | None
    on_success: Callable[[RetryState], object] | None
    on_giveup: Callable[[RetryState], object] | None


class Retry:
    """Retry a call when it fails, waiting longer each time: a decorator and a strategy.

    ``Retry(**options)`` is what ``retry_with_backoff(**options)`` returns, with the same
    keyword-only options (see there for each). Use it three ways:

    - as a decorator, ``@Retry(max_retries=2)`` (the wrapped function keeps its exact type);
    - as a strategy, ``retry.call(func, *args, **kwargs)`` or
      ``await retry.call_async(func, *args, **kwargs)``;
    - inside a ``Pipeline``, which composes it through those two methods.

    One ``Retry`` holds configuration only, so it can be shared by many functions, threads
    and tasks: each call keeps its own attempt count, start time and delays. When a
    pipeline's call context is active, ``attempt`` on it is set before each attempt, so the
    strategies inside the retry see which attempt they serve.

    Raises:
        TypeError, ValueError: an option is invalid (raised here, not at call time).

    Examples:
        >>> retry = Retry(max_retries=2, base_delay=0.0)
        >>> retry.call(lambda x: x * 2, 21)
        42
        >>> retry._strategy_info()["kind"]
        'retry'
    """

    __slots__ = ("__weakref__", "_options", "_policy")

    def __init__(
        self,
        *,
        max_retries: int | None = 3,
        base_delay: float = _DEFAULT_BASE_DELAY,
        max_delay: float = _DEFAULT_MAX_DELAY,
        exponential_base: float = _DEFAULT_EXPONENTIAL_BASE,
        jitter: bool | Jitter = True,
        exceptions: ExceptionTypes = Exception,
        retry_on_result: Callable[[Any], bool] | None = None,
        give_up_on: ExceptionTypes = (CircuitOpenError,),
        max_elapsed: float | None = None,
        on_retry: Callable[[RetryState], object] | None = None,
        max_retry_after: float | None = None,
        backoff: Callable[[int], float] | None = None,
        budget: RetryBudget | RetryThrottle | None = None,
        name: str | None = None,
        sleep: SleepFunc = time.sleep,
        clock: Clock = time.monotonic,
        retry_after: Callable[[Any], float | None] | None = None,
        min_delay: float = 0.0,
        before: Callable[[int], object] | None = None,
        on_success: Callable[[RetryState], object] | None = None,
        on_giveup: Callable[[RetryState], object] | None = None,
    ) -> None:
        options: dict[str, Any] = {
            "max_retries": max_retries,
            "base_delay": base_delay,
            "max_delay": max_delay,
            "exponential_base": exponential_base,
            "jitter": jitter,
            "exceptions": exceptions,
            "retry_on_result": retry_on_result,
            "give_up_on": give_up_on,
            "max_elapsed": max_elapsed,
            "on_retry": on_retry,
            "max_retry_after": max_retry_after,
            "backoff": backoff,
            "budget": budget,
            "name": name,
            "sleep": sleep,
            "clock": clock,
            "retry_after": retry_after,
            "min_delay": min_delay,
            "before": before,
            "on_success": on_success,
            "on_giveup": on_giveup,
        }
        self._policy = _Policy.build(**options)
        self._options = options

    @classmethod
    def _preset(
        cls,
        defaults: dict[str, Any],
        overrides: dict[str, Any],
        retry_if: Callable[[BaseException], bool],
    ) -> Retry:
        """A retry with a preset's defaults, the caller's overrides and the preset's filter."""
        import inspect  # noqa: PLC0415  # ~15 ms to import: loaded where first needed

        parameters = inspect.signature(cls).parameters
        unknown = sorted(set(overrides) - set(parameters))
        if unknown:
            raise TypeError(f"unknown retry option(s): {', '.join(unknown)}")
        options = (
            {option: parameter.default for option, parameter in parameters.items()}
            | defaults
            | overrides
        )
        retry = object.__new__(cls)
        retry._policy = _Policy.build(**options, retry_if=retry_if)
        retry._options = options
        return retry

    @property
    def name(self) -> str | None:
        """The retry's name, or ``None``."""
        return self._policy.name

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Wrap ``func`` (a function, coroutine function or method) so its calls retry."""
        return self._policy.decorate(func)

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``func(*args, **kwargs)`` with retries and return its result.

        Raises:
            Exception: the last exception, when the retries give up.
            RetryError: ``retry_on_result`` still held after the last attempt.
        """
        return cast("R", self._policy.call(func, args, kwargs, _context.current()))

    async def call_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``func(*args, **kwargs)`` with retries and return its result.

        Waits with ``asyncio.sleep`` unless ``sleep`` says otherwise.

        Raises:
            Exception: the last exception, when the retries give up.
            RetryError: ``retry_on_result`` still held after the last attempt.
        """
        return cast("R", await self._policy.call_async(func, args, kwargs, _context.current()))

    def _strategy_info(self) -> StrategyInfo:
        """Describe this retry: kind ``"retry"``, its name, and every constructor option."""
        return {"kind": "retry", "name": self._policy.name, "options": dict(self._options)}

    def __repr__(self) -> str:
        policy = self._policy
        return f"<Retry name={policy.name!r} max_retries={policy.max_retries}>"


def retry_with_backoff(
    *,
    max_retries: int | None = 3,
    base_delay: float = _DEFAULT_BASE_DELAY,
    max_delay: float = _DEFAULT_MAX_DELAY,
    exponential_base: float = _DEFAULT_EXPONENTIAL_BASE,
    jitter: bool | Jitter = True,
    exceptions: ExceptionTypes = Exception,
    retry_on_result: Callable[[Any], bool] | None = None,
    give_up_on: ExceptionTypes = (CircuitOpenError,),
    max_elapsed: float | None = None,
    on_retry: Callable[[RetryState], object] | None = None,
    max_retry_after: float | None = None,
    backoff: Callable[[int], float] | None = None,
    budget: RetryBudget | RetryThrottle | None = None,
    name: str | None = None,
    sleep: SleepFunc = time.sleep,
    clock: Clock = time.monotonic,
    retry_after: Callable[[Any], float | None] | None = None,
    min_delay: float = 0.0,
    before: Callable[[int], object] | None = None,
    on_success: Callable[[RetryState], object] | None = None,
    on_giveup: Callable[[RetryState], object] | None = None,
) -> Retry:
    """Retry a function or coroutine function when it fails, waiting longer each time.

    The wrapped function keeps its exact type. A call makes up to ``1 + max_retries``
    attempts; before retry ``n`` it waits ``min(max_delay, base_delay * exponential_base
    ** (n - 1))`` seconds, jittered (``jitter=True`` is ``"full"``: uniform in ``[0, that]``)
    unless ``backoff`` gives the delays instead. Async functions sleep with
    ``asyncio.sleep`` unless ``sleep`` says otherwise (a coroutine function is awaited).

    It stops retrying, and re-raises the last exception unchanged with a note telling the
    attempts made and the time taken, when attempts run out; when the next wait would pass
    ``max_elapsed`` or an enclosing ``deadline()``; when the ``budget`` is spent; or when
    the exception's ``retry_after`` hint exceeds ``max_retry_after``. When
    ``retry_on_result`` still holds at the end, it raises ``RetryError`` with the last
    result. An exception with a numeric ``retry_after`` attribute is never retried sooner
    than that. ``give_up_on`` (by default ``CircuitOpenError``: an open circuit is not
    hammered) and ``BaseException``s that are not ``Exception`` (cancellation, interrupts)
    are never retried.

    Args:
        max_retries: retries after the first attempt (int >= 0).
        base_delay: the delay before the first retry (seconds >= 0).
        max_delay: the cap on any delay (seconds >= 0).
        exponential_base: what each retry multiplies the delay by (>= 1).
        jitter: ``True`` (``"full"``), ``False`` (``"none"``), ``"equal"`` or
            ``"decorrelated"``; see ``resilience.backoff.Exponential``.
        exceptions: the exception classes that are retried.
        retry_on_result: a predicate on a result that asks for another attempt.
        give_up_on: exception classes never retried, even inside ``exceptions``.
        max_elapsed: stop before a wait would take the call past this many seconds.
        on_retry: called with a ``RetryState`` before each wait; errors it raises are
            logged and ignored.
        max_retry_after: the longest retry-after hint honoured (default ``max_delay``).
        backoff: any ``(n) -> seconds`` strategy, replacing the four delay options.
        budget: a ``RetryBudget`` shared by the calls to one dependency.
        name: names the retry in logs and in the ``resilience_retry_*`` metrics.
        sleep: how to wait (``time.sleep``; async code uses ``asyncio.sleep``).
        clock: monotonic seconds, for ``max_elapsed`` and ``RetryState.elapsed``.
        retry_after: ``(exception or result) -> seconds | None``: a server's hint read
            from anything; without it (or when it returns None) a numeric ``retry_after``
            attribute and an HTTP ``Retry-After`` header (of httpx, requests, urllib and
            aiohttp errors and responses) are read.
        min_delay: the shortest wait before any retry (seconds >= 0).
        before: called with the attempt number (from 1) before each attempt.
        on_success: called with a ``RetryState`` (``attempt`` = attempts made, ``result``)
            when a call succeeds.
        on_giveup: called with a ``RetryState`` when the retries give up, before the
            error propagates.

    ``max_retries=None`` retries until ``max_elapsed`` or an enclosing ``deadline()``
    stops it; a call with neither raises ``ValueError`` before its first attempt. Errors
    raised by ``on_retry``, ``before``, ``on_success``, ``on_giveup`` and ``retry_after``
    are logged and ignored. Each retry is logged at INFO on the ``resilience`` logger with
    ``extra`` fields ``retry_name``, ``attempt``, ``delay`` and ``exception_type``.

    Returns:
        A ``Retry``: a decorator for functions, coroutine functions and methods, and a
        strategy a ``Pipeline`` composes.

    Raises:
        TypeError, ValueError: an option is invalid (raised here, not at call time).

    Examples:
        >>> attempts = []
        >>> @retry_with_backoff(max_retries=2, base_delay=0.0)
        ... def flaky() -> str:
        ...     attempts.append(1)
        ...     if len(attempts) < 3:
        ...         raise ConnectionError("reset by peer")
        ...     return "ok"
        >>> flaky(), len(attempts)
        ('ok', 3)
    """
    return Retry(
        max_retries=max_retries,
        base_delay=base_delay,
        max_delay=max_delay,
        exponential_base=exponential_base,
        jitter=jitter,
        exceptions=exceptions,
        retry_on_result=retry_on_result,
        give_up_on=give_up_on,
        max_elapsed=max_elapsed,
        on_retry=on_retry,
        max_retry_after=max_retry_after,
        backoff=backoff,
        budget=budget,
        name=name,
        sleep=sleep,
        clock=clock,
        retry_after=retry_after,
        min_delay=min_delay,
        before=before,
        on_success=on_success,
        on_giveup=on_giveup,
    )


def retry_on_failure(func: Callable[[], R], /, **options: Unpack[_RetryOptions]) -> R:
    """Call ``func()`` with retries and return its result.

    Takes the options of ``retry_with_backoff``. For a coroutine function it returns an
    awaitable: ``await retry_on_failure(fetch)``.

    Raises:
        TypeError, ValueError: an option is invalid (before ``func`` is called).
        Exception: the last exception, when the retries give up.
        RetryError: ``retry_on_result`` still held after the last attempt.

    Examples:
        >>> retry_on_failure(lambda: 42, max_retries=2)
        42
    """
    return _Policy.build(**options).decorate(func)()


class RetryAttempt:
    """One attempt of a ``RetryContext`` loop; use it as ``with attempt:``.

    Leaving the block normally ends the loop (unless ``set_result`` gave a result that
    ``retry_on_result`` retries); an exception that will be retried is swallowed and the
    loop goes on after the wait; one that will not propagates from the block.

    Attributes:
        number: which attempt this is, counting from 1.
    """

    __slots__ = ("_has_result", "_result", "_run", "number")

    def __init__(self, run: _Loop, number: int) -> None:
        self._run = run
        self.number = number
        self._result: Any = None
        self._has_result = False

    def set_result(self, value: Any) -> None:
        """Give the block's result, for ``retry_on_result`` to judge."""
        self._result = value
        self._has_result = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> bool:
        return self._run.finish(self, exc)

    def __repr__(self) -> str:
        return f"<RetryAttempt number={self.number}>"


class _Loop:
    """One ``RetryContext`` loop: hands out attempts and drives an ``_Attempts`` with them."""

    __slots__ = ("_began", "_current", "_delay", "_done", "_policy", "_run")

    def __init__(self, policy: _Policy) -> None:
        self._policy = policy
        self._began: float | None = None  # when the attempt began, if someone times it
        self._run: _Attempts | None = None
        self._delay = 0.0
        self._current: RetryAttempt | None = None
        self._done = False

    def _begin(self) -> RetryAttempt | None:
        """Hand out the next attempt; None when the loop is over."""
        if self._done:
            return None
        if self._current is not None:
            raise RuntimeError(
                f"attempt {self._current.number} was not used as `with attempt:`; "
                "a RetryContext loop needs every attempt's outcome"
            )
        run = self._run
        if run is None:
            policy = self._policy
            if policy.budget is not None:
                policy.budget._deposit()  # noqa: SLF001  # the budget and the policy are one unit
            run = self._run = _Attempts(policy, policy.clock(), None)
            _first_attempt(policy, None)
        else:
            run.begin()
        self._current = RetryAttempt(self, run.attempt)
        self._began = time.perf_counter() if _events.timers else None
        return self._current

    def _pending_delay(self) -> float:
        if self._current is not None or self._done or self._run is None or INSTANT.depth:
            return 0.0
        return self._delay

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> RetryAttempt:
        delay = self._pending_delay()
        if delay > 0.0:
            pending = self._sleep(self._policy.sleep, delay)
            if pending is not None:
                import inspect  # noqa: PLC0415  # ~15 ms to import: loaded where first needed

                if inspect.iscoroutine(pending):
                    pending.close()
                raise TypeError(
                    f"sleep={self._policy.sleep!r} returned an awaitable; use `async for` "
                    "to retry with an async sleep"
                )
        attempt = self._begin()
        if attempt is None:
            raise StopIteration
        return attempt

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RetryAttempt:
        delay = self._pending_delay()
        if delay > 0.0:
            pending = self._sleep(self._policy.asleep, delay)
            if pending is not None:
                try:
                    await pending
                except BaseException as error:
                    cast("_Attempts", self._run).interrupted(error)
                    raise
        attempt = self._begin()
        if attempt is None:
            raise StopAsyncIteration
        return attempt

    def _sleep(self, sleep: SleepFunc, delay: float) -> Awaitable[None] | None:
        try:
            return sleep(delay)
        except BaseException as error:
            cast("_Attempts", self._run).interrupted(error)
            raise

    def finish(self, attempt: RetryAttempt, exc: BaseException | None) -> bool:
        """Record how ``attempt`` ended; return whether to swallow its exception."""
        if attempt is not self._current:
            raise RuntimeError(f"attempt {attempt.number} is not the current attempt")
        self._current = None
        run = cast("_Attempts", self._run)
        began = self._began
        self._done = True  # unless a retry is decided below
        if exc is None:
            result = attempt._result  # noqa: SLF001  # the attempt belongs to this loop
            failed = attempt._has_result and run.policy.result_fails(result)  # noqa: SLF001
            if began is not None:
                run.timed(began, handled=failed)
            if failed:
                delay = run.policy.next_delay(run, None, result)  # may raise RetryError
                self._delay = cast("float", delay)
                self._done = False
            else:
                run.succeeded(result)
            return False
        if not isinstance(exc, Exception):
            if began is not None:
                run.timed(began, handled=False)  # never handled
            run.interrupted(exc)
            return False
        if began is not None:
            run.timed(began, handled=run.policy.handles(exc))
        delay = run.failed(exc)
        if delay is None:
            return False
        self._delay = delay
        self._done = False
        return True


class RetryContext:
    """Retry a block of code: ``for attempt in RetryContext(...): with attempt: ...``.

    Takes the options of ``retry_with_backoff`` and behaves the same: a failing block is
    retried after the wait, the loop ends after the first block that succeeds, and when
    the retries give up the last exception propagates from the block. ``async for``
    works the same way in async code, sleeping with ``asyncio.sleep``. One context can
    run any number of loops, one after another or at once; each loop has its own count.

    To retry on a result, give it with ``attempt.set_result(value)``.

    Raises:
        TypeError, ValueError: an option is invalid (raised here).

    Examples:
        >>> calls = []
        >>> for attempt in RetryContext(max_retries=3, base_delay=0.0):
        ...     with attempt:
        ...         calls.append(attempt.number)
        ...         if len(calls) < 2:
        ...             raise TimeoutError("slow")
        >>> calls
        [1, 2]
    """

    __slots__ = ("_policy",)

    def __init__(self, **options: Unpack[_RetryOptions]) -> None:
        self._policy = _Policy.build(**options)

    def get_delay(self, n: int) -> float:
        """Return the delay before retry ``n`` (from 1), as the loop would wait it.

        Without jitter that is ``min(max_delay, base_delay * exponential_base ** (n - 1))``;
        with jitter, a fresh draw.
        """
        check_int("n", n, minimum=1)
        return float(self._policy.delay(n))

    def __iter__(self) -> Iterator[RetryAttempt]:
        return _Loop(self._policy)

    def __aiter__(self) -> AsyncIterator[RetryAttempt]:
        return _Loop(self._policy)

    def __repr__(self) -> str:
        return f"<RetryContext name={self._policy.name!r}>"


# ---------------------------------------------------------------------- presets

_NETWORK: Final[dict[str, Any]] = {
    "max_retries": 3,
    "base_delay": 1.0,
    "max_delay": 30.0,
    "jitter": "full",
    "exceptions": (ConnectionError, TimeoutError),
}
_API: Final[dict[str, Any]] = {
    "max_retries": 5,
    "base_delay": 1.0,
    "max_delay": 60.0,
    "jitter": "full",
    "exceptions": (ConnectionError, TimeoutError),
    "retry_on_result": retryable_response,
}


def _api_error(exc: BaseException) -> bool:
    """A transport failure of any known client, or an error carrying a retryable status."""
    return is_transient(exc) or retryable_status_error(exc)


@functools.cache
def _preset_retry(which: str) -> Retry:
    """The preset made on first use (its checks import ``inspect``; import time stays lean)."""
    if which == "network":
        return Retry._preset(_NETWORK, {}, is_transient)  # noqa: SLF001  # same module
    return Retry._preset(_API, {}, _api_error)  # noqa: SLF001  # same module


def _run_preset(
    which: str,
    func: Callable[..., Any] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if func is None:  # called with options only: make a Retry, the preset's defaults overridden
        if args:
            raise TypeError("pass the function first, or only keyword options")
        if which == "network":
            return Retry._preset(_NETWORK, kwargs, is_transient)  # noqa: SLF001  # same module
        return Retry._preset(_API, kwargs, _api_error)  # noqa: SLF001  # same module
    if not callable(func):
        raise TypeError(f"func must be callable, got {func!r}")
    retry = _preset_retry(which)
    if is_coroutine_function(func):  # an object whose __call__ is async def too
        return retry.call_async(func, *args, **kwargs)
    return retry.call(func, *args, **kwargs)


@overload
def retry_network_operation(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
@overload
def retry_network_operation(**options: Unpack[_RetryOptions]) -> Retry: ...
def retry_network_operation(func: Any = None, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)``, retrying network errors; or make that retry.

    Retries transport failures up to 3 times, waiting a fully jittered exponential backoff
    from 1 s, capped at 30 s. A transport failure is the builtin ``ConnectionError`` or
    ``TimeoutError``, or what httpx, requests, urllib and aiohttp raise for a refused,
    reset or dropped connection, a DNS failure or a timeout (recognised by class name, none
    of them imported). For a coroutine function it returns an awaitable.

    Called with keyword options only, it returns a ``Retry`` with this preset's defaults,
    the options overriding them: ``@retry_network_operation(name="db", max_retries=5)``.

    Examples:
        >>> retry_network_operation(lambda host: f"connected to {host}", "db.local")
        'connected to db.local'
        >>> retry_network_operation(name="db-connect", max_retries=5)
        <Retry name='db-connect' max_retries=5>
    """
    return _run_preset("network", func, args, kwargs)


@overload
def retry_api_call(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
@overload
def retry_api_call(**options: Unpack[_RetryOptions]) -> Retry: ...
def retry_api_call(func: Any = None, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)``, retrying network and retryable HTTP failures.

    Retries what ``retry_network_operation`` retries, errors carrying an HTTP status of
    429, 500, 502, 503 or 504, and *returned* responses with one of those statuses, up to
    5 times, waiting a fully jittered exponential backoff from 1 s, capped at 60 s. The
    status is read as ``.status_code``, ``.status``, urllib's ``.code`` or on
    ``.response``. A server's ``Retry-After`` (seconds or an HTTP date, from the error's
    or response's headers, or a ``retry_after`` attribute) is waited at least; a hint over
    60 s gives up. A retryable response still returned by the last attempt raises
    ``RetryError`` carrying it. For a coroutine function it returns an awaitable.

    Called with keyword options only, it returns a ``Retry`` with this preset's defaults,
    the options overriding them: ``@retry_api_call(name="github", max_retry_after=120)``.

    Examples:
        >>> retry_api_call(lambda: {"status": "ok"})
        {'status': 'ok'}
    """
    return _run_preset("api", func, args, kwargs)


for _public in (
    Retry,
    RetryContext,
    RetryState,
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
):
    _public.__module__ = "resilience"
del _public
