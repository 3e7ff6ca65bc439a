"""Chaos: what is injected, how often, in what order, and how it is switched off."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import threading
from typing import Any

import pytest

import resilience
from resilience import BreakerRegistry, _events
from resilience.chaos import Chaos
from resilience.testing import FakeClock

Z_999 = 3.2905  # two-sided 99.9% normal quantile


def ok(value: int = 1) -> int:
    return value


async def aok(value: int = 1) -> int:
    return value


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.1, 0.5], ids=["0.1%", "1%", "10%", "50%"])
@pytest.mark.parametrize("seed", [1, 2, 3], ids=["seed1", "seed2", "seed3"])
def test_injected_count_is_within_binomial_bounds(rate: float, seed: int) -> None:
    """Over 100,000 calls the injected count lies within the 99.9% binomial interval."""
    n = 100_000
    chaos = Chaos(result=0, rate=rate, rng=random.Random(seed))
    injected = sum(1 for _ in range(n) if chaos.call(ok) == 0)
    mean, sd = n * rate, math.sqrt(n * rate * (1 - rate))
    assert mean - Z_999 * sd <= injected <= mean + Z_999 * sd
    assert chaos.get_stats() == {
        "total_calls": n,
        "total_injected": {"fault": 0, "latency": 0, "result": injected, "behavior": 0},
    }


def test_a_seeded_rng_makes_injections_reproducible() -> None:
    """Two Chaos with equally seeded sources inject on exactly the same calls."""
    first = Chaos(result=None, rate=0.3, rng=random.Random(7))
    second = Chaos(result=None, rate=0.3, rng=random.Random(7))
    assert [first.call(ok) for _ in range(200)] == [second.call(ok) for _ in range(200)]


@pytest.mark.parametrize(
    "fault",
    [ConnectionError("down"), ConnectionError, lambda: ConnectionError("made")],
    ids=["instance", "class", "factory"],
)
def test_fault_is_raised_and_the_function_is_not_called(fault: Any) -> None:
    """An injected fault is raised in place of the call."""
    calls: list[int] = []
    chaos = Chaos(fault=fault, rate=1.0)
    with pytest.raises(ConnectionError):
        chaos.call(calls.append, 1)
    assert calls == []
    assert chaos.get_stats()["total_injected"]["fault"] == 1


def test_one_fault_instance_raised_again_does_not_grow_its_traceback() -> None:
    """The same instance raised many times keeps a traceback of one raise."""
    error = ConnectionError("down")
    chaos = Chaos(fault=error, rate=1.0)
    depths = []
    for _ in range(3):
        with pytest.raises(ConnectionError) as info:
            chaos.call(ok)
        depth, tb = 0, info.value.__traceback__
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        depths.append(depth)
    assert depths[0] == depths[1] == depths[2]


def test_a_fault_factory_returning_no_exception_is_a_type_error() -> None:
    """A factory whose result cannot be raised is reported, naming it."""
    chaos = Chaos(fault=lambda: "oops", rate=1.0)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not an exception"):
        chaos.call(ok)


def test_result_is_returned_without_calling_the_function() -> None:
    """An injected result replaces the call, None included."""
    calls: list[int] = []
    assert Chaos(result=None, rate=1.0).call(calls.append, 1) is None
    assert calls == []


def test_latency_waits_then_calls_the_function(clock: FakeClock) -> None:
    """Injected latency sleeps with the given sleep, then the call runs."""
    chaos = Chaos(latency=2.5, rate=1.0, sleep=clock.sleep)
    start = clock()
    assert chaos.call(ok, 5) == 5
    assert clock() - start == 2.5
    assert chaos.get_stats()["total_injected"] == {
        "fault": 0,
        "latency": 1,
        "result": 0,
        "behavior": 0,
    }


def test_behavior_runs_first_then_latency_then_fault(clock: FakeClock) -> None:
    """The documented order: behavior, latency, fault; each kind is counted once."""
    seen: list[tuple[str, float]] = []
    chaos = Chaos(
        behavior=lambda: seen.append(("behavior", clock())),
        latency=1.0,
        fault=lambda: (seen.append(("fault", clock())), TimeoutError())[1],
        rate=1.0,
        sleep=clock.sleep,
    )
    start = clock()
    with pytest.raises(TimeoutError):
        chaos.call(ok)
    assert seen == [("behavior", start), ("fault", start + 1.0)]
    assert chaos.get_stats()["total_injected"] == {
        "fault": 1,
        "latency": 1,
        "result": 0,
        "behavior": 1,
    }


def test_behavior_alone_runs_and_the_call_goes_on() -> None:
    """A behavior-only Chaos runs its behavior, then the real call."""
    ran: list[str] = []
    assert Chaos(behavior=lambda: ran.append("b"), rate=1.0).call(ok, 3) == 3
    assert ran == ["b"]


def test_a_raising_behavior_propagates_as_the_call_error() -> None:
    """What a behavior raises is the call's error; the function does not run."""

    def drop() -> None:
        raise BrokenPipeError

    calls: list[int] = []
    with pytest.raises(BrokenPipeError):
        Chaos(behavior=drop, rate=1.0).call(calls.append, 1)
    assert calls == []


