"""Type tests for the retry API: checked by ``mypy --strict``, and importable by pytest.

Nothing here is called at import time; the functions exist so mypy checks their bodies.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, assert_type

from resilience import (
    Retry,
    RetryBudget,
    RetryContext,
    RetryState,
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
)
from resilience._retry import RetryAttempt
from resilience.backoff import Backoff, Constant, Exponential, Jitter, Linear
from resilience.testing import FakeClock, instant_retries


@retry_with_backoff(max_retries=2, base_delay=0.1)
def fetch(url: str, *, timeout: float = 1.0) -> bytes:
    """A decorated function."""
    return url.encode()


@retry_with_backoff(jitter="decorrelated", exceptions=(ConnectionError, TimeoutError))
async def afetch(url: str, retries: int = 0) -> dict[str, int]:
    """A decorated coroutine function."""
    return {url: retries}


class Client:
    """Decorated methods of every kind."""

    @retry_with_backoff(name="client-get")
    def get(self, key: str) -> int:
        """A decorated method."""
        return len(key)

    @retry_with_backoff(name="client-aget")
    async def aget(self, key: str) -> list[str]:
        """A decorated async method."""
        return [key]

    @staticmethod
    @retry_with_backoff()
    def ping() -> None:
        """A decorated static method."""
        return

    @classmethod
    @retry_with_backoff()
    def make(cls) -> Client:
        """A decorated class method."""
        return cls()


def check_decorated_functions_keep_their_types() -> None:
    """Decorated functions keep their signatures."""
    as_callable: Callable[[str], bytes] = fetch
    assert_type(as_callable("u"), bytes)
    assert_type(fetch("u"), bytes)
    assert_type(fetch("u", timeout=2.0), bytes)
    coroutine = afetch("u")
    _ = assert_type(coroutine, Coroutine[Any, Any, dict[str, int]])
    coroutine.close()


async def check_async_functions_keep_their_types() -> None:
    """Awaiting a decorated coroutine function gives its result type."""
    assert_type(await afetch("u", 3), dict[str, int])
    client = Client()
    assert_type(await client.aget("k"), list[str])


def check_methods_keep_their_types() -> None:
    """Decorated methods keep their types."""
    client = Client()
    assert_type(client.get("k"), int)
    assert_type(Client.ping(), None)
    assert_type(Client.make(), Client)


def check_the_decorator_type() -> None:
    """A decorator made once keeps the types of what it decorates."""
    decorator = retry_with_backoff(on_retry=print, backoff=Constant(1.0))

    def plain(x: int) -> str:
        return str(x)

    assert_type(decorator(plain)(1), str)


def check_retry_on_failure() -> None:
    """A call through retry_on_failure has the function's result type."""
    assert_type(retry_on_failure(lambda: 3, max_retries=1), int)


async def check_retry_on_failure_async() -> None:
    """Passing a coroutine function to retry_on_failure gives an awaitable."""

    async def work() -> float:
        return 1.0

    assert_type(await retry_on_failure(work, sleep=FakeClock().asleep), float)


def check_presets() -> None:
    """The presets check the arguments against the function."""

    def connect(host: str, port: int) -> bytes:
        return host.encode() + bytes(port)

    assert_type(retry_network_operation(connect, "db", 5432), bytes)
    assert_type(retry_api_call(connect, "api", port=443), bytes)


async def check_presets_async() -> None:
    """The presets of coroutine functions are awaitable."""

    async def call(path: str) -> dict[str, str]:
        return {"path": path}

    assert_type(await retry_api_call(call, "/"), dict[str, str])
    assert_type(await retry_network_operation(call, path="/"), dict[str, str])


def check_retry_context() -> None:
    """RetryContext loops hand out attempts."""
    context = RetryContext(max_retries=2, jitter=False, budget=RetryBudget())
    assert_type(context.get_delay(1), float)
    for attempt in context:
        assert_type(attempt, RetryAttempt)
        with attempt:
            assert_type(attempt.number, int)


