import asyncio
import contextlib
import contextvars
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilience
from resilience import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    TIMEOUTS,
    _timeouts,
    call_with_timeout,
    deadline,
    get_timeout,
    remaining,
    timeout,
    validate_timeout,
)

needs_alarm = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="the platform has no SIGALRM interval timer"
)
SHORT = 0.05  # seconds: real-time checks stay short


@pytest.fixture
def quiet_alarm() -> Iterator[None]:
    """Give the test SIGALRM with no handler and no timer (pytest-timeout's are put back)."""
    handler = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, handler)
    if delay > 0:
        signal.setitimer(signal.ITIMER_REAL, delay, interval)


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[_timeouts._Pool]:
    """Give call_with_timeout a fresh pool of two workers for the test."""
    pool = _timeouts._Pool(max_workers=2)
    monkeypatch.setattr(_timeouts, "_pool", pool)
    return pool


# --- the table -----------------------------------------------------------------------


def test_timeouts_table_is_read_only():
    """TIMEOUTS cannot be changed in place."""
    with pytest.raises(TypeError):
        TIMEOUTS["connect"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    "name",
    [
        "connect",
        "read",
        "write",
        "dns",
        "api_call",
        "llm_api_call",
        "agent_create",
        "agent_command",
    ],
    ids=str,
)
def test_timeouts_table_has_the_promised_operations(name):
    """Every operation SPEC names has a timeout."""
    assert TIMEOUTS[name] > 0


def test_every_agent_timeout_is_longer_than_every_network_one():
    """The slowest network operation still times out before the quickest agent one."""
    assert min(_timeouts._AGENT.values()) > max(_timeouts._NETWORK.values())


def test_table_groups_cover_the_whole_table():
    """Every entry belongs to exactly one of the network, API and agent groups."""
    groups = [_timeouts._NETWORK, _timeouts._API, _timeouts._AGENT]
    assert sum(len(group) for group in groups) == len(TIMEOUTS)
    assert {name for group in groups for name in group} == set(TIMEOUTS)


def test_every_table_value_is_within_the_bounds():
    """validate_timeout() leaves every table value as it is."""
    assert all(validate_timeout(value) == value for value in TIMEOUTS.values())


def test_default_and_bounds():
    """DEFAULT_TIMEOUT is 30 s and lies between MIN_TIMEOUT and MAX_TIMEOUT."""
    assert DEFAULT_TIMEOUT == 30.0
    assert 0 < MIN_TIMEOUT < DEFAULT_TIMEOUT < MAX_TIMEOUT


# --- get_timeout ---------------------------------------------------------------------


def test_get_timeout_returns_the_known_value():
    """A known operation gets its table value."""
    assert get_timeout("connect") == TIMEOUTS["connect"]


def test_get_timeout_known_value_beats_default():
    """A known operation ignores the default."""
    assert get_timeout("connect", default=99.0) == TIMEOUTS["connect"]


def test_get_timeout_unknown_uses_default():
    """An unknown operation gets the default given."""
    assert get_timeout("resize_image", default=7) == 7.0


def test_get_timeout_unknown_without_default_uses_default_timeout():
    """An unknown operation without a default gets DEFAULT_TIMEOUT."""
    assert get_timeout("resize_image") == DEFAULT_TIMEOUT


def test_env_overrides_a_known_operation(monkeypatch):
    """RESILIENCE_TIMEOUT_<OPERATION> wins over the table."""
    monkeypatch.setenv("RESILIENCE_TIMEOUT_CONNECT", "2.5")
    assert get_timeout("connect") == 2.5


def test_env_overrides_an_unknown_operation(monkeypatch):
    """The variable applies to names outside the table too, over the default."""
    monkeypatch.setenv("RESILIENCE_TIMEOUT_RESIZE_IMAGE", " 12 ")
    assert get_timeout("resize_image", default=3.0) == 12.0


