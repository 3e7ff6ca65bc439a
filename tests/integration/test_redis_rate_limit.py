"""A RateLimiter shared through a real redis-server: one limit for every process."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import resilience
from resilience import RateLimitedError, RateLimiter
from resilience.testing import FakeClock

redis = pytest.importorskip("redis")
import redis.asyncio as aredis  # noqa: E402  # after the skip above
from redis.crc import key_slot  # noqa: E402  # after the skip above

from resilience.redis import RedisStorage  # noqa: E402  # after the skip above

if TYPE_CHECKING:
    from redis_server import RedisServer

SRC = str(Path(resilience.__file__).resolve().parents[1])


def shared(server: RedisServer, rate: float = 1.0, **options: Any) -> RateLimiter:
    """A limiter named "api" on its own client of ``server``: ``rate`` per minute.

    A minute per unit keeps a loaded machine's pauses from refilling a test's burst.
    """
    options.setdefault("per", 60.0)
    return RateLimiter(rate, name="api", storage=RedisStorage(server.client()), **options)


def test_two_limiters_share_one_limit(redis_server) -> None:
    """Two processes' limiters (two clients) draw from one burst."""
    a, b = shared(redis_server, burst=3), shared(redis_server, burst=3)
    results = [a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()]
    assert results == [True, True, True, False]
    assert a.get_stats()["total_allowed"] == 2
    assert b.get_stats()["total_limited"] == 1
    assert a.get_stats()["storage"] == "ok"


def test_a_refusal_says_when_to_retry(redis_server) -> None:
    """RateLimitedError carries the server's retry_after, about one interval."""
    limiter = shared(redis_server, burst=1)
    limiter.acquire()
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire(key=None)
    assert 50.0 < caught.value.retry_after <= 60.0
    assert caught.value.name == "api"


def test_acquire_waits_for_its_reserved_turn(redis_server) -> None:
    """With max_wait the server reserves the turn and the caller sleeps until it."""
    limiter = shared(redis_server, rate=10.0, per=1.0, burst=1, max_wait=1.0)
    start = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    assert time.monotonic() - start >= 0.29


def test_keys_are_hash_tagged_and_expire_when_idle(redis_server) -> None:
    """Each partition has its own key, its own slot, and a TTL that ends with its tat."""
    storage = RedisStorage(redis_server.client())
    limiter = RateLimiter(10.0, burst=5, name="api", storage=storage)
    assert limiter.try_acquire(key="tenant:1")
    assert limiter.try_acquire(5, key="tenant:2")
    assert not limiter.try_acquire(key="tenant:2")
    client = redis_server.client()
    one, two = storage.limit_key("api", "tenant:1"), storage.limit_key("api", "tenant:2")
    assert one == "resilience:rl:{api:tenant%3A1}"
    assert key_slot(one.encode()) == key_slot(b"api:tenant%3A1")
    assert client.pttl(one) <= 100
    assert 100 < client.pttl(two) <= 500
    time.sleep(0.15)
    assert client.exists(one) == 0  # idle: no memory in Redis either
    assert storage.names() == []  # and never mistaken for a breaker


def test_a_down_redis_falls_back_to_a_local_limit_and_logs_once(redis_server, caplog) -> None:
    """With Redis gone each process limits locally, warns once, and rejoins when it returns."""
    caplog.set_level(logging.INFO, logger="resilience")
    clock = FakeClock()
    limiter = RateLimiter(
        1.0, burst=2, name="api", clock=clock, storage=RedisStorage(redis_server.client())
    )
    assert limiter.try_acquire()
    redis_server.stop()
    assert limiter.try_acquire()  # the local limit starts afresh: 2 units
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    with pytest.raises(RateLimitedError):
        limiter.acquire()
    assert limiter.get_stats()["storage"] == "degraded"
    clock.advance(1.0)
    assert limiter.try_acquire()  # probes Redis (still down), decided locally
    warnings = [r for r in caplog.records if "cannot reach its storage" in r.getMessage()]
    assert len(warnings) == 1
    redis_server.start()
    clock.advance(1.0)
    assert limiter.try_acquire()
    assert limiter.get_stats()["storage"] == "ok"
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_a_frozen_redis_adds_at_most_the_storage_timeout(redis_server) -> None:
    """SIGSTOP: each acquire gives up on Redis within the bound and decides locally."""
    storage = RedisStorage(redis.Redis(host="127.0.0.1", port=redis_server.port), timeout=0.1)
    limiter = RateLimiter(1000.0, name="api", storage=storage)
    assert limiter.try_acquire()
    redis_server.pause()
    try:
        longest = 0.0
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            start = time.monotonic()
            assert limiter.try_acquire()
            longest = max(longest, time.monotonic() - start)
            time.sleep(0.01)
    finally:
        redis_server.resume()
    assert longest < 0.5
    assert limiter.get_stats()["storage"] == "degraded"


