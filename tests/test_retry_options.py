"""Options beyond SPEC §3's list: hooks, min_delay, unlimited attempts, preset overrides."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from resilience import (
    Retry,
    RetryError,
    RetryState,
    deadline,
    retry_api_call,
    retry_network_operation,
    retry_with_backoff,
)
from resilience.testing import FakeClock


class Flaky:
    """Raise ``error`` for the first ``failures`` calls, then return ``"ok"``."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("reset")
        self.calls = 0

    def __call__(self) -> str:
        """Fail or succeed as configured."""
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


class Sleeps:
    """Record each wait and move a fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        """Record and advance."""
        self.delays.append(seconds)
        self.clock.advance(seconds)


def test_before_is_told_each_attempt_number() -> None:
    """before(n) runs before every attempt, the first included."""
    seen: list[int] = []
    Retry(max_retries=3, base_delay=0.0, before=seen.append).call(Flaky(2))
    assert seen == [1, 2, 3]


def test_on_success_and_on_giveup_are_told_the_outcome() -> None:
    """on_success gets the result and attempts; on_giveup the last error."""
    successes: list[RetryState] = []
    give_ups: list[RetryState] = []
    retry = Retry(
        max_retries=1, base_delay=0.0, on_success=successes.append, on_giveup=give_ups.append
    )
    assert retry.call(Flaky(1)) == "ok"
    with pytest.raises(ConnectionError):
        retry.call(Flaky(5))
    assert [(s.attempt, s.result) for s in successes] == [(2, "ok")]
    assert [(s.attempt, type(s.exception)) for s in give_ups] == [(2, ConnectionError)]


def test_on_success_on_the_first_attempt() -> None:
    """A call that succeeds at once tells on_success too, with attempt 1."""
    successes: list[RetryState] = []
    Retry(on_success=successes.append).call(lambda: 5)
    assert [(s.attempt, s.result) for s in successes] == [(1, 5)]


def test_a_raising_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """Hooks cannot break the call."""

    def broken(_: object) -> None:
        raise RuntimeError("hook")

    retry = Retry(max_retries=1, base_delay=0.0, before=broken, on_success=broken)
    assert retry.call(Flaky(1)) == "ok"
    assert "before" in caplog.text
    assert "on_success" in caplog.text


def test_min_delay_raises_every_wait() -> None:
    """min_delay is the shortest wait, whatever the backoff says."""
    sleeps = Sleeps()
    Retry(max_retries=2, base_delay=0.0, min_delay=0.5, sleep=sleeps, clock=sleeps.clock).call(
        Flaky(2)
    )
    assert sleeps.delays == [0.5, 0.5]


def test_unlimited_attempts_stop_at_max_elapsed() -> None:
    """max_retries=None retries until max_elapsed would be reached."""
    sleeps = Sleeps()
    flaky = Flaky(1000)
    retry = Retry(
        max_retries=None, backoff=lambda n: 1.0, max_elapsed=10.0, sleep=sleeps, clock=sleeps.clock
    )
    with pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.calls == 10  # attempts start at 0, 1, ..., 9 s; the next would start at 10


def test_unlimited_attempts_stop_at_a_deadline() -> None:
    """Inside a deadline, max_retries=None needs no max_elapsed."""
    flaky = Flaky(1000)
    retry = Retry(max_retries=None, backoff=lambda n: 0.001)
    with deadline(0.05), pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.calls > 1


def test_unbounded_attempts_without_a_deadline_are_refused() -> None:
    """max_retries=None with no max_elapsed and no deadline raises before any attempt."""
    flaky = Flaky(0)
    with pytest.raises(ValueError, match="max_retries=None"):
        Retry(max_retries=None).call(flaky)
    assert flaky.calls == 0


@pytest.mark.parametrize(
    "option",
    [
        "backoff",
        "on_retry",
        "retry_on_result",
        "retry_after",
        "before",
        "on_success",
        "on_giveup",
        "clock",
    ],
)
def test_a_coroutine_function_where_a_plain_callable_is_needed_is_a_type_error(
    option: str,
) -> None:
    """An async def passed as a hook or strategy fails at once, naming the option."""

    async def hook(*_: Any) -> float:
        return 1.0

    with pytest.raises(TypeError, match=f"{option} must be a plain callable"):
        Retry(**{option: hook})


def test_an_async_callable_object_is_refused_too() -> None:
    """An object whose __call__ is async is a coroutine function in disguise."""

    class Hook:
        async def __call__(self, n: int) -> float:
            return 1.0

    with pytest.raises(TypeError, match="backoff"):
        Retry(backoff=Hook())


def test_max_retries_beyond_reason_is_a_value_error() -> None:
    """max_retries=10**40 is a mistake, said at construction."""
    with pytest.raises(ValueError, match="max_retries must be at most"):
        Retry(max_retries=10**40)
    with pytest.raises(ValueError, match="min_delay"):
        Retry(min_delay=-1.0)


def test_retries_are_logged_at_info_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each retry is an INFO record with extra= fields for structured logging."""
    caplog.set_level(logging.INFO, logger="resilience")
    Retry(max_retries=1, base_delay=0.0, name="logged").call(Flaky(1))
    (record,) = [r for r in caplog.records if r.levelno == logging.INFO]
    assert record.retry_name == "logged"  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.delay == 0.0  # type: ignore[attr-defined]
    assert record.exception_type == "ConnectionError"  # type: ignore[attr-defined]


