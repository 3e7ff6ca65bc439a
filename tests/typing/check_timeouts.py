"""Type checks for the timeout API: checked by mypy, not run."""

from __future__ import annotations

import asyncio
from typing import assert_type

from resilience import (
    TIMEOUTS,
    call_with_timeout,
    check_deadline,
    deadline,
    get_timeout,
    remaining,
    timeout,
    validate_timeout,
)


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


async def async_uses() -> None:
    """Pin the async forms: deadline() and timeout() work with `async with`."""
    async with deadline(5.0), timeout(1.0):
        await asyncio.sleep(0)
