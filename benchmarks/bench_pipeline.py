"""Benchmark the bulkhead and a three-strategy pipeline against a bare call, in one run.

Run: ``python benchmarks/bench_pipeline.py`` (``--quick`` for a short run). Every figure is
measured in this process: ns per call and the ratio to a bare call of the same function,
each ratio taken within one round against its own baseline (the median of the rounds).

Targets (issue 12): a bulkhead admission and release costs at most 10x a bare call; a
pipeline of a retry, a breaker and a bulkhead costs, on a success, no more than the same
three stacked as decorators.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import TYPE_CHECKING, Any

import resilience
from resilience._context import CallContext, _current
from resilience._pipeline import _chain

if TYPE_CHECKING:
    from collections.abc import Callable

REPEAT = 9


def _per_call(body: Callable[[int], None], number: int) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    body(number)
    return (time.perf_counter_ns() - start) / number


def _paired(
    body: Callable[[int], None], baseline: Callable[[int], None], number: int
) -> tuple[float, float, float]:
    """Best ns per call of ``body``, of ``baseline``, and the median per-round ratio."""
    best = best_base = float("inf")
    ratios = []
    for _ in range(REPEAT):
        base = _per_call(baseline, number)
        ns = _per_call(body, number)
        best, best_base = min(best, ns), min(best_base, base)
        ratios.append(ns / base)
    return best, best_base, statistics.median(ratios)


def _calls(func: Callable[[], object]) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            func()

    return body


def _awaits(make: Callable[[], Any]) -> Callable[[int], None]:
    def body(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                await make()

        asyncio.run(run())

    return body


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


def _parts() -> tuple[resilience.Retry, resilience.CircuitBreaker, resilience.Bulkhead]:
    return (
        resilience.Retry(max_retries=3, base_delay=0.0),
        resilience.CircuitBreaker(failure_threshold=10**9),
        resilience.Bulkhead(64),
    )


def main() -> None:
    """Measure and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per round")
    number = 20_000 if parser.parse_args().quick else 100_000

    bare = _calls(ok)
    retry, breaker, pool = _parts()
    stacked = retry(breaker(pool(ok)))
    pipeline = resilience.Pipeline(*_parts())
    piped = pipeline(ok)
    sync_rows: list[tuple[str, Callable[[int], None]]] = [
        ("bulkhead.call(f)", _calls(lambda: pool.call(ok))),
        ("@bulkhead", _calls(pool(ok))),
        ("with bulkhead", _calls(lambda: _block(pool))),
        ("@retry alone", _calls(retry(ok))),
        ("@breaker alone", _calls(breaker(ok))),
        ("retry, breaker, bulkhead stacked as decorators", _calls(stacked)),
        ("@pipeline(retry, breaker, bulkhead)", _calls(piped)),
        ("pipeline.call(f)", _calls(lambda: pipeline.call(ok))),
        # What the pipeline costs without opening its per-call context: the chain alone.
        ("the same chain without the call context", _calls(_chain(pipeline.strategies, ok))),
        ("opening and closing a call context alone", _calls(_context_only)),
    ]
    results: dict[str, tuple[float, float, float]] = {}
    print(f"sync, {number:,} calls per round, {REPEAT} rounds; ratio = ns / bare call ns")
    print()
    print("| form | ns per call | ratio to a bare call |")
    print("|---|---|---|")
    for label, body in sync_rows:
        results[label] = _paired(body, bare, number)
        ns, _, ratio = results[label]
        print(f"| {label} | {ns:.0f} | {ratio:.1f}x |")
    _, base_ns, _ = results["bulkhead.call(f)"]
    print(f"| bare call | {base_ns:.0f} | 1.0x |")

    abare = _awaits(aok)
    aretry, abreaker, apool = _parts()
    astacked = aretry(abreaker(apool(aok)))
    apipeline = resilience.Pipeline(*_parts())
    apiped = apipeline(aok)
    async_rows: list[tuple[str, Callable[[int], None]]] = [
        ("await bulkhead.call_async(f)", _awaits(lambda: apool.call_async(aok))),
        ("retry, breaker, bulkhead stacked (async)", _awaits(astacked)),
        ("@pipeline (async)", _awaits(apiped)),
        ("await pipeline.call_async(f)", _awaits(lambda: apipeline.call_async(aok))),
    ]
    print()
    print("| async form | ns per call | ratio to a bare await |")
    print("|---|---|---|")
    for label, body in async_rows:
        results[label] = _paired(body, abare, number // 2)
        ns, _, ratio = results[label]
        print(f"| {label} | {ns:.0f} | {ratio:.1f}x |")

    print()
    admission = results["bulkhead.call(f)"][2]
    stack = results["retry, breaker, bulkhead stacked as decorators"][2]
    parts = sum(
        results[label][2] - 1.0 for label in ("@retry alone", "@breaker alone", "@bulkhead")
    )
    piped_ratio = results["@pipeline(retry, breaker, bulkhead)"][2]
    called_ratio = results["pipeline.call(f)"][2]
    verdict = "met" if admission <= 10.0 else "NOT met"  # the target
    print(f"bulkhead admission + release: {admission:.1f}x a bare call (target <= 10x: {verdict})")
    print(
        f"pipeline overhead: decorated {piped_ratio - 1:.1f}x, call() {called_ratio - 1:.1f}x; "
        f"stacked decorators {stack - 1:.1f}x; the parts alone add up to {parts:.1f}x "
        f"(target: pipeline <= stacked: "
        f"{'met' if piped_ratio <= stack and called_ratio <= stack else 'NOT met'})"
    )


def _context_only() -> None:
    token = _current.set(CallContext("bench"))
    _current.reset(token)


def _block(pool: resilience.Bulkhead) -> int:
    with pool:
        return ok()


if __name__ == "__main__":
    main()
