"""A fresh fleet view and lossless fleet totals (SPEC §6), with real processes and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import resilience
from resilience import CircuitBreaker, CircuitState, _stored
from resilience.testing import FakeClock

pytest.importorskip("redis")
from resilience.metrics import health  # after the skip above
from resilience.redis import RedisStorage  # after the skip above

SRC = str(Path(resilience.__file__).resolve().parents[1])


def _commands(client: object) -> int:
    """Return how many script calls the server has run so far."""
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    return sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_eval"))


def test_an_idle_process_sees_an_operator_open_within_refresh_after(redis_server) -> None:
    """No call goes through: ``state``, metrics and health still follow the fleet."""
    clock = FakeClock()
    storage = RedisStorage(redis_server.client())
    breaker = CircuitBreaker(name="idle", clock=clock, storage=storage)
    assert breaker.state is CircuitState.CLOSED
    storage.force("idle", CircuitState.FORCED_OPEN)  # what `python -m resilience open` does
    assert breaker.state is CircuitState.CLOSED  # the view is younger than refresh_after
    clock.advance(storage.refresh_after)
    assert breaker.state is CircuitState.FORCED_OPEN
    assert health([breaker])["status"] == "degraded"


def test_a_new_process_reports_a_tripped_fleet_circuit_on_its_first_read(redis_server) -> None:
    """A breaker that has made no call yet reads the shared state the first time it is asked."""
    tripper = CircuitBreaker(
        name="svc", failure_threshold=1, storage=RedisStorage(redis_server.client())
    )
    with pytest.raises(ZeroDivisionError):
        tripper.call(lambda: 1 / 0)
    newcomer = CircuitBreaker(name="svc", storage=RedisStorage(redis_server.client()))
    assert newcomer.state is CircuitState.OPEN
    assert newcomer._metrics_row()[0] == "open"


def test_reads_refresh_at_most_once_per_interval(redis_server) -> None:
    """Many reads of an idle breaker within ``refresh_after`` cost one round trip."""
    clock = FakeClock()
    client = redis_server.client()
    breaker = CircuitBreaker(name="quiet", clock=clock, storage=RedisStorage(client))
    breaker.state  # noqa: B018  # the first read loads the script and reads the circuit
    before = _commands(client)
    for _ in range(50):
        breaker.state  # noqa: B018  # the read is the point
        breaker._metrics_row()
    assert _commands(client) == before
    clock.advance(1.0)
    breaker.state  # noqa: B018  # the read is the point
    assert _commands(client) - before == 1


WORKER = textwrap.dedent(
    """
    import sys, redis
    from resilience import CircuitBreaker, CircuitOpenError
    from resilience.redis import RedisStorage

    url, calls = sys.argv[1], int(sys.argv[2])
    breaker = CircuitBreaker(
        name="fleet", recovery_timeout=3600.0,
        storage=RedisStorage(redis.Redis.from_url(url)),
    )
    sys.stdin.readline()  # start together
    rejected = 0
    for _ in range(calls):
        try:
            breaker.call(lambda: 1)
        except CircuitOpenError:
            rejected += 1
    print(rejected, breaker.get_stats()["total_rejected"])
    """
)


@pytest.mark.slow
def test_four_processes_lose_no_rejection_from_the_fleet_totals(redis_server) -> None:
    """Rejections decided from each process's cache all reach the shared totals by exit."""
    storage = RedisStorage(redis_server.client())
    storage.force("fleet", CircuitState.FORCED_OPEN)
    env = {**os.environ, "PYTHONPATH": SRC}
    workers = [
        subprocess.Popen(  # this interpreter and a fixed script
            [sys.executable, "-c", WORKER, redis_server.url, "1000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = [worker.communicate("go\n", timeout=60)[0].split() for worker in workers]
    assert outputs == [["1000", "1000"]] * 4
    stats = storage.read("fleet")
    assert stats is not None
    assert stats["total_rejected"] == 4000
    assert stats["total_calls"] == 4000


WATCHER = textwrap.dedent(
    """
    import sys, time, redis
    from resilience import CircuitBreaker
    from resilience.redis import RedisStorage

    breaker = CircuitBreaker(name="watched", storage=RedisStorage(redis.Redis.from_url(sys.argv[1])))
    print(breaker.state.value, flush=True)
    while breaker.state.value != "forced_open":
        time.sleep(0.01)
    print(time.time(), flush=True)
    """
)


@pytest.mark.slow
def test_an_operator_open_reaches_an_idle_process(redis_server) -> None:
    """Another process that only reads ``state`` sees ``open`` within about refresh_after."""
    watcher = subprocess.Popen(  # this interpreter and a fixed script
        [sys.executable, "-c", WATCHER, redis_server.url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "closed"
    forced_at = time.time()
    RedisStorage(redis_server.client()).force("watched", CircuitState.FORCED_OPEN)
    seen_at = float(watcher.stdout.readline())
    watcher.stdout.close()
    assert watcher.wait(timeout=30) == 0
    assert seen_at >= forced_at  # seen 1.01 s after with refresh_after=1 (docs/distributed.md)


def test_the_exit_flush_sends_cached_rejections(redis_server) -> None:
    """What the atexit hook runs: every live shared breaker's held-back rejections go out."""
    clock = FakeClock()
    storage = RedisStorage(redis_server.client())
    storage.force("held", CircuitState.FORCED_OPEN)
    breaker = CircuitBreaker(name="held", clock=clock, storage=storage)
    for _ in range(5):
        with pytest.raises(resilience.CircuitOpenError):
            breaker.call(lambda: 1)
    before = storage.read("held")
    assert before is not None
    _stored._flush_at_exit()
    after = storage.read("held")
    assert after is not None
    assert after["total_rejected"] == 5
    assert before["total_rejected"] < 5
