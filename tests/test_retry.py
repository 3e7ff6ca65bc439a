import asyncio
import contextlib
import doctest
import email.utils
import inspect
import itertools
import logging
import threading
import time
from types import SimpleNamespace

import pytest

import resilience
from resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RetryContext,
    RetryError,
    RetryState,
    deadline,
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
)
from resilience import _retry_stats as retry_stats
from resilience._http_hints import parse_retry_after as _parse_retry_after
from resilience._http_hints import retry_after_of as _retry_after_header
from resilience._retry import RetryAttempt, _Policy
from resilience.backoff import Constant, Linear
from resilience.testing import FakeClock, instant_retries

_names = itertools.count()


def unique_name() -> str:
    """Return a retry name no other test uses."""
    return f"test-retry-{next(_names)}"


class Flaky:
    """A callable that raises ``error`` for its first ``failures`` calls, then returns."""

    def __init__(self, failures: int, error: BaseException | None = None, result: object = "ok"):
        self.failures = failures
        self.error = error if error is not None else ConnectionError("reset")
        self.result = result
        self.calls = 0

    def __call__(self, *args, **kwargs):
        """Fail or succeed as configured."""
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.result


def as_async(flaky: Flaky):
    """Return a coroutine function calling ``flaky``."""

    async def call(*args, **kwargs):
        return flaky(*args, **kwargs)

    return call


@pytest.fixture
def clock():
    """A fake clock at 0."""
    return FakeClock()


class Sleeps:
    """A sleep that records its delays and advances a fake clock."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        """Record the delay and advance the clock by it."""
        self.delays.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock):
    """A sleep recording its delays on the fake clock."""
    return Sleeps(clock)


def never(seconds: float) -> None:
    """A sleep that fails the test if called."""
    raise AssertionError(f"sleep({seconds}) should not have been called")


# ------------------------------------------------------------------ the decorator


def test_a_first_try_success_returns_at_once(sleeps, clock):
    """A call that succeeds is made once and never sleeps."""
    flaky = Flaky(0)
    assert retry_with_backoff(sleep=sleeps, clock=clock)(flaky)() == "ok"
    assert (flaky.calls, sleeps.delays) == (1, [])


def test_failures_are_retried_until_success(sleeps, clock):
    """A call failing twice succeeds on the third attempt."""
    flaky = Flaky(2)
    assert retry_with_backoff(sleep=sleeps, clock=clock)(flaky)() == "ok"
    assert flaky.calls == 3


def test_without_jitter_delays_are_exponential(sleeps, clock):
    """jitter=False waits base_delay * exponential_base ** (n - 1) before retry n."""
    flaky = Flaky(4)
    retry_with_backoff(
        max_retries=4, base_delay=0.5, exponential_base=3.0, jitter=False, sleep=sleeps, clock=clock
    )(flaky)()
    assert sleeps.delays == [0.5, 1.5, 4.5, 13.5]


def test_delays_are_capped_by_max_delay(sleeps, clock):
    """No delay exceeds max_delay."""
    flaky = Flaky(5)
    retry_with_backoff(
        max_retries=5, base_delay=1.0, max_delay=3.0, jitter=False, sleep=sleeps, clock=clock
    )(flaky)()
    assert sleeps.delays == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("jitter", [True, "full"], ids=["true", "full"])
def test_full_jitter_waits_up_to_the_exponential_delay(sleeps, clock, jitter):
    """jitter=True (full) waits between 0 and the un-jittered delay."""
    flaky = Flaky(3)
    retry_with_backoff(base_delay=1.0, jitter=jitter, sleep=sleeps, clock=clock)(flaky)()
    assert len(sleeps.delays) == 3
    assert all(0.0 <= d <= 2.0**n for n, d in enumerate(sleeps.delays))


def test_equal_jitter_waits_at_least_half_the_delay(sleeps, clock):
    """jitter="equal" waits between half and all of the un-jittered delay."""
    retry_with_backoff(base_delay=1.0, jitter="equal", sleep=sleeps, clock=clock)(Flaky(3))()
    assert all(2.0**n / 2 <= d <= 2.0**n for n, d in enumerate(sleeps.delays))


def test_decorrelated_jitter_stays_between_base_and_cap(sleeps, clock):
    """jitter="decorrelated" waits between base_delay and max_delay."""
    retry_with_backoff(
        max_retries=8,
        base_delay=1.0,
        max_delay=5.0,
        jitter="decorrelated",
        sleep=sleeps,
        clock=clock,
    )(Flaky(8))()
    assert len(sleeps.delays) == 8
    assert all(1.0 <= d <= 5.0 for d in sleeps.delays)


def test_a_custom_backoff_replaces_the_delay_options(sleeps, clock):
    """backoff= gives the delays: any (n) -> seconds callable."""
    retry_with_backoff(backoff=lambda n: n / 10, sleep=sleeps, clock=clock)(Flaky(3))()
    assert sleeps.delays == [0.1, 0.2, 0.3]


def test_a_backoff_strategy_object_is_accepted(sleeps, clock):
    """A resilience.backoff strategy works as backoff=."""
    retry_with_backoff(backoff=Linear(1.0, 1.0), sleep=sleeps, clock=clock)(Flaky(3))()
    assert sleeps.delays == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("delay", [-1, -1.0, -0.5], ids=["int", "float", "fraction"])
def test_negative_custom_delays_count_as_zero(clock, delay):
    """A custom backoff's negative delay is no delay at all: the retries go on at once."""
    flaky = Flaky(2)
    assert retry_with_backoff(backoff=lambda n: delay, sleep=never, clock=clock)(flaky)() == "ok"
    assert flaky.calls == 3


_BAD_DELAYS = [None, "x", "1.5", float("nan"), float("inf"), -float("inf"), True, 10**400, object()]
_BAD_DELAY_IDS = [
    "none",
    "str",
    "numeric-str",
    "nan",
    "inf",
    "minus-inf",
    "bool",
    "huge-int",
    "object",
]


@pytest.mark.parametrize("delay", _BAD_DELAYS, ids=_BAD_DELAY_IDS)
def test_a_backoff_returning_no_finite_number_re_raises_the_error_unchanged(clock, caplog, delay):
    """A non-number, NaN or infinite delay stops retrying; the call's own error propagates."""
    error = ConnectionError("down")
    flaky = Flaky(5, error)
    decorated = retry_with_backoff(backoff=lambda n: delay, sleep=never, clock=clock)(flaky)
    with (
        caplog.at_level(logging.ERROR, logger="resilience"),
        pytest.raises(ConnectionError) as caught,
    ):
        decorated()
    assert caught.value is error
    assert flaky.calls == 1
    assert "not a finite number of seconds" in caught.value.__notes__[0]
    assert [r.name for r in caplog.records] == ["resilience"]
    assert "backoff" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("delay", "shown"),
    [
        (None, "None"),
        ("x", "'x'"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (object(), "an object of type object"),
    ],
    ids=["none", "str", "nan", "inf", "object"],
)
def test_the_note_names_what_the_backoff_returned(clock, delay, shown):
    """The note says what came back instead of a delay."""
    flaky = Flaky(1)
    with pytest.raises(ConnectionError) as caught:
        retry_with_backoff(backoff=lambda n: delay, sleep=never, clock=clock)(flaky)()
    assert f"the backoff strategy returned {shown}" in caught.value.__notes__[0]


def test_a_backoff_whose_result_has_a_broken_repr_still_re_raises_the_error(clock):
    """Describing the bad delay never calls its repr, so nothing replaces the error."""

    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError

    error = ConnectionError("down")
    with pytest.raises(ConnectionError) as caught:
        retry_with_backoff(backoff=lambda n: Weird(), sleep=never, clock=clock)(Flaky(1, error))()
    assert caught.value is error


@pytest.mark.asyncio
@pytest.mark.parametrize("delay", [None, float("inf")], ids=["none", "inf"])
async def test_an_async_retry_with_a_bad_backoff_re_raises_the_error_unchanged(clock, delay):
    """Coroutine functions stop the same way, without sleeping."""
    error = ConnectionError("down")
    flaky = Flaky(5, error)

    async def never_async(seconds: float) -> None:
        raise AssertionError(seconds)

    decorated = retry_with_backoff(backoff=lambda n: delay, sleep=never_async, clock=clock)(
        as_async(flaky)
    )
    with pytest.raises(ConnectionError) as caught:
        await decorated()
    assert caught.value is error
    assert flaky.calls == 1


