import asyncio
import contextvars
import math
import threading

import pytest

import resilience
from resilience import CircuitBreaker, check_deadline, deadline, remaining


def test_remaining_is_none_outside_any_deadline():
    """remaining() is None when no deadline is set."""
    assert remaining() is None


def test_remaining_counts_down_from_the_deadline():
    """Inside a deadline, remaining() is positive and at most its seconds."""
    with deadline(5.0):
        left = remaining()
        assert left is not None
        assert 0 < left <= 5.0


def test_remaining_is_zero_not_negative_once_passed():
    """A passed deadline reads 0.0, never a negative number."""
    with deadline(0):
        assert remaining() == 0.0


def test_deadline_is_cleared_on_exit():
    """Leaving the block restores "no deadline"."""
    with deadline(5.0):
        pass
    assert remaining() is None


def test_deadline_is_cleared_when_the_block_raises():
    """An exception leaving the block still clears the deadline."""
    with pytest.raises(KeyError), deadline(5.0):
        raise KeyError
    assert remaining() is None


def test_nested_deadline_can_shrink():
    """An inner, earlier deadline applies inside its block and the outer one after it."""
    with deadline(60.0):
        with deadline(1.0):
            inner = remaining()
            assert inner is not None
            assert inner <= 1.0
        outer = remaining()
        assert outer is not None
        assert 1.0 < outer <= 60.0


def test_nested_deadline_never_grows():
    """An inner deadline later than the outer one keeps the outer one."""
    with deadline(1.0), deadline(60.0):
        left = remaining()
        assert left is not None
        assert left <= 1.0


@pytest.mark.asyncio
async def test_deadline_works_with_async_with():
    """`async with deadline(s)` sets and clears the deadline like `with`."""
    async with deadline(5.0):
        left = remaining()
        assert left is not None
        assert left <= 5.0
    assert remaining() is None


@pytest.mark.asyncio
async def test_tasks_created_inside_inherit_the_deadline():
    """A task created inside the block sees the same deadline."""

    async def read() -> float | None:
        return remaining()

    async with deadline(5.0):
        task = asyncio.create_task(read())
    seen = await task
    assert seen is not None
    assert 0 < seen <= 5.0


@pytest.mark.asyncio
async def test_a_task_deadline_does_not_leak_into_its_parent():
    """A deadline set inside a child task stays in that task."""

    async def child() -> None:
        async with deadline(5.0):
            await asyncio.sleep(0)

    await asyncio.create_task(child())
    assert remaining() is None


def test_copied_context_carries_the_deadline_into_a_thread():
    """A thread running in a copy of the context sees the deadline."""
    seen: list[float | None] = []
    with deadline(5.0):
        context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(lambda: seen.append(remaining()),))
    thread.start()
    thread.join()
    assert seen[0] is not None
    assert seen[0] <= 5.0


def test_a_deadline_object_cannot_be_entered_while_active():
    """Entering the same deadline object twice at once is a RuntimeError."""
    limit = deadline(5.0)
    with limit, pytest.raises(RuntimeError, match="already active"), limit:
        pass


def test_a_deadline_object_can_be_reused_after_exit():
    """The same object may be entered again once it has exited."""
    limit = deadline(5.0)
    with limit:
        pass
    with limit:
        assert remaining() is not None


@pytest.mark.parametrize(
    ("seconds", "error"),
    [
        (True, TypeError),
        ("5", TypeError),
        (None, TypeError),
        (-0.1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
    ],
    ids=["bool", "str", "none", "negative", "nan", "inf"],
)
def test_bad_seconds_fail_at_construction(seconds, error):
    """deadline() refuses bad seconds before any block is entered, naming the parameter."""
    with pytest.raises(error, match="seconds"):
        deadline(seconds)


def test_deadline_repr_shows_seconds():
    """The repr says what was asked for."""
    assert repr(deadline(2.5)) == "deadline(2.5)"


def test_check_deadline_does_nothing_outside_a_deadline():
    """Without a deadline, check_deadline() returns None whatever it is asked."""
    assert check_deadline(1e9) is None


def test_check_deadline_returns_the_time_left():
    """With enough time left, check_deadline() returns remaining()."""
    with deadline(5.0):
        left = check_deadline(1.0)
        assert left is not None
        assert 1.0 <= left <= 5.0


def test_check_deadline_raises_when_too_little_time_is_left():
    """Fewer seconds left than needed is a TimeoutError saying both figures."""
    with deadline(5.0), pytest.raises(TimeoutError, match=r"left before the deadline, 60 s"):
        check_deadline(60.0)


def test_check_deadline_raises_once_the_deadline_has_passed():
    """With the default minimum, a passed deadline is a TimeoutError."""
    with deadline(0), pytest.raises(TimeoutError, match="has passed"):
        check_deadline()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, TypeError),
        ("1", TypeError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
    ],
    ids=["bool", "str", "negative", "nan", "inf"],
)
def test_check_deadline_rejects_bad_minimums(value, error):
    """A bad min_remaining is refused, naming the parameter."""
    with pytest.raises(error, match="min_remaining"):
        check_deadline(value)


def test_breaker_call_is_not_started_without_enough_time():
    """check_deadline() before a breaker call keeps the call from starting or counting."""
    breaker = CircuitBreaker(name=None)
    started: list[int] = []
    with deadline(0.5), pytest.raises(TimeoutError):  # noqa: PT012  # the call must not start
        check_deadline(2.0)
        breaker.call(started.append, 1)
    assert started == []
    stats = breaker.get_stats()
    assert stats["total_calls"] == 0
    assert stats["failure_count"] == 0


def test_breaker_call_starts_with_enough_time():
    """With enough time left the breaker call runs and counts as usual."""
    breaker = CircuitBreaker()
    with deadline(5.0):
        check_deadline(0.5)
        assert breaker.call(sum, [1, 2]) == 3
    assert breaker.get_stats()["total_successes"] == 1


@pytest.mark.parametrize("name", ["deadline", "remaining", "check_deadline"])
def test_public_functions_belong_to_the_package(name):
    """The deadline functions present themselves as part of `resilience`."""
    assert getattr(resilience, name).__module__ == "resilience"