@pytest.mark.parametrize(
    ("operation", "variable"),
    [
        ("llm-api.call", "RESILIENCE_TIMEOUT_LLM_API_CALL"),
        ("Agent Create 2", "RESILIENCE_TIMEOUT_AGENT_CREATE_2"),
        ("café", "RESILIENCE_TIMEOUT_CAF_"),
    ],
    ids=["punctuation", "space-and-digit", "non-ascii"],
)
def test_env_variable_name_maps_other_characters_to_underscore(monkeypatch, operation, variable):
    """Letters are upper-cased, digits kept, anything else becomes an underscore."""
    monkeypatch.setenv(variable, "4")
    assert get_timeout(operation) == 4.0


def test_env_is_read_at_every_call(monkeypatch):
    """Changing the variable changes the next result; nothing is cached."""
    monkeypatch.setenv("RESILIENCE_TIMEOUT_READ", "1")
    assert get_timeout("read") == 1.0
    monkeypatch.setenv("RESILIENCE_TIMEOUT_READ", "2")
    assert get_timeout("read") == 2.0


@pytest.mark.parametrize("raw", ["abc", "", "nan", "inf", "0", "-1", "1s"], ids=repr)
def test_malformed_env_raises_naming_the_variable(monkeypatch, raw):
    """A variable that is not a finite number > 0 is a ValueError naming it."""
    monkeypatch.setenv("RESILIENCE_TIMEOUT_CONNECT", raw)
    with pytest.raises(ValueError, match="RESILIENCE_TIMEOUT_CONNECT"):
        get_timeout("connect")


@pytest.mark.parametrize(
    ("operation", "error"),
    [(None, TypeError), (1, TypeError), ("", ValueError), ("a\nb", ValueError)],
    ids=["none", "int", "empty", "control"],
)
def test_get_timeout_rejects_bad_operations(operation, error):
    """The operation must be a non-empty printable str."""
    with pytest.raises(error, match="operation"):
        get_timeout(operation)


@pytest.mark.parametrize(
    ("default", "error"),
    [
        (True, TypeError),
        ("5", TypeError),
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
    ],
    ids=["bool", "str", "zero", "negative", "nan"],
)
def test_get_timeout_rejects_bad_defaults(default, error):
    """A default that is not a finite number > 0 is refused, even for known operations."""
    with pytest.raises(error, match="default"):
        get_timeout("connect", default=default)


# --- validate_timeout ----------------------------------------------------------------

numbers = st.one_of(st.integers(), st.floats(allow_nan=False))


@given(value=numbers)
def test_validate_timeout_result_is_within_default_bounds(value):
    """Every number comes back inside [MIN_TIMEOUT, MAX_TIMEOUT]."""
    assert MIN_TIMEOUT <= validate_timeout(value) <= MAX_TIMEOUT


@given(value=st.floats(min_value=MIN_TIMEOUT, max_value=MAX_TIMEOUT))
def test_validate_timeout_keeps_values_inside_the_bounds(value):
    """A value already inside the bounds is returned unchanged."""
    assert validate_timeout(value) == value


@given(
    value=numbers,
    low=st.floats(min_value=0, max_value=1e6),
    span=st.floats(min_value=0, max_value=1e6),
)
def test_validate_timeout_respects_given_bounds(value, low, span):
    """With any valid bounds, the result lies within them and equals the input inside them."""
    high = low + span
    result = validate_timeout(value, low, high)
    assert low <= result <= high
    if low <= value <= high:
        assert result == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, MIN_TIMEOUT), (-5, MIN_TIMEOUT), (-math.inf, MIN_TIMEOUT), (math.inf, MAX_TIMEOUT)],
    ids=["zero", "negative", "-inf", "inf"],
)
def test_validate_timeout_clamps_edge_values(value, expected):
    """0, negatives and infinities are clamped, not refused."""
    assert validate_timeout(value) == expected