def test_a_retry_context_with_a_bad_backoff_re_raises_the_error_unchanged(clock):
    """In a RetryContext loop the block's error propagates after the first attempt."""
    error = ConnectionError("down")
    attempts = []

    def run() -> None:
        for attempt in RetryContext(backoff=lambda n: float("nan"), sleep=never, clock=clock):
            with attempt:
                attempts.append(attempt.number)
                raise error

    with pytest.raises(ConnectionError) as caught:
        run()
    assert caught.value is error
    assert attempts == [1]


def test_a_bad_backoff_while_retrying_a_result_raises_retry_error(clock):
    """With retry_on_result, a bad delay gives up with RetryError holding the last result."""
    decorated = retry_with_backoff(
        backoff=lambda n: None, retry_on_result=lambda r: r is None, sleep=never, clock=clock
    )(lambda: None)
    with pytest.raises(RetryError) as caught:
        decorated()
    assert caught.value.attempts == 1
    assert "not a finite number of seconds" in caught.value.__notes__[0]


def test_a_raising_backoff_stops_retrying_and_is_logged(clock, caplog):
    """A backoff that raises is logged and the call's own error propagates."""
    error = ConnectionError("down")

    def broken(n: int) -> float:
        raise ZeroDivisionError

    with pytest.raises(ConnectionError) as caught:
        retry_with_backoff(backoff=broken, sleep=never, clock=clock)(Flaky(5, error))()
    assert caught.value is error
    assert "the backoff strategy raised" in caught.value.__notes__[0]
    assert "backoff" in caplog.text


def test_exhausted_retries_re_raise_the_last_exception_with_a_note(sleeps, clock):
    """After max_retries the last exception itself propagates, noted with attempts and time."""
    error = TimeoutError("slow")
    flaky = Flaky(10, error)
    with pytest.raises(TimeoutError) as caught:
        retry_with_backoff(max_retries=2, base_delay=1.5, jitter=False, sleep=sleeps, clock=clock)(
            flaky
        )()
    assert caught.value is error
    assert flaky.calls == 3
    assert caught.value.__notes__ == ["gave up after 3 attempts in 4.500s: max_retries=2 reached"]


def test_the_last_of_several_distinct_exceptions_is_raised(clock):
    """When attempts raise different exceptions, the last one propagates, without chaining."""
    errors = [ConnectionError("one"), TimeoutError("two")]

    def fails():
        raise errors.pop(0)

    with pytest.raises(TimeoutError) as caught:
        retry_with_backoff(max_retries=1, base_delay=0.0, clock=clock)(fails)()
    assert str(caught.value) == "two"
    assert caught.value.__context__ is None


def test_a_named_retry_names_itself_in_the_note(clock):
    """The note names the retry when it has a name."""
    name = unique_name()
    with pytest.raises(ConnectionError) as caught:
        retry_with_backoff(max_retries=0, name=name, clock=clock)(Flaky(1))()
    assert caught.value.__notes__ == [
        f"retry {name!r} gave up after 1 attempt in 0.000s: max_retries=0 reached"
    ]


def test_max_retries_zero_makes_one_attempt(clock):
    """max_retries=0 never retries."""
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        retry_with_backoff(max_retries=0, sleep=never, clock=clock)(flaky)()
    assert flaky.calls == 1


def test_exceptions_outside_exceptions_are_not_retried(clock):
    """An exception not listed in exceptions propagates at once, without a note."""
    flaky = Flaky(3, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input") as caught:
        retry_with_backoff(exceptions=ConnectionError, sleep=never, clock=clock)(flaky)()
    assert flaky.calls == 1
    assert not hasattr(caught.value, "__notes__")


def test_exceptions_accepts_a_tuple(sleeps, clock):
    """A tuple of exception classes is retried."""
    flaky = Flaky(2, TimeoutError())
    retry_with_backoff(exceptions=(ConnectionError, TimeoutError), sleep=sleeps, clock=clock)(
        flaky
    )()
    assert flaky.calls == 3


def test_a_non_retried_exception_after_retries_is_noted():
    """An exception that is not retried, raised on a later attempt, tells the attempts made."""
    errors = [ConnectionError(), ValueError("bad")]

    def fails():
        raise errors.pop(0)

    with pytest.raises(ValueError, match="bad") as caught:
        retry_with_backoff(base_delay=0.0, exceptions=ConnectionError)(fails)()
    assert "gave up after 2 attempts" in caught.value.__notes__[0]
    assert "ValueError is not retried" in caught.value.__notes__[0]


def test_circuit_open_errors_are_not_retried_by_default(clock):
    """CircuitOpenError is in give_up_on by default, whatever its retry_after."""
    flaky = Flaky(3, CircuitOpenError("db", CircuitState.OPEN, 0.5))
    with pytest.raises(CircuitOpenError):
        retry_with_backoff(sleep=never, clock=clock)(flaky)()
    assert flaky.calls == 1


def test_give_up_on_wins_over_exceptions(clock):
    """An exception in both exceptions and give_up_on is not retried."""
    flaky = Flaky(3, ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        retry_with_backoff(
            exceptions=ConnectionError, give_up_on=ConnectionRefusedError, clock=clock
        )(flaky)()
    assert flaky.calls == 1


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), asyncio.CancelledError(), SystemExit(1), GeneratorExit()],
    ids=["keyboard-interrupt", "cancelled", "system-exit", "generator-exit"],
)
def test_base_exceptions_are_never_retried(clock, error):
    """BaseExceptions that are not Exceptions propagate at once, even if listed."""
    flaky = Flaky(3, error)
    with pytest.raises(type(error)):
        retry_with_backoff(exceptions=BaseException, sleep=never, clock=clock)(flaky)()
    assert flaky.calls == 1


def test_retry_on_result_retries_until_the_result_is_good(sleeps, clock):
    """A result the predicate rejects is retried like a failure."""
    results = iter([None, None, 7])
    fetch = retry_with_backoff(retry_on_result=lambda r: r is None, sleep=sleeps, clock=clock)(
        lambda: next(results)
    )
    assert fetch() == 7
    assert len(sleeps.delays) == 2


def test_retry_on_result_raises_retry_error_with_the_last_result(sleeps, clock):
    """When retries run out on a bad result, RetryError carries it and the attempts."""
    counter = itertools.count()
    fetch = retry_with_backoff(
        max_retries=2, retry_on_result=lambda r: r < 10, sleep=sleeps, clock=clock
    )(lambda: next(counter))
    with pytest.raises(RetryError) as caught:
        fetch()
    assert (caught.value.last_result, caught.value.attempts) == (2, 3)
    assert "gave up after 3 attempts" in caught.value.__notes__[0]


def test_a_raising_result_predicate_accepts_the_result(clock, caplog):
    """A retry_on_result that raises is logged and the result returned."""
    fetch = retry_with_backoff(retry_on_result=lambda r: 1 / 0, clock=clock)(lambda: "value")
    assert fetch() == "value"
    assert "retry_on_result" in caplog.text


def test_a_zero_delay_never_calls_sleep(clock):
    """With base_delay=0 the retries do not call sleep at all."""
    flaky = Flaky(3)
    retry_with_backoff(base_delay=0.0, sleep=never, clock=clock)(flaky)()
    assert flaky.calls == 4


# ------------------------------------------------------------------ time limits


def test_max_elapsed_stops_before_a_sleep_would_pass_it(sleeps, clock):
    """Retries stop when the next wait would take the call past max_elapsed."""
    flaky = Flaky(10)
    with pytest.raises(ConnectionError) as caught:
        retry_with_backoff(
            max_retries=10, base_delay=1.0, jitter=False, max_elapsed=6.0, sleep=sleeps, clock=clock
        )(flaky)()
    assert sleeps.delays == [1.0, 2.0]  # 3 s passed; waiting 4 more would reach 7 > 6
    assert flaky.calls == 3
    assert "would reach max_elapsed=6s" in caught.value.__notes__[0]


def test_a_wait_ending_exactly_at_max_elapsed_stops(sleeps, clock):
    """The next attempt must start before max_elapsed, as before a deadline: one inequality."""
    with pytest.raises(ConnectionError):
        retry_with_backoff(
            max_retries=3, base_delay=1.0, jitter=False, max_elapsed=3.0, sleep=sleeps, clock=clock
        )(Flaky(2))()
    assert sleeps.delays == [1.0]  # 1 s passed; 2 s more would start attempt 3 at 3.0


def test_max_elapsed_counts_the_time_attempts_take(sleeps, clock):
    """A slow attempt uses up max_elapsed too."""

    def slow():
        clock.advance(5.0)
        raise ConnectionError

    with pytest.raises(ConnectionError):
        retry_with_backoff(
            base_delay=1.0, jitter=False, max_elapsed=5.5, sleep=sleeps, clock=clock
        )(slow)()
    assert sleeps.delays == []


