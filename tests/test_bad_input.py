"""Bad input never silently loses protection: a TypeError/ValueError naming the parameter."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitState,
    ConsecutiveFailures,
    CountWindow,
    FailureRate,
    TimeWindow,
    circuit_breaker,
    get_circuit_breaker,
)
from resilience.testing import FakeClock


async def _coroutine_function(*_: Any) -> bool:
    return True


class NotAnException:
    """A class that is not an exception (calling it returns a truthy instance)."""

    def __init__(self, *_: object) -> None:
        pass


def test_a_non_exception_class_as_failure_on_or_ignore_is_refused() -> None:
    """``failure_on=NotAnException`` would count every failure as a success: TypeError."""
    for option in ("failure_on", "ignore"):
        with pytest.raises(TypeError, match=option):
            CircuitBreaker(**{option: NotAnException})
        with pytest.raises(TypeError, match=option):
            CircuitBreaker(**{option: (ValueError, NotAnException)})


@pytest.mark.parametrize(
    "option", ["clock", "failure_on_result", "failure_on", "ignore", "recovery_timeout"]
)
def test_a_coroutine_function_where_a_plain_one_is_needed_is_refused(option: str) -> None:
    """A coroutine function as clock, predicate or backoff would never be awaited."""
    with pytest.raises(TypeError, match=f"{option} must be a plain function"):
        CircuitBreaker(**{option: _coroutine_function})


def test_an_async_listener_is_refused() -> None:
    """A listener returning a coroutine would never run: TypeError naming it."""
    with pytest.raises(TypeError, match="listener must be a plain function"):
        CircuitBreaker().add_listener(_coroutine_function)


class AsyncCallable:
    """An object whose ``__call__`` is ``async def``."""

    async def __call__(self) -> int:
        raise ConnectionError


def test_an_object_with_an_async_call_is_decorated_as_async() -> None:
    """``@breaker`` on an async callable object awaits it: its failures count."""
    breaker = CircuitBreaker(failure_threshold=2)
    wrapped = breaker(AsyncCallable())
    assert inspect.iscoroutinefunction(wrapped)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            asyncio.run(wrapped())
    assert breaker.state is CircuitState.OPEN


async def _fails() -> int:
    raise ConnectionError


def test_call_with_a_coroutine_function_is_a_type_error_not_a_success() -> None:
    """``breaker.call(async_fn)`` raises TypeError naming ``func`` and counts no success."""
    breaker = CircuitBreaker()
    with pytest.raises(TypeError, match="func must be a plain function"):
        breaker.call(_fails)
    stats = breaker.get_stats()
    assert (stats["total_successes"], stats["total_ignored"]) == (0, 1)


def test_a_refused_coroutine_frees_its_half_open_slot(clock: FakeClock) -> None:
    """A trial wasted on a coroutine function frees its slot for the next call."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(_raise)
    clock.advance(1.0)
    with pytest.raises(TypeError):
        breaker.call(_fails)
    assert breaker.call(lambda: 7) == 7
    assert breaker.state is CircuitState.CLOSED


def _raise() -> None:
    raise ConnectionError


@pytest.mark.parametrize("size", [2**40, 10**40, 1_000_001])
def test_count_window_has_an_upper_bound(size: int) -> None:
    """A huge CountWindow is a ValueError naming the bound, not a MemoryError."""
    with pytest.raises(ValueError, match=r"size must be <= 1_000_000"):
        CountWindow(size)


def test_huge_ints_for_durations_are_value_errors() -> None:
    """An int too big for a float is a ValueError, not an OverflowError."""
    with pytest.raises(ValueError, match="recovery_timeout must be finite"):
        CircuitBreaker(recovery_timeout=10**400)
    with pytest.raises(ValueError, match="seconds must be finite"):
        TimeWindow(10**400)


@pytest.mark.parametrize(
    ("make", "public"),
    [
        (lambda: get_circuit_breaker("typo", failure_treshold=3), "get_circuit_breaker"),  # type: ignore[call-arg]
        (lambda: circuit_breaker(failure_treshold=3), "circuit_breaker"),  # type: ignore[call-overload]
        (lambda: circuit_breaker(name="typo2", failure_treshold=3), "circuit_breaker"),  # type: ignore[call-overload]
        (lambda: BreakerRegistry().get("typo", failure_treshold=3), "BreakerRegistry.get"),  # type: ignore[call-arg]
        (lambda: BreakerRegistry(defaults={"failure_treshold": 3}), "BreakerRegistry"),
    ],
    ids=["get_circuit_breaker", "decorator", "named-decorator", "registry-get", "defaults"],
)
def test_an_unknown_option_names_the_public_function(
    make: Callable[[], object], public: str
) -> None:
    """A misspelt option is a TypeError naming the function the user called."""
    with pytest.raises(TypeError, match=rf"^{public}\(\) got an unknown .* 'failure_treshold'"):
        make()


