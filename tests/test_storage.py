"""The storage hook of CircuitBreaker, without a Redis server."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

import resilience
from resilience import (
    BreakerRegistry,
    BreakerStorage,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    FailureRate,
    StoredState,
)
from resilience._stored import storage_config
from resilience.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Mapping


class DownStorage(BreakerStorage):
    """A storage whose backend is always unreachable."""

    def __init__(self) -> None:
        self.attempts = 0

    def _down(self) -> StoredState:
        self.attempts += 1
        raise ConnectionError("connection refused")

    def admit(self, name: str, config: Mapping[str, Any], *, rejected: int = 0) -> StoredState:
        """Fail to admit."""
        return self._down()

    def record(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        generation: int,
        outcomes: str,
        stale: str = "",
        rejected: int = 0,
    ) -> StoredState:
        """Fail to record."""
        return self._down()

    def force(self, name: str, state: CircuitState, *, create: bool = True) -> StoredState:
        """Fail to force a state."""
        return self._down()

    def read(self, name: str) -> dict[str, Any] | None:
        """Fail to read."""
        self._down()
        return None


def fail() -> None:
    """Fail with ValueError."""
    raise ValueError("boom")


def test_import_resilience_does_not_load_redis() -> None:
    """The core imports without loading redis-py."""
    code = "import sys, resilience; print('redis' in sys.modules)"
    result = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_resilience_redis_without_redis_py_names_the_extra() -> None:
    """Importing resilience.redis without redis-py says what to install."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if redis-py were not installed
        try:
            import resilience.redis
        except ImportError as exc:
            print(exc)
        """
    )
    result = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'resilient-calls[redis]'" in result.stdout


def test_an_in_memory_breaker_keeps_its_lock_free_path() -> None:
    """Without storage a breaker is a plain CircuitBreaker on the fast path."""
    from resilience._local import LazyCircuit, LocalCircuit  # internals

    breaker = CircuitBreaker()
    assert type(breaker) is CircuitBreaker
    assert type(breaker._circuit) is LazyCircuit  # nothing made until first used
    assert breaker.call(lambda: 1) == 1
    assert type(breaker._circuit) is LocalCircuit
    assert breaker._circuit.fast


def test_storage_must_be_a_breaker_storage() -> None:
    """Anything but a BreakerStorage as storage is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="storage must be a BreakerStorage"):
        CircuitBreaker(name="svc", storage="redis://127.0.0.1")  # type: ignore[arg-type]


def test_a_breaker_with_storage_needs_a_name() -> None:
    """A shared circuit is found by name, so storage without one is a ValueError."""
    with pytest.raises(ValueError, match="name is required"):
        CircuitBreaker(storage=DownStorage())


def test_a_breaker_with_storage_is_a_plain_circuit_breaker_and_so_is_a_subclass() -> None:
    """Storage picks the circuit behind the facade: no subclass swap, subclasses share too."""
    from resilience.testing import InMemoryStorage  # this test only

    class Mine(CircuitBreaker):
        __slots__ = ()

    storage = InMemoryStorage()
    plain = CircuitBreaker(name="svc", failure_threshold=1, storage=storage)
    mine = Mine(name="svc", failure_threshold=1, storage=storage)
    assert type(plain) is CircuitBreaker
    assert type(mine) is Mine
    assert plain.storage is storage
    assert mine.storage is storage
    assert CircuitBreaker().storage is None
    with pytest.raises(ZeroDivisionError):
        mine.call(lambda: 1 / 0)
    assert plain.state is CircuitState.OPEN  # one circuit for both


def test_an_unreachable_storage_never_reaches_the_caller(caplog) -> None:
    """With the storage down, calls run under local state and it is logged once."""
    caplog.set_level(logging.WARNING, logger="resilience")
    breaker = CircuitBreaker(
        name="svc", failure_threshold=2, clock=FakeClock(), storage=DownStorage()
    )
    assert breaker.call(lambda: 1) == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            breaker.call(fail)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    stats = breaker.get_stats()
    assert stats["storage"] == "degraded"
    assert (stats["total_successes"], stats["total_failures"], stats["total_rejected"]) == (1, 2, 1)
    assert len([r for r in caplog.records if "cannot reach" in r.getMessage()]) == 1


def test_an_unreachable_storage_is_asked_again_once_a_second() -> None:
    """While the storage is down, one call per second probes it; the others stay local."""
    clock = FakeClock()
    storage = DownStorage()
    breaker = CircuitBreaker(name="svc", clock=clock, storage=storage)
    for _ in range(10):
        breaker.call(lambda: 1)
    assert storage.attempts == 1
    clock.advance(1.0)
    for _ in range(10):
        breaker.call(lambda: 1)
    assert storage.attempts == 2


def test_operator_methods_work_locally_when_the_storage_is_down() -> None:
    """open() and reset() change the local state when the storage cannot be reached."""
    breaker = CircuitBreaker(name="svc", storage=DownStorage())
    breaker.open()
    assert breaker.state is CircuitState.FORCED_OPEN
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED


def test_a_registry_with_storage_makes_shared_breakers() -> None:
    """Every breaker of a registry with storage uses that storage."""
    storage = DownStorage()
    registry = BreakerRegistry(defaults={"failure_threshold": 3}, storage=storage)
    breaker = registry.get("svc")
    assert breaker.get_stats()["storage"] == "degraded"
    assert registry.get("svc") is breaker


def test_get_with_storage_overrides_the_registry_storage() -> None:
    """``get(name, storage=...)`` makes a shared breaker, and insists on it afterwards."""
    registry = BreakerRegistry()
    storage = DownStorage()
    breaker = registry.get("svc", storage=storage)
    assert breaker.get_stats()["storage"] == "degraded"
    assert registry.get("svc", storage=storage) is breaker
    with pytest.raises(ValueError, match="another storage"):
        registry.get("svc", storage=DownStorage())


def test_a_registry_checks_its_storage() -> None:
    """A registry refuses a storage that is not a BreakerStorage."""
    with pytest.raises(TypeError, match="storage must be a BreakerStorage"):
        BreakerRegistry(storage=object())  # type: ignore[arg-type]


def test_a_backoff_recovery_timeout_is_sampled_for_16_trips() -> None:
    """A backoff cannot run in the storage, so its first 16 values are sent."""
    breaker = CircuitBreaker(name="svc", recovery_timeout=lambda n: 2.0**n)
    config = storage_config(breaker._settings, breaker._circuit.recovery)
    assert config["recovery"] == [2.0**n for n in range(1, 17)]


def test_a_failure_rate_config_caps_minimum_calls_at_the_window_size() -> None:
    """The config sent to storages holds the effective minimum of calls."""
    policy = FailureRate(threshold=0.25, window=CountWindow(5), minimum_calls=10)
    breaker = CircuitBreaker(name="svc", policy=policy)
    config = storage_config(breaker._settings, breaker._circuit.recovery)
    assert config == {
        "policy": "rate",
        "threshold": 0.25,
        "window": "count",
        "window_size": 5,
        "minimum_calls": 5,
        "slow_call_rate": None,
        "success_threshold": 1,
        "half_open_max_calls": 1,
        "recovery": [30.0],
    }


def test_breaker_storage_is_exported() -> None:
    """BreakerStorage and StoredState are public names of resilience."""
    assert {"BreakerStorage", "StoredState"} <= set(resilience.__all__)
    assert BreakerStorage.__module__ == StoredState.__module__ == "resilience"