def test_an_enclosing_deadline_stops_retries_before_sleeping_past_it(sleeps, clock):
    """Inside deadline(s), a wait that would reach the deadline is not taken."""
    flaky = Flaky(10)
    with deadline(2.5), pytest.raises(ConnectionError) as caught:
        retry_with_backoff(max_retries=10, base_delay=1.0, jitter=False, sleep=sleeps, clock=clock)(
            flaky
        )()
    assert sleeps.delays == [1.0, 2.0]  # the fake sleeps take no real time
    assert "would reach the deadline" in caught.value.__notes__[0]


def test_a_passed_deadline_stops_even_zero_delay_retries(clock):
    """When the deadline has passed no further attempt is made."""
    flaky = Flaky(3)
    with deadline(0.0), pytest.raises(ConnectionError):
        retry_with_backoff(base_delay=0.0, clock=clock)(flaky)()
    assert flaky.calls == 1


# ------------------------------------------------------------------ retry-after hints


class ThrottledError(Exception):
    """An error carrying a retry_after hint."""

    def __init__(self, retry_after: object):
        super().__init__(retry_after)
        self.retry_after = retry_after


def test_a_retry_after_attribute_is_waited_at_least(sleeps, clock):
    """An exception's numeric retry_after is never retried sooner."""
    retry_with_backoff(base_delay=1.0, jitter=False, sleep=sleeps, clock=clock)(
        Flaky(2, ThrottledError(4.5))
    )()
    assert sleeps.delays == [4.5, 4.5]


def test_a_shorter_retry_after_keeps_the_backoff_delay(sleeps, clock):
    """A hint shorter than the backoff delay does not shorten it."""
    retry_with_backoff(base_delay=3.0, jitter=False, sleep=sleeps, clock=clock)(
        Flaky(1, ThrottledError(1))
    )()
    assert sleeps.delays == [3.0]


def test_a_retry_after_longer_than_max_retry_after_gives_up(clock):
    """A hint over max_retry_after re-raises at once, noted."""
    error = ThrottledError(90.0)
    with pytest.raises(ThrottledError) as caught:
        retry_with_backoff(max_retry_after=60.0, sleep=never, clock=clock)(Flaky(1, error))()
    assert caught.value is error
    assert "retry-after hint of 90.000s exceeds max_retry_after=60s" in error.__notes__[0]


def test_max_retry_after_defaults_to_max_delay(sleeps, clock):
    """Without max_retry_after, hints up to max_delay are honoured and longer ones give up."""
    decorate = retry_with_backoff(max_delay=10.0, sleep=sleeps, clock=clock)
    decorate(Flaky(1, ThrottledError(10.0)))()
    assert sleeps.delays == [10.0]
    with pytest.raises(ThrottledError):
        decorate(Flaky(1, ThrottledError(10.5)))()


def test_an_infinite_retry_after_always_gives_up(clock):
    """retry_after=inf is too long even for max_retry_after=inf."""
    with pytest.raises(ThrottledError):
        retry_with_backoff(max_retry_after=float("inf"), sleep=never, clock=clock)(
            Flaky(1, ThrottledError(float("inf")))
        )()


@pytest.mark.parametrize(
    "hint", [True, -1.0, float("nan"), "5", None], ids=["bool", "negative", "nan", "str", "none"]
)
def test_a_hint_that_is_not_a_usable_number_is_ignored(sleeps, clock, hint):
    """Only a real, non-negative retry_after is a hint."""
    retry_with_backoff(base_delay=1.0, jitter=False, sleep=sleeps, clock=clock)(
        Flaky(1, ThrottledError(hint))
    )()
    assert sleeps.delays == [1.0]


def test_a_circuit_open_error_retry_after_is_honoured_when_retried(sleeps, clock):
    """With give_up_on=(), an open circuit's retry_after delays the retry."""
    error = CircuitOpenError("db", CircuitState.OPEN, 2.5)
    retry_with_backoff(give_up_on=(), base_delay=0.1, jitter=False, sleep=sleeps, clock=clock)(
        Flaky(1, error)
    )()
    assert sleeps.delays == [2.5]


# ------------------------------------------------------------------ on_retry, names, metrics


def test_on_retry_receives_the_state_before_each_wait(sleeps, clock):
    """on_retry gets attempt, exception, result, delay, elapsed and name."""
    states: list[RetryState] = []
    error = ConnectionError()
    name = unique_name()
    retry_with_backoff(
        base_delay=1.0, jitter=False, on_retry=states.append, name=name, sleep=sleeps, clock=clock
    )(Flaky(2, error))()
    assert states == [
        RetryState(attempt=1, exception=error, result=None, delay=1.0, elapsed=0.0, name=name),
        RetryState(attempt=2, exception=error, result=None, delay=2.0, elapsed=1.0, name=name),
    ]


def test_on_retry_sees_retried_results(sleeps, clock):
    """For a retried result, on_retry gets the result and no exception."""
    states: list[RetryState] = []
    results = iter(["", "x"])
    retry_with_backoff(
        retry_on_result=lambda r: r == "", on_retry=states.append, sleep=sleeps, clock=clock
    )(lambda: next(results))()
    assert (states[0].exception, states[0].result) == (None, "")


def test_a_raising_on_retry_is_logged_and_retrying_goes_on(clock, caplog):
    """An on_retry that raises does not stop the retries."""

    def broken(state: RetryState) -> None:
        raise RuntimeError("listener bug")

    flaky = Flaky(2)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert retry_with_backoff(base_delay=0.0, on_retry=broken, clock=clock)(flaky)() == "ok"
    assert "on_retry" in caplog.text


def test_retry_state_is_immutable():
    """RetryState fields cannot be reassigned."""
    state = RetryState(1, None, None, 0.0, 0.0, None)
    with pytest.raises(AttributeError):
        state.attempt = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("failures", "max_retries", "outcome", "attempts"),
    [
        (0, 3, "success_without_retry", 1),
        (2, 3, "success_with_retry", 3),
        (9, 0, "failed_without_retry", 1),
        (9, 2, "failed_with_retry", 3),
    ],
    ids=["first-try", "after-retries", "no-retries", "exhausted"],
)
def test_named_retries_count_calls_and_attempts(clock, failures, max_retries, outcome, attempts):
    """A named retry records each finished call's outcome and attempts for the metrics."""
    name = unique_name()
    call = retry_with_backoff(max_retries=max_retries, base_delay=0.0, name=name, clock=clock)(
        Flaky(failures)
    )
    with pytest.raises(ConnectionError) if failures > max_retries else _nothing():
        call()
    snapshot = retry_stats.counter_for(name).snapshot()
    assert snapshot["attempts"] == attempts
    assert snapshot["outcomes"][outcome] == 1
    assert sum(snapshot["outcomes"].values()) == 1


