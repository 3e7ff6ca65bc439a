"""Type checks for the breaker's decorator forms; mypy --strict checks this file, nobody runs it."""

from __future__ import annotations

from typing import assert_type

from resilience import CircuitBreaker, circuit_breaker, get_circuit_breaker

breaker = CircuitBreaker()


@breaker
def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode() * retries


@breaker
async def afetch(url: str) -> bytes:
    return url.encode()


@circuit_breaker
def bare(x: int) -> int:
    return x


@circuit_breaker(name="typed", failure_threshold=3)
async def configured(x: int) -> str:
    return str(x)


class Client:
    @breaker
    def get(self, path: str) -> dict[str, int]:
        return {path: 1}

    @circuit_breaker(failure_threshold=2)
    async def aget(self, path: str) -> list[str]:
        return [path]


async def check() -> None:
    assert_type(fetch("u", retries=1), bytes)
    assert_type(await afetch("u"), bytes)
    assert_type(bare(1), int)
    assert_type(await configured(1), str)
    assert_type(Client().get("/"), dict[str, int])
    assert_type(await Client().aget("/"), list[str])
    assert_type(breaker.call(bare, 2), int)
    assert_type(await breaker.call_async(afetch, "u"), bytes)
    with breaker as entered:
        assert_type(entered, CircuitBreaker)


def check_registry_options() -> None:
    # Options are a TypedDict: a misspelt or mistyped one is a type error where written.
    get_circuit_breaker("db", failure_threshold=3, recovery_timeout=5.0)
    get_circuit_breaker("db", failure_treshold=3)  # type: ignore[call-arg]
    get_circuit_breaker("db", failure_threshold="3")  # type: ignore[arg-type]
    circuit_breaker(name="db", success_threshold=2)
    circuit_breaker(name="db", sucess_threshold=2)  # type: ignore[call-overload]
