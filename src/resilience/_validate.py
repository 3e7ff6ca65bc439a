"""Argument checks shared by every public constructor.

Each check raises at the boundary with a message naming the parameter and the value, so a
misconfiguration fails where it is written, never at call time.
"""

from __future__ import annotations

import math
from typing import Any

_INF = math.inf


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
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
    number = float(value)  # type: ignore[arg-type]  # checked just above
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