def test_a_named_retry_counts_an_interrupted_call_as_failed(clock):
    """A call ended by a BaseException counts its attempts but no outcome: not a failure."""
    name = unique_name()
    call = retry_with_backoff(name=name, clock=clock)(Flaky(1, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        call()
    assert retry_stats.counter_for(name).snapshot()["attempts"] == 1
    assert sum(retry_stats.counter_for(name).snapshot()["outcomes"].values()) == 0


class _nothing:  # noqa: N801  # reads like contextlib.nullcontext in the test above
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------ wrapping


def test_the_wrapper_keeps_the_function_metadata():
    """The wrapper keeps the name, docstring and signature."""

    def fetch(url: str, *, timeout: float = 1.0) -> str:
        """Fetch a URL."""
        return url

    wrapped = retry_with_backoff()(fetch)
    assert (wrapped.__name__, wrapped.__doc__) == ("fetch", "Fetch a URL.")
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]


def test_arguments_are_passed_through(clock):
    """Positional and keyword arguments reach the function on every attempt."""
    seen = []

    @retry_with_backoff(base_delay=0.0, clock=clock)
    def record(a: int, b: int = 0, *, c: int) -> int:
        seen.append((a, b, c))
        if len(seen) < 2:
            raise ConnectionError
        return a + b + c

    assert record(1, b=2, c=3) == 6
    assert seen == [(1, 2, 3), (1, 2, 3)]


def test_methods_are_retried_with_their_instance(clock):
    """Decorated methods bind self as usual."""

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry_with_backoff(base_delay=0.0, clock=clock)
        def get(self, key: str) -> str:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError
            return key.upper()

    client = Client()
    assert (client.get("k"), client.calls) == ("K", 3)


def test_async_generator_functions_are_refused():
    """Decorating an async generator function raises TypeError at decoration time."""

    async def numbers():
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        retry_with_backoff()(numbers)


def test_a_coroutine_sleep_on_a_sync_function_is_refused(clock):
    """sleep=FakeClock.asleep only fits async functions: TypeError when decorating sync."""
    with pytest.raises(TypeError, match="coroutine function"):
        retry_with_backoff(sleep=clock.asleep)(lambda: 1)


def test_one_policy_decorates_many_functions(clock):
    """A decorator made once can be applied to several functions."""
    decorate = retry_with_backoff(base_delay=0.0, clock=clock)
    one, two = Flaky(1, result=1), Flaky(2, result=2)
    assert (decorate(one)(), decorate(two)()) == (1, 2)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"max_retries": -1}, ValueError, "max_retries must be >= 0, got -1"),
        ({"max_retries": 2.0}, TypeError, "max_retries must be an int, got 2.0"),
        ({"max_retries": True}, TypeError, "max_retries must be an int, got True"),
        ({"base_delay": -1}, ValueError, "base_delay must be >= 0, got -1"),
        ({"base_delay": "1"}, TypeError, "base_delay must be a number, got '1'"),
        ({"max_delay": float("nan")}, ValueError, "max_delay must not be NaN"),
        ({"max_delay": float("inf")}, ValueError, "max_delay must be finite"),
        ({"exponential_base": 0.5}, ValueError, "exponential_base must be >= 1, got 0.5"),
        ({"jitter": "gaussian"}, ValueError, "jitter must be a bool or one of"),
        ({"jitter": 1}, TypeError, "jitter must be a bool or one of"),
        (
            {"jitter": "decorrelated", "base_delay": 0.0},
            ValueError,
            "base_delay must be > 0 for decorrelated jitter",
        ),
        ({"exceptions": ValueError()}, TypeError, "exceptions must be an exception class"),
        ({"exceptions": (ValueError, int)}, TypeError, "exceptions must be an exception class"),
        ({"give_up_on": "CircuitOpenError"}, TypeError, "give_up_on must be an exception class"),
        ({"retry_on_result": 5}, TypeError, "retry_on_result must be callable, got 5"),
        ({"on_retry": "log"}, TypeError, "on_retry must be callable, got 'log'"),
        ({"max_elapsed": -1.0}, ValueError, "max_elapsed must be >= 0, got -1.0"),
        ({"max_elapsed": True}, TypeError, "max_elapsed must be a number, got True"),
        ({"max_retry_after": -5}, ValueError, "max_retry_after must be >= 0, got -5"),
        ({"backoff": 2.0}, TypeError, "backoff must be callable, got 2.0"),
        (
            {"backoff": Constant(1.0), "base_delay": 2.0},
            ValueError,
            "backoff replaces base_delay, max_delay, exponential_base and jitter",
        ),
        ({"backoff": Constant(1.0), "jitter": False}, ValueError, "got backoff=.* jitter=False"),
        (
            {"budget": 0.2},
            TypeError,
            "budget must be a RetryBudget, a RetryThrottle or None, got 0.2",
        ),
        ({"name": ""}, ValueError, "name must not be empty"),
        ({"name": 7}, TypeError, "name must be a str, got 7"),
        ({"sleep": None}, TypeError, "sleep must be callable, got None"),
        ({"clock": 0}, TypeError, "clock must be callable, got 0"),
    ],
    ids=lambda value: None if not isinstance(value, str) else value[:30],
)
def test_bad_options_are_refused_when_decorating(kwargs, error, words):
    """Bad options raise TypeError/ValueError naming the parameter and value, at decoration."""
    with pytest.raises(error, match=words):
        retry_with_backoff(**kwargs)


def test_options_are_keyword_only():
    """Passing an option positionally is a TypeError."""
    with pytest.raises(TypeError):
        retry_with_backoff(3)  # type: ignore[misc]


# ------------------------------------------------------------------ async


