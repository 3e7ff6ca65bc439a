"""Named strategies are observed weakly; their families merge by the documented rule."""

from __future__ import annotations

import gc
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from resilience import BreakerRegistry, _observed
from resilience._observed import Family
from resilience.metrics import health, register_metrics


class _Gate:
    """A tiny observed strategy: a counter, a gauge and a health hook."""

    def __init__(self, name: str, *, passed: int, open_slots: int) -> None:
        self.name = name
        self.passed = passed
        self.open_slots = open_slots
        _observed.observe(self)

    def _families(self) -> list[Family]:
        return [
            Family(
                "resilience_gate_calls_total",
                "counter",
                "Calls.",
                ("name",),
                [((self.name,), self.passed)],
            ),
            Family(
                "resilience_gate_free",
                "gauge",
                "Free slots.",
                ("name",),
                [((self.name,), self.open_slots)],
            ),
        ]

    def _health(self) -> dict[str, Any] | None:
        return None if self.open_slots else {"name": self.name, "kind": "gate", "reason": "full"}


def _scrape() -> str:
    registry = CollectorRegistry()
    register_metrics(registry, BreakerRegistry())
    return generate_latest(registry).decode()


def test_observed_strategy_is_scraped_and_forgotten_when_collected() -> None:
    """A live strategy's series appear; once it is garbage its series go."""
    gate = _Gate("g1", passed=3, open_slots=2)
    text = _scrape()
    assert 'resilience_gate_calls_total{name="g1"} 3.0' in text
    assert 'resilience_gate_free{name="g1"} 2.0' in text
    del gate
    gc.collect()
    assert "g1" not in _scrape()


def test_two_live_strategies_with_one_name_merge_without_duplicates() -> None:
    """Counters with equal labels add up; the gauge comes from the newest object."""
    first = _Gate("same", passed=2, open_slots=5)
    second = _Gate("same", passed=3, open_slots=1)
    text = _scrape()
    assert text.count('resilience_gate_calls_total{name="same"}') == 1
    assert 'resilience_gate_calls_total{name="same"} 5.0' in text
    assert 'resilience_gate_free{name="same"} 1.0' in text
    del first, second


def test_a_saturated_strategy_makes_health_degraded() -> None:
    """A strategy whose health hook reports a problem is listed and degrades health."""
    gate = _Gate("full-gate", passed=0, open_slots=0)
    report = health(BreakerRegistry())
    assert report["status"] == "degraded"
    assert {"name": "full-gate", "kind": "gate", "reason": "full"} in report["degraded"]
    gate.open_slots = 1
    assert health(BreakerRegistry()) == {"status": "ok", "open": []}
