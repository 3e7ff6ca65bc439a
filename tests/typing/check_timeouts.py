"""Type checks for the timeout API: checked by mypy, not run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import assert_type

from resilience import (
    TIMEOUTS,
    Deadline,
    call_with_timeout,
    check_deadline,
    deadline,
    get_timeout,
    remaining,
    timeout,
    validate_timeout,
)
from resilience.testing import FakeClock


async def _async_clock() -> float:
    """A coroutine function: not a clock."""
    return 0.0


def parse(text: str, *, base: int = 10) -> int:
    """Parse an int; a function with a positional and a keyword parameter."""
    return int(text, base)


def sync_uses() -> None:
    """Pin the types of the sync forms."""
    assert_type(get_timeout("connect"), float)
    assert_type(get_timeout("x", default=2), float)
    assert_type(validate_timeout(3), float)
    assert_type(TIMEOUTS["connect"], float)
    assert_type(remaining(), float | None)
    assert_type(check_deadline(0.5), float | None)
    assert_type(call_with_timeout(parse, 1.0, "ff", base=16), int)
    with deadline(5.0), timeout(1.0):
        pass
    call_with_timeout(parse, 1.0, 12)  # type: ignore[arg-type]  # the argument types are checked
    clock = FakeClock()
    with deadline(5.0, clock=clock), deadline(1.0, clock=time.monotonic):
        pass
    assert_type(Deadline(5.0, clock=clock).clock, Callable[[], float])
    deadline(5.0, clock=_async_clock)  # type: ignore[arg-type]  # a clock returns a float


async def async_uses() -> None:
    """Pin the async forms: deadline() and timeout() work with `async with`."""
    async with deadline(5.0), timeout(1.0):
        await asyncio.sleep(0)