@pytest.mark.asyncio
async def test_async_functions_stay_coroutine_functions():
    """The wrapper of an async function is an async function."""

    async def fetch() -> int:
        return 1

    wrapped = retry_with_backoff()(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert await wrapped() == 1


@pytest.mark.asyncio
async def test_async_failures_are_retried_with_an_async_fake_sleep(clock):
    """FakeClock.asleep works as sleep= and advances the clock."""
    flaky = Flaky(3)
    wrapped = retry_with_backoff(base_delay=1.0, jitter=False, sleep=clock.asleep, clock=clock)(
        as_async(flaky)
    )
    assert await wrapped() == "ok"
    assert (flaky.calls, clock()) == (4, 7.0)


@pytest.mark.asyncio
async def test_async_retries_accept_a_plain_sleep(sleeps, clock):
    """A plain (non-coroutine) sleep works for async functions too."""
    await retry_with_backoff(base_delay=1.0, jitter=False, sleep=sleeps, clock=clock)(
        as_async(Flaky(2))
    )()
    assert sleeps.delays == [1.0, 2.0]


@pytest.mark.asyncio
async def test_async_retries_sleep_without_blocking_the_loop():
    """By default async retries wait with asyncio.sleep, so other tasks run meanwhile."""
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await retry_with_backoff(base_delay=0.02, jitter=False)(as_async(Flaky(1)))()
    task.cancel()
    assert ticks > 1


@pytest.mark.asyncio
async def test_async_exhausted_retries_re_raise_the_last_exception(clock):
    """An async call that keeps failing raises its last exception, noted."""
    error = ConnectionError("down")
    with pytest.raises(ConnectionError) as caught:
        await retry_with_backoff(max_retries=2, sleep=clock.asleep, clock=clock)(
            as_async(Flaky(9, error))
        )()
    assert caught.value is error
    assert "gave up after 3 attempts" in error.__notes__[0]


@pytest.mark.asyncio
async def test_async_retry_on_result_raises_retry_error(clock):
    """retry_on_result works for async functions."""

    async def empty() -> list[int]:
        return []

    with pytest.raises(RetryError) as caught:
        await retry_with_backoff(
            max_retries=1, retry_on_result=lambda r: not r, clock=clock, sleep=clock.asleep
        )(empty)()
    assert caught.value.attempts == 2


@pytest.mark.asyncio
async def test_async_methods_are_retried_with_their_instance(clock):
    """Decorated async methods bind self as usual."""

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry_with_backoff(base_delay=0.0, clock=clock)
        async def get(self) -> int:
            self.calls += 1
            if self.calls < 2:
                raise TimeoutError
            return self.calls

    assert await Client().get() == 2


@pytest.mark.asyncio
async def test_cancelling_a_task_during_a_backoff_sleep_ends_it_at_once():
    """A task cancelled while it waits to retry stops at once, without another attempt."""
    flaky = Flaky(5)
    failed = asyncio.Event()

    async def call() -> str:
        try:
            return flaky()
        finally:
            failed.set()

    name = unique_name()
    wrapped = retry_with_backoff(base_delay=30.0, jitter=False, name=name)(call)
    task = asyncio.create_task(wrapped())
    await failed.wait()
    await asyncio.sleep(0)  # let the task reach its backoff sleep
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert flaky.calls == 1
    assert (
        sum(retry_stats.counter_for(name).snapshot()["outcomes"].values()) == 0
    )  # a cancellation is no failure


@pytest.mark.asyncio
async def test_a_cancelled_attempt_is_not_retried(clock):
    """CancelledError raised by the function propagates at once."""
    flaky = Flaky(3, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await retry_with_backoff(clock=clock, sleep=clock.asleep)(as_async(flaky))()
    assert flaky.calls == 1


# ------------------------------------------------------------------ concurrency


def test_threads_sharing_a_decorated_function_keep_their_own_attempts():
    """8 threads calling one decorated function each see their own attempt counts."""
    states: list[tuple[int, int]] = []
    lock = threading.Lock()

    def on_retry(state: RetryState) -> None:
        with lock:
            states.append((state.exception.args[0], state.attempt))  # type: ignore[union-attr]

    @retry_with_backoff(
        max_retries=6, base_delay=0.0001, jitter=False, on_retry=on_retry, sleep=lambda s: None
    )
    def op(call_id: int, fails: int, seen: list[int]) -> int:
        seen.append(1)
        time.sleep(0)  # let other threads interleave
        if len(seen) <= fails:
            raise ConnectionError(call_id)
        return len(seen)

    results: dict[int, tuple[int, int]] = {}

    def work(thread: int) -> None:
        for i in range(50):
            call_id = thread * 1000 + i
            fails = (thread + i) % 6
            results[call_id] = (fails, op(call_id, fails, []))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 400
    assert all(attempts == fails + 1 for fails, attempts in results.values())
    for call_id, (fails, _) in results.items():
        assert [a for c, a in states if c == call_id] == list(range(1, fails + 1))


@pytest.mark.asyncio
async def test_tasks_sharing_a_decorated_function_keep_their_own_attempts():
    """200 tasks calling one decorated coroutine function each see their own attempts."""
    states: list[tuple[int, int]] = []

    async def yield_once(seconds: float) -> None:
        await asyncio.sleep(0)

    @retry_with_backoff(
        max_retries=6,
        base_delay=0.001,
        jitter=False,
        on_retry=lambda s: states.append((s.exception.args[0], s.attempt)),  # type: ignore[union-attr]
        sleep=yield_once,
    )
    async def op(call_id: int, fails: int, seen: list[int]) -> int:
        seen.append(1)
        await asyncio.sleep(0)
        if len(seen) <= fails:
            raise ConnectionError(call_id)
        return len(seen)

    results = await asyncio.gather(*(op(i, i % 5, []) for i in range(200)))
    assert results == [i % 5 + 1 for i in range(200)]
    for i in range(200):
        assert [a for c, a in states if c == i] == list(range(1, i % 5 + 1))


# ------------------------------------------------------------------ RetryContext


def test_a_retry_context_loop_retries_a_block(sleeps, clock):
    """A RetryContext loop of `with attempt:` blocks retries the block until it passes."""
    numbers = []
    for attempt in RetryContext(base_delay=1.0, jitter=False, sleep=sleeps, clock=clock):
        with attempt:
            numbers.append(attempt.number)
            if attempt.number < 3:
                raise ConnectionError
    assert (numbers, sleeps.delays) == ([1, 2, 3], [1.0, 2.0])


def test_a_retry_context_gives_up_with_the_last_exception(clock):
    """When retries run out the block's exception propagates out of the loop, noted."""
    error = TimeoutError("slow")
    attempts = []

    def loop() -> None:
        for attempt in RetryContext(max_retries=2, base_delay=0.0, clock=clock):
            with attempt:
                attempts.append(attempt.number)
                raise error

    with pytest.raises(TimeoutError) as caught:
        loop()
    assert caught.value is error
    assert attempts == [1, 2, 3]
    assert "gave up after 3 attempts" in error.__notes__[0]


def test_a_retry_context_does_not_retry_other_exceptions(clock):
    """An exception outside exceptions leaves the loop at once."""
    attempts = []

    def loop() -> None:
        for attempt in RetryContext(exceptions=OSError, clock=clock):
            with attempt:
                attempts.append(attempt.number)
                raise KeyError("k")

    with pytest.raises(KeyError):
        loop()
    assert attempts == [1]


def test_a_retry_context_retries_results_given_with_set_result(clock):
    """Results given with set_result are judged by retry_on_result; RetryError at the end."""

    def loop() -> None:
        for attempt in RetryContext(
            max_retries=2, base_delay=0.0, retry_on_result=lambda r: r < 0, clock=clock
        ):
            with attempt:
                attempt.set_result(-attempt.number)

    with pytest.raises(RetryError) as caught:
        loop()
    assert (caught.value.last_result, caught.value.attempts) == (-3, 3)


def test_a_retry_context_accepts_a_good_result(clock):
    """A result that passes retry_on_result ends the loop."""
    numbers = []
    for attempt in RetryContext(base_delay=0.0, retry_on_result=lambda r: r is None, clock=clock):
        with attempt:
            numbers.append(attempt.number)
            attempt.set_result(None if attempt.number == 1 else "done")
    assert numbers == [1, 2]


def test_a_retry_context_needs_each_attempt_used_in_a_with(clock):
    """Skipping `with attempt:` raises RuntimeError rather than losing the outcome."""
    with pytest.raises(RuntimeError, match="was not used as `with attempt:`"):
        for _attempt in RetryContext(clock=clock):
            pass


def test_a_stale_attempt_cannot_be_entered_again(clock):
    """Reusing a finished attempt raises RuntimeError."""
    loop = iter(RetryContext(base_delay=0.0, clock=clock))
    first = next(loop)
    with first:
        pass
    with pytest.raises(RuntimeError, match="not the current attempt"), first:
        pass


def test_a_retry_context_runs_independent_loops(clock):
    """One RetryContext runs several loops, each with its own count."""
    context = RetryContext(max_retries=1, base_delay=0.0, clock=clock)
    for _ in range(2):
        numbers = []
        for attempt in context:
            with attempt:
                numbers.append(attempt.number)
                if attempt.number == 1:
                    raise ConnectionError
        assert numbers == [1, 2]


def test_a_base_exception_in_a_retry_context_ends_the_loop(clock):
    """KeyboardInterrupt in the block propagates at once."""
    attempts = []

    def loop() -> None:
        for attempt in RetryContext(clock=clock):
            with attempt:
                attempts.append(attempt.number)
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop()
    assert attempts == [1]


def test_a_named_retry_context_records_its_loops(clock):
    """A named RetryContext records each loop for the metrics."""
    name = unique_name()
    for attempt in RetryContext(base_delay=0.0, name=name, clock=clock):
        with attempt:
            if attempt.number == 1:
                raise ConnectionError
    assert retry_stats.counter_for(name).snapshot()["outcomes"]["success_with_retry"] == 1


def test_a_sync_retry_context_refuses_an_async_sleep(clock):
    """A sync loop with a coroutine sleep raises TypeError instead of never waiting."""

    def loop() -> None:
        for attempt in RetryContext(base_delay=1.0, sleep=clock.asleep, clock=clock):
            with attempt:
                raise ConnectionError

    with pytest.raises(TypeError, match="use `async for`"):
        loop()


@pytest.mark.asyncio
async def test_an_async_retry_context_loop_retries_a_block(clock):
    """An `async for` RetryContext loop retries with an async sleep."""
    numbers = []
    async for attempt in RetryContext(
        base_delay=1.0, jitter=False, sleep=clock.asleep, clock=clock
    ):
        with attempt:
            numbers.append(attempt.number)
            if attempt.number < 3:
                raise ConnectionError
    assert (numbers, clock()) == ([1, 2, 3], 3.0)


@pytest.mark.asyncio
async def test_an_async_retry_context_gives_up_with_the_last_exception(clock):
    """The last exception propagates out of an async for loop."""

    async def loop() -> None:
        async for attempt in RetryContext(max_retries=1, sleep=clock.asleep, clock=clock):
            with attempt:
                raise ConnectionError

    with pytest.raises(ConnectionError):
        await loop()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40], ids=str)
def test_get_delay_without_jitter_is_the_exponential_delay(n):
    """get_delay(n) is min(max_delay, base_delay * exponential_base ** (n - 1))."""
    context = RetryContext(base_delay=0.5, max_delay=20.0, exponential_base=3.0, jitter=False)
    assert context.get_delay(n) == min(20.0, 0.5 * 3.0 ** (n - 1))


def test_get_delay_with_jitter_stays_under_the_exponential_delay():
    """With full jitter get_delay(n) draws from [0, that]."""
    context = RetryContext(base_delay=1.0)
    assert all(0.0 <= context.get_delay(4) <= 8.0 for _ in range(100))


def test_get_delay_uses_a_custom_backoff():
    """get_delay follows backoff=."""
    assert RetryContext(backoff=Constant(2.5)).get_delay(9) == 2.5


@pytest.mark.parametrize(
    ("n", "error"), [(0, ValueError), (1.0, TypeError), (True, TypeError)], ids=str
)
def test_get_delay_refuses_bad_n(n, error):
    """get_delay validates n."""
    with pytest.raises(error, match="n must be"):
        RetryContext().get_delay(n)


def test_retry_context_validates_its_options():
    """RetryContext refuses bad options when made."""
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        RetryContext(max_retries=-2)


def test_retry_context_has_a_readable_repr():
    """The reprs show the name and the attempt number."""
    assert repr(RetryContext(name="db")) == "<RetryContext name='db'>"
    assert repr(RetryAttempt(None, 2)) == "<RetryAttempt number=2>"  # type: ignore[arg-type]


# ------------------------------------------------------------------ retry_on_failure


def test_retry_on_failure_calls_the_function_with_retries(clock):
    """retry_on_failure(func, **options) returns func()'s result after retries."""
    flaky = Flaky(2, result=5)
    assert retry_on_failure(flaky, base_delay=0.0, clock=clock) == 5
    assert flaky.calls == 3


def test_retry_on_failure_re_raises_when_giving_up(clock):
    """retry_on_failure re-raises the last exception."""
    with pytest.raises(ConnectionError):
        retry_on_failure(Flaky(9), max_retries=1, base_delay=0.0, clock=clock)


def test_retry_on_failure_validates_before_calling(clock):
    """Bad options raise before func is called."""
    flaky = Flaky(0)
    with pytest.raises(ValueError, match="base_delay"):
        retry_on_failure(flaky, base_delay=-1.0)
    assert flaky.calls == 0