def test_validate_timeout_returns_a_float():
    """An int comes back as a float."""
    result = validate_timeout(12)
    assert result == 12.0
    assert isinstance(result, float)


@pytest.mark.parametrize(
    ("value", "error"),
    [(math.nan, ValueError), (True, TypeError), ("1", TypeError), (None, TypeError)],
    ids=["nan", "bool", "str", "none"],
)
def test_validate_timeout_rejects_non_numbers(value, error):
    """NaN, bool and non-numbers raise, naming the value parameter."""
    with pytest.raises(error, match="value"):
        validate_timeout(value)


def test_validate_timeout_rejects_min_above_max():
    """min_timeout > max_timeout is a ValueError showing both."""
    with pytest.raises(ValueError, match=r"min_timeout=5, max_timeout=1"):
        validate_timeout(3, 5, 1)


@pytest.mark.parametrize(
    ("bounds", "error", "name"),
    [
        ({"min_timeout": True}, TypeError, "min_timeout"),
        ({"min_timeout": -1}, ValueError, "min_timeout"),
        ({"max_timeout": math.nan}, ValueError, "max_timeout"),
        ({"max_timeout": math.inf}, ValueError, "max_timeout"),
        ({"max_timeout": "10"}, TypeError, "max_timeout"),
    ],
    ids=["bool-min", "negative-min", "nan-max", "inf-max", "str-max"],
)
def test_validate_timeout_rejects_bad_bounds(bounds, error, name):
    """Bounds must be finite numbers >= 0."""
    with pytest.raises(error, match=name):
        validate_timeout(1, **bounds)


# --- timeout(): construction ---------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "error"),
    [
        (True, TypeError),
        ("1", TypeError),
        (None, TypeError),
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
    ],
    ids=["bool", "str", "none", "zero", "negative", "nan", "inf"],
)
def test_timeout_rejects_bad_seconds_at_construction(seconds, error):
    """timeout() checks seconds when it is made, before any block runs."""
    with pytest.raises(error, match="seconds"):
        timeout(seconds)


def test_timeout_repr_shows_seconds():
    """The repr says what was asked for."""
    assert repr(timeout(1.5)) == "timeout(1.5)"


def test_timeout_object_is_single_use():
    """Entering the same timeout object a second time is a RuntimeError."""
    limit = timeout(5)
    with limit:
        pass
    with pytest.raises(RuntimeError, match="only once"), limit:
        pass


# --- timeout(): sync, main thread ----------------------------------------------------


def test_fast_block_finishes_normally(quiet_alarm):
    """A block inside its limit runs to the end and leaves no timer."""
    with timeout(5) as limit:
        result = sum([1, 2])
    assert result == 3
    assert isinstance(limit, _timeouts._Timeout)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_block_exception_propagates_unchanged(quiet_alarm):
    """An exception of the block passes through the timeout untouched."""
    error = KeyError("mine")
    with pytest.raises(KeyError) as caught, timeout(5):
        raise error
    assert caught.value is error


def test_timeout_sets_the_deadline_for_the_block(quiet_alarm):
    """Inside the block remaining() is at most seconds; afterwards it is gone."""
    with timeout(2):
        left = remaining()
        assert left is not None
        assert left <= 2
    assert remaining() is None


@needs_alarm
def test_main_thread_sleep_is_interrupted(quiet_alarm):
    """time.sleep in the main thread is cut short with TimeoutError."""
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="interrupted"), timeout(SHORT):
        time.sleep(2)
    assert time.monotonic() - started < 1


@needs_alarm
def test_main_thread_socket_recv_is_interrupted(quiet_alarm):
    """A blocking recv on a loopback socket is cut short with TimeoutError."""
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        with peer, pytest.raises(TimeoutError, match="interrupted"), timeout(SHORT):
            client.recv(1)


