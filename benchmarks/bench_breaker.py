"""Benchmark the circuit breaker against a bare call and against its peers, in one run.

Run: ``pip install -e '.[bench]' && python benchmarks/bench_breaker.py`` (``--quick`` for a
short run). Every figure is measured in this process, in this run (see ``_timing``):

- per call: the median over interleaved rounds of (ns per call) / (ns per bare call, or
  bare await for the async row) timed right before it in the same round, for us and for
  pybreaker, circuitbreaker and aiobreaker;
- creating 10,000 named breakers, by constructor and through a ``BreakerRegistry``: the
  median per-round ratio to circuitbreaker's constructor timed right before it;
- 8-thread over 1-thread throughput on one breaker, bytes per breaker, import time.

A peer missing from the environment is skipped, with a line saying so.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import _timing
import resilience

if TYPE_CHECKING:
    from collections.abc import Callable

CREATED = 10_000
NAMES = [f"breaker-{i}" for i in range(CREATED)]


def ok() -> int:
    return 1


def boom() -> int:
    raise ConnectionError


async def aok() -> int:
    return 1


# --------------------------------------------------------------------------- adapters
# Each adapter makes a closed breaker with a huge threshold (so failures never trip it),
# an open breaker, a named breaker, and says how to call them.


class Peer:
    name: str
    has_async = True

    def closed(self) -> Any:
        raise NotImplementedError

    def opened(self) -> Any:
        raise NotImplementedError

    def named(self, name: str) -> Any:
        raise NotImplementedError

    def call(self, breaker: Any) -> Callable[[], object]:
        return lambda: breaker.call(ok)

    def decorated(self, breaker: Any) -> Callable[[], object]:
        return breaker(ok)

    def failing(self, breaker: Any) -> Callable[[], object]:
        return lambda: breaker.call(boom)

    def async_call(self, breaker: Any) -> Callable[[], Any]:
        return lambda: breaker.call_async(aok)


class Ours(Peer):
    name = "resilience"

    def closed(self) -> Any:
        return resilience.CircuitBreaker(failure_threshold=10**9, recovery_timeout=3600)

    def opened(self) -> Any:
        breaker = self.closed()
        breaker.open()
        return breaker

    def named(self, name: str) -> Any:
        return resilience.CircuitBreaker(name=name)

    def failure_rate(self) -> Any:
        policy = resilience.FailureRate(window=resilience.CountWindow(100))
        return resilience.CircuitBreaker(policy=policy, recovery_timeout=3600)


class PyBreaker(Peer):
    name = "pybreaker"
    has_async = False  # its call_async needs tornado

    def __init__(self, module: Any) -> None:
        self.mod = module

    def closed(self) -> Any:
        return self.mod.CircuitBreaker(fail_max=10**9, reset_timeout=3600)

    def opened(self) -> Any:
        breaker = self.closed()
        breaker.open()
        return breaker

    def named(self, name: str) -> Any:
        return self.mod.CircuitBreaker(name=name)


class CircuitBreakerLib(Peer):
    name = "circuitbreaker"

    def __init__(self, module: Any) -> None:
        self.mod = module

    def closed(self) -> Any:
        return self.mod.CircuitBreaker(failure_threshold=10**9, recovery_timeout=3600)

    def opened(self) -> Any:
        breaker = self.mod.CircuitBreaker(failure_threshold=1, recovery_timeout=3600)
        with contextlib.suppress(ConnectionError):
            breaker.call(boom)
        return breaker

    def named(self, name: str) -> Any:
        return self.mod.CircuitBreaker(name=name)


class AioBreaker(PyBreaker):
    """pybreaker's asyncio fork: the same API, but its time-out is a ``timedelta``."""

    name = "aiobreaker"
    has_async = True

    def closed(self) -> Any:
        return self.mod.CircuitBreaker(fail_max=10**9, timeout_duration=timedelta(hours=1))


def _peers() -> list[Peer]:
    peers: list[Peer] = []
    for cls in (PyBreaker, CircuitBreakerLib, AioBreaker):
        module = _timing.optional(cls.name)
        if module is not None:
            peers.append(cls(module))
    return peers


# --------------------------------------------------------------------------- per call

SCENARIOS = (
    "closed success, `call`",
    "closed success, decorator",
    "open rejection, decorator (with the raise)",
    "failure recording, `call` (with the raise)",
    "`FailureRate(window=CountWindow(100))`, closed success, `call`",
    "async closed success, `call_async` (× a bare await)",
)
CLOSED, DECORATED, REJECTED, FAILED, RATE, ASYNC = SCENARIOS


