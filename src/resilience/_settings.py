"""A breaker's validated options, and how an outcome is classified.

``Settings`` holds what ``CircuitBreaker(...)`` was given, validated once and shared
between breakers with equal options; ``outcome_of`` says whether an exception is a
failure, a success or ignored (a cancellation made by an expired ``timeout()`` is judged
as the ``TimeoutError`` it stands for).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MethodType
from typing import TYPE_CHECKING, Any, Final, cast

from resilience._deadline import remaining
from resilience._policies import ConsecutiveFailures, TripPolicy
from resilience._validate import (
    check_callable,
    check_int,
    check_number,
    check_sync_callable,
    exception_types,
)

if TYPE_CHECKING:
    from resilience._types import Backoff, Clock

__all__ = ["FAILURE", "IGNORED", "SUCCESS", "ExceptionFilter", "Settings"]

logger = logging.getLogger("resilience")

ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
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
class Settings:
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
    def build(  # noqa: PLR0917  # positional from CircuitBreaker: cheaper than keywords
        cls,
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
    ) -> Settings:
        """Validate the options and return shared settings for them.

        Options seen before are not validated again: they are looked up by value and
        type (``1``, ``1.0`` and ``True`` are three keys), so creating many breakers
        with one configuration costs a dictionary lookup here.
        """
        key = (
            failure_threshold,
            type(failure_threshold),
            recovery_timeout,
            type(recovery_timeout),
            success_threshold,
            type(success_threshold),
            half_open_max_calls,
            type(half_open_max_calls),
            policy,
            failure_on,
            ignore,
            failure_on_result,
            fallback,
            clock,
        )
        cacheable = True
        try:
            return _BUILT[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable option: validate it every time
            cacheable = False
        settings = cls._validated(
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
        # A bound method would keep its whole object alive in the cache: not cached.
        if cacheable and not _holds_bound_method(key):
            if len(_BUILT) >= _INTERN_LIMIT:
                _BUILT.clear()
            _BUILT[key] = settings
        return settings

    @classmethod
    def _validated(  # the options of CircuitBreaker, keyword-only
        cls,
        *,
        failure_threshold: int,
        recovery_timeout: float | Backoff,
        success_threshold: int,
        half_open_max_calls: int | None,
        policy: TripPolicy | None,
        failure_on: ExceptionFilter,
        ignore: ExceptionFilter,
        failure_on_result: Callable[[Any], bool] | None,
        fallback: Callable[..., Any] | None,
        clock: Clock,
    ) -> Settings:
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
        """Classify an exception: ``IGNORED``, ``FAILURE`` or ``SUCCESS``."""
        if not isinstance(exc, Exception):
            if _expired_cancellation(exc):
                # Our timeout() (or a Timeout/Deadline strategy) cancelled the call: judge
                # it as the TimeoutError the same timeout raises in sync code.
                exc = TimeoutError()
            else:
                return IGNORED  # any other cancellation, interpreter exits: never failures
        ignore = self.ignore
        if isinstance(exc, ignore) if type(ignore) is tuple else _matches(ignore, exc):
            return IGNORED
        failure_on = self.failure_on
        if isinstance(exc, failure_on) if type(failure_on) is tuple else _matches(failure_on, exc):
            return FAILURE
        return SUCCESS

    def result_failed(self, result: object, name: str | None) -> bool:
        """Whether ``failure_on_result`` marks ``result`` (a predicate that raises: no)."""
        predicate = self.failure_on_result
        if predicate is None:
            return False
        try:
            return bool(predicate(result))
        except Exception:
            logger.exception("failure_on_result of breaker %r raised", name)
            return False


SUCCESS, FAILURE, IGNORED = 0, 1, 2

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


_INTERNED: dict[Settings, Settings] = {}
# Settings by the options they were built from (see ``Settings.build``).
_BUILT: dict[tuple[Any, ...], Settings] = {}
_INTERN_LIMIT = 1024


def _holds_bound_method(options: tuple[Any, ...]) -> bool:
    return any(type(option) is MethodType for option in options)


def _intern(settings: Settings) -> Settings:
    """Share equal settings between breakers, which saves memory per breaker.

    Settings holding a bound method are kept to themselves: shared, they would keep the
    method's object alive after its last breaker.
    """
    callables = (settings.recovery_timeout, settings.failure_on_result, settings.fallback)
    if _holds_bound_method((*callables, settings.failure_on, settings.ignore, settings.clock)):
        return settings
    try:
        return _INTERNED.setdefault(settings, settings)
    except TypeError:  # an unhashable predicate or clock: keep this one to itself
        return settings
    finally:
        if len(_INTERNED) > _INTERN_LIMIT:
            _INTERNED.clear()