@needs_alarm
def test_interrupt_leaves_no_alarm_behind(quiet_alarm):
    """After an interrupted block, no timer is armed and the default handler is back."""
    with pytest.raises(TimeoutError), timeout(SHORT):
        time.sleep(2)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


@needs_alarm
def test_previous_handler_is_restored(quiet_alarm):
    """The SIGALRM handler installed before the block is installed again after it."""

    def previous(signum, frame):
        pass

    signal.signal(signal.SIGALRM, previous)
    with pytest.raises(TimeoutError), timeout(SHORT):
        time.sleep(2)
    assert signal.getsignal(signal.SIGALRM) is previous


@needs_alarm
def test_previous_timer_is_rearmed_with_its_remaining_time(quiet_alarm):
    """A timer armed before the block keeps running, minus the time the block took."""
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_REAL, 30.0, 7.0)
    with timeout(5):
        pass
    delay, interval = signal.getitimer(signal.ITIMER_REAL)
    assert 29.0 < delay <= 30.0
    assert interval == 7.0


@needs_alarm
def test_previous_timer_firing_during_the_block_calls_its_handler(quiet_alarm):
    """A timer armed before the block and due inside it still reaches its own handler."""
    calls: list[int] = []
    signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 0.02)
    with timeout(5):
        time.sleep(0.1)
    assert calls == [signal.SIGALRM]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_alarm
def test_previous_default_alarm_still_ends_the_process():
    """An alarm armed with the default action (a watchdog) still kills the process."""
    code = (
        "import signal, time\n"
        "from resilience import timeout\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.02)\n"
        "with timeout(5):\n"
        "    time.sleep(2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(resilience.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, timeout=30, check=False
    )  # our own interpreter and a fixed script
    assert result.returncode == -signal.SIGALRM


@needs_alarm
def test_inner_expiry_does_not_end_the_outer_block(quiet_alarm):
    """When a nested timeout expires, the outer block carries on to its end."""
    reached_end = False
    with timeout(5):
        with pytest.raises(TimeoutError), timeout(SHORT):
            time.sleep(2)
        reached_end = True
    assert reached_end
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_alarm
def test_outer_shorter_timeout_wins(quiet_alarm):
    """A longer inner timeout cannot extend a shorter outer one."""
    started = time.monotonic()
    with pytest.raises(TimeoutError), timeout(SHORT), timeout(5):
        time.sleep(2)
    assert time.monotonic() - started < 1


@needs_alarm
def test_outer_timeout_fires_after_inner_block_ends(quiet_alarm):
    """After a nested block finishes, the outer timer still interrupts in time."""
    inner_done = False
    with pytest.raises(TimeoutError, match=r"0\.1 s timeout"), timeout(0.1):  # noqa: PT012  # the nesting is the point
        with timeout(5):
            inner_done = True
        time.sleep(2)
    assert inner_done


@needs_alarm
def test_swallowed_interrupt_is_raised_again_on_exit(quiet_alarm):
    """A block that catches its interrupt and runs on still ends with TimeoutError."""
    with (
        pytest.raises(TimeoutError, match="the block ran"),
        timeout(SHORT),
        contextlib.suppress(TimeoutError),
    ):
        time.sleep(2)


def test_timeout_never_outlives_a_deadline(quiet_alarm):
    """Inside a shorter deadline the block ends at the deadline, not at seconds."""
    started = time.monotonic()
    with (
        pytest.raises(TimeoutError, match="enclosing deadline"),
        deadline(SHORT),
        timeout(5),
    ):
        time.sleep(2 if _timeouts._HAVE_ALARM else 0.1)
    assert time.monotonic() - started < 1


def test_passed_deadline_stops_the_block_from_starting(quiet_alarm):
    """When the deadline has passed, entering raises and the block does not run."""
    ran = False
    with deadline(0), pytest.raises(TimeoutError, match="not started"), timeout(5):
        ran = True
    assert not ran


