"""Benchmark resilience.metrics: scrape time and memory for many breakers, and call cost.

Run: python benchmarks/bench_metrics.py [--breakers 10000] [--scrapes 7] [--quick]

Prints markdown tables:
- the time of one scrape of N breakers, rendered by the metrics server
  (``start_metrics_server``'s ``/metrics``, in process and over HTTP) and by
  prometheus_client's ``generate_latest`` on the same registry (what a hand-mounted
  ``make_wsgi_app`` does), with the memory a scrape allocates at its peak;
- the cost of ``breaker.call`` with and without the collector registered, in ns per call
  and as a ratio to a bare call measured in the same interleaved rounds (``_timing``).
  Metrics add nothing to the call path, so the two should match within noise.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
import urllib.request
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest

import _timing
from resilience import BreakerRegistry, CircuitBreaker, CountWindow, FailureRate
from resilience.metrics import _exposition, register_metrics, start_metrics_server

if TYPE_CHECKING:
    from collections.abc import Callable


def make_breakers(count: int) -> BreakerRegistry:
    """Return ``count`` named breakers, a tenth with a failure-rate policy, some tripped."""
    breakers = BreakerRegistry()
    rate = FailureRate(threshold=0.5, window=CountWindow(20), minimum_calls=5)
    for i in range(count):
        if i % 10 == 0:
            breaker = breakers.get(f"service-{i}", policy=rate)
            for _ in range(5):
                breaker.call(int)
        else:
            breaker = breakers.get(f"service-{i}", failure_threshold=3)
            breaker.call(int)
        if i % 100 == 0:
            breaker.open()
    return breakers


def median_ms(func: Callable[[], object], runs: int) -> float:
    """Return the median wall time of ``func()`` over ``runs`` runs, in milliseconds."""
    func()  # warm up
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def peak_mib(func: Callable[[], object]) -> float:
    """Return the peak memory ``func()`` allocates while it runs, in MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def scrape_table(count: int, runs: int) -> float:
    """Print the scrape time and memory of ``count`` breakers; return the in-process ms."""
    gc.collect()
    tracemalloc.start()
    breakers = make_breakers(count)
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    registry = CollectorRegistry()
    register_metrics(registry, breakers)
    size = sum(map(len, _exposition(registry)))
    with start_metrics_server(port=0, registry=registry, breakers=breakers) as server:

        def http(encoding: str) -> bytes:
            request = urllib.request.Request(  # noqa: S310  # loopback
                server.url + "/metrics", headers={"Accept-Encoding": encoding}
            )
            with urllib.request.urlopen(request) as response:  # noqa: S310  # loopback
                return bytes(response.read())

        rows = [
            ("metrics server, in process", lambda: _exposition(registry)),
            ("metrics server, HTTP GET", lambda: http("identity")),
            ("metrics server, HTTP GET, gzip", lambda: http("gzip")),
            ("prometheus_client generate_latest", lambda: generate_latest(registry)),
        ]
        _timing.heading(f"One scrape of {count:,} breakers ({size / 2**20:.1f} MiB of text)")
        print(f"The breakers hold {held:.1f} MiB; the collector keeps nothing between scrapes.\n")
        figures = [(label, median_ms(func, runs), peak_mib(func)) for label, func in rows]
        _timing.table(
            ["rendering", "median ms", "peak MiB allocated"],
            [(label, f"{ms:.1f}", f"{mib:.1f}") for label, ms, mib in figures],
        )
    return figures[0][1]


def call_table(timing: _timing.Plan) -> float:
    """Print the per-call cost of a breaker with and without metrics registered.

    Returns the with/without ratio of the consecutive-failures breaker's call.
    """
    breakers = BreakerRegistry()
    breaker = breakers.get("hot")
    rated = breakers.get("hot-rate", policy=FailureRate())
    anonymous = CircuitBreaker()

    def bare() -> int:
        return 1

    def measure() -> dict[str, _timing.Timing]:
        return _timing.compare(
            {
                "breaker.call (consecutive failures)": _timing.loop(lambda: breaker.call(bare)),
                "breaker.call (failure rate)": _timing.loop(lambda: rated.call(bare)),
                "unnamed breaker.call": _timing.loop(lambda: anonymous.call(bare)),
            },
            _timing.loop(bare),
            timing=timing,
        )

    before = measure()
    register_metrics(CollectorRegistry(), breakers)
    after = measure()
    _timing.heading("Cost of a call, metrics registered or not")
    print("Best ns per call over interleaved rounds, and that over the bare call's best.\n")
    first, later = next(iter(before.values())), next(iter(after.values()))
    _timing.table(
        ["call", "ns/call without", "ratio", "ns/call with", "ratio"],
        [
            (
                "bare call",
                _timing.ns(first.baseline_ns),
                "1.00×",
                _timing.ns(later.baseline_ns),
                "1.00×",
            )
        ]
        + [
            (
                label,
                _timing.ns(without.ns),
                _timing.times(without.best_ratio, 2),
                _timing.ns(after[label].ns),
                _timing.times(after[label].best_ratio, 2),
            )
            for label, without in before.items()
        ],
    )
    key = "breaker.call (consecutive failures)"
    return after[key].best_ratio / before[key].best_ratio


def main() -> None:
    parser = _timing.parser(__doc__)
    parser.add_argument("--breakers", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=7)
    args = parser.parse_args()
    scrape = scrape_table(args.breakers, args.scrapes)
    registered = call_table(_timing.plan(quick=args.quick))
    goals = [
        _timing.at_most(
            5, "`breaker.call` with metrics registered ≤ 1.10× without", registered, 1.1
        )
    ]
    if args.breakers >= 10_000:
        goals.insert(
            0, _timing.at_most(5, "one scrape of 10,000 breakers ≤ 100 ms", scrape, 100, "ms")
        )
    else:
        print(f"\n(the scrape target is for 10,000 breakers; this run scraped {args.breakers:,})")
    _timing.targets(goals)


if __name__ == "__main__":
    main()