def test_rate_zero_never_injects_and_still_counts_calls() -> None:
    """At rate 0 every call runs and is counted; nothing is injected."""
    chaos = Chaos(fault=ValueError, rate=0.0)
    assert [chaos.call(ok) for _ in range(100)] == [1] * 100
    assert chaos.get_stats()["total_calls"] == 100
    assert sum(chaos.get_stats()["total_injected"].values()) == 0


def test_disabled_chaos_decorator_returns_the_function_itself() -> None:
    """enabled=False: the decorator hands back the function, and call() runs it untouched."""
    chaos = Chaos(fault=ValueError, rate=1.0, enabled=False)
    assert chaos(ok) is ok
    assert chaos.call(ok, 4) == 4
    assert chaos.get_stats()["total_calls"] == 0


def test_enabled_callable_is_asked_on_every_call() -> None:
    """A callable switch arms and disarms the Chaos call by call."""
    armed = [False]
    chaos = Chaos(result=0, rate=1.0, enabled=lambda: armed[0])
    assert chaos.call(ok) == 1
    armed[0] = True
    assert chaos.call(ok) == 0
    armed[0] = False
    assert chaos.call(ok) == 1
    assert chaos.get_stats()["total_calls"] == 1


def test_a_raising_enabled_switch_is_logged_and_injects_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken feature flag never adds trouble: the call runs untouched, and it is logged."""

    def broken_flag() -> bool:
        raise LookupError("flag service down")

    chaos = Chaos(fault=ValueError, rate=1.0, enabled=broken_flag)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert chaos.call(ok, 2) == 2
    assert "flag service down" in caplog.text
    assert chaos.get_stats()["total_calls"] == 0


@pytest.mark.parametrize("value", ["off", "OFF", " Off ", "0", "false", "no"])
def test_kill_switch_disarms_every_chaos(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """RESILIENCE_CHAOS=off wins over enabled=True, read whenever a call would be injected."""
    chaos = Chaos(fault=ValueError, rate=1.0)
    monkeypatch.setenv("RESILIENCE_CHAOS", value)
    assert chaos.call(ok) == 1
    assert chaos.get_stats() == {
        "total_calls": 1,
        "total_injected": {"fault": 0, "latency": 0, "result": 0, "behavior": 0},
    }
    monkeypatch.setenv("RESILIENCE_CHAOS", "on")
    with pytest.raises(ValueError):
        chaos.call(ok)


def test_decorator_injects_into_sync_functions_and_keeps_metadata() -> None:
    """@chaos wraps a sync function, keeping its name."""
    chaos = Chaos(result=9, rate=1.0)
    wrapped = chaos(ok)
    assert wrapped() == 9
    assert wrapped.__name__ == "ok"


def test_decorator_on_async_function_stays_a_coroutine_function() -> None:
    """@chaos on an async def gives an async def that injects."""
    chaos = Chaos(fault=OSError, rate=1.0)
    wrapped = chaos(aok)
    assert inspect.iscoroutinefunction(wrapped)
    with pytest.raises(OSError):
        asyncio.run(wrapped())


def test_async_latency_uses_a_coroutine_sleep(clock: FakeClock) -> None:
    """In async code a coroutine sleep is awaited and the call then runs."""
    chaos = Chaos(latency=3.0, rate=1.0, sleep=clock.asleep)
    assert asyncio.run(chaos.call_async(aok, 2)) == 2
    assert clock() == 1003.0


def test_async_latency_defaults_to_asyncio_sleep() -> None:
    """With the default sleep, async code waits on the event loop, not time.sleep."""
    chaos = Chaos(latency=0.0, rate=1.0)

    async def main() -> int:
        ticks: list[int] = []

        async def ticker() -> None:
            ticks.append(1)

        task = asyncio.ensure_future(ticker())
        value = await chaos.call_async(aok, 6)
        await task
        return value + len(ticks)

    assert asyncio.run(main()) == 7


def test_async_plain_sleep_is_called(clock: FakeClock) -> None:
    """A plain (non-coroutine) sleep given for async code is simply called."""
    chaos = Chaos(latency=1.0, rate=1.0, sleep=clock.sleep)
    assert asyncio.run(chaos.call_async(aok)) == 1
    assert clock() == 1001.0


def test_async_behavior_result_and_fault() -> None:
    """Async: an awaitable behavior is awaited, a result replaces the call, a fault raises."""
    ran: list[str] = []

    async def behave() -> None:
        ran.append("async")

    assert asyncio.run(Chaos(behavior=behave, result=5, rate=1.0).call_async(aok)) == 5
    assert asyncio.run(Chaos(behavior=lambda: ran.append("sync"), rate=1.0).call_async(aok)) == 1
    assert ran == ["async", "sync"]
    with pytest.raises(KeyError):
        asyncio.run(Chaos(fault=KeyError, rate=1.0).call_async(aok))
    assert asyncio.run(Chaos(fault=KeyError, rate=0.0).call_async(aok, 8)) == 8


def test_sync_function_with_coroutine_sleep_is_refused_at_decoration(clock: FakeClock) -> None:
    """A coroutine sleep cannot serve a sync function: TypeError when decorating."""
    with pytest.raises(TypeError, match="coroutine function"):
        Chaos(latency=1.0, rate=1.0, sleep=clock.asleep)(ok)


def test_sync_call_refuses_awaitables_from_sleep_or_behavior(clock: FakeClock) -> None:
    """call() with a coroutine sleep or behavior raises TypeError and leaves no warning."""
    with pytest.raises(TypeError, match="sleep returned an awaitable"):
        Chaos(latency=1.0, rate=1.0, sleep=clock.asleep).call(ok)

    async def behave() -> None:
        """Never awaited: closed by the refusal."""

    with pytest.raises(TypeError, match="behavior returned an awaitable"):
        Chaos(behavior=behave, rate=1.0).call(ok)


def test_injections_are_reported_as_events() -> None:
    """Each injected call emits one `injected` event naming the kinds."""
    heard: list[_events.Event] = []
    stop = _events.subscribe(heard.append)
    try:
        chaos = Chaos(latency=0.0, result=1, rate=1.0, name="chaos-events", sleep=lambda _: None)
        chaos.call(ok)
        Chaos(result=1, rate=0.0).call(ok)
    finally:
        stop()
    assert [(e.name, e.kind, e.strategy) for e in heard] == [("injected", "chaos", "chaos-events")]
    assert heard[0].attributes["injected"] == ("latency", "result")


def test_counts_are_exact_under_threads() -> None:
    """Eight threads calling at once lose no count."""
    chaos = Chaos(result=0, rate=0.5, rng=random.Random(3))
    results: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [chaos.call(ok) for _ in range(2_000)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = chaos.get_stats()
    assert stats["total_calls"] == 16_000
    assert stats["total_injected"]["result"] == results.count(0)


def test_named_chaos_is_in_metrics_and_never_degrades_health() -> None:
    """A named Chaos exports its two series; health stays ok."""
    pytest.importorskip("prometheus_client", reason="needs the prometheus extra")
    from prometheus_client import CollectorRegistry, generate_latest

    from resilience.metrics import health, register_metrics

    chaos = Chaos(fault=ValueError, rate=1.0, name="chaos-metrics")
    for _ in range(3):
        with pytest.raises(ValueError):
            chaos.call(ok)
    registry = CollectorRegistry()
    register_metrics(registry, BreakerRegistry())
    text = generate_latest(registry).decode()
    assert 'resilience_chaos_calls_total{name="chaos-metrics"} 3.0' in text
    assert 'resilience_chaos_injected_total{kind="fault",name="chaos-metrics"} 3.0' in text
    assert 'resilience_chaos_injected_total{kind="latency",name="chaos-metrics"} 0.0' in text
    assert health(BreakerRegistry())["status"] == "ok"


def test_strategy_info_describes_the_options() -> None:
    """_strategy_info names the kind and the constructor options; result only when given."""
    rng = random.Random(0)
    chaos = Chaos(result=None, rate=0.25, rng=rng, name="c")
    info = chaos._strategy_info()
    assert info["kind"] == "chaos"
    assert info["name"] == "c"
    assert info["options"]["rate"] == 0.25
    assert info["options"]["rng"] is rng
    assert info["options"]["result"] is None
    assert "result" not in Chaos(fault=ValueError)._strategy_info()["options"]
    assert chaos.rate == 0.25
    assert chaos.name == "c"
    assert repr(chaos) == "Chaos(rate=0.25, injects=['result'], name='c')"


def test_chaos_is_exported_from_resilience() -> None:
    """`resilience.Chaos` is `resilience.chaos.Chaos`."""
    assert resilience.Chaos is Chaos


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "something to inject"),
        ({"fault": ValueError, "result": 1}, ValueError, "not both"),
        ({"fault": "boom"}, TypeError, "fault"),
        ({"latency": -1.0}, ValueError, "latency"),
        ({"latency": True}, TypeError, "latency"),
        ({"result": 1, "rate": 1.5}, ValueError, "rate"),
        ({"result": 1, "rate": -0.1}, ValueError, "rate"),
        ({"result": 1, "rate": math.nan}, ValueError, "rate"),
        ({"result": 1, "rate": True}, TypeError, "rate"),
        ({"result": 1, "enabled": 1}, TypeError, "enabled"),
        ({"result": 1, "rng": 42}, TypeError, "rng"),
        ({"result": 1, "sleep": 1}, TypeError, "sleep"),
        ({"behavior": 3}, TypeError, "behavior"),
        ({"result": 1, "name": ""}, ValueError, "name"),
        ({"result": 1, "name": 5}, TypeError, "name"),
    ],
    ids=[
        "nothing",
        "fault-and-result",
        "fault-str",
        "negative-latency",
        "bool-latency",
        "rate-high",
        "rate-negative",
        "rate-nan",
        "rate-bool",
        "enabled-int",
        "rng-int",
        "sleep-int",
        "behavior-int",
        "name-empty",
        "name-int",
    ],
)
def test_bad_arguments_fail_at_construction(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    """Every bad option is refused when the Chaos is made, naming the parameter."""
    with pytest.raises(error, match=match):
        Chaos(**kwargs)


def test_a_fault_class_that_is_not_an_exception_or_an_async_switch_is_refused() -> None:
    """fault=int or an async enabled= flag fail when the Chaos is made, naming the option."""
    from resilience.chaos import Chaos  # this test only

    async def maybe() -> bool:
        return False

    with pytest.raises(TypeError, match="fault"):
        Chaos(fault=int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="enabled"):
        Chaos(fault=ValueError, enabled=maybe)  # type: ignore[arg-type]
    assert Chaos(fault=ValueError, rate=1.0) is not None