# --- timeout(): where nothing can interrupt ------------------------------------------


def run_in_thread(target):
    """Run ``target()`` in a new thread and return what it returned or raised."""
    outcome: list[object] = []

    def main():
        try:
            outcome.append(target())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    return outcome[0]


def test_other_thread_block_runs_to_its_end_then_times_out():
    """Off the main thread the block is not interrupted; TimeoutError comes as it exits."""
    finished = []

    def body():
        with timeout(SHORT):
            time.sleep(0.1)
            finished.append(True)

    error = run_in_thread(body)
    assert isinstance(error, TimeoutError)
    assert "could not be interrupted: only the main thread" in str(error)
    assert finished == [True]


def test_other_thread_fast_block_is_fine():
    """Off the main thread a block inside its limit ends normally."""
    assert run_in_thread(_fast_block) == 3


def _fast_block() -> int:
    with timeout(5):
        return 3


@pytest.mark.asyncio
async def test_sync_timeout_in_event_loop_thread_does_not_interrupt():
    """A sync timeout in a thread running an event loop only reports the overrun."""
    with pytest.raises(TimeoutError, match="event loop runs in this thread"), timeout(SHORT):
        time.sleep(0.1)  # noqa: ASYNC251  # blocking the loop is the situation under test


# --- timeout(): async ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_timeout_cancels_a_sleeping_task():
    """An awaited sleep is cancelled and TimeoutError raised."""
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="cancelled"):
        async with timeout(SHORT):
            await asyncio.sleep(2)
    assert time.monotonic() - started < 1


@pytest.mark.asyncio
async def test_async_timeout_cancels_a_socket_read():
    """A read awaiting a silent loopback peer is cancelled with TimeoutError."""
    peers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        with pytest.raises(TimeoutError):
            async with timeout(SHORT):
                await reader.read(1)
    finally:
        writer.close()
        await writer.wait_closed()
        for peer in peers:
            peer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_async_timeout_leaves_other_tasks_alone():
    """Only the current task's awaited work is cancelled; a sibling task finishes."""

    async def sibling() -> str:
        await asyncio.sleep(0.1)
        return "done"

    task = asyncio.create_task(sibling())
    with pytest.raises(TimeoutError):
        async with timeout(0.02):
            await asyncio.sleep(2)
    assert await task == "done"


@pytest.mark.asyncio
async def test_async_fast_block_finishes_normally():
    """An async block inside its limit ends normally and clears its deadline."""
    async with timeout(5):
        await asyncio.sleep(0)
        left = remaining()
        assert left is not None
        assert left <= 5
    assert remaining() is None


@pytest.mark.asyncio
async def test_async_block_own_timeout_error_passes_through():
    """A TimeoutError the block raises itself is not replaced."""
    error = TimeoutError("mine")
    with pytest.raises(TimeoutError) as caught:
        async with timeout(5):
            raise error
    assert caught.value is error


@pytest.mark.asyncio
async def test_async_block_that_never_awaits_still_times_out():
    """A block that overruns without awaiting gets TimeoutError as it exits."""
    with pytest.raises(TimeoutError, match="the block ran"):
        async with timeout(SHORT):
            time.sleep(0.1)  # noqa: ASYNC251  # a block that never awaits is the point


@pytest.mark.asyncio
async def test_async_timeout_never_outlives_a_deadline():
    """Inside a shorter deadline an async block is cancelled at the deadline."""
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="enclosing deadline"):
        async with deadline(SHORT), timeout(5):
            await asyncio.sleep(2)
    assert time.monotonic() - started < 1


@pytest.mark.asyncio
async def test_async_passed_deadline_stops_the_block_from_starting():
    """When the deadline has passed, entering raises and the block does not run."""
    ran = False
    with pytest.raises(TimeoutError, match="not started"):
        async with deadline(0), timeout(5):
            ran = True
    assert not ran
    assert remaining() is None


