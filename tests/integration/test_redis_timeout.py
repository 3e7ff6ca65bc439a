"""RedisStorage(timeout=...): a stalled Redis adds at most the bound to a protected call.

The clients here are made the way users make them, ``redis.Redis(host=..., port=...)``
(which retries with backoff and has no socket timeout), so only the storage's own bound
can keep the calls short. The margins are generous for a loaded machine; the failure they
guard against is a call that waits for the whole stall (seconds).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import pytest

from resilience import CircuitBreaker, CircuitOpenError, CircuitState

redis = pytest.importorskip("redis")
import redis.asyncio as aredis  # noqa: E402  # after the skip above

from resilience.redis import RedisStorage  # noqa: E402  # after the skip above

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from redis_server import RedisServer

pytestmark = pytest.mark.slow

BOUND = 0.1
SLACK = 0.4  # scheduling noise on a shared machine; a stall would be seconds
STALL = 2.5


def ok() -> int:
    """Succeed."""
    return 1


def fail() -> int:
    """Fail with ValueError."""
    raise ValueError("boom")


def plain_client(server: RedisServer) -> Any:
    """A client made as the README's users make one: default retries, no socket timeout."""
    return redis.Redis(host="127.0.0.1", port=server.port)


def admin(server: RedisServer) -> Any:
    """A client for the test itself."""
    return server.client()


def hammer(call: Callable[[], object], seconds: float) -> tuple[float, list[BaseException]]:
    """Call ``call`` for ``seconds``; return the longest call and what escaped it."""
    longest, escaped = 0.0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            call()
        except (ValueError, CircuitOpenError):
            pass
        except BaseException as exc:  # anything else reached the caller
            escaped.append(exc)
        longest = max(longest, time.monotonic() - start)
        time.sleep(0.01)
    return longest, escaped


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``check`` for up to ``seconds``; return whether it came true."""
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def frozen(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The server, to be frozen by the test; always thawed at the end."""
    yield redis_server
    redis_server.resume()


def test_a_sigstopped_redis_adds_at_most_the_bound(frozen, caplog) -> None:
    """SIGSTOP: every call returns within the bound, nothing escapes, one warning, resync."""
    caplog.set_level(logging.INFO, logger="resilience")
    storage = RedisStorage(plain_client(frozen), timeout=BOUND)
    breaker = CircuitBreaker(name="svc", failure_threshold=1000, storage=storage)
    breaker.call(ok)
    frozen.pause()
    try:
        longest, escaped = hammer(lambda: breaker.call(ok), STALL)
    finally:
        frozen.resume()
    assert escaped == []
    assert longest < BOUND + SLACK
    warnings = [r for r in caplog.records if "cannot reach its storage" in r.getMessage()]
    assert len(warnings) == 1
    assert wait_for(lambda: breaker.get_stats()["storage"] == "ok")
    assert breaker.call(ok) == 1


def test_a_client_paused_redis_adds_at_most_the_bound(redis_server) -> None:
    """CLIENT PAUSE ALL: calls fall back within the bound, then resync after the pause."""
    storage = RedisStorage(plain_client(redis_server), timeout=BOUND)
    breaker = CircuitBreaker(name="svc", failure_threshold=3, storage=storage)
    breaker.call(ok)
    admin(redis_server).execute_command("CLIENT", "PAUSE", int(STALL * 1000), "ALL")
    longest, escaped = hammer(lambda: breaker.call(ok), STALL - 0.3)
    assert escaped == []
    assert longest < BOUND + SLACK
    assert breaker.get_stats()["storage"] == "degraded"
    assert wait_for(lambda: breaker.get_stats()["storage"] == "ok")


def test_the_fleet_state_wins_after_a_stall(frozen) -> None:
    """A circuit opened locally during a stall follows Redis's closed circuit afterwards."""
    storage = RedisStorage(plain_client(frozen), timeout=BOUND)
    breaker = CircuitBreaker(name="svc", failure_threshold=2, storage=storage)
    breaker.call(ok)
    frozen.pause()
    try:
        for _ in range(2):
            with pytest.raises(ValueError, match="boom"):
                breaker.call(fail)
        assert breaker.state is CircuitState.OPEN
    finally:
        frozen.resume()
    assert wait_for(lambda: breaker.get_stats()["storage"] == "ok")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(ok) == 1


