"""Bounded memory and series: forgettable named retries, named budgets observed weakly."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from resilience import BreakerRegistry, Retry, RetryBudget, forget_retry, timeout
from resilience import _retry_stats as retry_stats
from resilience.metrics import register_metrics
from resilience.testing import FakeClock


def scrape() -> str:
    """The text a Prometheus scrape of a fresh registry returns."""
    registry = CollectorRegistry()
    register_metrics(registry, breakers=BreakerRegistry())
    return generate_latest(registry).decode()


def test_a_forgotten_retry_leaves_the_scrape() -> None:
    """forget_retry drops the series; using the retry again brings them back."""
    retry = Retry(name="tenant-7", base_delay=0.0)
    retry.call(lambda: 1)
    assert 'resilience_retry_attempts_total{name="tenant-7"} 1.0' in scrape()
    assert forget_retry("tenant-7") is True
    assert "tenant-7" not in scrape()
    assert forget_retry("tenant-7") is False
    retry.call(lambda: 2)
    assert 'resilience_retry_attempts_total{name="tenant-7"} 2.0' in scrape()
    forget_retry("tenant-7")


def test_forgetting_many_names_frees_them() -> None:
    """Thousands of per-tenant names can come and go without growing the registry."""
    before = len(retry_stats._COUNTERS)
    for n in range(2000):
        name = f"job-{n}"
        Retry(name=name).call(lambda: None)
        forget_retry(name)
    assert len(retry_stats._COUNTERS) == before


def test_forget_retry_checks_its_argument() -> None:
    """A name that is not a str is a TypeError."""
    with pytest.raises(TypeError, match="name must be a str"):
        forget_retry(3)  # type: ignore[arg-type]


def test_a_named_budget_exports_allowed_and_denied_while_alive() -> None:
    """A named budget is in the scrape while it lives; its series go with it."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, clock=clock, name="payments-budget")
    assert budget._withdraw()
    assert not budget._withdraw()
    text = scrape()
    assert (
        'resilience_retry_budget_calls_total{name="payments-budget",outcome="allowed"} 1.0' in text
    )
    assert (
        'resilience_retry_budget_calls_total{name="payments-budget",outcome="denied"} 1.0' in text
    )
    assert "payments-budget" in repr(budget)
    assert budget._health() is None
    del budget
    gc.collect()
    assert "payments-budget" not in scrape()


def test_a_budget_name_is_checked() -> None:
    """A bad name is refused when the budget is made."""
    with pytest.raises(TypeError, match="name must be a str"):
        RetryBudget(name=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_delay": 1e10}, "max_delay must be at most"),
        ({"max_elapsed": 1e12}, "max_elapsed must be at most"),
        ({"min_delay": 1e300}, "min_delay must be at most"),
    ],
)
def test_delays_beyond_what_the_platform_can_sleep_are_value_errors(
    options: dict[str, float], match: str
) -> None:
    """A wait no timer can hold is refused when the retry is made."""
    with pytest.raises(ValueError, match=match):
        Retry(**options)  # type: ignore[arg-type]


def test_a_timeout_around_budget_work_leaves_it_usable() -> None:
    """Alarms landing in budget code never leave its lock held or its counts torn."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0)
    for _ in range(200):
        try:
            with timeout(1e-4):
                while True:
                    budget._deposit()
                    budget._withdraw()
        except TimeoutError:
            pass
        assert not budget._lock.locked()
    stats = budget.stats()
    assert stats["retries"] <= stats["first_attempts"]
