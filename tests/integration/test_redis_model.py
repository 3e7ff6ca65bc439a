"""One model, three circuits: the reference model of tests/test_state_machine.py on Redis.

The machine and its expectations are those the in-process breaker and InMemoryStorage
meet; here the circuit is a real redis-server's, through RedisStorage. The server's clock
cannot be faked, so the storage uses its test seam (``RedisStorage._test_clock``, the
script's ARGV[9]): every script call runs at the machine's FakeClock time, and recovery
timeouts, time windows and ``open_for`` follow the same steps as the other two circuits.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from resilience import BreakerStorage, CircuitState
from test_state_machine import BreakerMachine

pytest.importorskip("redis")
from resilience.redis import RedisStorage  # after the skip above

if TYPE_CHECKING:
    import redis
    from redis_server import RedisServer


class RedisMachine(BreakerMachine):
    """The reference model's steps against a circuit kept by a real redis-server."""

    client: redis.Redis
    shared: RedisStorage

    def storage(self) -> BreakerStorage | None:
        """The test's storage, on this example's clock and an empty server."""
        if not hasattr(self, "_fresh"):
            self._fresh = True
            self.client.flushdb()
            self.shared._test_clock = self.clock  # the seam: the script runs at this time
        return self.shared


@pytest.mark.slow
def test_redis_storage_matches_reference_model(redis_server: RedisServer) -> None:
    """A breaker with storage=RedisStorage(...) meets the model, step for step."""
    client = redis_server.client()
    storage = RedisStorage(redis_server.client(), timeout=5.0)

    def machine() -> RedisMachine:
        made = RedisMachine()
        made.client, made.shared = client, storage
        return made

    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=100,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.slow
def test_without_the_test_clock_the_server_keeps_its_own_time(redis_server: RedisServer) -> None:
    """The seam is off by default: the script reads the server's TIME (epoch seconds)."""
    storage = RedisStorage(redis_server.client())
    assert storage._test_clock is None
    stored = storage.force("svc", CircuitState.FORCED_OPEN)
    assert stored is not None
    assert stored.opened_at is not None
    assert abs(stored.opened_at - time.time()) < 60
