"""Several real processes sharing circuits through one redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import resilience
from resilience import CircuitBreaker, CircuitState

pytest.importorskip("redis")
from resilience.redis import RedisStorage  # after the skip above

SRC = str(Path(resilience.__file__).resolve().parents[1])

WORKER = textwrap.dedent(
    """
    import sys, redis
    from resilience import CircuitBreaker, CircuitOpenError
    from resilience.redis import RedisStorage

    url, name, calls, threshold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    breaker = CircuitBreaker(
        name=name, failure_threshold=threshold, storage=RedisStorage(redis.Redis.from_url(url))
    )

    def fail():
        raise ValueError("boom")

    sys.stdin.readline()  # start together
    outcomes = {"failed": 0, "rejected": 0}
    for _ in range(calls):
        try:
            breaker.call(fail)
        except ValueError:
            outcomes["failed"] += 1
        except CircuitOpenError:
            outcomes["rejected"] += 1
    print(outcomes["failed"], outcomes["rejected"], breaker.state.value)
    """
)


def spawn(url: str, name: str, calls: int, threshold: int) -> subprocess.Popen[str]:
    """Start a worker making ``calls`` failing calls once it reads a line."""
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(  # this interpreter and a fixed script
        [sys.executable, "-c", WORKER, url, name, str(calls), str(threshold)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_a_second_process_sees_a_trip(redis_server) -> None:
    """A trip made in this process makes another process's first call fail fast."""
    breaker = CircuitBreaker(
        name="svc", failure_threshold=1, storage=RedisStorage(redis_server.client())
    )
    with pytest.raises(ValueError, match="boom"):
        breaker.call(lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert breaker.state is CircuitState.OPEN
    worker = spawn(redis_server.url, "svc", 3, 1)
    out, _ = worker.communicate("go\n", timeout=30)
    assert out.split() == ["0", "3", "open"]


@pytest.mark.slow
def test_four_processes_lose_no_counts(redis_server) -> None:
    """4 processes x 1,000 failing calls at once: the shared counts are exact."""
    workers = [spawn(redis_server.url, "svc", 1000, 10**9) for _ in range(4)]
    outputs = [worker.communicate("go\n", timeout=60)[0] for worker in workers]
    assert [out.split() for out in outputs] == [["1000", "0", "closed"]] * 4
    stats = RedisStorage(redis_server.client()).read("svc")
    assert stats["total_failures"] == 4000
    assert stats["failure_count"] == 4000
    assert stats["total_calls"] == 4000


@pytest.mark.slow
def test_processes_tripping_together_open_the_circuit_once(redis_server) -> None:
    """Many processes failing at once trip the shared circuit exactly once."""
    workers = [spawn(redis_server.url, "svc", 200, 50) for _ in range(4)]
    outputs = [worker.communicate("go\n", timeout=60)[0].split() for worker in workers]
    assert all(out[2] == "open" for out in outputs)
    failed = sum(int(out[0]) for out in outputs)
    stats = RedisStorage(redis_server.client()).read("svc")
    assert stats["state"] is CircuitState.OPEN
    assert stats["total_failures"] == failed
    # Rejections from a process's cache reach Redis with its next round trip, if any.
    assert failed <= stats["total_calls"] <= 800
    assert 50 <= failed < 50 + 4 * 10  # at most a few calls per process in flight on stale state