def test_signatures_show_the_real_options() -> None:
    """``inspect.signature``/``help()`` show the breaker's options, not ``**options``."""
    parameters = inspect.signature(CircuitBreaker).parameters
    assert "failure_threshold" in parameters
    assert "options" not in parameters
    assert "BreakerOptions" in str(inspect.signature(get_circuit_breaker))
    assert "BreakerOptions" in str(inspect.signature(circuit_breaker))
    assert list(inspect.signature(CircuitBreaker()).parameters) == ["func"]


# ---------------------------------------------------------------------------------------
# Every public constructor, fed wrong values


class _Plain:
    pass


NOT_NUMBERS = [None, "3", b"3", [3], (3,), {}, object(), _Plain, True, False]
NOT_INTS = [*NOT_NUMBERS, 3.0, 1.5, math.nan, math.inf]
NOT_FINITE = [math.nan, math.inf, -math.inf, 10**400]
NOT_CALLABLES = [None, 3, "f", [], object()]
COROUTINES = [_coroutine_function]
NOT_EXCEPTION_CLASSES = [NotAnException, int, str, object, (ValueError, int), 3, "x"]

# (constructor, base kwargs, parameter, bad values): each bad value alone must raise.
CASES: list[tuple[Callable[..., object], dict[str, Any], str, list[Any]]] = [
    (CircuitBreaker, {}, "failure_threshold", [*NOT_INTS, 0, -1]),
    (CircuitBreaker, {}, "recovery_timeout", [*NOT_FINITE, 0, -1.0, "3", None, True, *COROUTINES]),
    (CircuitBreaker, {}, "success_threshold", [*NOT_INTS, 0]),
    (CircuitBreaker, {}, "half_open_max_calls", [*NOT_INTS[1:], 0]),
    (CircuitBreaker, {}, "policy", [3, "rate", object(), CountWindow(3)]),
    (CircuitBreaker, {}, "failure_on", [*NOT_EXCEPTION_CLASSES, *COROUTINES]),
    (CircuitBreaker, {}, "ignore", [*NOT_EXCEPTION_CLASSES, *COROUTINES]),
    (CircuitBreaker, {}, "failure_on_result", [3, "x", *COROUTINES]),
    (CircuitBreaker, {}, "fallback", [3, "x"]),
    (CircuitBreaker, {}, "clock", [*NOT_CALLABLES, *COROUTINES]),
    (CircuitBreaker, {}, "name", [3, b"x", "", "a\nb", "x" * 201, True]),
    (CircuitBreaker, {"name": "s"}, "storage", [3, "redis://", object()]),
    (ConsecutiveFailures, {}, "threshold", [*NOT_INTS, 0]),
    (FailureRate, {}, "threshold", [*NOT_FINITE, *NOT_NUMBERS, 0, 1.5, -0.1]),
    (FailureRate, {}, "window", [3, "count", None, object()]),
    (FailureRate, {}, "minimum_calls", [*NOT_INTS, 0]),
    (FailureRate, {}, "slow_call_duration", [*NOT_FINITE, 0, -1, "1", True]),
    (FailureRate, {"slow_call_duration": 1.0}, "slow_call_rate", [*NOT_FINITE, 0, 1.5, True]),
    (CountWindow, {}, "size", [*NOT_INTS, 0, 2**40, 10**40]),
    (TimeWindow, {}, "seconds", [*NOT_FINITE, *NOT_NUMBERS, 0, 0.5]),
    (BreakerRegistry, {}, "defaults", [3, "x", [("failure_threshold", 3)], {"name": "x"}]),
    (BreakerRegistry, {}, "storage", [3, "x", object()]),
    (FakeClock, {}, "start", [*NOT_FINITE[:1], *NOT_NUMBERS]),
]


def _flat_cases() -> list[tuple[Callable[..., object], dict[str, Any], str, Any]]:
    return [(make, base, name, bad) for make, base, name, values in CASES for bad in values]