async def check_retry_context_async() -> None:
    """RetryContext works with async for."""
    async for attempt in RetryContext(sleep=FakeClock().asleep):
        with attempt:
            attempt.set_result(None)


def check_on_retry_state() -> None:
    """The on_retry callback gets a typed RetryState."""

    def log(state: RetryState) -> None:
        assert_type(state.attempt, int)
        assert_type(state.exception, BaseException | None)
        assert_type(state.delay, float)
        assert_type(state.elapsed, float)
        assert_type(state.name, str | None)

    retry_with_backoff(on_retry=log)


def check_backoff_strategies() -> None:
    """Strategies and plain functions are Backoffs."""
    strategies: list[Backoff] = [
        Constant(1.0),
        Linear(0.5, 0.5, max_delay=10.0),
        Exponential(0.1, jitter="full", rng=random.Random(1)),
        lambda n: n * 0.1,
    ]
    jitter: Jitter = "equal"
    assert_type(Exponential(1.0, jitter=jitter)(3), float)
    assert_type(strategies[0](1), float)
    retry_with_backoff(backoff=strategies[1])


def check_instant_retries() -> None:
    """The instant_retries helper is a context manager and a type-keeping decorator."""
    with instant_retries():
        pass

    @instant_retries
    def run(x: int) -> int:
        return x

    @instant_retries()
    async def arun(x: int) -> str:
        return str(x)

    assert_type(run(1), int)
    coroutine = arun(1)
    _ = assert_type(coroutine, Coroutine[Any, Any, str])
    coroutine.close()


def check_sleep_types() -> None:
    """FakeClock sleeps fit sleep=."""
    clock = FakeClock()
    sleeps: list[Callable[[float], Awaitable[None] | None]] = [clock.sleep, clock.asleep]
    retry_with_backoff(sleep=sleeps[0], clock=clock)


def check_retry_strategy() -> None:
    """Retry is what retry_with_backoff returns; call and call_async keep result types."""
    retry = retry_with_backoff(max_retries=1)
    assert_type(retry, Retry)
    assert_type(Retry(name="r").call(len, "abc"), int)

    @Retry(max_retries=1)
    def plain(x: int) -> str:
        return str(x)

    assert_type(plain(1), str)


async def check_retry_strategy_async() -> None:
    """call_async gives the coroutine function's result type."""

    async def work(x: int) -> bytes:
        return bytes(x)

    assert_type(await Retry().call_async(work, 3), bytes)


def check_presets_as_factories() -> None:
    """Presets called with options only return a Retry that keeps decorated types."""
    api = retry_api_call(name="github", max_retries=2, retry_after=lambda outcome: None)
    assert_type(api, Retry)
    network = retry_network_operation(max_retries=1)

    @network
    def ping(host: str) -> float:
        return 0.1

    assert_type(ping("h"), float)


def check_new_options() -> None:
    """The hooks, min_delay and unlimited attempts type-check."""

    def before(n: int) -> None:
        return

    def done(state: RetryState) -> None:
        return

    Retry(
        max_retries=None,
        max_elapsed=30.0,
        min_delay=0.1,
        before=before,
        on_success=done,
        on_giveup=done,
        retry_after=lambda outcome: 1.0,
    )


def check_parity_helpers() -> None:
    """retry_statistics, backoff.Random and testing.retries type-check."""
    from resilience import RetryStatistics, retry_statistics
    from resilience.backoff import Random
    from resilience.testing import retries

    assert_type(retry_statistics(fetch), RetryStatistics)
    assert_type(retry_statistics(fetch)["calls"], float)
    assert_type(Random(0.1, 0.5)(1), float)
    with retries(active=False):
        pass

    @retries(attempts=2)
    def run(x: int) -> int:
        return x

    assert_type(run(1), int)
