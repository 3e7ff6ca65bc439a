"""What an HTTP client's error or response says about retrying, read without importing it.

httpx, requests, urllib and aiohttp each raise their own classes for the same transport
failures (a refused connection, a dropped connection, a read that stalled) and carry an
HTTP status and headers under different attribute names. This module recognises them by
duck typing and by class names along the exception's MRO, so ``import resilience`` imports
no client and works with whichever the application uses:

- ``is_transient(exc)``: a transport failure worth retrying (connection refused, reset or
  dropped; a timeout; a DNS failure), from any of those clients or the builtin
  ``ConnectionError`` / ``TimeoutError`` family;
- ``status_of(obj)``: the HTTP status of a raised error or a returned response;
- ``retry_after_of(obj)``: the ``Retry-After`` header of either, in seconds (a number of
  seconds or an HTTP date);
- ``retryable_response(obj)``: a returned response whose status asks for a retry.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "RETRYABLE_STATUSES",
    "is_transient",
    "parse_retry_after",
    "retry_after_of",
    "retryable_response",
    "retryable_status_error",
    "status_of",
]

RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

# (top-level module, class name) of the transport errors each client raises. A class is
# matched anywhere along the MRO, so subclasses (httpx.ConnectError under NetworkError,
# aiohttp.ServerDisconnectedError under ClientConnectionError) count too.
_TRANSIENT: Final = frozenset(
    {
        # httpx: connect/read/write/pool timeouts, network errors, a server that hung up.
        ("httpx", "TimeoutException"),
        ("httpx", "NetworkError"),
        ("httpx", "RemoteProtocolError"),
        # requests (and the urllib3 errors it may let through).
        ("requests", "ConnectionError"),
        ("requests", "Timeout"),
        ("requests", "ChunkedEncodingError"),
        ("urllib3", "ProtocolError"),
        ("urllib3", "TimeoutError"),
        ("urllib3", "NewConnectionError"),
        # aiohttp: refused, reset, disconnected, timed out; a truncated body.
        ("aiohttp", "ClientConnectionError"),
        ("aiohttp", "ClientPayloadError"),
        # The standard library: http.client's truncated reads and bad status lines.
        ("http", "IncompleteRead"),
        ("http", "BadStatusLine"),
        ("socket", "gaierror"),
    }
)

# Subclasses of the above that no retry can fix: a bad certificate, a bad URL.
_NEVER: Final = frozenset(
    {
        ("aiohttp", "ClientSSLError"),
        ("aiohttp", "InvalidURL"),
        ("requests", "SSLError"),
        ("requests", "InvalidURL"),
        ("httpx", "UnsupportedProtocol"),
    }
)


def _classes(exc: BaseException) -> list[tuple[str, str]]:
    return [(cls.__module__.partition(".")[0], cls.__name__) for cls in type(exc).__mro__]


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a transport failure worth retrying, from any known client.

    The builtin ``ConnectionError`` and ``TimeoutError`` (and ``socket.gaierror``) count;
    urllib's ``URLError`` counts when its ``reason`` does (a refused connection, a timeout),
    but not its ``HTTPError`` subclass, which carries a status instead.
    """
    if isinstance(exc, ConnectionError | TimeoutError):
        return not any(pair in _NEVER for pair in _classes(exc))
    classes = _classes(exc)
    if any(pair in _NEVER for pair in classes):
        return False
    if any(pair in _TRANSIENT for pair in classes):
        return True
    if ("urllib", "URLError") in classes and ("urllib", "HTTPError") not in classes:
        reason = getattr(exc, "reason", None)
        return isinstance(reason, BaseException) and is_transient(reason)
    return False


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def status_of(obj: object) -> int | None:
    """The HTTP status an error or a response carries, or None.

    Read from ``.status_code`` (httpx, requests), ``.status`` (aiohttp, urllib responses),
    urllib's ``HTTPError.code``, or the same on ``.response`` (httpx's
    ``HTTPStatusError``, requests' ``HTTPError``).
    """
    for holder in (obj, getattr(obj, "response", None)):
        if holder is None:
            continue
        for attribute in ("status_code", "status"):
            status = _int(getattr(holder, attribute, None))
            if status is not None:
                return status
    # urllib's HTTPError has `code`; many unrelated objects do too (SystemExit), so it is
    # read only beside the headers an HTTP error carries.
    if getattr(obj, "headers", None) is not None:
        return _int(getattr(obj, "code", None))
    return None


def retryable_status_error(exc: BaseException) -> bool:
    """Whether ``exc`` carries an HTTP status of 429, 500, 502, 503 or 504."""
    return status_of(exc) in RETRYABLE_STATUSES


def retryable_response(result: object) -> bool:
    """Whether a returned response has a status of 429, 500, 502, 503 or 504.

    Anything without a status (most results) is not retried.
    """
    return status_of(result) in RETRYABLE_STATUSES


def parse_retry_after(value: object) -> float | None:
    """Parse a ``Retry-After`` value: delay-seconds or an HTTP date; None if neither."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        seconds = float(value)
        return seconds if seconds >= 0.0 else None  # NaN fails too
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0.0 else None
    # An HTTP date is rare; its parser is imported only when one turns up.
    import datetime as dt  # noqa: PLC0415
    import email.utils  # noqa: PLC0415

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _header(headers: object) -> object:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    try:
        value = get("Retry-After")
        if value is None:
            value = get("retry-after")  # plain dicts are case-sensitive
    except Exception:  # a strange mapping is no hint, not a failed call
        return None
    return value


def retry_after_of(obj: object) -> float | None:
    """The ``Retry-After`` header of an error or a response, in seconds, or None.

    Looks at ``.headers`` (urllib's ``HTTPError``, aiohttp's ``ClientResponseError``, any
    response) and then ``.response.headers`` (httpx's ``HTTPStatusError``, requests'
    ``HTTPError``).
    """
    for holder in (obj, getattr(obj, "response", None)):
        if holder is None:
            continue
        value = _header(getattr(holder, "headers", None))
        if value is not None:
            return parse_retry_after(value)
    return None
