"""Benchmark the circuit breaker against a bare call and against its peers, in one run.

Run: ``pip install -e '.[bench]' && python benchmarks/bench_breaker.py`` (``--quick`` for a
short run). Every figure is measured in this process, in this run: ns per call and the
ratio to a bare call of the same function. Peers missing from the environment are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import resilience

if TYPE_CHECKING:
    from collections.abc import Callable

REPEAT = 9


def _per_call(body: Callable[[int], None], number: int) -> float:
    """Nanoseconds per iteration of one ``body(number)`` run (it loops itself)."""
    gc.collect()
    start = time.perf_counter_ns()
    body(number)
    return (time.perf_counter_ns() - start) / number


def _paired(
    body: Callable[[int], None], baseline: Callable[[int], None], number: int
) -> tuple[float, float]:
    """Time ``body`` and ``baseline`` in alternation, REPEAT rounds.

    Returns the best ns per call of ``body`` and the median of the per-round ratios: this
    machine's speed drifts (a virtual CPU), and a ratio taken within one round cancels the
    drift where two separate bests would not.
    """
    best = float("inf")
    ratios = []
    for _ in range(REPEAT):
        base = _per_call(baseline, number)
        ns = _per_call(body, number)
        best = min(best, ns)
        ratios.append(ns / base)
    return best, statistics.median(ratios)


def _calls(func: Callable[[], object]) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            func()

    return body


def _raising(func: Callable[[], object]) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            try:
                func()
            except Exception:  # every peer raises its own error type
                pass

    return body


def _awaits(make_coro: Callable[[], Any]) -> Callable[[int], None]:
    def body(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                await make_coro()

        asyncio.run(run())

    return body


def ok() -> int:
    return 1


def boom() -> int:
    raise ConnectionError


async def aok() -> int:
    return 1


# --------------------------------------------------------------------------- adapters
# Each adapter makes a closed breaker with a huge threshold (so failures never trip it),
# an open breaker, and says how to call it.


class Peer:
    name: str
    has_async = True

    def closed(self) -> Any:
        raise NotImplementedError

    def opened(self) -> Any:
        raise NotImplementedError

    def call(self, breaker: Any) -> Callable[[], object]:
        return lambda: breaker.call(ok)

    def decorated(self, breaker: Any) -> Callable[[], object]:
        return breaker(ok)

    def failing(self, breaker: Any) -> Callable[[], object]:
        return lambda: breaker.call(boom)

    def async_call(self, breaker: Any) -> Callable[[], Any]:
        return lambda: breaker.call_async(aok)

    def make(self, name: str) -> Any:
        raise NotImplementedError


class Ours(Peer):
    name = "resilience"

    def closed(self) -> Any:
        return resilience.CircuitBreaker(failure_threshold=10**9, recovery_timeout=3600)

    def opened(self) -> Any:
        breaker = self.closed()
        breaker.open()
        return breaker


class PyBreaker(Peer):
    name = "pybreaker"
    has_async = False  # its call_async needs tornado

    def __init__(self) -> None:
        self.mod = importlib.import_module("pybreaker")

    def closed(self) -> Any:
        return self.mod.CircuitBreaker(fail_max=10**9, reset_timeout=3600)

    def opened(self) -> Any:
        breaker = self.closed()
        breaker.open()
        return breaker

    def make(self, name: str) -> Any:
        return self.mod.CircuitBreaker(name=name)


class CircuitBreakerLib(Peer):
    name = "circuitbreaker"

    def __init__(self) -> None:
        self.mod = importlib.import_module("circuitbreaker")

    def closed(self) -> Any:
        return self.mod.CircuitBreaker(failure_threshold=10**9, recovery_timeout=3600)

    def opened(self) -> Any:
        breaker = self.mod.CircuitBreaker(failure_threshold=1, recovery_timeout=3600)
        with contextlib.suppress(ConnectionError):
            breaker.call(boom)
        return breaker

    def make(self, name: str) -> Any:
        return self.mod.CircuitBreaker(name=name)


class AioBreaker(Peer):
    name = "aiobreaker"

    def __init__(self) -> None:
        self.mod = importlib.import_module("aiobreaker")

    def closed(self) -> Any:
        return self.mod.CircuitBreaker(fail_max=10**9, timeout_duration=timedelta(hours=1))

    def opened(self) -> Any:
        breaker = self.closed()
        breaker.open()
        return breaker

    def make(self, name: str) -> Any:
        return self.mod.CircuitBreaker(name=name)


def _peers() -> list[Peer]:
    peers: list[Peer] = [Ours()]
    for cls in (PyBreaker, CircuitBreakerLib, AioBreaker):
        try:
            peers.append(cls())
        except ImportError:
            print(f"(skipping {cls.name}: not installed; pip install -e '.[bench]')")
    return peers


# --------------------------------------------------------------------------- scenarios


def _threads_ratio(peer: Peer, calls: int) -> float:
    """Throughput with 8 threads on one breaker divided by throughput with one."""
    breaker = peer.closed()
    call = peer.call(breaker)

    def work(n: int) -> None:
        for _ in range(n):
            call()

    def run(threads: int) -> float:
        per = calls // threads
        workers = [threading.Thread(target=work, args=(per,)) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return per * threads / (time.perf_counter() - start)

    # Alternate the two, and take the median of the per-round ratios (see _paired).
    return statistics.median(run(8) / run(1) for _ in range(REPEAT))


def _bytes_per_breaker(make: Callable[[], Any], count: int = 10_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make() for _ in range(count)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / count


def _create_named_ms(make: Callable[[str], Any], count: int = 10_000) -> float:
    names = [f"breaker-{i}" for i in range(count)]
    best = float("inf")
    for _ in range(REPEAT):
        gc.collect()
        start = time.perf_counter()
        make_all = [make(name) for name in names]
        best = min(best, time.perf_counter() - start)
        del make_all
    return best * 1e3


def _ours_named(count: int = 10_000) -> float:
    names = [f"breaker-{i}" for i in range(count)]
    best = float("inf")
    for _ in range(REPEAT):
        registry = resilience.BreakerRegistry()
        get = registry.get
        gc.collect()
        start = time.perf_counter()
        for name in names:
            get(name)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def _import_ms(preload: str = "") -> float:
    """Best of seven fresh interpreters: ``import resilience`` cumulative time.

    With ``preload``, those modules are imported first, so the figure is what resilience
    adds to an application that already uses them.
    """
    best = float("inf")
    for _ in range(7):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"{preload}import resilience"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for line in err.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == "resilience":
                best = min(best, int(parts[1]) / 1e3)
    return best


_COMMON = "import logging, typing, dataclasses, enum, threading, contextvars, random; "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 50_000 if args.quick else 300_000
    peers = _peers()

    bare = _calls(ok)
    bare_await = _awaits(aok)
    lock = threading.Lock()

    def locked() -> None:
        with lock:
            pass

    def row(scenario: str, lib: str, body: Callable[[int], None], count: int) -> None:
        baseline = bare_await if scenario.startswith("async") else bare
        ns, ratio = _paired(body, baseline, count)
        rows.append((scenario, lib, ns, ratio))

    rows: list[tuple[str, str, float, float]] = []
    row("bare call", "-", bare, n)
    row("bare `with threading.Lock()`", "-", _calls(locked), n)
    row("bare raise + except", "-", _raising(boom), n // 5)
    row("async: bare `await`", "-", bare_await, n // 2)
    for peer in peers:
        row("closed success, `call`", peer.name, _calls(peer.call(peer.closed())), n)
        row("closed success, decorator", peer.name, _calls(peer.decorated(peer.closed())), n)
        # Rejections go through each decorator: circuitbreaker's call() does not check the
        # state at all (only its decorator rejects), so call() would time a success for it.
        opened = peer.decorated(peer.opened())
        row("open rejection, decorator (with the raise)", peer.name, _raising(opened), n // 5)
        failing = peer.failing(peer.closed())
        row("failure recording (with the raise)", peer.name, _raising(failing), n // 5)
        if peer.has_async:
            make = peer.async_call(peer.closed())
            row("async: closed success (× bare await)", peer.name, _awaits(make), n // 2)

    print("\n## Per call\n")
    print("Ratios: the median over rounds of (ns per call) / (ns per bare call, or bare await")
    print("for async rows) timed right before it in the same round.\n")
    print("| scenario | library | best ns/call | × bare |")
    print("|---|---|---:|---:|")
    for scenario, lib, ns, ratio in rows:
        print(f"| {scenario} | {lib} | {ns:,.0f} | {ratio:.1f}× |")

    print("\n## Threads, memory, creation, import\n")
    print("| measure | library | value |")
    print("|---|---|---:|")
    calls = 200_000 if args.quick else 800_000
    for peer in peers:
        print(f"| 8-thread / 1-thread throughput, one breaker | {peer.name} | "
              f"{_threads_ratio(peer, calls):.2f}× |")  # fmt: skip
    print(f"| bytes per breaker | resilience | {_bytes_per_breaker(Ours().closed):,.0f} |")
    for peer in peers[1:]:
        print(f"| bytes per breaker | {peer.name} | {_bytes_per_breaker(peer.closed):,.0f} |")
    print(f"| create 10,000 named breakers (registry) | resilience | {_ours_named():.1f} ms |")
    for peer in peers[1:]:
        print(f"| create 10,000 named breakers | {peer.name} | "
              f"{_create_named_ms(peer.make):.1f} ms |")  # fmt: skip
    print(f"| `import resilience`, cold interpreter | resilience | {_import_ms():.1f} ms |")
    print(
        "| `import resilience` after logging, typing, dataclasses | resilience | "
        f"{_import_ms(_COMMON):.1f} ms |"
    )


if __name__ == "__main__":
    main()
