"""AdaptiveThrottle (SPEC §12) and RetryThrottle (gRPC-style tokens)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from resilience import (
    AdaptiveThrottle,
    BreakerRegistry,
    RetryThrottle,
    ThrottledError,
    _events,
    retry_with_backoff,
)
from resilience._strategy import Strategy
from resilience.metrics import health, register_metrics
from resilience.testing import FakeClock

_names = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{next(_names)}"


def scrape() -> str:
    """A Prometheus scrape of a fresh registry."""
    registry = CollectorRegistry()
    register_metrics(registry, breakers=BreakerRegistry())
    return generate_latest(registry).decode()


def fail() -> None:
    """A backend refusing the request."""
    raise ConnectionError("overloaded")


def test_a_healthy_backend_is_never_throttled() -> None:
    """While every call is accepted the rejection probability stays 0."""
    throttle = AdaptiveThrottle(clock=FakeClock())
    for _ in range(100):
        assert throttle.call(lambda: 1) == 1
    assert throttle.stats() == {"requests": 100, "accepts": 100, "rejection_probability": 0.0}


def test_the_rejection_probability_follows_the_formula() -> None:
    """max(0, (requests - k * accepts) / (requests + 1)), failures counting as requests."""
    throttle = AdaptiveThrottle(k=2.0, clock=FakeClock())
    throttle._random = lambda: 1.0  # never reject, to set up the counts
    for _ in range(10):
        throttle.call(lambda: 1)
    for _ in range(30):
        with pytest.raises(ConnectionError):
            throttle.call(fail)
    assert throttle.rejection_probability() == pytest.approx((40 - 2 * 10) / 41)


def test_a_rejected_call_does_not_run_and_counts_as_a_request() -> None:
    """A draw under the probability rejects locally with ThrottledError."""
    throttle = AdaptiveThrottle(k=1.0, clock=FakeClock(), name=unique("rejects"))
    throttle._random = lambda: 1.0
    for _ in range(5):
        with pytest.raises(ConnectionError):
            throttle.call(fail)
    throttle._random = lambda: 0.0
    ran = []
    with pytest.raises(ThrottledError) as caught:
        throttle.call(ran.append, 1)
    assert ran == []
    assert caught.value.name == throttle.name
    assert throttle.stats()["requests"] == 6


def test_the_window_forgets_old_requests() -> None:
    """Requests older than the window no longer count."""
    clock = FakeClock()
    throttle = AdaptiveThrottle(window=10.0, clock=clock)
    throttle._random = lambda: 1.0
    for _ in range(5):
        with pytest.raises(ConnectionError):
            throttle.call(fail)
    assert throttle.rejection_probability() > 0
    clock.advance(10.0)
    assert throttle.stats()["requests"] == 0


def test_at_5x_overload_the_backend_sees_about_k_times_its_accepts() -> None:
    """Clients sending 5x capacity: the backend receives about k times what it accepts."""
    clock = FakeClock()
    throttle = AdaptiveThrottle(k=2.0, window=60.0, clock=clock)
    capacity = 0
    received = accepted = 0

    def backend() -> None:
        nonlocal capacity, received, accepted
        received += 1
        if capacity <= 0:
            raise ConnectionError("overloaded")
        capacity -= 1
        accepted += 1

    for second in range(300):
        clock.advance(1.0)
        capacity = 20  # the backend takes 20 a second; clients send 100
        for _ in range(100):
            with contextlib.suppress(ConnectionError, ThrottledError):
                throttle.call(backend)
        if second == 99:
            received = accepted = 0  # measure the steady state only
    assert received / accepted == pytest.approx(2.0, rel=0.15)


def test_throttles_of_one_name_share_their_counts() -> None:
    """Two throttles named alike read and feed one window."""
    name = unique("shared")
    clock = FakeClock()
    one = AdaptiveThrottle(name=name, clock=clock)
    two = AdaptiveThrottle(name=name, clock=clock)
    one.call(lambda: None)
    assert two.stats()["accepts"] == 1
    with pytest.raises(ValueError, match=r"already exists with other options: k=3\.0"):
        AdaptiveThrottle(name=name, k=3.0)


def test_a_throttle_is_a_strategy_and_a_decorator() -> None:
    """call_async, the decorator and _strategy_info work."""
    throttle = AdaptiveThrottle(k=1.5, window=30.0, name=unique("strategy"))
    assert isinstance(throttle, Strategy)
    info = throttle._strategy_info()
    assert (info["kind"], info["options"]["k"], info["options"]["window"]) == (
        "adaptive_throttle",
        1.5,
        30.0,
    )

    @throttle
    def sync() -> str:
        return "sync"

    @throttle
    async def coroutine() -> str:
        return "async"

    async def failing() -> None:
        raise ConnectionError

    assert sync() == "sync"
    assert asyncio.run(coroutine()) == "async"
    with pytest.raises(ConnectionError):
        asyncio.run(throttle.call_async(failing))
    assert throttle.stats()["requests"] == 3
    assert "k=1.5" in repr(throttle)
    assert (throttle.k, throttle.window) == (1.5, 30.0)


def test_a_rejection_emits_a_throttled_event() -> None:
    """Rejections reach event subscribers as "throttled"."""
    seen: list[_events.Event] = []
    unsubscribe = _events.subscribe(seen.append)
    throttle = AdaptiveThrottle(k=1.0, clock=FakeClock(), name=unique("events"))
    try:
        throttle._random = lambda: 1.0
        with pytest.raises(ConnectionError):
            throttle.call(fail)
        throttle._random = lambda: 0.0
        with pytest.raises(ThrottledError):
            asyncio.run(throttle.call_async(asyncio.sleep, 0))
    finally:
        unsubscribe()
    assert [(e.name, e.kind, e.strategy) for e in seen] == [
        ("throttled", "adaptive_throttle", throttle.name)
    ]


def test_a_cancelled_call_counts_as_nothing() -> None:
    """A BaseException says nothing about the backend."""
    throttle = AdaptiveThrottle(clock=FakeClock())

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        throttle.call(interrupted)
    assert throttle.stats()["requests"] == 0


def test_a_named_throttle_is_in_metrics_and_health_while_alive() -> None:
    """Its three counters are scraped and a rejecting throttle degrades health."""
    name = unique("observed")
    throttle = AdaptiveThrottle(k=1.0, name=name, clock=FakeClock())
    throttle._random = lambda: 1.0
    with pytest.raises(ConnectionError):
        throttle.call(fail)
    throttle._random = lambda: 0.0
    with pytest.raises(ThrottledError):
        throttle.call(fail)
    text = scrape()
    for series, value in (("requests", 2.0), ("accepts", 0.0), ("rejected", 1.0)):
        assert f'resilience_throttle_{series}_total{{name="{name}"}} {value}' in text
    report = health(breakers=BreakerRegistry())
    assert report["status"] == "degraded"
    del throttle
    gc.collect()
    assert name not in scrape()


@pytest.mark.parametrize(
    ("options", "error"),
    [({"k": 0.5}, ValueError), ({"window": 0}, ValueError), ({"k": True}, TypeError)],
)
def test_bad_throttle_options_fail_when_made(options: dict[str, object], error: type) -> None:
    """The options need k >= 1, window > 0, and numbers."""
    with pytest.raises(error):
        AdaptiveThrottle(**options)  # type: ignore[arg-type]


# ------------------------------------------------------------------ RetryThrottle


def test_retry_throttle_stops_retries_below_half_its_tokens() -> None:
    """Each retryable failure takes a token; retries stop at max_tokens / 2."""
    throttle = RetryThrottle(max_tokens=4, token_ratio=0.5)
    calls = []

    @retry_with_backoff(max_retries=5, base_delay=0.0, budget=throttle)
    def down() -> None:
        calls.append(1)
        raise ConnectionError

    with pytest.raises(ConnectionError) as caught:
        down()
    assert len(calls) == 2  # 4 -> 3 (retry), 3 -> 2 (2 is not > 2: stop)
    assert "retry throttle" in caught.value.__notes__[-1]
    assert throttle.tokens == 2.0


def test_successes_refill_the_tokens_up_to_the_maximum() -> None:
    """A success gives back token_ratio, never past max_tokens."""
    throttle = RetryThrottle(max_tokens=4, token_ratio=0.5)
    throttle._failure()
    throttle._failure()
    retry = retry_with_backoff(budget=throttle)(lambda: "ok")
    retry()
    assert throttle.tokens == 2.5
    for _ in range(10):
        retry()
    assert throttle.tokens == 4.0
    for _ in range(10):
        throttle._failure()
    assert throttle.tokens == 0.0


def test_retry_throttles_of_one_name_share_tokens_and_are_observed() -> None:
    """Named alike, they share tokens; the gauge and health follow them."""
    name = unique("tokens")
    one = RetryThrottle(max_tokens=2, token_ratio=1, name=name)
    two = RetryThrottle(max_tokens=2, token_ratio=1, name=name)
    one._failure()
    assert two.tokens == 1.0
    assert f'resilience_retry_throttle_tokens{{name="{name}"}} 1.0' in scrape()
    assert health(breakers=BreakerRegistry())["status"] == "degraded"
    assert "max_tokens=2" in repr(one)
    assert (one.max_tokens, one.token_ratio) == (2.0, 1.0)
    with pytest.raises(ValueError, match="other options"):
        RetryThrottle(max_tokens=3, name=name)
    one._success()
    assert one._health() is None


def test_a_budget_of_the_wrong_type_is_refused() -> None:
    """The budget option takes a RetryBudget or a RetryThrottle."""
    with pytest.raises(TypeError, match="RetryThrottle"):
        retry_with_backoff(budget=3)  # type: ignore[arg-type]


def test_the_retry_storm_simulation_meets_its_targets() -> None:
    """benchmarks/retry_storm.py: 27x plain, <= 2x with budgets, <= 1.1x with throttles."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "retry_storm.py"
    spec = importlib.util.spec_from_file_location("retry_storm", path)
    assert spec is not None
    assert spec.loader is not None
    storm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(storm)
    storm.RATE, storm.SECONDS = 500, 2
    assert storm.layered("plain")[0] == 27.0
    assert storm.layered("budget")[0] <= 2.0
    assert storm.layered("throttle")[0] <= 1.1
    ratio, _ = storm.adaptive(seconds=120)
    assert ratio == pytest.approx(2.0, rel=0.15)


