"""Benchmark resilience.metrics: scrape time and memory for many breakers, and call cost.

Run: PYTHONPATH=src python benchmarks/bench_metrics.py [--breakers 10000] [--scrapes 7]

Prints markdown tables:
- the time of one scrape of N breakers, rendered by the metrics server
  (``start_metrics_server``'s ``/metrics``, in process and over HTTP) and by
  prometheus_client's ``generate_latest`` on the same registry (what a hand-mounted
  ``make_wsgi_app`` does), with the memory a scrape allocates at its peak;
- the cost of ``breaker.call`` with and without the collector registered, in ns per call
  and as a ratio to a bare call measured in the same run. Metrics add nothing to the call
  path, so the two should match within noise.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import timeit
import tracemalloc
import urllib.request
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest

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


def scrape_table(count: int, runs: int) -> None:
    """Print the scrape time and memory of ``count`` breakers."""
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
        print(f"\n### One scrape of {count:,} breakers ({size / 2**20:.1f} MiB of text)\n")
        print(f"The breakers hold {held:.1f} MiB; the collector keeps nothing between scrapes.\n")
        print("| rendering | median ms | peak MiB allocated |")
        print("|---|---:|---:|")
        for label, func in rows:
            print(f"| {label} | {median_ms(func, runs):.1f} | {peak_mib(func):.1f} |")


def call_table(number: int) -> None:
    """Print the per-call cost of a breaker with and without metrics registered."""
    breakers = BreakerRegistry()
    breaker = breakers.get("hot")
    rated = breakers.get("hot-rate", policy=FailureRate())
    anonymous = CircuitBreaker()

    def bare() -> int:
        return 1

    def cost(stmt: Callable[[], object]) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=15)) / number * 1e9

    def measure() -> list[tuple[str, float]]:
        return [
            ("bare call", cost(bare)),
            ("breaker.call (consecutive failures)", cost(lambda: breaker.call(bare))),
            ("breaker.call (failure rate)", cost(lambda: rated.call(bare))),
            ("unnamed breaker.call", cost(lambda: anonymous.call(bare))),
        ]

    measure()  # warm up: the first pass pays for caches and frequency scaling
    before = measure()
    register_metrics(CollectorRegistry(), breakers)
    after = measure()
    base_before, base_after = before[0][1], after[0][1]
    print("\n### Cost of a call, metrics registered or not\n")
    print("| call | ns/call without | ratio | ns/call with | ratio |")
    print("|---|---:|---:|---:|---:|")
    for (label, without), (_, with_) in zip(before, after, strict=True):
        print(
            f"| {label} | {without:.0f} | {without / base_before:.2f}x "
            f"| {with_:.0f} | {with_ / base_after:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark resilience.metrics.")
    parser.add_argument("--breakers", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    scrape_table(args.breakers, args.scrapes)
    call_table(args.calls)


if __name__ == "__main__":
    main()
