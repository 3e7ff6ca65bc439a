"""Every live named breaker is observed however it was made (SPEC §5), and held weakly."""

from __future__ import annotations

import gc
import uuid
import weakref

import pytest

from _helpers import fail
from resilience import CircuitBreaker, circuit_breaker, default_registry
from resilience.testing import FakeClock

prometheus_client = pytest.importorskip("prometheus_client")

from resilience.metrics import health, register_metrics  # noqa: E402  # needs the extra


def _value(registry: object, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)  # type: ignore[attr-defined, no-any-return]


def _scrape_registry() -> object:
    registry = prometheus_client.CollectorRegistry()
    register_metrics(registry)
    return registry


def test_a_constructed_named_breaker_is_in_metrics_health_and_snapshot() -> None:
    """``CircuitBreaker(name=...)`` outside any registry is scraped, degrades health, is listed."""
    name = f"made-{uuid.uuid4()}"
    breaker = CircuitBreaker(name=name, failure_threshold=1)
    fail(breaker)
    registry = _scrape_registry()
    assert _value(registry, "resilience_circuit_breaker_state", name=name, state="open") == 1
    assert (
        _value(registry, "resilience_circuit_breaker_calls_total", name=name, outcome="failure")
        == 1
    )
    report = health()
    assert report["status"] == "degraded"
    assert [entry["name"] for entry in report["open"]] == [name]
    assert name in [stats["name"] for stats in default_registry.snapshot()]
    assert name not in default_registry  # observed, not registered


def test_a_decorator_breaker_without_registry_name_is_observed() -> None:
    """An anonymous decorator's breaker is unnamed and left out; a named one is scraped."""

    @circuit_breaker(failure_threshold=2)
    def anonymous() -> int:
        return 1

    anonymous()
    named = CircuitBreaker(name=f"deco-{uuid.uuid4()}")

    @named
    def work() -> int:
        return 2

    work()
    registry = _scrape_registry()
    assert (
        _value(
            registry, "resilience_circuit_breaker_calls_total", name=named.name, outcome="success"
        )
        == 1
    )
    assert None not in [stats["name"] for stats in default_registry.snapshot()]


def test_observing_does_not_keep_a_breaker_alive() -> None:
    """A dropped named breaker is collected and disappears from every view."""
    name = f"gone-{uuid.uuid4()}"
    breaker = CircuitBreaker(name=name)
    breaker.open()
    ref = weakref.ref(breaker)
    del breaker
    gc.collect()
    assert ref() is None
    registry = _scrape_registry()
    assert (
        _value(registry, "resilience_circuit_breaker_state", name=name, state="forced_open") is None
    )
    assert health()["status"] == "ok"
    assert name not in [stats["name"] for stats in default_registry.snapshot()]


def test_two_live_breakers_with_one_name_make_one_series_with_summed_counters() -> None:
    """The documented rule: counters add up; state and failure rate are the newer one's."""
    name = f"twin-{uuid.uuid4()}"
    older = CircuitBreaker(name=name, failure_threshold=1)
    newer = CircuitBreaker(name=name)
    fail(older)
    newer.call(lambda: 1)
    registry = _scrape_registry()
    calls = "resilience_circuit_breaker_calls_total"
    assert _value(registry, calls, name=name, outcome="failure") == 1
    assert _value(registry, calls, name=name, outcome="success") == 1
    assert _value(registry, "resilience_circuit_breaker_state", name=name, state="closed") == 1
    assert _value(registry, "resilience_circuit_breaker_state", name=name, state="open") == 0
    text = prometheus_client.generate_latest(registry).decode()  # type: ignore[arg-type]
    assert text.count(f'resilience_circuit_breaker_state{{name="{name}",state="closed"}}') == 1
    # health() lists each open one: the older breaker is open, so health says so.
    assert [entry["name"] for entry in health()["open"]] == [name]
    assert len([s for s in default_registry.snapshot() if s["name"] == name]) == 2


def test_health_open_for_is_rounded_to_milliseconds() -> None:
    """``open_for`` in health() has at most three decimals."""
    clock = FakeClock()
    breaker = CircuitBreaker(name=f"round-{uuid.uuid4()}", failure_threshold=1, clock=clock)
    fail(breaker)
    clock.advance(1.23456789)
    (entry,) = health([breaker])["open"]
    assert entry["open_for"] == 1.235
