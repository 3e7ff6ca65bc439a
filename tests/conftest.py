"""Shared fixtures: a fake clock, and one test body run through sync and async calls."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience
from resilience import CircuitBreaker
from resilience.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock(1000.0)


@pytest.fixture(autouse=True)
def _fresh_default_registry() -> Iterator[None]:
    """Keep the default registry from leaking breakers between tests."""
    yield
    for breaker in list(resilience.default_registry):
        name = breaker.name
        if name is not None:
            resilience.default_registry.remove(name)


# Tests of an optional extra are left out when it is not installed, so the core's suite also
# runs without extras (CI does both). Where real servers are required, nothing is left out:
# a missing extra must fail there, not vanish.
_EXTRA_TESTS = {
    "prometheus_client": [
        "test_metrics*.py",
        "test_monitoring_kit.py",
        "integration/*prometheus*",
        "integration/test_demo.py",
        "test_throttle.py",  # scrapes the throttles' series
        "test_retry_memory.py",  # scrapes the series of removed retries and budgets
    ],
    "redis": ["test_redis*.py", "test_cli*.py", "integration/*redis*"],
    "aiohttp": ["integration/test_http_clients.py"],  # with httpx and requests, from [dev]
    "opentelemetry": ["test_otel*.py", "integration/*otel*"],
}
collect_ignore_glob: list[str] = []
if os.environ.get("RESILIENCE_REQUIRE_SERVERS") != "1":
    for _module, _globs in _EXTRA_TESTS.items():
        if importlib.util.find_spec(_module) is None:
            collect_ignore_glob.extend(_globs)


Runner = Callable[..., Any]


@pytest.fixture(params=["sync", "async"], ids=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Call ``func(*args)`` through ``breaker`` with ``call`` or ``call_async``.

    The function given is always a plain one; the async variant wraps it in a coroutine.
    """
    if request.param == "sync":

        def run_sync(breaker: CircuitBreaker, func: Callable[..., Any], *args: Any) -> Any:
            return breaker.call(func, *args)

        return run_sync

    def run_async(breaker: CircuitBreaker, func: Callable[..., Any], *args: Any) -> Any:
        async def coro(*a: Any) -> Any:
            return func(*a)

        return asyncio.run(breaker.call_async(coro, *args))

    return run_async
