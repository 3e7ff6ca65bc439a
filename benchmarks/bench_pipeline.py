"""Benchmark the bulkhead and a three-strategy pipeline against a bare call, in one run.

Run: ``python benchmarks/bench_pipeline.py`` (``--quick`` for a short run). Every figure is
measured in this process: ns per call and the ratio to a bare call of the same function,
each ratio taken within one round against a bare call timed right before it (the median of
the interleaved rounds of ``_timing.compare``).

Targets (issue 12): a bulkhead admission and release costs at most 10x a bare call; a
pipeline of a retry, a breaker and a bulkhead costs, on a success, no more than the same
three stacked as decorators.
"""

from __future__ import annotations

import _timing
import resilience
from resilience._context import CallContext, _current
from resilience._pipeline import _chain


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
    """Measure and print the tables and the targets."""
    args = _timing.parser(__doc__).parse_args()
    timing = _timing.plan(quick=args.quick)
    loop = _timing.loop

    retry, breaker, pool = _parts()
    stacked = retry(breaker(pool(ok)))
    pipeline = resilience.Pipeline(*_parts())
    piped = pipeline(ok)
    results = _timing.compare(
        {
            "bulkhead.call(f)": loop(lambda: pool.call(ok)),
            "@bulkhead": loop(pool(ok)),
            "with bulkhead": loop(lambda: _block(pool)),
            "@retry alone": loop(retry(ok)),
            "@breaker alone": loop(breaker(ok)),
            "retry, breaker, bulkhead stacked as decorators": loop(stacked),
            "@pipeline(retry, breaker, bulkhead)": loop(piped),
            "pipeline.call(f)": loop(lambda: pipeline.call(ok)),
            # What the pipeline costs without opening its per-call context: the chain alone.
            "the same chain without the call context": loop(_chain(pipeline.strategies, ok)),
            "opening and closing a call context alone": loop(_context_only),
        },
        loop(ok),
        timing=timing,
    )
    print(f"{timing.rounds} interleaved rounds; ratio: the median of ns / bare call ns per round")
    print()
    _timing.table(
        ["form", "ns per call", "ratio to a bare call"],
        [(label, _timing.ns(t.ns), _timing.times(t.ratio)) for label, t in results.items()]
        + [("bare call", _timing.ns(results["bulkhead.call(f)"].baseline_ns), "1.0×")],
    )

    aretry, abreaker, apool = _parts()
    astacked = aretry(abreaker(apool(aok)))
    apipeline = resilience.Pipeline(*_parts())
    apiped = apipeline(aok)
    awaited = _timing.compare(
        {
            "await bulkhead.call_async(f)": _timing.awaits(lambda: apool.call_async(aok)),
            "retry, breaker, bulkhead stacked (async)": _timing.awaits(astacked),
            "@pipeline (async)": _timing.awaits(apiped),
            "await pipeline.call_async(f)": _timing.awaits(lambda: apipeline.call_async(aok)),
        },
        _timing.awaits(aok),
        timing=timing,
    )
    print()
    _timing.table(
        ["async form", "ns per call", "ratio to a bare await"],
        [(label, _timing.ns(t.ns), _timing.times(t.ratio)) for label, t in awaited.items()],
    )

    ratio = {label: t.ratio for label, t in results.items()}
    stack = ratio["retry, breaker, bulkhead stacked as decorators"]
    parts = sum(ratio[label] - 1.0 for label in ("@retry alone", "@breaker alone", "@bulkhead"))
    print(
        f"\nOverhead over a bare call: stacked decorators {stack - 1:.1f}×; the parts alone add "
        f"up to {parts:.1f}×; the chain without the call context "
        f"{ratio['the same chain without the call context'] - 1:.1f}×."
    )
    _timing.targets(
        [
            _timing.at_most(
                12, "bulkhead admission + release ≤ 10×", ratio["bulkhead.call(f)"], 10
            ),
            _timing.at_most(
                12,
                "`@pipeline` ≤ the same three stacked as decorators",
                ratio["@pipeline(retry, breaker, bulkhead)"] / stack,
                1,
            ),
            _timing.at_most(
                12,
                "`pipeline.call(f)` ≤ the same three stacked as decorators",
                ratio["pipeline.call(f)"] / stack,
                1,
            ),
        ]
    )


def _context_only() -> None:
    token = _current.set(CallContext("bench"))
    _current.reset(token)


def _block(pool: resilience.Bulkhead) -> int:
    with pool:
        return ok()


if __name__ == "__main__":
    main()