def per_call(
    ours: Ours, peers: list[Peer], timing: _timing.Plan
) -> dict[tuple[str, str], _timing.Timing]:
    """Time every scenario of every library; return the timings by (scenario, library)."""
    sync: dict[tuple[str, str], _timing.Runner] = {}
    asynchronous: dict[tuple[str, str], _timing.Runner] = {}
    for peer in [ours, *peers]:
        sync[CLOSED, peer.name] = _timing.loop(peer.call(peer.closed()))
        sync[DECORATED, peer.name] = _timing.loop(peer.decorated(peer.closed()))
        # Rejections go through each decorator: circuitbreaker's call() does not check the
        # state at all (only its decorator rejects), so call() would time a success for it.
        sync[REJECTED, peer.name] = _timing.raising(peer.decorated(peer.opened()))
        sync[FAILED, peer.name] = _timing.raising(peer.failing(peer.closed()))
        if peer.has_async:
            asynchronous[ASYNC, peer.name] = _timing.awaits(peer.async_call(peer.closed()))
    # No peer has a failure-rate policy: the row is ours alone.
    sync[RATE, ours.name] = _timing.loop(ours.call(ours.failure_rate()))
    timings = _timing.compare(sync, _timing.loop(ok), timing=timing)
    return timings | _timing.compare(asynchronous, _timing.awaits(aok), timing=timing)


def baselines(timing: _timing.Plan) -> dict[str, _timing.Timing]:
    """Time the reference rows against a bare call (a bare await against itself)."""
    lock = threading.Lock()

    def locked() -> None:
        with lock:
            pass

    rows = _timing.compare(
        {
            "bare call": _timing.loop(ok),
            "bare `with threading.Lock()`": _timing.loop(locked),
            "bare raise + except": _timing.raising(boom),
        },
        _timing.loop(ok),
        timing=timing,
    )
    bare_await = _timing.awaits(aok)
    return rows | _timing.compare({"bare await": bare_await}, bare_await, timing=timing)


# --------------------------------------------------------------------------- creation


def constructing(make: Callable[[str], object]) -> _timing.Runner:
    """Create ``n`` named breakers with ``make(name)``, kept alive until the clock stops."""

    def run(n: int) -> float:
        names = NAMES[:n]
        kept = []
        keep = kept.append
        started = time.thread_time()  # CPU time, as _timing's runners (see there)
        for name in names:
            keep(make(name))
        return time.thread_time() - started

    return run


def registering(n: int) -> float:
    """Create ``n`` named breakers through a fresh ``BreakerRegistry().get(name)``."""
    names = NAMES[:n]
    get = resilience.BreakerRegistry().get
    started = time.thread_time()
    for name in names:
        get(name)
    return time.thread_time() - started


CONSTRUCTOR = "resilience, `CircuitBreaker(name=...)`"
REGISTRY = "resilience, `BreakerRegistry().get(name)`"


def creation(peers: list[Peer], timing: _timing.Plan) -> tuple[str, dict[str, _timing.Timing]]:
    """Time creating CREATED named breakers; return the baseline's label and the timings."""
    ours = Ours()
    candidates = {CONSTRUCTOR: constructing(ours.named), REGISTRY: registering}
    baseline = next((p for p in peers if p.name == "circuitbreaker"), None)
    if baseline is None:
        print("(creation ratios are to our constructor: circuitbreaker is not installed)")
        label, runner = CONSTRUCTOR, candidates[CONSTRUCTOR]
    else:
        label, runner = "circuitbreaker", constructing(baseline.named)
    for peer in peers:
        candidates.setdefault(peer.name, constructing(peer.named))
    return label, _timing.compare(candidates, runner, timing=timing, number=CREATED)


# --------------------------------------------------------------------------- the rest


