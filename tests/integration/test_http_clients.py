"""Retries against real httpx, requests, urllib and aiohttp clients and a real local server.

The server answers 429/503 with ``Retry-After`` in seconds and as an HTTP date, drops
connections and stalls; each client's own errors and responses must be recognised by the
presets without ``resilience`` importing any client. Waits go to a recording fake sleep,
so a ``Retry-After: 2`` costs no real time; only the stalls wait for the client's timeout.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import httpx
import pytest
import requests
from http_server import DROP, OK, STALL, ScriptedServer, http_server, status

from _helpers import free_port
from resilience import Retry, RetryError, retry_api_call, retry_network_operation, timeout
from resilience.testing import FakeClock, instant_retries

__all__ = ["http_server"]  # the fixture, re-exported for pytest

CLIENT_TIMEOUT = 0.3  # the clients give up on a stalled server after this long


# Every client meets the same bad day: busy (seconds), rate limited (an HTTP date),
# a dropped connection, a stall, then success.
def bad_day() -> list[Any]:
    """The steps, made fresh: the HTTP date is 30 s from now."""
    return [status(503, 1), status(429, 30, as_date=True), DROP, STALL, OK]


class Sleeps:
    """A sleep that records each delay and moves a fake clock instead of waiting."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        """Record and advance."""
        self.delays.append(seconds)
        self.clock.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """The same for async code."""
        self(seconds)


def api(sleeps: Sleeps, **options: Any) -> Retry:
    """The API preset, with fake time and the given overrides."""
    return retry_api_call(**({"sleep": sleeps, "clock": sleeps.clock} | options))


def assert_bad_day_waits(sleeps: Sleeps, retries: int = 4) -> None:
    """Four retries; the first two waited at least what the server asked."""
    assert len(sleeps.delays) == retries
    assert sleeps.delays[0] >= 1.0  # Retry-After: 1
    assert sleeps.delays[1] >= 20.0  # Retry-After: an HTTP date 30 s ahead (whole seconds)


def fetch_httpx(url: str) -> str:
    """GET with httpx, raising on an error status."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        response = client.get(url)
        response.raise_for_status()
        return response.text


def fetch_requests(url: str) -> str:
    """GET with requests, raising on an error status."""
    response = requests.get(url, timeout=CLIENT_TIMEOUT)
    response.raise_for_status()
    return response.text


def fetch_urllib(url: str) -> str:
    """GET with urllib, which raises HTTPError on an error status by itself."""
    with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as response:  # noqa: S310  # loopback
        return str(response.read().decode())


async def fetch_aiohttp(url: str) -> str:
    """GET with aiohttp, raising on an error status."""
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        response.raise_for_status()
        return await response.text()


async def fetch_httpx_async(url: str) -> str:
    """GET with httpx's async client, raising on an error status."""
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.text


@pytest.mark.parametrize("fetch", [fetch_httpx, fetch_requests, fetch_urllib])
def test_a_sync_client_survives_a_bad_day(http_server: ScriptedServer, fetch: Any) -> None:
    """503 + Retry-After seconds, 429 + Retry-After date, a drop and a stall are all retried."""
    url = http_server.script(fetch.__name__, bad_day())
    sleeps = Sleeps()
    assert api(sleeps).call(fetch, url) == "ok"
    assert [kind for _, kind in http_server.served] == ["status", "status", "drop", "stall", "ok"]
    assert_bad_day_waits(sleeps)


@pytest.mark.parametrize("fetch", [fetch_aiohttp, fetch_httpx_async])
def test_an_async_client_survives_a_bad_day(http_server: ScriptedServer, fetch: Any) -> None:
    """The same with aiohttp and httpx's async client."""
    url = http_server.script(fetch.__name__, bad_day())
    sleeps = Sleeps()
    retry = api(sleeps, sleep=sleeps.asleep)
    assert asyncio.run(retry.call_async(fetch, url)) == "ok"
    assert [kind for _, kind in http_server.served] == ["status", "status", "drop", "stall", "ok"]
    # aiohttp itself resends a GET whose connection was dropped: one retry fewer is ours.
    assert_bad_day_waits(sleeps, 3 if fetch is fetch_aiohttp else 4)


@pytest.mark.parametrize("fetch", [fetch_httpx, fetch_requests, fetch_urllib])
def test_the_network_preset_retries_a_refused_connection(fetch: Any) -> None:
    """Each client's error for a refused connection is a network error to the preset."""
    url = f"http://127.0.0.1:{free_port()}/"
    calls = []

    def counted(url: str) -> str:
        calls.append(url)
        return str(fetch(url))

    sleeps = Sleeps()
    with pytest.raises(Exception) as caught:  # each client raises its own
        retry_network_operation(sleep=sleeps, clock=sleeps.clock).call(counted, url)
    assert len(calls) == 4, caught.value
    assert "gave up after 4 attempts" in caught.value.__notes__[-1]


