"""Type checks for Pipeline, Bulkhead, Fallback, Timeout and Deadline; mypy checks, nobody runs it."""

from __future__ import annotations

from typing import Any, assert_type

from resilience import (
    AdaptiveLimit,
    Bulkhead,
    CircuitBreaker,
    Deadline,
    Fallback,
    Outcome,
    Pipeline,
    Retry,
    Timeout,
)

pipeline = Pipeline(Retry(), CircuitBreaker(), Bulkhead(4), name="api")
standard = Pipeline.standard(name="api", retry=Retry(), total_timeout=5.0, attempt_timeout=1.0)
pool = Bulkhead(AdaptiveLimit("vegas"), max_queue=10)
fallback = Fallback(lambda outcome: b"", on=ConnectionError)


@pipeline
def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode() * retries


@pipeline
async def afetch(url: str) -> bytes:
    return url.encode()


@pool
def pooled(x: int) -> int:
    return x


@pool
async def apooled(x: int) -> str:
    return str(x)


@fallback
def answered(x: int) -> bytes:
    return bytes(x)


@Timeout(1.0)
async def limited(x: int) -> float:
    return float(x)


@Deadline(2.0)
def bounded(x: int) -> list[int]:
    return [x]


class Client:
    @pipeline
    def get(self, path: str) -> dict[str, int]:
        return {path: 1}

    @pool
    async def aget(self, path: str) -> list[str]:
        return [path]


def handler(outcome: Outcome) -> bytes:
    assert_type(outcome.exception, BaseException | None)
    assert_type(outcome.args, tuple[Any, ...])
    return b""


async def check() -> None:
    assert_type(fetch("u", retries=1), bytes)
    assert_type(await afetch("u"), bytes)
    assert_type(pooled(1), int)
    assert_type(await apooled(1), str)
    assert_type(answered(1), bytes)
    assert_type(await limited(1), float)
    assert_type(bounded(1), list[int])
    assert_type(Client().get("/"), dict[str, int])
    assert_type(await Client().aget("/"), list[str])
    assert_type(pipeline.call(pooled, 2), int)
    assert_type(await pipeline.call_async(afetch, "u"), bytes)
    assert_type(standard.call(bounded, 3), list[int])
    assert_type(pool.call(pooled, 2), int)
    assert_type(await pool.call_async(apooled, 2), str)
    assert_type(fallback.call(answered, 2), bytes)
    assert_type(await fallback.call_async(afetch, "u"), bytes)
    assert_type(Timeout(1.0).call(pooled, 1), int)
    assert_type(await Deadline(1.0).call_async(apooled, 1), str)
    assert_type(pipeline.describe(), list[dict[str, Any]])
    with pool as entered:
        assert_type(entered, Bulkhead)
    async with pool as aentered:
        assert_type(aentered, Bulkhead)