def test_presets_take_every_option_as_an_override() -> None:
    """Called with options only, a preset returns a Retry with its defaults overridden."""
    retry = retry_api_call(name="github", max_retries=1, base_delay=0.0)
    info = retry._strategy_info()
    assert (info["name"], info["options"]["max_retries"], info["options"]["max_delay"]) == (
        "github",
        1,
        60.0,
    )
    flaky = Flaky(5)
    with pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.calls == 2
    network = retry_network_operation(max_retries=0)
    assert network._strategy_info()["options"]["max_delay"] == 30.0


def test_preset_overrides_are_checked() -> None:
    """Unknown options and stray positional arguments are TypeErrors."""
    with pytest.raises(TypeError, match="unknown retry option"):
        retry_api_call(retries=3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="pass the function first"):
        retry_network_operation(None, 1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="func must be callable"):
        retry_network_operation(3)  # type: ignore[call-overload]


def test_a_preset_decorates() -> None:
    """A preset made with options decorates sync and async functions."""
    flaky = Flaky(1)

    @retry_network_operation(base_delay=0.0)
    def connect() -> str:
        return flaky()

    assert connect() == "ok"

    @retry_api_call(base_delay=0.0)
    async def fetch() -> str:
        return "async"

    assert asyncio.run(fetch()) == "async"


def test_a_retry_after_callable_that_returns_garbage_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hint that is no number of seconds leaves the backoff's delay, logged."""
    sleeps = Sleeps()
    retry = retry_with_backoff(
        jitter=False, retry_after=lambda _: "soon", sleep=sleeps, clock=sleeps.clock
    )
    retry(Flaky(1))()
    assert sleeps.delays == [1.0]
    assert "not seconds" in caplog.text


def test_a_result_hint_is_read_from_the_result() -> None:
    """retry_after sees the retried result when a result is retried."""
    sleeps = Sleeps()
    results = iter([{"wait": 3.0}, {"wait": None}])
    retry = Retry(
        base_delay=0.0,
        retry_on_result=lambda r: r["wait"] is not None,
        retry_after=lambda r: r["wait"] if isinstance(r, dict) else None,
        sleep=sleeps,
        clock=sleeps.clock,
    )
    assert retry.call(lambda: next(results)) == {"wait": None}
    assert sleeps.delays == [3.0]
    with pytest.raises(RetryError):
        Retry(max_retries=0, retry_on_result=lambda r: True).call(lambda: 1)


def test_a_class_level_hint_on_an_error_the_preset_filter_admits_is_honoured() -> None:
    """An error retried through the API preset's status filter keeps its class-level hint."""

    class Busy(Exception):
        """A client error whose status and hint live on the class."""

        status_code = 503
        retry_after = 4.0

    sleeps = Sleeps()
    flaky = Flaky(1, Busy())
    assert retry_api_call(sleep=sleeps, clock=sleeps.clock).call(flaky) == "ok"
    assert sleeps.delays[0] >= 4.0