@pytest.mark.asyncio
async def test_acquire_async_shares_the_limit_with_sync_callers(redis_server) -> None:
    """An asyncio client and a sync one draw from the same server-side limit."""
    client = aredis.Redis(host="127.0.0.1", port=redis_server.port)
    async_limiter = RateLimiter(1.0, 60.0, burst=2, name="api", storage=RedisStorage(client))
    sync_limiter = shared(redis_server, burst=2)
    await async_limiter.acquire_async()
    assert sync_limiter.try_acquire()
    with pytest.raises(RateLimitedError):
        await async_limiter.acquire_async(key=None)
    waiting = RateLimiter(20.0, burst=1, name="wait", max_wait=1.0, storage=RedisStorage(client))
    start = time.monotonic()
    await asyncio.gather(*(waiting.acquire_async() for _ in range(3)))
    assert time.monotonic() - start >= 0.09
    await client.aclose()


@pytest.mark.asyncio
async def test_acquire_async_falls_back_when_redis_is_down(redis_server) -> None:
    """An asyncio client's failure is a local decision too, never the caller's error."""
    client = aredis.Redis(host="127.0.0.1", port=redis_server.port)
    limiter = RateLimiter(1.0, 60.0, burst=1, name="api", storage=RedisStorage(client))
    await limiter.acquire_async()
    redis_server.stop()
    await limiter.acquire_async()  # local limit: a fresh burst
    with pytest.raises(RateLimitedError):
        await limiter.acquire_async()
    assert limiter.get_stats()["storage"] == "degraded"
    await client.aclose()


def test_a_limiter_with_storage_needs_a_name(redis_server) -> None:
    """The name is the shared limit's identity: storage without it is a ValueError."""
    with pytest.raises(ValueError, match="name"):
        RateLimiter(1.0, storage=RedisStorage(redis_server.client()))


WORKER = textwrap.dedent(
    """
    import sys, time, redis
    from resilience import RateLimiter
    from resilience.redis import RedisStorage

    url, rate, burst, seconds = sys.argv[1:5]
    client = redis.Redis.from_url(url)
    limiter = RateLimiter(
        float(rate), burst=int(burst), name="fleet",
        storage=RedisStorage(client, timeout=1.0),
    )
    client.ping()
    print("ready", flush=True)
    start, seconds = float(sys.stdin.readline()), float(seconds)
    while time.time() < start:
        time.sleep(0.0005)
    admitted = 0
    while time.time() < start + seconds:
        admitted += limiter.try_acquire()
    print(admitted, limiter.get_stats()["storage"], flush=True)
    """
)


@pytest.mark.slow
def test_four_processes_admit_at_most_burst_plus_l_over_t(redis_server) -> None:
    """Four OS processes hammering one limit for 3 s: total within [95%, 100%] of the cap."""
    rate, burst, seconds = 200.0, 20, 3.0
    env = {**os.environ, "PYTHONPATH": SRC}
    command = [sys.executable, "-c", WORKER, redis_server.url, str(rate), str(burst)]
    command.append(str(seconds))
    workers = [
        subprocess.Popen(  # this interpreter and a fixed script
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(4)
    ]
    for worker in workers:  # every worker has imported, connected and made its limiter
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    start = time.time() + 0.5
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(f"{start!r}\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=60)[0].split() for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4
    assert [status for _, status in outputs] == ["ok"] * 4
    admitted = sum(int(count) for count, _ in outputs)
    print(f"admitted {admitted} of a cap of {burst + seconds * rate:g}")  # noqa: T201
    cap = burst + seconds * rate
    # The server decides at its own TIME, the workers stop by theirs (one host clock);
    # a request already in flight at the end may be decided a round trip later.
    assert admitted <= cap + 0.01 * rate
    assert admitted >= 0.95 * cap
    assert all(int(count) > 0 for count, _ in outputs)


@pytest.mark.asyncio
async def test_acquire_async_with_a_blocking_client(redis_server) -> None:
    """With a sync client, acquire_async still shares the limit (blocking for one trip)."""
    limiter = shared(redis_server, burst=1)
    other = shared(redis_server, burst=1)
    await limiter.acquire_async()
    assert not other.try_acquire()


def test_a_client_without_a_connection_pool_is_refused() -> None:
    """The storage must derive a bounded twin; an object it cannot read is a TypeError."""

    class NotAClient:
        def register_script(self, script: str) -> None:
            """Look like a client to the first check only."""

    with pytest.raises(TypeError, match="connection pool"):
        RedisStorage(NotAClient())
