"""The Redis script's hot path: what a closed call costs Redis, and what it must not change.

The hot path (outcomes that move nothing, on a CLOSED or METRICS_ONLY circuit) is held to
the general path's behaviour by the reference model (test_redis_model.py); these tests pin
what the model cannot see: the commands it runs, the TTLs it keeps, a window slot it must
give back when it hands over to the general path, and the connections it reuses.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import resilience
from resilience import (
    CircuitBreaker,
    CircuitState,
    CountWindow,
    FailureRate,
    StoredState,
    TimeWindow,
)
from resilience.testing import FakeClock, InMemoryStorage

redis = pytest.importorskip("redis")
from resilience.redis import RedisStorage  # noqa: E402  # after the skip above

if TYPE_CHECKING:
    from redis_server import RedisServer

pytestmark = pytest.mark.slow


def ok() -> int:
    """Succeed."""
    return 1


def fail() -> int:
    """Fail with ValueError."""
    raise ValueError("boom")


def commands(client: redis.Redis) -> dict[str, int]:
    """Return the commands the server ran since its stats were reset, by name."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(row["calls"])
        for name, row in stats.items()
        if name not in {"cmdstat_config|resetstat", "cmdstat_info"}
    }


@pytest.mark.parametrize(
    ("policy", "inside"),
    [
        (None, {"get": 20, "set": 20}),
        (
            FailureRate(window=CountWindow(10), minimum_calls=5),
            {"get": 20, "set": 20, "bitfield": 20},  # a full window: one BITFIELD per call
        ),
        (FailureRate(window=TimeWindow(3600.0), minimum_calls=5), {"get": 20, "set": 20}),
    ],
    ids=["consecutive", "count-window", "time-window"],
)
def test_a_closed_call_costs_one_script_call_and_few_commands(
    redis_server: RedisServer, policy: FailureRate | None, inside: dict[str, int]
) -> None:
    """Closed successes run EVALSHA, GET and SET (and the window's one write), no TTL work."""
    client = redis_server.client()
    options = {} if policy is None else {"policy": policy}
    breaker = CircuitBreaker(name="hot", storage=RedisStorage(client), **options)
    for _ in range(12):  # makes the circuit, sets its TTLs, fills a count window
        breaker.call(ok)
    # A run that crosses a time window's one-second bucket or the one-second TTL refresh
    # rightly takes the general path once; on a loaded machine 20 calls can, so a run
    # that did is measured again (at most three runs).
    for _ in range(3):
        client.config_resetstat()
        for _ in range(20):
            breaker.call(ok)
        ran = commands(client)
        evalsha = ran.pop("evalsha")
        ran.pop("time", None)  # a time window reads the server's clock
        if ran == inside:
            break
    assert evalsha == 20
    assert ran == inside


def test_a_trip_met_on_the_hot_path_matches_the_specification(redis_server: RedisServer) -> None:
    """A full window's slot, written by the hot path before a trip, is given back first.

    The last failure overwrites a success: the general path must see that success leave
    the window (2 failures in 4: a trip), not the failure written already (1 in 4).
    """
    policy = FailureRate(threshold=0.5, window=CountWindow(4), minimum_calls=4)
    clock = FakeClock(1_000.0)
    redis_storage = RedisStorage(redis_server.client())
    redis_storage._test_clock = clock
    seen = []
    for storage in (InMemoryStorage(clock=clock), redis_storage):
        breaker = CircuitBreaker(name="w", policy=policy, clock=clock, storage=storage)
        for step in (ok, ok, ok, ok, fail, ok, ok, fail):
            with contextlib.suppress(ValueError):
                breaker.call(step)
        stats = storage.read("w")
        assert stats is not None
        seen.append({k: stats[k] for k in ("state", "failure_count", "success_count")})
    assert (
        seen[0]
        == seen[1]
        == {
            "state": CircuitState.OPEN,
            "failure_count": 2,
            "success_count": 2,
        }
    )


def test_ttls_are_kept_for_a_second_then_set_again(redis_server: RedisServer) -> None:
    """A client keeps the keys' TTLs (KEEPTTL) while it set them under a second ago."""
    client = redis_server.client()
    storage = RedisStorage(client, ttl=120.0)
    policy = FailureRate(window=CountWindow(10))
    breaker = CircuitBreaker(name="ttl", policy=policy, storage=storage)
    breaker.call(ok)
    breaker.call(ok)
    keys = storage.keys("ttl")
    for key in keys:
        client.pexpire(key, 50_000)
    breaker.call(ok)  # within the second: the TTLs stay as they are
    assert all(0 < client.pttl(key) <= 50_000 for key in keys)
    storage._ttl_set.clear()  # as if a second had passed since this client set them
    breaker.call(ok)
    assert all(50_000 < client.pttl(key) <= 120_000 for key in keys)