@pytest.mark.asyncio
async def test_retry_on_failure_awaits_coroutine_functions(clock):
    """For a coroutine function retry_on_failure returns an awaitable."""
    assert (
        await retry_on_failure(as_async(Flaky(1, result=9)), sleep=clock.asleep, clock=clock) == 9
    )


# ------------------------------------------------------------------ presets


def test_retry_network_operation_retries_network_errors_three_times():
    """The network preset retries ConnectionError and TimeoutError 3 times, passing arguments."""
    seen = []

    def connect(host: str, *, port: int) -> str:
        seen.append((host, port))
        raise (ConnectionError if len(seen) % 2 else TimeoutError)(host)

    with instant_retries(), pytest.raises(TimeoutError):
        retry_network_operation(connect, "db", port=5432)
    assert seen == [("db", 5432)] * 4


def test_retry_network_operation_does_not_retry_other_errors():
    """The network preset lets other errors through at once."""
    flaky = Flaky(1, ValueError())
    with instant_retries(), pytest.raises(ValueError):
        retry_network_operation(flaky)
    assert flaky.calls == 1


def test_retry_network_operation_refuses_a_non_callable():
    """A non-callable func is a TypeError."""
    with pytest.raises(TypeError, match="func must be callable"):
        retry_network_operation(5)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_retry_network_operation_awaits_coroutine_functions():
    """The network preset works for coroutine functions."""
    flaky = Flaky(2, TimeoutError(), result="up")
    with instant_retries():
        assert await retry_network_operation(as_async(flaky)) == "up"
    assert flaky.calls == 3


