"""The breaker as a pipeline strategy: its self-description and its events (SPEC §9, §14)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from _helpers import fail
from resilience import CircuitBreaker, CircuitOpenError, FailureRate, _events
from resilience._strategy import Strategy
from resilience.testing import FakeClock


@pytest.fixture
def heard() -> Iterator[list[_events.Event]]:
    """Every event emitted while the test runs."""
    events: list[_events.Event] = []
    stop = _events.subscribe(events.append)
    yield events
    stop()


def test_strategy_info_names_the_constructor_options() -> None:
    """``_strategy_info()`` has kind circuit_breaker and options keyed by parameter names."""
    policy = FailureRate(threshold=0.5)
    breaker = CircuitBreaker(name="db", recovery_timeout=5.0, policy=policy)
    assert isinstance(breaker, Strategy)
    info = breaker._strategy_info()
    assert (info["kind"], info["name"]) == ("circuit_breaker", "db")
    assert info["options"]["recovery_timeout"] == 5.0
    assert info["options"]["policy"] is policy
    assert info["options"]["storage"] is None
    assert set(info["options"]) <= set(CircuitBreaker.__init__.__code__.co_varnames)


def test_transitions_and_rejections_are_events(
    heard: list[_events.Event], clock: FakeClock
) -> None:
    """Opening, forcing and each rejection (call, block, async) are reported once each."""
    breaker = CircuitBreaker(name="api", failure_threshold=1, recovery_timeout=10.0, clock=clock)
    fail(breaker)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    with pytest.raises(CircuitOpenError), breaker:
        pass
    with pytest.raises(CircuitOpenError):
        asyncio.run(breaker.call_async(asyncio.sleep, 0))
    breaker.open()
    names = [(event.name, event.kind, event.strategy) for event in heard]
    assert names == [
        ("state_change", "circuit_breaker", "api"),
        ("rejected", "circuit_breaker", "api"),
        ("rejected", "circuit_breaker", "api"),
        ("rejected", "circuit_breaker", "api"),
        ("state_change", "circuit_breaker", "api"),
    ]
    assert dict(heard[0].attributes) == {"from_state": "closed", "to_state": "open"}
    assert heard[1].attributes["state"] == "open"
    assert heard[1].attributes["retry_after"] == 10.0
    assert isinstance(heard[1].exception, CircuitOpenError)
    assert heard[4].attributes["to_state"] == "forced_open"


def test_a_fallback_answer_is_still_a_rejection_event(heard: list[_events.Event]) -> None:
    """A rejected call answered by the fallback is reported as rejected."""
    breaker = CircuitBreaker(fallback=lambda: "cached")
    breaker.open()
    assert breaker.call(lambda: "live") == "cached"
    assert [event.name for event in heard] == ["state_change", "rejected"]
