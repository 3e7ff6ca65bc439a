"""RedisStorage over a ``redis.asyncio`` client: async breakers that never block the loop."""

from __future__ import annotations

import asyncio
import logging

import pytest
import pytest_asyncio

from resilience import CircuitBreaker, CircuitOpenError, CircuitState
from resilience.testing import FakeClock

redis = pytest.importorskip("redis")
import redis.asyncio as aredis  # noqa: E402  # after the skip above

from resilience.redis import RedisStorage  # noqa: E402  # after the skip above


async def ok() -> int:
    """Succeed."""
    await asyncio.sleep(0)
    return 1


async def fail() -> int:
    """Fail with ValueError."""
    await asyncio.sleep(0)
    raise ValueError("boom")


@pytest_asyncio.fixture
async def aclient(redis_server):
    """A redis.asyncio client with a short socket timeout."""
    client = aredis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    yield client
    await client.aclose()


@pytest.mark.asyncio
async def test_an_async_breaker_shares_its_circuit_with_a_sync_one(redis_server, aclient) -> None:
    """A trip recorded through redis.asyncio rejects calls of a sync breaker elsewhere."""
    clock = FakeClock()
    async_breaker = CircuitBreaker(
        name="svc", failure_threshold=2, clock=clock, storage=RedisStorage(aclient)
    )
    sync_breaker = CircuitBreaker(
        name="svc", failure_threshold=2, clock=clock, storage=RedisStorage(redis_server.client())
    )
    assert await async_breaker.call_async(ok) == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            await async_breaker.call_async(fail)
    assert async_breaker.state is CircuitState.OPEN
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        sync_breaker.call(lambda: 1)


@pytest.mark.asyncio
async def test_async_with_and_decorator_record_through_redis(aclient) -> None:
    """``async with`` and a decorated coroutine function record their outcomes in Redis."""
    storage = RedisStorage(aclient)
    breaker = CircuitBreaker(name="svc", failure_threshold=5, storage=storage)

    @breaker
    async def decorated() -> int:
        return await fail()

    with pytest.raises(ValueError, match="boom"):
        async with breaker:
            await fail()
    with pytest.raises(ValueError, match="boom"):
        await decorated()
    stats = breaker.get_stats()  # a sync path: served by the storage's blocking twin client
    assert stats["failure_count"] == 2
    assert stats["storage"] == "ok"


@pytest.mark.asyncio
async def test_operator_methods_work_with_an_asyncio_client(aclient, redis_server) -> None:
    """open() on a breaker over redis.asyncio forces the shared circuit."""
    breaker = CircuitBreaker(name="svc", storage=RedisStorage(aclient))
    breaker.open()
    reader = RedisStorage(redis_server.client())
    assert reader.read("svc")["state"] is CircuitState.FORCED_OPEN


@pytest.mark.asyncio
async def test_the_event_loop_runs_while_an_async_call_waits_for_redis(
    aclient, redis_server
) -> None:
    """Other tasks progress while a breaker's round trip waits on a frozen Redis."""
    breaker = CircuitBreaker(name="svc", storage=RedisStorage(aclient))
    await breaker.call_async(ok)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    redis_server.pause()
    try:
        assert await breaker.call_async(ok) == 1  # waits the 0.2 s socket timeout
    finally:
        redis_server.resume()
        task.cancel()
    assert ticks >= 5


@pytest.mark.asyncio
async def test_a_paused_redis_never_reaches_an_async_caller(aclient, redis_server, caplog) -> None:
    """With Redis frozen, async calls go on under local state and it says so once."""
    caplog.set_level(logging.WARNING, logger="resilience")
    clock = FakeClock()
    breaker = CircuitBreaker(
        name="svc", failure_threshold=2, clock=clock, storage=RedisStorage(aclient)
    )
    await breaker.call_async(ok)
    redis_server.pause()
    try:
        for _ in range(2):
            with pytest.raises(ValueError, match="boom"):
                await breaker.call_async(fail)
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(ok)
    finally:
        redis_server.resume()
    assert len([r for r in caplog.records if "cannot reach" in r.getMessage()]) == 1
    clock.advance(1.0)
    assert await breaker.call_async(ok) == 1
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.asyncio
async def test_a_cancelled_trial_gives_its_slot_back(aclient, redis_server) -> None:
    """A trial call cancelled mid-flight frees the half-open slot for the next one."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        name="svc", failure_threshold=1, recovery_timeout=0.05, clock=clock,
        storage=RedisStorage(aclient),
    )  # fmt: skip
    with pytest.raises(ValueError, match="boom"):
        await breaker.call_async(fail)
    await asyncio.sleep(0.06)
    clock.advance(0.06)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(breaker.call_async(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await breaker.call_async(ok) == 1
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_trial_cancelled_during_its_round_trip_frees_the_fleet_slot_at_once(
    redis_server,
) -> None:
    """Cancelled while Redis held its admission, a trial's slot is freed when the reply comes."""
    here_client = aredis.Redis.from_url(redis_server.url, socket_timeout=2.0)
    there_client = aredis.Redis.from_url(redis_server.url, socket_timeout=2.0)
    options = {"name": "trial", "failure_threshold": 1, "recovery_timeout": 0.2}
    # A storage bound longer than the pause, so the admission waits for Redis's reply.
    here = CircuitBreaker(**options, storage=RedisStorage(here_client, timeout=2.0))
    there = CircuitBreaker(**options, storage=RedisStorage(there_client, timeout=2.0))
    try:
        with pytest.raises(ValueError, match="boom"):
            await here.call_async(fail)
        await asyncio.sleep(0.3)  # recovery time passed on the server's clock
        admin = redis_server.client()
        admin.execute_command("CLIENT", "PAUSE", "300", "WRITE")
        trial = asyncio.ensure_future(here.call_async(ok))
        await asyncio.sleep(0.05)  # the admission script waits behind the pause
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        await asyncio.sleep(0.5)  # the pause ends; the reply arrives and is settled
        assert await there.call_async(ok) == 1  # not rejected: the slot was freed
        assert there.state is CircuitState.CLOSED
        assert here.get_stats()["total_ignored"] == 1  # the cancelled trial, counted here
    finally:
        await here_client.aclose()
        await there_client.aclose()