@pytest.mark.asyncio
async def test_tasks_created_inside_async_timeout_inherit_its_deadline():
    """A task created inside the block sees the timeout as its deadline."""

    async def read() -> float | None:
        return remaining()

    async with timeout(5):
        seen = await asyncio.create_task(read())
    assert seen is not None
    assert seen <= 5


# --- call_with_timeout ---------------------------------------------------------------


def test_call_with_timeout_returns_the_result():
    """Positional and keyword arguments reach func and its result comes back."""
    assert call_with_timeout(int, 5, "ff", base=16) == 255


def test_call_with_timeout_propagates_exceptions_unchanged():
    """The very exception object func raised reaches the caller."""
    error = KeyError("mine")

    def fail():
        raise error

    with pytest.raises(KeyError) as caught:
        call_with_timeout(fail, 5)
    assert caught.value is error


def test_call_with_timeout_raises_on_timeout_and_the_thread_runs_on():
    """A slow call raises TimeoutError; the function still finishes in its worker."""
    finished = threading.Event()

    def slow():
        time.sleep(0.1)
        finished.set()

    with pytest.raises(TimeoutError, match="runs on in its worker thread"):
        call_with_timeout(slow, SHORT)
    assert not finished.is_set()
    assert finished.wait(5)


def test_call_with_timeout_runs_in_the_callers_context():
    """Context variables set by the caller are visible in the worker."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    token = var.set("caller")
    try:
        assert call_with_timeout(var.get, 5) == "caller"
    finally:
        var.reset(token)


def test_call_with_timeout_gives_func_its_limit_as_deadline():
    """Inside func, remaining() is at most the call's seconds."""
    left = call_with_timeout(remaining, 2)
    assert left is not None
    assert left <= 2


def test_call_with_timeout_never_outlives_a_deadline():
    """Inside a shorter deadline the call times out at the deadline."""
    started = time.monotonic()
    with deadline(SHORT), pytest.raises(TimeoutError):
        call_with_timeout(time.sleep, 5, 0.2)
    assert time.monotonic() - started < 0.2


def test_call_with_timeout_does_not_start_after_the_deadline():
    """When the deadline has passed, func is not started."""
    started: list[int] = []
    with deadline(0), pytest.raises(TimeoutError, match="not started"):
        call_with_timeout(started.append, 5, 1)
    assert started == []


def test_call_with_timeout_rejects_coroutine_functions():
    """An async function is refused with a pointer to async with timeout()."""

    async def work() -> None:
        pass

    with pytest.raises(TypeError, match="async with timeout"):
        call_with_timeout(work, 5)


@pytest.mark.parametrize(
    ("args", "error", "name"),
    [
        ((42, 5), TypeError, "func"),
        ((sum, True), TypeError, "seconds"),
        ((sum, 0), ValueError, "seconds"),
        ((sum, math.inf), ValueError, "seconds"),
    ],
    ids=["not-callable", "bool-seconds", "zero-seconds", "inf-seconds"],
)
def test_call_with_timeout_rejects_bad_arguments(args, error, name):
    """Bad arguments are refused before anything runs, naming the parameter."""
    with pytest.raises(error, match=name):
        call_with_timeout(*args)


def test_workers_are_named_daemon_threads():
    """The worker is a daemon thread named resilience-timeout-worker-N."""
    thread = call_with_timeout(threading.current_thread, 5)
    assert thread.daemon
    assert re.fullmatch(r"resilience-timeout-worker-\d+", thread.name)


def test_a_thousand_stuck_calls_keep_the_thread_count_bounded(monkeypatch):
    """1,000 timed-out calls that never return use at most the pool's threads."""
    pool = _timeouts._Pool()
    monkeypatch.setattr(_timeouts, "_pool", pool)
    release = threading.Event()
    before = threading.active_count()
    try:
        for _ in range(1000):
            with pytest.raises(TimeoutError):
                call_with_timeout(release.wait, 0.001)
        assert pool.workers == _timeouts._MAX_WORKERS
        assert threading.active_count() <= before + _timeouts._MAX_WORKERS
    finally:
        release.set()


