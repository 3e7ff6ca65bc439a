"""The HTTP hint reader: client errors and responses recognised by duck typing and names."""

from __future__ import annotations

import email.utils
import socket
import subprocess
import sys
import time
import urllib.error
from types import SimpleNamespace

import pytest

from resilience._http_hints import (
    is_transient,
    parse_retry_after,
    retry_after_of,
    retryable_response,
    retryable_status_error,
    status_of,
)


def fake_error(module: str, *names: str) -> BaseException:
    """An exception whose class chain has ``names`` (outermost first) in ``module``."""
    base: type[BaseException] = Exception
    for name in reversed(names):
        base = type(name, (base,), {"__module__": module})
    return base()


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("httpx", ("ConnectError", "NetworkError")),
        ("httpx", ("ReadTimeout", "TimeoutException")),
        ("httpx", ("RemoteProtocolError",)),
        ("requests.exceptions", ("ConnectionError",)),
        ("requests.exceptions", ("ReadTimeout", "Timeout")),
        ("aiohttp.client_exceptions", ("ServerDisconnectedError", "ClientConnectionError")),
        ("aiohttp.client_exceptions", ("ClientPayloadError",)),
        ("http.client", ("IncompleteRead",)),
    ],
)
def test_client_transport_errors_are_transient(module: str, names: tuple[str, ...]) -> None:
    """Each client's transport errors are recognised by module and class name."""
    assert is_transient(fake_error(module, *names))


@pytest.mark.parametrize(
    "error",
    [
        fake_error("aiohttp.client_exceptions", "ClientSSLError", "ClientConnectionError"),
        fake_error("requests.exceptions", "SSLError", "ConnectionError"),
        fake_error("httpx", "UnsupportedProtocol", "NetworkError"),
        ValueError("bad"),
        FileNotFoundError("missing"),
        fake_error("mylib", "ConnectionError"),
    ],
)
def test_errors_no_retry_can_fix_are_not_transient(error: BaseException) -> None:
    """Certificate and URL errors, and unrelated classes of the same name, are not retried."""
    assert not is_transient(error)


def test_builtin_network_errors_are_transient() -> None:
    """The builtin ConnectionError and TimeoutError families and DNS failures count."""
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(socket.gaierror(-2, "Name or service not known"))


def test_urllib_url_errors_count_by_their_reason() -> None:
    """URLError is transient when its reason is; HTTPError is judged by status instead."""
    assert is_transient(urllib.error.URLError(ConnectionRefusedError(111, "refused")))
    assert not is_transient(urllib.error.URLError("unknown url type"))
    http_error = urllib.error.HTTPError("http://x", 503, "busy", {"Retry-After": "3"}, None)  # type: ignore[arg-type]
    assert not is_transient(http_error)
    assert retryable_status_error(http_error)
    assert retry_after_of(http_error) == 3.0


def test_status_is_read_from_every_known_place() -> None:
    """status_code, status, .response.* and urllib's code beside headers."""
    assert status_of(SimpleNamespace(status_code=503)) == 503
    assert status_of(SimpleNamespace(status=429)) == 429
    assert status_of(SimpleNamespace(response=SimpleNamespace(status_code=502))) == 502
    assert status_of(SimpleNamespace(code=504, headers={})) == 504
    assert status_of(SimpleNamespace(code=504)) is None  # a `code` alone is no HTTP status
    assert status_of(SimpleNamespace(status_code=True)) is None
    assert status_of(SimpleNamespace(response=None)) is None
    assert status_of(SystemExit(3)) is None


def test_returned_responses_are_judged_by_status() -> None:
    """Only a retryable status asks for another attempt."""
    assert retryable_response(SimpleNamespace(status_code=503))
    assert not retryable_response(SimpleNamespace(status_code=404))
    assert not retryable_response({"status": "ok"})


def test_retry_after_is_read_from_headers_and_response_headers() -> None:
    """Headers on the object come first, then on its response; odd mappings are no hint."""
    assert retry_after_of(SimpleNamespace(headers={"retry-after": "2"})) == 2.0
    nested = SimpleNamespace(headers=None, response=SimpleNamespace(headers={"Retry-After": 5}))
    assert retry_after_of(nested) == 5.0

    class Broken:
        def get(self, key: str) -> str:
            raise KeyError(key)

    assert retry_after_of(SimpleNamespace(headers=Broken())) is None
    assert retry_after_of(SimpleNamespace(headers=object())) is None
    assert retry_after_of(ValueError()) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (b"1.5", 1.5),
        (" 0 ", 0.0),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        (4, 4.0),
        (-2, None),
        (True, None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_retry_after_values(value: object, seconds: float | None) -> None:
    """Seconds as text, bytes or numbers; anything else is no hint."""
    assert parse_retry_after(value) == seconds


def test_an_http_date_is_seconds_from_now() -> None:
    """An HTTP date in the future is the seconds until then; one in the past is 0."""
    ahead = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28.0 <= parse_retry_after(ahead) <= 30.0  # type: ignore[operator]
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_importing_resilience_imports_no_http_client() -> None:
    """Recognising clients never imports them."""
    code = (
        "import sys, resilience\n"
        "resilience.retry_api_call(lambda: 1)\n"
        "print(sorted(m for m in ('httpx', 'requests', 'aiohttp', 'urllib3') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