class HTTPError(Exception):
    """An error shaped like the ones HTTP clients raise."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, where: str = "code"):
        super().__init__(status)
        if where == "code":
            self.status_code = status
        elif where == "status":
            self.status = status
        self.response = SimpleNamespace(status_code=status, headers=headers or {})


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504], ids=str)
@pytest.mark.parametrize("where", ["code", "status", "response"], ids=str)
def test_retry_api_call_retries_retryable_statuses(status, where):
    """Errors with status 429/500/502/503/504 on .status_code, .status or .response are retried."""
    flaky = Flaky(2, HTTPError(status, where=where), result={"ok": True})
    with instant_retries():
        assert retry_api_call(flaky) == {"ok": True}
    assert flaky.calls == 3


@pytest.mark.parametrize("status", [400, 401, 404, 501], ids=str)
def test_retry_api_call_does_not_retry_other_statuses(status):
    """Other statuses propagate at once."""
    flaky = Flaky(1, HTTPError(status))
    with instant_retries(), pytest.raises(HTTPError):
        retry_api_call(flaky)
    assert flaky.calls == 1


def test_retry_api_call_retries_five_times():
    """The API preset makes up to 6 attempts."""
    flaky = Flaky(99, ConnectionError())
    with instant_retries(), pytest.raises(ConnectionError):
        retry_api_call(flaky)
    assert flaky.calls == 6


def test_retry_api_call_gives_up_on_a_retry_after_over_a_minute():
    """A Retry-After header over 60 s gives up at once."""
    flaky = Flaky(1, HTTPError(503, {"Retry-After": "120"}))
    with instant_retries(), pytest.raises(HTTPError) as caught:
        retry_api_call(flaky)
    assert flaky.calls == 1
    assert "retry-after hint of 120.000s" in caught.value.__notes__[0]


def test_a_retry_after_header_in_seconds_is_waited(clock, sleeps):
    """The API policy waits at least a Retry-After given in seconds."""
    policy = _Policy.build(
        jitter=False,
        base_delay=0.1,
        retry_if=lambda e: True,
        retry_after=_retry_after_header,
        sleep=sleeps,
        clock=clock,
    )
    policy.call(Flaky(1, HTTPError(503, {"retry-after": "7"})), (), {})
    assert sleeps.delays == [7.0]


def test_a_retry_after_attribute_wins_over_the_header(clock, sleeps):
    """A retry_after attribute is read before the response header."""
    policy = _Policy.build(jitter=False, base_delay=0.1, sleep=sleeps, clock=clock)
    error = HTTPError(503, {"Retry-After": "7"})
    error.retry_after = 2.0  # type: ignore[attr-defined]
    policy.call(Flaky(1, error), (), {})
    assert sleeps.delays == [2.0]


def test_a_retry_after_http_date_is_read_as_seconds_from_now():
    """Retry-After as an HTTP date is the seconds until then."""
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28.0 <= _parse_retry_after(when) <= 30.0  # type: ignore[operator]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        (b"3", 3.0),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (4, 4.0),
        (object(), None),
    ],
    ids=[
        "zero",
        "spaces",
        "fraction",
        "bytes",
        "negative",
        "nan",
        "word",
        "past-date",
        "int",
        "obj",
    ],
)
def test_retry_after_values_are_parsed(value, seconds):
    """Retry-After parses seconds and dates; bad values are no hint."""
    assert _parse_retry_after(value) == seconds


def test_an_error_without_response_headers_has_no_header_hint():
    """No response, or headers without get, is no hint."""
    assert _retry_after_header(ConnectionError()) is None
    error = ConnectionError()
    error.response = SimpleNamespace(headers=None)  # type: ignore[attr-defined]
    assert _retry_after_header(error) is None


def test_a_raising_hint_source_is_logged_and_ignored(clock, sleeps, caplog):
    """A hint source that raises leaves the backoff delay."""

    def broken(exc: BaseException) -> float | None:
        raise RuntimeError

    policy = _Policy.build(jitter=False, retry_after=broken, sleep=sleeps, clock=clock)
    policy.call(Flaky(1), (), {})
    assert sleeps.delays == [1.0]
    assert "retry_after of retry None raised" in caplog.text


# ------------------------------------------------------------------ instant_retries, FakeClock


def test_instant_retries_skips_every_sleep():
    """Inside instant_retries() no retry sleeps, however long its delays."""
    flaky = Flaky(3)
    with instant_retries():
        assert retry_with_backoff(base_delay=30.0, sleep=never)(flaky)() == "ok"
    assert flaky.calls == 4


def test_sleeps_resume_after_instant_retries():
    """After the block, retries sleep again."""
    with instant_retries():
        pass
    with pytest.raises(AssertionError, match="should not have been called"):
        retry_with_backoff(base_delay=1.0, sleep=never)(Flaky(1))()


def test_instant_retries_nests():
    """Nested uses keep sleeps skipped until the outermost ends."""
    with instant_retries():
        with instant_retries():
            pass
        retry_with_backoff(base_delay=5.0, sleep=never)(Flaky(1))()


def test_instant_retries_covers_threads_started_inside():
    """Code running in threads started in the block retries instantly too."""
    flaky = Flaky(2)
    errors = []

    def work():
        try:
            retry_with_backoff(base_delay=30.0, sleep=never)(flaky)()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    with instant_retries():
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert (errors, flaky.calls) == ([], 3)


def test_instant_retries_decorates_functions():
    """@instant_retries and @instant_retries() run the function with instant retries."""

    @instant_retries
    def bare() -> str:
        return retry_with_backoff(base_delay=9.0, sleep=never)(Flaky(1))()

    @instant_retries()
    def called() -> str:
        return retry_with_backoff(base_delay=9.0, sleep=never)(Flaky(1))()

    assert (bare(), called()) == ("ok", "ok")
    assert bare.__name__ == "bare"


@pytest.mark.asyncio
async def test_instant_retries_decorates_coroutine_functions():
    """@instant_retries covers the whole run of a coroutine function."""

    @instant_retries
    async def run() -> str:
        await asyncio.sleep(0)
        return await retry_with_backoff(base_delay=9.0, sleep=never)(as_async(Flaky(2)))()

    assert inspect.iscoroutinefunction(run)
    assert await run() == "ok"


@pytest.mark.asyncio
async def test_instant_retries_works_with_async_with():
    """Using instant_retries() with `async with` skips async retry sleeps."""
    async with instant_retries():
        assert await retry_with_backoff(base_delay=9.0)(as_async(Flaky(2)))() == "ok"


def test_a_fake_clock_drives_elapsed_time(clock):
    """FakeClock.sleep as sleep= moves the clock the retry reads."""
    states: list[RetryState] = []
    retry_with_backoff(
        base_delay=2.0, jitter=False, sleep=clock.sleep, clock=clock, on_retry=states.append
    )(Flaky(3))()
    assert [s.elapsed for s in states] == [0.0, 2.0, 6.0]
    assert clock() == 14.0


# ------------------------------------------------------------------ with a circuit breaker


def test_retries_around_a_breaker_stop_calling_a_dead_service():
    """retry(max_retries=10) around a breaker(failure_threshold=5) calls a dead service 5 times."""
    breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=60.0)
    service = Flaky(10**6, ConnectionError("dead"))

    @retry_with_backoff(max_retries=10, base_delay=0.0)
    @breaker
    def call_service() -> str:
        return service()

    with pytest.raises(CircuitOpenError):
        call_service()
    assert service.calls == 5
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        call_service()
    assert service.calls == 5


# ------------------------------------------------------------------ public API


@pytest.mark.parametrize(
    "name",
    [
        "RetryBudget",
        "RetryContext",
        "RetryState",
        "retry_api_call",
        "retry_network_operation",
        "retry_on_failure",
        "retry_with_backoff",
    ],
)
def test_retry_names_are_exported_from_resilience(name):
    """The retry API is importable from resilience and says so in __module__."""
    assert name in resilience.__all__
    assert getattr(resilience, name).__module__ == "resilience"


@pytest.mark.parametrize(
    "obj",
    [
        retry_with_backoff,
        retry_on_failure,
        RetryContext,
        retry_network_operation,
        retry_api_call,
        resilience.RetryBudget,
        instant_retries,
    ],
    ids=lambda obj: obj.__name__,
)
def test_docstring_examples_run(obj):
    """The examples in the docstrings pass."""
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner()
    for test in finder.find(
        obj, obj.__name__, globs=vars(resilience) | {"instant_retries": instant_retries}
    ):
        runner.run(test)
    assert runner.failures == 0
    assert runner.tries > 0


# ------------------------------------------------------------------ less travelled paths


def test_integer_delays_from_a_custom_backoff_are_used_as_seconds(sleeps, clock):
    """A backoff returning ints works."""
    retry_with_backoff(backoff=lambda n: n, sleep=sleeps, clock=clock)(Flaky(2))()
    assert sleeps.delays == [1.0, 2.0]


def test_an_interrupted_sleep_ends_the_call_and_counts_it(clock):
    """A KeyboardInterrupt during a backoff sleep propagates; the call is not a failure."""
    name = unique_name()

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    flaky = Flaky(3)
    with pytest.raises(KeyboardInterrupt):
        retry_with_backoff(name=name, sleep=interrupted, clock=clock)(flaky)()
    assert flaky.calls == 1
    assert retry_stats.counter_for(name).snapshot()["attempts"] == 1
    assert sum(retry_stats.counter_for(name).snapshot()["outcomes"].values()) == 0


@pytest.mark.asyncio
async def test_an_interrupted_async_sleep_ends_the_call_and_counts_it(clock):
    """An interrupt from an async backoff sleep propagates; the call is not a failure."""
    name = unique_name()

    async def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await retry_with_backoff(name=name, sleep=interrupted, clock=clock)(as_async(Flaky(3)))()
    assert sum(retry_stats.counter_for(name).snapshot()["outcomes"].values()) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("flaky", "outcome"),
    [
        (Flaky(0), "success_without_retry"),
        (Flaky(1, ValueError()), "failed_without_retry"),
        (Flaky(1, KeyboardInterrupt()), None),
        (Flaky(1), "success_with_retry"),
    ],
    ids=["success", "not-retried", "interrupted", "retried"],
)
async def test_named_async_retries_count_calls(clock, flaky, outcome):
    """A named async retry records each finished call."""
    name = unique_name()
    wrapped = retry_with_backoff(
        name=name, exceptions=ConnectionError, sleep=clock.asleep, clock=clock
    )(as_async(flaky))
    with contextlib.suppress(ValueError, KeyboardInterrupt):
        await wrapped()
    outcomes = retry_stats.counter_for(name).snapshot()["outcomes"]
    assert outcomes == {key: int(key == outcome) for key in outcomes}


@pytest.mark.asyncio
async def test_async_calls_draw_on_the_budget(clock):
    """An async call records its first attempt in the budget and stops when it is spent."""
    budget = resilience.RetryBudget(ratio=0.0, min_per_second=0.1, clock=clock)
    flaky = Flaky(9)
    with pytest.raises(ConnectionError):
        await retry_with_backoff(budget=budget, sleep=clock.asleep, clock=clock)(as_async(flaky))()
    assert flaky.calls == 2
    assert budget.stats()["first_attempts"] == 1


def test_a_retry_context_draws_on_the_budget(clock):
    """A RetryContext loop records its first attempt in the budget."""
    budget = resilience.RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock)

    def loop() -> None:
        for attempt in RetryContext(budget=budget, clock=clock):
            with attempt:
                raise ConnectionError

    with pytest.raises(ConnectionError):
        loop()
    assert budget.stats()["first_attempts"] == 1


def test_a_retry_context_iterator_is_its_own_iterator():
    """The loop object returned by iter() and aiter() iterates itself."""
    loop = iter(RetryContext())
    assert iter(loop) is loop
    aloop = aiter(RetryContext())
    assert aiter(aloop) is aloop


class _Ready:
    """An awaitable that is not a coroutine."""

    def __await__(self):
        """Finish at once."""
        return iter(())


def test_a_sync_retry_context_refuses_any_awaitable_sleep(clock):
    """A sleep returning a non-coroutine awaitable is refused in a sync loop too."""

    def loop() -> None:
        for attempt in RetryContext(sleep=lambda s: _Ready(), clock=clock):
            with attempt:
                raise ConnectionError

    with pytest.raises(TypeError, match="use `async for`"):
        loop()


@pytest.mark.asyncio
async def test_an_async_retry_context_accepts_a_plain_sleep(sleeps, clock):
    """An `async for` loop calls a plain sleep without awaiting it."""
    async for attempt in RetryContext(base_delay=1.0, jitter=False, sleep=sleeps, clock=clock):
        with attempt:
            if attempt.number == 1:
                raise ConnectionError
    assert sleeps.delays == [1.0]


def test_a_retry_after_date_without_a_zone_is_read_as_utc():
    """An HTTP date with -0000 (no zone) counts as UTC."""
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000") == 0.0


def test_retry_api_call_does_not_retry_errors_without_a_status():
    """An error with no HTTP status and no network type propagates at once."""
    flaky = Flaky(1, ValueError())
    with instant_retries(), pytest.raises(ValueError):
        retry_api_call(flaky)
    assert flaky.calls == 1


def _interrupted_on_second_attempt():
    errors = [ConnectionError(), KeyboardInterrupt()]

    def call() -> None:
        raise errors.pop(0)

    return call


def test_an_interrupt_on_a_later_attempt_ends_the_call_and_counts_it(clock):
    """A BaseException on attempt 2 propagates at once; two attempts, no outcome."""
    name = unique_name()
    with pytest.raises(KeyboardInterrupt):
        retry_with_backoff(name=name, base_delay=0.0, clock=clock)(
            _interrupted_on_second_attempt()
        )()
    snapshot = retry_stats.counter_for(name).snapshot()
    assert (snapshot["attempts"], sum(snapshot["outcomes"].values())) == (2, 0)


@pytest.mark.asyncio
async def test_an_interrupt_on_a_later_async_attempt_ends_the_call_and_counts_it(clock):
    """The same for coroutine functions."""
    name = unique_name()
    call = _interrupted_on_second_attempt()

    async def async_call() -> None:
        call()

    with pytest.raises(KeyboardInterrupt):
        await retry_with_backoff(name=name, base_delay=0.0, clock=clock)(async_call)()
    snapshot = retry_stats.counter_for(name).snapshot()
    assert (snapshot["attempts"], sum(snapshot["outcomes"].values())) == (2, 0)


# ------------------------------------------------------------------ attempt durations


@contextlib.contextmanager
def heard_timings():
    """Subscribe to the duration channel for the block; yield the timings heard."""
    from resilience import _events

    heard: list = []
    stop = _events.subscribe_timings(heard.append)
    try:
        yield heard
    finally:
        stop()


def _attempts_heard(heard) -> list[tuple]:
    return [
        (t.name, t.kind, t.strategy, t.attributes["number"], t.attributes["handled"]) for t in heard
    ]


def _sequence(*steps):
    """A function that raises or returns ``steps`` in turn."""
    it = iter(steps)

    def func(*_args):
        step = next(it)
        if isinstance(step, BaseException):
            raise step
        return step

    return func


def test_each_retry_attempt_is_timed_with_its_number_and_whether_it_was_handled(sleeps) -> None:
    """Two retried failures then a success: three attempt timings, numbered, handled twice."""
    retry = resilience.Retry(name="timed-sync", base_delay=0.5, jitter=False, sleep=sleeps)
    with heard_timings() as heard:
        assert retry.call(_sequence(ConnectionError(), OSError(), "ok")) == "ok"
    assert _attempts_heard(heard) == [
        ("attempt", "retry", "timed-sync", 1, True),
        ("attempt", "retry", "timed-sync", 2, True),
        ("attempt", "retry", "timed-sync", 3, False),
    ]
    assert all(t.seconds >= 0.0 and t.pipeline is None for t in heard)
    assert sleeps.delays == [0.5, 1.0]


@pytest.mark.asyncio
async def test_each_async_retry_attempt_is_timed(clock) -> None:
    """The same for coroutine functions, waiting with the given async sleep."""
    retry = resilience.Retry(name="timed-async", base_delay=0.5, jitter=False, sleep=clock.asleep)
    func = _sequence(ConnectionError(), "ok")

    async def call():
        return func()

    with heard_timings() as heard:
        assert await retry.call_async(call) == "ok"
    assert _attempts_heard(heard) == [
        ("attempt", "retry", "timed-async", 1, True),
        ("attempt", "retry", "timed-async", 2, False),
    ]


def test_an_error_the_retry_does_not_handle_is_timed_as_not_handled() -> None:
    """An exception outside ``exceptions`` ends the call after one unhandled attempt."""
    with heard_timings() as heard, pytest.raises(KeyError):
        retry_with_backoff(exceptions=OSError, base_delay=0.0)(_sequence(KeyError("x")))()
    assert _attempts_heard(heard) == [("attempt", "retry", None, 1, False)]


def test_giving_up_on_a_handled_error_still_times_it_as_handled() -> None:
    """The last attempt's error is one the retry handles, though no retry is left."""
    with heard_timings() as heard, pytest.raises(ConnectionError):
        retry_with_backoff(max_retries=1, base_delay=0.0)(
            _sequence(ConnectionError(), ConnectionError())
        )()
    assert [t.attributes["handled"] for t in heard] == [True, True]