def threaded(call: Callable[[], object], threads: int) -> _timing.Runner:
    """Make ``n`` calls split over ``threads`` threads sharing one breaker.

    The threads are started first and wait at a gate: starting a thread while others run
    waits for the GIL, a cost of the benchmark and not of the breaker. Throughput is wall
    time, the one clock that sees all the threads.
    """

    def run(n: int) -> float:
        each = max(1, n // threads)
        gate = threading.Event()

        def work() -> None:
            gate.wait()
            for _ in range(each):
                call()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        started = time.perf_counter()
        gate.set()
        for worker in workers:
            worker.join()
        # Scaled to n calls: each * threads were made, which is n rounded to a multiple.
        return (time.perf_counter() - started) * n / (each * threads)

    return run


def thread_scaling(peer: Peer, timing: _timing.Plan) -> float:
    """8-thread throughput over 1-thread throughput on one breaker (the median of rounds)."""
    call = peer.call(peer.closed())
    # Long runs: a thread switches every 5 ms, and contention shows only over many switches.
    longer = _timing.Plan(rounds=timing.rounds, seconds=max(0.1, timing.seconds * 5))
    eight = _timing.compare({"8": threaded(call, 8)}, threaded(call, 1), timing=longer)["8"]
    return 1 / eight.ratio  # time per call 1-thread / 8-thread = throughput 8 / 1


def bytes_per_breaker(make: Callable[[], Any], count: int = 10_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make() for _ in range(count)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / count


def import_ms(repeat: int, preload: str = "") -> float:
    """Best of ``repeat`` fresh interpreters: ``import resilience`` cumulative time.

    With ``preload``, those modules are imported first, so the figure is what resilience
    adds to an application that already uses them. Bytecode caches are warm, as for an
    installed package: the interpreters write them to a temporary folder (an environment
    with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module every time).
    """
    best = float("inf")
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        command = [sys.executable, "-X", "importtime", "-c", f"{preload}import resilience"]
        subprocess.run(command, capture_output=True, check=True, env=env)  # warms the cache
        for _ in range(repeat):
            err = subprocess.run(
                command, capture_output=True, text=True, check=True, env=env
            ).stderr
            for line in err.splitlines():
                parts = [p.strip() for p in line.split("|")]
                if len(parts) == 3 and parts[2] == "resilience":
                    best = min(best, int(parts[1]) / 1e3)
    return best


COMMON = "import logging, typing, dataclasses, enum, threading, contextvars, random; "


# --------------------------------------------------------------------------- output


def main() -> None:
    args = _timing.parser(__doc__).parse_args()
    timing = _timing.plan(quick=args.quick)
    ours, peers = Ours(), _peers()
    names = [ours.name] + [p.name for p in peers]

    reference = baselines(timing)
    calls = per_call(ours, peers, timing)
    _timing.heading("Per call, as a ratio to a bare call")
    print(
        "Each cell: the median over rounds of (ns per call) / (ns per bare call, or bare await\n"
        "for the async row) timed right before it in the same round. `-`: the library has no\n"
        "such form.\n"
    )
    rows = []
    for scenario in SCENARIOS:
        ratios = [calls.get((scenario, lib)) for lib in names]
        mine = calls[scenario, ours.name]
        rows.append(
            [scenario, *(_timing.times(t.ratio) if t else "-" for t in ratios), _timing.ns(mine.ns)]
        )
    _timing.table(["scenario", *names, "resilience ns/call"], rows)
    print()
    _timing.table(
        ["reference", "ns/call", "× bare call (× bare await)"],
        [(label, _timing.ns(t.ns), _timing.times(t.ratio)) for label, t in reference.items()],
    )

    base_label, created = creation(peers, timing)
    _timing.heading(f"Creating {CREATED:,} named breakers, as a ratio to {base_label}")
    print(f"The median per-round ratio to `{base_label}` timed right before it.\n")
    first = next(iter(created.values()))
    _timing.table(
        ["how", f"ms for {CREATED:,}", f"× {base_label}"],
        [(base_label, f"{first.baseline_ns * CREATED / 1e6:.1f}", "1.00×")]
        + [
            (label, f"{t.ns * CREATED / 1e6:.1f}", _timing.times(t.ratio, 2))
            for label, t in created.items()
            if label != base_label
        ],
    )

    _timing.heading("Threads, memory, import")
    scaling = {peer.name: thread_scaling(peer, timing) for peer in [ours, *peers]}
    sizes = {peer.name: bytes_per_breaker(peer.closed) for peer in [ours, *peers]}
    repeat = 3 if args.quick else 7
    cold, warm = import_ms(repeat), import_ms(repeat, COMMON)
    _timing.table(
        ["measure", *names],
        [
            ["8-thread / 1-thread throughput, one breaker"]
            + [_timing.times(scaling[n], 2) for n in names],
            ["bytes per breaker", *(f"{sizes[n]:,.0f}" for n in names)],
            ["`import resilience`, cold interpreter", f"{cold:.1f} ms"] + ["-"] * len(peers),
            ["`import resilience` after logging, typing, dataclasses", f"{warm:.1f} ms"]
            + ["-"] * len(peers),
        ],
    )

    goals = [
        _timing.at_most(10, "closed `call` ≤ 7× a bare call", calls[CLOSED, ours.name].ratio, 7),
        _timing.at_most(10, "decorator ≤ 8×", calls[DECORATED, ours.name].ratio, 8),
        _timing.at_most(
            10, "open rejection with the raise ≤ 30×", calls[REJECTED, ours.name].ratio, 30
        ),
        _timing.at_most(10, "failure recording ≤ 40×", calls[FAILED, ours.name].ratio, 40),
        _timing.at_most(10, "`FailureRate` closed success ≤ 15×", calls[RATE, ours.name].ratio, 15),
        _timing.at_most(
            10, "async closed call ≤ 3.5× a bare await", calls[ASYNC, ours.name].ratio, 3.5
        ),
    ]
    if base_label == "circuitbreaker":
        goals += [
            _timing.at_most(
                10, f"{CREATED:,} by constructor ≤ 1× circuitbreaker", created[CONSTRUCTOR].ratio, 1
            ),
            _timing.at_most(
                10, f"{CREATED:,} by registry ≤ 1× circuitbreaker", created[REGISTRY].ratio, 1
            ),
        ]
    goals += [
        _timing.at_least(2, "8-thread ≥ 0.9× 1-thread throughput", scaling[ours.name], 0.9),
        _timing.at_most(2, "≤ 300 bytes per breaker", sizes[ours.name], 300, "bytes"),
        _timing.at_most(2, "cold `import resilience` ≤ 15 ms", cold, 15, "ms"),
    ]
    _timing.targets(goals)


if __name__ == "__main__":
    main()