def test_a_window_key_made_on_the_hot_path_gets_its_ttl(redis_server: RedisServer) -> None:
    """The count window's key, made anew by a kept-TTL call, still expires."""
    client = redis_server.client()
    storage = RedisStorage(client, ttl=120.0)
    breaker = CircuitBreaker(
        name="made", policy=FailureRate(window=CountWindow(10)), storage=storage
    )
    breaker.call(ok)
    breaker.reset()  # clears the window: its key is deleted
    assert client.exists(storage.keys("made")[1]) == 0
    breaker.call(ok)
    assert 0 < client.pttl(storage.keys("made")[1]) <= 120_000


def test_metrics_only_circuits_read_the_short_reply(redis_server: RedisServer) -> None:
    """The hot path's integer reply tells METRICS_ONLY from CLOSED."""
    storage = RedisStorage(redis_server.client())
    breaker = CircuitBreaker(name="shadow", storage=storage)
    breaker.metrics_only()
    for _ in range(3):
        breaker.call(ok)
    assert breaker.state is CircuitState.METRICS_ONLY
    config = breaker._circuit.config
    gen = storage.record("shadow", config, generation=-1, outcomes="").generation
    stored = storage.record("shadow", config, generation=gen, outcomes="s")
    assert (stored.state, stored.generation, stored.admitted) == (
        CircuitState.METRICS_ONLY,
        gen,
        True,
    )


def test_a_connection_interrupted_mid_call_is_closed_not_reused(
    redis_server: RedisServer,
) -> None:
    """An exception while a reply is pending closes that connection; the next call is sound."""
    storage = RedisStorage(redis_server.client())
    breaker = CircuitBreaker(name="cut", storage=storage)
    breaker.call(ok)
    connections = storage._connections
    assert connections is not None
    (connection,) = connections._idle

    class Interrupted(BaseException):
        """Stands in for an exception raised by a signal handler."""

    def read_response(*args: object, **kwargs: object) -> object:
        raise Interrupted

    connection.read_response = read_response  # the reply is left unread on the socket
    with pytest.raises(Interrupted):
        storage.record("cut", breaker._circuit.config, generation=-1, outcomes="s")
    assert connections._idle == []
    del connection.read_response
    for _ in range(3):
        assert breaker.call(ok) == 1
    stats = storage.read("cut")
    assert stats is not None
    assert stats["total_successes"] == 5


def test_a_forked_child_uses_connections_of_its_own(redis_server: RedisServer) -> None:
    """After fork, the child opens its own connection instead of sharing the parent's."""
    code = (
        "import os, sys, redis\n"
        "from resilience import CircuitBreaker\n"
        "from resilience.redis import RedisStorage\n"
        f"storage = RedisStorage(redis.Redis(port={redis_server.port}))\n"
        "breaker = CircuitBreaker(name='fork', storage=storage)\n"
        "breaker.call(int)\n"
        "parent = storage._connections._idle[0]\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    breaker.call(int)\n"
        "    os._exit(0 if storage._connections._idle[0] is not parent else 3)\n"
        "status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
        "breaker.call(int)\n"
        "sys.exit(status or (0 if storage._connections._idle == [parent] else 4))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(resilience.__file__).parents[1])}
    result = subprocess.run(  # our own interpreter and a fixed script
        [sys.executable, "-c", code], env=env, timeout=60, check=False
    )
    assert result.returncode == 0
    stats = RedisStorage(redis_server.client()).read("fork")
    assert stats is not None
    assert stats["total_successes"] == 3


def test_the_client_caches_stay_bounded(redis_server: RedisServer) -> None:
    """Encoded arguments, decoded replies and TTL times are kept for a bounded set."""
    from resilience import redis as shared

    limit = shared._KEYS_CACHED
    for n in range(limit + 10):
        shared._resp("EVALSHA", n)
    assert 0 < len(shared._ENCODED) <= limit
    long = "s" * (shared._MAX_ENCODED + 1)  # a long batch is encoded afresh, never kept
    assert shared._resp(long) == b"*1\r\n$%d\r\n%s\r\n" % (len(long), long.encode())
    assert long not in shared._ENCODED
    replies: dict[int, StoredState] = {}
    for n in range(limit + 10):
        assert shared._short(replies, 2 * n + 1).generation == n
    assert 0 < len(replies) <= limit
    storage = RedisStorage(redis_server.client())
    for n in range(limit + 10):
        storage._ttls_set(f"b{n}", 0.0)
    assert 0 < len(storage._ttl_set) <= limit


def test_a_filling_count_window_writes_each_slot_with_setrange(redis_server: RedisServer) -> None:
    """Until a count window is full, a closed call appends its slot with one SETRANGE."""
    client = redis_server.client()
    policy = FailureRate(window=CountWindow(10), minimum_calls=5)
    breaker = CircuitBreaker(name="filling", storage=RedisStorage(client), policy=policy)
    breaker.call(ok)
    breaker.call(ok)
    client.config_resetstat()
    for _ in range(5):
        breaker.call(ok)
    ran = commands(client)
    assert ran.get("setrange") == 5
    assert "bitfield" not in ran