def test_aiohttp_refused_connections_are_retried() -> None:
    """The ClientConnectorError of aiohttp is a network error too."""
    url = f"http://127.0.0.1:{free_port()}/"
    sleeps = Sleeps()
    retry = retry_network_operation(max_retries=2, sleep=sleeps.asleep, clock=sleeps.clock)
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(retry.call_async(fetch_aiohttp, url))
    assert len(sleeps.delays) == 2


def test_retry_network_operation_calls_with_a_real_client(http_server: ScriptedServer) -> None:
    """The preset called directly passes arguments through and retries a dropped connection."""
    url = http_server.script("direct", [DROP, OK])
    with instant_retries():
        assert retry_network_operation(fetch_requests, url) == "ok"


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_a_returned_error_response_is_retried_after_its_retry_after(
    http_server: ScriptedServer, client: str
) -> None:
    """A 503 response returned (not raised) is retried after its Retry-After."""
    url = http_server.script(client, [status(503, 2), status(429, 1), OK])
    get = httpx.get if client == "httpx" else requests.get
    sleeps = Sleeps()
    response = api(sleeps).call(get, url, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200
    assert sleeps.delays[0] >= 2.0
    assert sleeps.delays[1] >= 1.0


def test_a_returned_aiohttp_response_is_retried(
    http_server: ScriptedServer,
) -> None:
    """A returned aiohttp response with 503 + Retry-After is retried after the hint."""
    url = http_server.script("aio", [status(503, 2), OK])
    sleeps = Sleeps()

    async def main() -> int:
        async with aiohttp.ClientSession() as session:

            async def get() -> aiohttp.ClientResponse:
                async with session.get(url) as response:
                    await response.read()
                    return response

            response = await api(sleeps, sleep=sleeps.asleep).call_async(get)
            return response.status

    assert asyncio.run(main()) == 200
    assert sleeps.delays[0] >= 2.0


def test_a_response_still_failing_raises_retry_error(http_server: ScriptedServer) -> None:
    """When every attempt returns 503, RetryError carries the last response."""
    url = http_server.script("down", [status(503)] * 3)
    sleeps = Sleeps()
    with pytest.raises(RetryError) as caught:
        api(sleeps, max_retries=2).call(httpx.get, url)
    assert caught.value.last_result.status_code == 503
    assert caught.value.attempts == 3


def test_a_retry_after_longer_than_allowed_gives_up_at_once(http_server: ScriptedServer) -> None:
    """Retry-After: 3600 is over the preset's 60 s: no sleep, the error propagates."""
    url = http_server.script("maintenance", [status(503, 3600)])
    sleeps = Sleeps()
    with pytest.raises(httpx.HTTPStatusError) as caught:
        api(sleeps).call(fetch_httpx, url)
    assert sleeps.delays == []
    assert "retry-after hint of 3600.000s" in caught.value.__notes__[-1]


def test_urllib_http_errors_carry_status_and_headers(http_server: ScriptedServer) -> None:
    """The HTTPError of urllib (``.code``, ``.headers``) is read: a 404 is not retried."""
    url = http_server.script("missing", [status(404), OK])
    sleeps = Sleeps()
    with pytest.raises(urllib.error.HTTPError):
        api(sleeps).call(fetch_urllib, url)
    assert sleeps.delays == []


def test_a_retry_after_callable_reads_anything(http_server: ScriptedServer) -> None:
    """retry_after= reads a hint the library cannot know about."""
    url = http_server.script("custom", [status(503), OK])
    sleeps = Sleeps()
    retry = api(sleeps, retry_after=lambda outcome: 4.5)
    assert retry.call(fetch_httpx, url) == "ok"
    assert sleeps.delays[0] >= 4.5


@pytest.mark.parametrize("client", ["httpx", "requests", "urllib"])
def test_timeout_around_a_real_client_raises_the_builtin_timeout_error(
    http_server: ScriptedServer, client: str
) -> None:
    """The client turns our interrupt into its own error; the caller still gets TimeoutError."""
    url = http_server.script(f"slow-{client}", [STALL])
    get = {
        "httpx": lambda: httpx.get(url, timeout=5.0),
        "requests": lambda: requests.get(url, timeout=5.0),
        "urllib": lambda: urllib.request.urlopen(url, timeout=5.0),  # noqa: S310  # loopback
    }[client]
    with pytest.raises(TimeoutError) as caught, timeout(0.3):
        get()
    assert type(caught.value) is TimeoutError
    if client == "httpx":
        assert type(caught.value.__cause__) is httpx.ReadTimeout
