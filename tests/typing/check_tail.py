"""Type checks for Chaos, Hedge and latency_percentile: checked by mypy, not run."""

from __future__ import annotations

from typing import assert_type

from resilience import Chaos, Hedge
from resilience.hedging import LatencyPercentile, latency_percentile

chaos = Chaos(fault=ConnectionError, rate=0.1)
hedge = Hedge(delay=latency_percentile())


@chaos
def parse(text: str, *, base: int = 10) -> int:
    """A sync function through a Chaos decorator."""
    return int(text, base)


@hedge
async def fetch(key: str) -> bytes:
    """An async function through a Hedge decorator."""
    return key.encode()


class Client:
    @hedge
    def get(self, path: str) -> str:
        """A method through a Hedge decorator."""
        return path


def sync_uses() -> None:
    """Pin the sync forms: decorators keep the signature, call() returns the result type."""
    assert_type(parse("ff", base=16), int)
    assert_type(chaos.call(parse, "1"), int)
    assert_type(hedge.call(parse, "2", base=8), int)
    assert_type(Client().get("/"), str)
    assert_type(latency_percentile(q=0.9), LatencyPercentile)
    assert_type(latency_percentile()(), float)
    parse(12)  # type: ignore[arg-type]  # the argument types are checked


async def async_uses() -> None:
    """Pin the async forms: await keeps the result type."""
    assert_type(await fetch("k"), bytes)
    assert_type(await hedge.call_async(fetch, "k"), bytes)
    assert_type(await chaos.call_async(fetch, "k"), bytes)