@settings(max_examples=400, deadline=None)
@given(case=st.sampled_from(_flat_cases()))
def test_every_public_constructor_refuses_bad_values_naming_the_parameter(
    case: tuple[Callable[..., object], dict[str, Any], str, Any],
) -> None:
    """Wrong types, NaN, infinities, huge ints, bools, coroutine functions, non-exceptions."""
    make, base, name, bad = case
    kwargs = {**base, name: bad}
    with pytest.raises((TypeError, ValueError)) as info:
        make(**kwargs) if make is not FakeClock else make(bad)
    assert name in str(info.value) or (name == "defaults" and "name" in str(info.value))


@settings(max_examples=200, deadline=None)
@given(
    option=st.sampled_from(["failure_threshold", "success_threshold", "half_open_max_calls"]),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.integers(max_value=0),
        st.text(max_size=3),
    ),
)
def test_registry_options_are_validated_like_the_constructor(option: str, value: Any) -> None:
    """``get_circuit_breaker`` refuses what ``CircuitBreaker`` refuses, naming the option."""
    with pytest.raises((TypeError, ValueError), match=option):
        BreakerRegistry().get("svc", **{option: value})


def _extra_cases() -> list[tuple[Callable[..., object], dict[str, Any], str, Any]]:
    """Bad values for the metrics functions and RedisStorage (extras installed)."""
    metrics = pytest.importorskip("resilience.metrics")
    redis_module = pytest.importorskip("resilience.redis")
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=1)  # never connected: validation only
    groups: list[tuple[Callable[..., object], dict[str, Any], str, list[Any]]] = [
        (metrics.register_metrics, {}, "registry", [3, "x", object()]),
        (metrics.register_metrics, {}, "breakers", [3, "x", iter([])]),
        (metrics.start_metrics_server, {}, "port", [*NOT_INTS, -1, 65536, 10**40]),
        (metrics.start_metrics_server, {"port": 0}, "addr", [3, None, b"127.0.0.1"]),
        (metrics.health, {}, "breakers", [3, "x", iter([])]),
        (redis_module.RedisStorage, {}, "client", [3, "redis://", None]),
        (redis_module.RedisStorage, {"client": client}, "ttl", [*NOT_FINITE, 0, 1e300, "1", True]),
        (redis_module.RedisStorage, {"client": client}, "cache_ttl", [*NOT_FINITE, -1, "1", True]),
    ]
    return [(make, base, name, bad) for make, base, name, values in groups for bad in values]


def test_metrics_and_storage_refuse_bad_values_naming_the_parameter() -> None:
    """The metrics functions and RedisStorage refuse every bad value, naming it."""
    pytest.importorskip("prometheus_client", reason="needs the prometheus extra")
    pytest.importorskip("redis", reason="needs the redis extra")
    for make, base, name, bad in _extra_cases():
        with pytest.raises((TypeError, ValueError)) as info:
            make(**{**base, name: bad})
        assert name in str(info.value), (make, name, bad, info.value)


def test_async_clocks_and_result_predicates_are_refused_when_made() -> None:
    """A coroutine function as a clock or ``on_result`` is a TypeError naming it."""
    from resilience import AdaptiveLimit, AdaptiveThrottle, Fallback, RetryBudget

    async def clock() -> float:
        return 0.0

    async def judge(result: object) -> bool:
        return False

    for make in (
        lambda: AdaptiveThrottle(clock=clock),  # type: ignore[arg-type]
        lambda: RetryBudget(clock=clock),  # type: ignore[arg-type]
        lambda: AdaptiveLimit(clock=clock),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match="clock"):
            make()
    with pytest.raises(TypeError, match="on_result"):
        Fallback(lambda *_: 0, on_result=judge)  # type: ignore[arg-type]


def test_a_refused_bulkhead_leaves_its_adaptive_limit_free() -> None:
    """A Bulkhead refused for a bad option does not keep the AdaptiveLimit it was given."""
    from resilience import AdaptiveLimit, Bulkhead

    limit = AdaptiveLimit()
    with pytest.raises(ValueError, match="max_queue"):
        Bulkhead(limit, max_queue=-1)
    assert Bulkhead(limit, max_queue=1).limit == limit.limit


def test_presets_retry_an_object_whose_call_is_async() -> None:
    """``retry_network_operation(obj)`` awaits and retries an async-callable object."""
    import asyncio

    from resilience import retry_network_operation
    from resilience.testing import instant_retries

    class Flaky:
        calls = 0

        async def __call__(self) -> str:
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise ConnectionError
            return "ok"

    async def main() -> str:
        with instant_retries():
            return await retry_network_operation(Flaky())  # type: ignore[no-any-return]

    assert asyncio.run(main()) == "ok"
    assert Flaky.calls == 3