@pytest.mark.asyncio
async def test_a_retried_result_is_a_handled_attempt() -> None:
    """``retry_on_result`` outcomes are handled failures, to the RetryError at the end."""
    func = _sequence(None, None)

    @retry_with_backoff(max_retries=1, base_delay=0.0, retry_on_result=lambda r: r is None)
    async def fetch():
        return func()

    with heard_timings() as heard, pytest.raises(RetryError):
        await fetch()
    assert [(t.attributes["number"], t.attributes["handled"]) for t in heard] == [
        (1, True),
        (2, True),
    ]


def test_the_preset_filter_decides_handled() -> None:
    """The API preset's status filter: a 503 is a handled attempt, the 404 after it is not."""
    with instant_retries(), heard_timings() as heard, pytest.raises(HTTPError):
        retry_api_call(_sequence(HTTPError(503), HTTPError(404)))
    assert [(t.attributes["number"], t.attributes["handled"]) for t in heard] == [
        (1, True),
        (2, False),
    ]


def test_an_interrupt_is_timed_as_not_handled_and_counted_as_without_timing(clock) -> None:
    """A KeyboardInterrupt ends a timed call as it ends an untimed one, counted the same."""
    names = [unique_name(), unique_name()]
    for name, listen in zip(names, (False, True), strict=True):
        timings = heard_timings() if listen else contextlib.nullcontext([])
        with timings as heard, pytest.raises(KeyboardInterrupt):
            retry_with_backoff(name=name, base_delay=0.0, clock=clock)(
                _interrupted_on_second_attempt()
            )()
        assert [t.attributes["handled"] for t in heard] == ([True, False] if listen else [])
    first, second = (retry_stats.counter_for(name).snapshot() for name in names)
    assert (first["attempts"], first["outcomes"]) == (second["attempts"], second["outcomes"])


def test_timed_calls_are_counted_exactly_as_untimed_ones(sleeps) -> None:
    """Statistics and named counters agree with and without a duration subscriber."""
    results = []
    for listen in (False, True):
        name = unique_name()
        on_success: list = []
        decorated = retry_with_backoff(
            name=name, base_delay=0.0, on_success=on_success.append, sleep=sleeps
        )(_sequence("first", ConnectionError(), "second", KeyboardInterrupt()))
        timings = heard_timings() if listen else contextlib.nullcontext([])
        with timings as heard:
            decorated()
            decorated()
            with pytest.raises(KeyboardInterrupt):
                decorated()
        snapshot = retry_stats.counter_for(name).snapshot()
        stats = decorated.statistics
        results.append(
            (
                snapshot["attempts"],
                snapshot["outcomes"],
                [state.attempt for state in on_success],
                dict(stats),
            )
        )
        assert len(heard) == (4 if listen else 0)
    assert results[0] == results[1]


def test_a_sleep_that_raises_ends_a_timed_call(clock) -> None:
    """The timed path hands a failing sleep to the caller and counts the call once."""
    name = unique_name()

    def broken(seconds: float) -> None:
        raise RuntimeError("no sleep")

    with heard_timings() as heard, pytest.raises(RuntimeError, match="no sleep"):
        retry_with_backoff(name=name, base_delay=1.0, sleep=broken, clock=clock)(
            _sequence(ConnectionError())
        )()
    assert len(heard) == 1
    assert retry_stats.counter_for(name).snapshot()["outcomes"]["failed_with_retry"] == 0


@pytest.mark.asyncio
async def test_a_cancelled_async_wait_ends_a_timed_call() -> None:
    """Cancelling a timed call while it waits ends it; the one attempt was timed."""
    started = asyncio.Event()
    func = _sequence(ConnectionError())

    async def call():
        started.set()
        return func()

    retry = resilience.Retry(base_delay=60.0, jitter=False)
    with heard_timings() as heard:
        task = asyncio.ensure_future(retry.call_async(call))
        await started.wait()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert _attempts_heard(heard) == [("attempt", "retry", None, 1, True)]


def test_instant_retries_skip_the_wait_on_the_timed_path() -> None:
    """``instant_retries()`` holds for timed calls too: the long backoff is not slept."""
    with instant_retries(), heard_timings() as heard:
        assert (
            retry_with_backoff(base_delay=60.0, sleep=never)(_sequence(ConnectionError(), "ok"))()
            == "ok"
        )
    assert len(heard) == 2


def _context_loop(outcomes, **options) -> None:
    """Run a RetryContext loop whose blocks raise or set the ``outcomes`` in turn."""
    steps = iter(outcomes)
    for attempt in RetryContext(**options):
        with attempt:
            step = next(steps)
            if isinstance(step, BaseException):
                raise step
            attempt.set_result(step)


async def _async_context_loop(error: BaseException | None) -> None:
    """Run an ``async for`` RetryContext loop whose one block raises ``error`` (or not)."""
    async for attempt in RetryContext(base_delay=0.0):
        with attempt:
            if error is not None:
                raise error


def test_retry_context_attempts_are_timed(sleeps) -> None:
    """A RetryContext loop times each ``with attempt:`` block, results judged too."""
    outcomes = [ConnectionError(), "retry me", KeyError("not retried")]
    with heard_timings() as heard, pytest.raises(KeyError):
        _context_loop(
            outcomes,
            exceptions=(ConnectionError,),
            retry_on_result=lambda r: r == "retry me",
            base_delay=0.0,
            sleep=sleeps,
        )
    assert [(t.attributes["number"], t.attributes["handled"]) for t in heard] == [
        (1, True),
        (2, True),
        (3, False),
    ]


@pytest.mark.asyncio
async def test_async_retry_context_attempts_are_timed_success_and_interrupt() -> None:
    """``async for``: a plain success is unhandled; so is an interrupt, which ends the loop."""
    with heard_timings() as heard:
        await _async_context_loop(None)
        with pytest.raises(KeyboardInterrupt):
            await _async_context_loop(KeyboardInterrupt())
    assert [(t.attributes["number"], t.attributes["handled"]) for t in heard] == [
        (1, False),
        (1, False),
    ]


def test_a_timed_call_spends_the_budget_and_passes_interrupts_on() -> None:
    """The timed path deposits to the budget (none left: no retry); an interrupt propagates."""
    spent = resilience.RetryBudget(ratio=0.0, min_per_second=0.0)
    with heard_timings() as heard:
        with pytest.raises(ConnectionError) as raised:
            retry_with_backoff(budget=spent, base_delay=0.0)(_sequence(ConnectionError()))()
        with pytest.raises(KeyboardInterrupt):
            retry_with_backoff(base_delay=0.0)(_sequence(KeyboardInterrupt()))()
    assert "the retry budget is spent" in " ".join(raised.value.__notes__)
    assert [(t.attributes["number"], t.attributes["handled"]) for t in heard] == [
        (1, True),
        (1, False),
    ]