def test_operator_orders_and_stats_are_bounded_too(frozen) -> None:
    """open(), get_stats() and read() on a frozen Redis give up within the bound."""
    storage = RedisStorage(plain_client(frozen), timeout=BOUND)
    breaker = CircuitBreaker(name="svc", storage=storage)
    breaker.call(ok)
    frozen.pause()
    try:
        start = time.monotonic()
        breaker.open()
        assert time.monotonic() - start < BOUND + SLACK
        assert breaker.state is CircuitState.FORCED_OPEN
        start = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            storage.read("svc")
        assert time.monotonic() - start < BOUND + SLACK
    finally:
        frozen.resume()


def test_the_twin_keeps_the_clients_credentials_and_database(redis_server_factory) -> None:
    """The bounded twin talks to the same server, with the same password and db."""
    secret = "s3cret"  # noqa: S105  # a throwaway test server's password
    server = redis_server_factory(password=secret)
    client = redis.Redis(host="127.0.0.1", port=server.port, password=secret, db=3)
    storage = RedisStorage(client)
    breaker = CircuitBreaker(name="svc", storage=storage)
    breaker.call(ok)
    assert breaker.get_stats()["storage"] == "ok"
    key, _ = storage.keys("svc")
    assert client.exists(key) == 1
    assert redis.Redis(host="127.0.0.1", port=server.port, password=secret).exists(key) == 0


@pytest.mark.asyncio
async def test_an_asyncio_client_is_bounded_under_sigstop(frozen) -> None:
    """With redis.asyncio, call_async never waits longer than the bound either."""
    client = aredis.Redis(host="127.0.0.1", port=frozen.port)
    breaker = CircuitBreaker(
        name="svc", failure_threshold=1000, storage=RedisStorage(client, timeout=BOUND)
    )

    async def work() -> int:
        return 1

    assert await breaker.call_async(work) == 1
    frozen.pause()
    longest, escaped = 0.0, []
    try:
        end = time.monotonic() + STALL
        while time.monotonic() < end:
            start = time.monotonic()
            try:
                await breaker.call_async(work)
            except BaseException as exc:  # anything reaching the caller is the failure
                escaped.append(exc)
            longest = max(longest, time.monotonic() - start)
            await asyncio.sleep(0.01)
        sync_start = time.monotonic()
        assert breaker.call(ok) == 1  # the blocking twin of an asyncio client is bounded
        longest = max(longest, time.monotonic() - sync_start)
    finally:
        frozen.resume()
    assert escaped == []
    assert longest < BOUND + SLACK
    end = time.monotonic() + 5.0
    while breaker.get_stats()["storage"] != "ok" and time.monotonic() < end:
        await breaker.call_async(work)
        await asyncio.sleep(0.05)
    assert breaker.get_stats()["storage"] == "ok"
    await client.aclose()


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        ("", ValueError),
        (b"app:", TypeError),
        (1, TypeError),
        (None, TypeError),
        ("a\x00b", ValueError),
        ("tab\t", ValueError),
        ("x" * 201, ValueError),
    ],
    ids=["empty", "bytes", "int", "none", "nul", "tab", "long"],
)
def test_a_bad_prefix_names_prefix(redis_server, prefix, error) -> None:
    """An empty, non-str, overlong or control-character prefix is refused, naming prefix."""
    with pytest.raises(error, match="prefix"):
        RedisStorage(redis_server.client(), prefix=prefix)


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ValueError),
        (-1.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (61.0, ValueError),
        (True, TypeError),
        ("0.1", TypeError),
    ],
    ids=["zero", "negative", "nan", "inf", "too-long", "bool", "str"],
)
def test_a_bad_timeout_names_timeout(redis_server, timeout, error) -> None:
    """A timeout must be a number in (0, 60]."""
    with pytest.raises(error, match="timeout"):
        RedisStorage(redis_server.client(), timeout=timeout)


def test_the_timeout_is_reported(redis_server) -> None:
    """The storage exposes the bound it enforces."""
    assert RedisStorage(redis_server.client(), timeout=0.25).timeout == 0.25
    assert RedisStorage(redis_server.client()).timeout == 0.1
