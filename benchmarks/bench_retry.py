"""Retry overhead: resilience vs tenacity, backoff and stamina, as ratios to bare calls.

Run: ``PYTHONPATH=src python benchmarks/bench_retry.py``. Prints a markdown table.

Scenarios, each with zero delay between attempts:

- first-try success: a call that succeeds at once; ratio to calling the function bare.
- 3 failures then success: four attempts per call; ratio to a hand-written loop of four
  ``try`` / ``except`` attempts (the least any retry can cost).

The other libraries call ``time.sleep(0)`` between attempts even with zero delay, which is
a system call whose cost is the scheduler's, not the library's; ``time.sleep`` is made a
no-op while they run so the table compares retry machinery. (``resilience`` never calls
sleep for a zero delay.) Async variants keep ``asyncio.sleep(0)``, a cheap event-loop
yield. stamina's instrumentation hooks are switched off, as is backoff's logging.

Each figure is the fastest of several interleaved rounds, which filters out noise from
other processes; compare ratios, not absolute nanoseconds, across machines.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from typing import TYPE_CHECKING, Any

import backoff
import stamina
import tenacity

from resilience import retry_with_backoff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ROUNDS = 9
ROUND_SECONDS = 0.04

stamina.instrumentation.set_on_retry_hooks([])
_real_sleep = time.sleep


def _no_sleep(seconds: float) -> None:
    """Stand in for time.sleep(0) between the other libraries' attempts."""


# ---------------------------------------------------------------------- the functions


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


def make_flaky() -> Callable[[], int]:
    failing = itertools.cycle((True, True, True, False))

    def flaky() -> int:
        if next(failing):
            raise ConnectionError
        return 1

    return flaky


def make_aflaky() -> Callable[[], Awaitable[int]]:
    failing = itertools.cycle((True, True, True, False))

    async def aflaky() -> int:
        if next(failing):
            raise ConnectionError
        return 1

    return aflaky


def by_hand(func: Callable[[], int]) -> Callable[[], int]:
    def loop() -> int:
        for attempt in range(4):
            try:
                return func()
            except ConnectionError:
                if attempt == 3:
                    raise
        raise AssertionError

    return loop


def by_hand_async(func: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    async def loop() -> int:
        for attempt in range(4):
            try:
                return await func()
            except ConnectionError:
                if attempt == 3:
                    raise
        raise AssertionError

    return loop


# ---------------------------------------------------------------------- the libraries


def ours(func: Callable[..., Any]) -> Callable[..., Any]:
    return retry_with_backoff(max_retries=3, base_delay=0.0, jitter=False)(func)


def with_tenacity(func: Callable[..., Any]) -> Callable[..., Any]:
    return tenacity.retry(
        stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_none(), reraise=True
    )(func)


def with_backoff(func: Callable[..., Any]) -> Callable[..., Any]:
    return backoff.on_exception(
        backoff.constant, Exception, max_tries=4, interval=0, jitter=None, logger=None
    )(func)


def with_stamina(func: Callable[..., Any]) -> Callable[..., Any]:
    return stamina.retry(on=Exception, attempts=4, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)(
        func
    )


LIBRARIES = {
    "resilience": ours,
    "tenacity": with_tenacity,
    "backoff": with_backoff,
    "stamina": with_stamina,
}


# ---------------------------------------------------------------------- timing


def _calibrate(run: Callable[[int], float]) -> int:
    n = 10
    while run(n) < ROUND_SECONDS / 4:
        n *= 4
    return n


def time_sync(candidates: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Return the best ns per call of each candidate, timed in interleaved rounds."""

    def runner(func: Callable[[], Any]) -> Callable[[int], float]:
        def run(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                func()
            return time.perf_counter() - started

        return run

    runs = {name: runner(func) for name, func in candidates.items()}
    sizes = {name: _calibrate(run) for name, run in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(ROUNDS):
        for name, run in runs.items():
            best[name] = min(best[name], run(sizes[name]) / sizes[name] * 1e9)
    return best


async def time_async(candidates: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, float]:
    """The same for coroutine functions, awaited one after another in one task."""

    async def run(func: Callable[[], Awaitable[Any]], n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await func()
        return time.perf_counter() - started

    sizes = {}
    for name, func in candidates.items():
        n = 10
        while await run(func, n) < ROUND_SECONDS / 4:
            n *= 4
        sizes[name] = n
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(ROUNDS):
        for name, func in candidates.items():
            best[name] = min(best[name], await run(func, sizes[name]) / sizes[name] * 1e9)
    return best


def sync_rows() -> list[tuple[str, str, float, float]]:
    rows = []
    first = time_sync({"bare call": ok} | {name: wrap(ok) for name, wrap in LIBRARIES.items()})
    bare = first.pop("bare call")
    rows.append(("first-try success", "bare call", bare, 1.0))
    rows += [("first-try success", name, ns, ns / bare) for name, ns in first.items()]
    time.sleep = _no_sleep
    try:
        failing = time_sync(
            {"by hand": by_hand(make_flaky())}
            | {name: wrap(make_flaky()) for name, wrap in LIBRARIES.items()}
        )
    finally:
        time.sleep = _real_sleep
    hand = failing.pop("by hand")
    rows.append(("3 failures, then success", "hand-written loop", hand, 1.0))
    rows += [("3 failures, then success", name, ns, ns / hand) for name, ns in failing.items()]
    return rows


async def async_rows() -> list[tuple[str, str, float, float]]:
    rows = []
    first = await time_async(
        {"bare await": aok} | {name: wrap(aok) for name, wrap in LIBRARIES.items()}
    )
    bare = first.pop("bare await")
    rows.append(("async first-try success", "bare await", bare, 1.0))
    rows += [("async first-try success", name, ns, ns / bare) for name, ns in first.items()]
    failing = await time_async(
        {"by hand": by_hand_async(make_aflaky())}
        | {name: wrap(make_aflaky()) for name, wrap in LIBRARIES.items()}
    )
    hand = failing.pop("by hand")
    rows.append(("async 3 failures, then success", "hand-written loop", hand, 1.0))
    rows += [
        ("async 3 failures, then success", name, ns, ns / hand) for name, ns in failing.items()
    ]
    return rows


def main() -> None:
    rows = sync_rows() + asyncio.run(async_rows())
    print(f"Python {sys.version.split()[0]}; {ROUNDS} rounds, best of each.\n")
    print("| scenario | library | ns/call | x baseline |")
    print("|---|---|---:|---:|")
    for scenario, library, ns, ratio in rows:
        print(f"| {scenario} | {library} | {ns:,.0f} | {ratio:.1f}x |")
    print(
        "\nTargets for resilience: first-try <= 8x a bare call, async first-try <= 5x a bare "
        "await, 3 failures then success <= 3 us per call."
    )


if __name__ == "__main__":
    main()