def test_calls_queued_behind_stuck_workers_time_out_and_never_start(small_pool):
    """With every worker stuck, a call times out without starting, and never starts later."""
    release = threading.Event()
    started: list[int] = []
    try:
        for _ in range(small_pool.max_workers):
            with pytest.raises(TimeoutError):
                call_with_timeout(release.wait, 0.01)
        with pytest.raises(TimeoutError, match="did not start"):
            call_with_timeout(started.append, 0.01, 1)
    finally:
        release.set()
    assert call_with_timeout(sum, 5, [1]) == 1  # the workers are free again
    assert started == []


def test_idle_workers_exit(small_pool, monkeypatch):
    """A worker with nothing to do for a while exits, and a new one starts when needed."""
    monkeypatch.setattr(_timeouts, "_IDLE_SECONDS", 0.01)
    assert call_with_timeout(sum, 5, [2]) == 2
    give_up = time.monotonic() + 5
    while small_pool.workers and time.monotonic() < give_up:
        time.sleep(0.01)
    assert small_pool.workers == 0
    assert call_with_timeout(sum, 5, [3]) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform cannot fork")
def test_forked_child_gets_a_fresh_pool():
    """After fork the child makes its own workers instead of waiting on the parent's."""
    code = (
        "import os, sys\n"
        "from resilience import call_with_timeout\n"
        "assert call_with_timeout(sum, 5, [1]) == 1\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if call_with_timeout(sum, 5, [2]) == 2 else 1)\n"
        "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(resilience.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, timeout=30, check=False
    )  # our own interpreter and a fixed script
    assert result.returncode == 0


# --- the public surface and the docs --------------------------------------------------


@pytest.mark.parametrize(
    "name", ["timeout", "get_timeout", "validate_timeout", "call_with_timeout"]
)
def test_public_functions_belong_to_the_package(name):
    """The timeout functions present themselves as part of `resilience`."""
    assert getattr(resilience, name).__module__ == "resilience"


def test_docs_examples_run(quiet_alarm):
    """Every Python example in docs/timeouts.md runs as written."""
    text = (Path(__file__).parents[1] / "docs" / "timeouts.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/timeouts.md", "exec"), {"__name__": "docs"})  # noqa: S102  # the docs' own examples


# --- the SIGALRM machinery's corner cases ---------------------------------------------


@needs_alarm
def test_ignored_previous_alarm_stays_ignored(quiet_alarm):
    """A timer armed before the block with SIG_IGN fires inside it without effect."""
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    with timeout(5):
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_IGN