_ops = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=40.0, allow_nan=False, allow_infinity=False),
        st.sampled_from(["ok", "fail"]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(start=st.floats(min_value=0.0, max_value=1e6), operations=_ops)
def test_the_throttle_window_matches_a_naive_model(
    start: float, operations: list[tuple[float, str]]
) -> None:
    """Over random times, requests and accepts match timestamps kept in window/100 buckets."""
    clock = FakeClock(start)
    throttle = AdaptiveThrottle(k=2.0, window=100.0, clock=clock)
    throttle._random = lambda: 1.0  # never reject: the model counts calls only
    events: list[tuple[float, bool]] = []
    for step, outcome in operations:
        clock.advance(step)
        if outcome == "ok":
            throttle.call(lambda: None)
        else:
            with pytest.raises(ConnectionError):
                throttle.call(fail)
        events.append((clock(), outcome == "ok"))
        now_bucket = math.floor(clock() / 1.0)
        kept = [ok for t, ok in events if math.floor(t / 1.0) > now_bucket - 100]
        stats = throttle.stats()
        assert (stats["requests"], stats["accepts"]) == (len(kept), sum(kept))
        expected = max(0.0, (len(kept) - 2.0 * sum(kept)) / (len(kept) + 1))
        assert stats["rejection_probability"] == pytest.approx(expected)
