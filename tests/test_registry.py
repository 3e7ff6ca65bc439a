"""Named breakers: the registry, its defaults and the ``circuit_breaker`` decorator (SPEC §2)."""

from __future__ import annotations

import asyncio
import threading

import pytest

import resilience
from _helpers import fail
from resilience import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitState,
    ConsecutiveFailures,
    FailureRate,
    circuit_breaker,
    get_circuit_breaker,
    reset_all_circuit_breakers,
)


def test_same_name_same_breaker() -> None:
    """``get_circuit_breaker`` returns one instance per name."""
    first = get_circuit_breaker("payments")
    assert get_circuit_breaker("payments") is first
    assert get_circuit_breaker("other") is not first
    assert first.name == "payments"
    assert "payments" in resilience.default_registry


def test_config_applies_on_creation() -> None:
    """Options passed on first use configure the new breaker."""
    breaker = get_circuit_breaker("cfg", failure_threshold=2)
    fail(breaker, 2)
    assert breaker.state is CircuitState.OPEN


def test_equal_or_absent_config_returns_the_existing_breaker() -> None:
    """Passing no options, or equal ones (also in another spelling), is fine."""
    breaker = get_circuit_breaker("eq", failure_threshold=3, recovery_timeout=10)
    assert get_circuit_breaker("eq") is breaker
    assert get_circuit_breaker("eq", failure_threshold=3) is breaker
    assert get_circuit_breaker("eq", recovery_timeout=10.0) is breaker
    assert get_circuit_breaker("eq", half_open_max_calls=None) is breaker
    assert get_circuit_breaker("eq", policy=None) is breaker
    assert get_circuit_breaker("eq", policy=ConsecutiveFailures(3)) is breaker
    assert get_circuit_breaker("eq", failure_on=(Exception,)) is breaker


def test_differing_config_is_an_error_never_a_replacement() -> None:
    """A name collision with different options raises ValueError and keeps the breaker."""
    breaker = get_circuit_breaker("diff", failure_threshold=3)
    with pytest.raises(
        ValueError, match=r"exists with failure_threshold=3, got failure_threshold=4"
    ):
        get_circuit_breaker("diff", failure_threshold=4)
    with pytest.raises(ValueError, match="policy"):
        get_circuit_breaker("diff", policy=FailureRate())
    assert get_circuit_breaker("diff") is breaker


def test_unknown_option_for_an_existing_breaker_is_a_type_error() -> None:
    """A misspelt option is a TypeError even when the breaker already exists."""
    get_circuit_breaker("typo")
    with pytest.raises(TypeError, match="unknown circuit breaker option 'failure_treshold'"):
        get_circuit_breaker("typo", failure_treshold=3)


def test_concurrent_first_use_creates_one_breaker() -> None:
    """Sixteen threads asking for a new name at once all get the same breaker."""
    registry = BreakerRegistry()
    barrier = threading.Barrier(16)
    found: list[CircuitBreaker] = []

    def worker() -> None:
        barrier.wait()
        found.append(registry.get("race"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 16
    assert all(b is found[0] for b in found)
    assert len(registry) == 1


def test_registry_defaults_and_overrides() -> None:
    """Registry defaults configure new breakers; ``get`` options override them."""
    registry = BreakerRegistry(defaults={"failure_threshold": 2, "recovery_timeout": 5.0})
    plain = registry.get("plain")
    special = registry.get("special", failure_threshold=4)
    fail(plain, 2)
    fail(special, 3)
    assert plain.state is CircuitState.OPEN
    assert special.state is CircuitState.CLOSED
    assert registry.get("special", recovery_timeout=5.0) is special


def test_registry_container_protocol() -> None:
    """A registry supports ``in``, ``len``, iteration over breakers, and ``remove``."""
    registry = BreakerRegistry()
    a, b = registry.get("a"), registry.get("b")
    assert "a" in registry
    assert "z" not in registry
    assert len(registry) == 2
    assert list(registry) == [a, b]
    assert registry.remove("a") is a
    assert "a" not in registry
    with pytest.raises(KeyError, match="no circuit breaker named 'a'"):
        registry.remove("a")
    assert "2" not in repr(registry)
    assert "1 breakers" in repr(registry)


def test_reset_all_and_snapshot() -> None:
    """``reset_all`` closes every breaker and ``snapshot`` lists their stats."""
    registry = BreakerRegistry(defaults={"failure_threshold": 1})
    for name in ("x", "y"):
        fail(registry.get(name))
    assert [s["state"] for s in registry.snapshot()] == ["open", "open"]
    registry.reset_all()
    snapshot = registry.snapshot()
    assert [(s["name"], s["state"]) for s in snapshot] == [("x", "closed"), ("y", "closed")]


def test_reset_all_circuit_breakers_uses_the_default_registry() -> None:
    """The module-level reset closes breakers of the default registry."""
    breaker = get_circuit_breaker("global", failure_threshold=1)
    fail(breaker)
    reset_all_circuit_breakers()
    assert breaker.state is CircuitState.CLOSED


def test_unnamed_breakers_are_in_no_registry() -> None:
    """A breaker made directly is not registered anywhere."""
    CircuitBreaker()
    assert len(resilience.default_registry) == 0


def test_circuit_breaker_decorator_makes_its_own_breaker() -> None:
    """Without a name each decorated function gets its own breaker."""

    @circuit_breaker(failure_threshold=1)
    def f() -> int:
        raise ConnectionError

    @circuit_breaker
    def g() -> int:
        return 1

    with pytest.raises(ConnectionError):
        f()
    assert f.breaker.state is CircuitState.OPEN  # type: ignore[attr-defined]
    assert g() == 1
    assert g.breaker is not f.breaker  # type: ignore[attr-defined]
    assert g.breaker.name is None  # type: ignore[attr-defined]


def test_circuit_breaker_decorator_with_name_shares_the_registry_breaker() -> None:
    """With ``name=``, decorated functions share the named breaker."""

    @circuit_breaker(name="shared", failure_threshold=2)
    def f() -> None:
        raise ConnectionError

    @circuit_breaker(name="shared")
    async def g() -> str:
        return "ok"

    assert f.breaker is g.breaker is get_circuit_breaker("shared")  # type: ignore[attr-defined]
    assert asyncio.run(g()) == "ok"
    with pytest.raises(ValueError, match="failure_threshold"):
        circuit_breaker(name="shared", failure_threshold=9)


def test_options_for_an_existing_breaker_are_type_checked() -> None:
    """3.0 or True are TypeErrors even when they equal the existing breaker's 3 or 1."""
    registry = BreakerRegistry(defaults={"failure_threshold": 3})
    registry.get("a")
    with pytest.raises(TypeError, match=r"failure_threshold must be an int, got 3\.0"):
        registry.get("a", failure_threshold=3.0)
    registry.get("b", failure_threshold=1)
    with pytest.raises(TypeError, match="failure_threshold must be an int, got True"):
        registry.get("b", failure_threshold=True)
    with pytest.raises(TypeError, match="unknown circuit breaker option 'fast'"):
        registry.get("a", fast=True)


def test_a_long_time_window_stays_small() -> None:
    """A day-long window keeps at most 120 buckets, and a reset reuses them."""
    import tracemalloc

    from resilience import FailureRate, TimeWindow

    tracemalloc.start()
    breaker = CircuitBreaker(policy=FailureRate(window=TimeWindow(86400.0)))
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert size < 50_000
    breaker.reset()
    breaker.open()
    assert breaker.get_stats()["state"] == "forced_open"