@needs_alarm
def test_periodic_previous_timer_keeps_ticking_inside_the_block(quiet_alarm):
    """A periodic timer armed before the block keeps calling its handler during it."""
    ticks: list[int] = []
    signal.signal(signal.SIGALRM, lambda signum, frame: ticks.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
    with timeout(5):
        time.sleep(0.1)
    assert len(ticks) >= 3
    assert signal.getitimer(signal.ITIMER_REAL)[1] == 0.01


@needs_alarm
def test_previous_handler_exception_interrupts_a_caller_waiting_on_a_call(quiet_alarm, small_pool):
    """An exception raised into a caller waiting in call_with_timeout withdraws its call."""
    release = threading.Event()
    started: list[int] = []

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        for _ in range(small_pool.max_workers):
            with pytest.raises(TimeoutError):
                call_with_timeout(release.wait, 0.01)
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        with pytest.raises(KeyboardInterrupt):
            call_with_timeout(started.append, 5, 1)
    finally:
        release.set()
    assert call_with_timeout(sum, 5, [1]) == 1
    assert started == []


def test_without_sigalrm_the_main_thread_is_not_interrupted(monkeypatch):
    """Where SIGALRM is missing (Windows), the block runs on and times out as it exits."""
    monkeypatch.setattr(_timeouts, "_HAVE_ALARM", False)
    with pytest.raises(TimeoutError, match="no SIGALRM"), timeout(SHORT):
        time.sleep(0.1)


def test_main_thread_can_be_interrupted_without_asyncio_loaded(monkeypatch):
    """With asyncio never imported, no event loop can be running, and alarms are used."""
    monkeypatch.delitem(sys.modules, "asyncio")
    expected = None if _timeouts._HAVE_ALARM else "this platform has no SIGALRM"
    assert _timeouts._interrupt_unavailable() == expected


@needs_alarm
def test_alarm_while_busy_does_nothing(quiet_alarm):
    """An alarm that lands during push/pop leaves the re-arming to them."""
    alarms = _timeouts._Alarms()
    alarms.stack.append(timeout(1))
    alarms.busy = True
    alarms.on_alarm(signal.SIGALRM, None)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@needs_alarm
def test_alarm_in_bookkeeping_is_retried_not_raised(quiet_alarm):
    """An alarm that lands inside timeout()'s own enter/exit code retries shortly instead."""
    frames = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code is _timeouts._Timeout.__exit__.__code__:
            frames.append(frame)

    sys.setprofile(watch)
    try:
        with timeout(5):
            pass
    finally:
        sys.setprofile(None)
    expired = timeout(1)
    expired.due = time.monotonic() - 1
    alarms = _timeouts._Alarms()
    alarms.stack.append(expired)
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    alarms.on_alarm(signal.SIGALRM, frames[0])
    assert alarms.outstanding
    assert not expired.fired


@needs_alarm
def test_pop_waits_briefly_for_an_alarm_that_fired_unhandled(quiet_alarm):
    """Giving SIGALRM back first lets a just-fired alarm's handler run, within a bound."""
    alarms = _timeouts._Alarms()
    entry = timeout(1)
    alarms.stack.append(entry)
    alarms.outstanding = True  # fired, handler not run: the case the drain is for
    alarms.pop(entry)
    assert not alarms.outstanding
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


@pytest.mark.asyncio
async def test_async_timeout_outside_a_task_leaves_no_deadline():
    """When asyncio refuses the timeout (no current task), the deadline is not left set."""
    outcome: list[object] = []

    async def body() -> None:
        async with timeout(5):
            pass

    def in_callback() -> None:
        coroutine = body()
        try:
            coroutine.send(None)
        except RuntimeError as error:
            outcome.extend([error, remaining()])

    asyncio.get_running_loop().call_soon(in_callback)
    await asyncio.sleep(0.01)
    assert isinstance(outcome[0], RuntimeError)
    assert outcome[1] is None


def test_pool_is_forgotten_after_fork(monkeypatch):
    """The fork hook drops the parent's pool so the child makes its own."""
    monkeypatch.setattr(_timeouts, "_pool", _timeouts._Pool())
    monkeypatch.setattr(_timeouts, "_pool_lock", _timeouts._pool_lock)
    _timeouts._forget_pool_after_fork()
    assert _timeouts._pool is None


def test_sub_interpreter_main_thread_is_not_interrupted():
    """In a sub-interpreter SIGALRM is unavailable, so the block times out as it exits."""
    interpreters = pytest.importorskip("_xxsubinterpreters")
    path = str(Path(resilience.__file__).parents[1])
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {path!r})\n"
        "from resilience import timeout\n"
        "try:\n"
        "    with timeout(0.01):\n"
        "        time.sleep(0.02)\n"
        "except TimeoutError as error:\n"
        "    assert 'SIGALRM is unavailable' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('no TimeoutError')\n"
    )
    interpreter = interpreters.create()
    try:
        interpreters.run_string(interpreter, code)
    finally:
        interpreters.destroy(interpreter)
