"""Argument checks shared by every public constructor.

Each check raises at the boundary with a message naming the parameter and the value, so a
misconfiguration fails where it is written, never at call time.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Final, cast

_INF = math.inf


def check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:_}, got {value!r}")
    return value


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
    finite: bool = True,
) -> float:
    """Return ``value`` as a float after checking its type and range.

    Args:
        name: the parameter's name, for the message.
        value: what the caller passed.
        minimum: the smallest value allowed (inclusive).
        positive: whether the value must be strictly greater than zero.
        maximum: the largest value allowed (inclusive).
        finite: whether infinities are refused (NaN always is).
    """
    kind = type(value)
    # Exact float and int first: this check runs on every timeout() and deadline() entry.
    if (kind is not float and kind is not int) and (
        isinstance(value, bool) or not isinstance(value, (int, float))
    ):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]  # checked just above
    except OverflowError:  # an int beyond any float: as good as infinite
        bits = cast("int", value).bit_length()  # str() of it may itself be refused
        raise ValueError(f"{name} must be finite, got an int of {bits} bits") from None
    if number != number:  # noqa: PLR0124  # NaN is the only float unequal to itself
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    if finite and number in (_INF, -_INF):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and number <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value!r}")
    return number


def check_callable(name: str, value: object, *, optional: bool = False) -> Any:
    """Return ``value`` if it is callable (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r}")
    return value


_CO_COROUTINE: Final = 0x80  # inspect.CO_COROUTINE, without importing inspect (~15 ms)


def is_coroutine_function(value: object) -> bool:
    """Tell whether calling ``value`` returns a coroutine.

    True for an ``async def`` function or method, a ``functools.partial`` of one, and an
    object whose ``__call__`` is one.
    """
    while isinstance(value, functools.partial):
        value = value.func
    func = getattr(value, "__func__", value)  # a bound method's function
    code = getattr(func, "__code__", None)
    if code is None:  # not a Python function: look at the object's __call__
        call = getattr(type(value), "__call__", None)  # noqa: B004  # the method, not a test
        code = getattr(call, "__code__", None)
    if getattr(func, "_is_coroutine_marker", None) is not None:  # markcoroutinefunction
        return True
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def check_sync_callable(name: str, value: object, *, optional: bool = False) -> Any:
    """Return ``value`` if it is a plain callable (or ``None`` when ``optional``).

    A coroutine function is refused: its calls would return a coroutine nobody awaits,
    and its answer (a time, a verdict) would be that coroutine, never its result.
    """
    check_callable(name, value, optional=optional)
    if value is not None and is_coroutine_function(value):
        raise TypeError(f"{name} must be a plain function, not a coroutine function, got {value!r}")
    return value


MAX_NAME_LENGTH = 200


def check_name(value: object, *, param: str = "name", optional: bool = False) -> str | None:
    """Return a valid breaker or retry name.

    A name is a non-empty ``str`` of at most 200 characters with no control characters.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a str, got {value!r}")
    if not value:
        raise ValueError(f"{param} must not be empty, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{param} must be at most {MAX_NAME_LENGTH} characters, got {len(value)}: {value!r}"
        )
    if not value.isprintable():
        raise ValueError(f"{param} must not contain control characters, got {value!r}")
    return value


def exception_types(name: str, value: object) -> tuple[type[BaseException], ...]:
    """Normalise an exception class or tuple of classes to a tuple, checking each."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{name} must be an exception class or a tuple of them, got {value!r}")
    return items
