"""Type checks for RateLimiter: checked by mypy, not run."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

from resilience import RateLimiter

limiter = RateLimiter(10, per=1.0, burst=5, name="api")


@limiter
def parse(text: str, *, base: int = 10) -> int:
    """A sync function under the limit."""
    return int(text, base)


@limiter
async def fetch(url: str) -> bytes:
    """An async function under the limit."""
    return url.encode()


def sync_uses() -> None:
    """Pin the sync forms: the decorator keeps the signature and the result type."""
    assert_type(parse("ff", base=16), int)
    assert_type(limiter.try_acquire(), bool)
    assert_type(limiter.try_acquire(2, key="tenant"), bool)
    assert_type(limiter.acquire(), None)
    assert_type(limiter.call(parse, "12"), int)
    parse(12)  # type: ignore[arg-type]  # the argument types are checked


async def async_uses() -> None:
    """Pin the async forms: awaiting keeps the result type."""
    pending = fetch("x")
    _ = assert_type(pending, Coroutine[Any, Any, bytes])
    assert_type(await pending, bytes)
    assert_type(await limiter.acquire_async(key="tenant"), None)
    assert_type(await limiter.call_async(fetch, "x"), bytes)
