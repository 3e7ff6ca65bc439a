"""Hedged requests against a tail: p50/p99/p99.9 latency and extra load, three ways.

Run: ``PYTHONPATH=src python benchmarks/hedging.py [--calls N] [--http N] [--plot DIR]``.
Prints markdown tables; with ``--plot`` (needs matplotlib, in the ``bench`` extra) it also
writes ``hedging-simulation.png`` and ``hedging-http.png`` into DIR (docs/img for the docs).

1. **Simulation.** A backend whose calls take a lognormal time around 10 ms, and 1% of them
   100x that (about 1 s): the shape "The Tail at Scale" describes. Each simulated call is
   hedged as ``Hedge`` does it (one hedge, an independent draw, starting after ``delay``;
   the first answer wins), for: no hedging; a fixed 25 ms delay; and
   ``latency_percentile(q=0.95)``, the real object, fed with the winners' latencies as
   ``Hedge`` feeds it. Figures are per backend call, and per request of a service that
   fans out to 10 backend calls and waits for all of them. Extra load = hedges started per
   call. Target: p99.9 at least 10x lower for at most 5% extra calls.
2. **Real tasks, real server.** A local asyncio HTTP server (on 127.0.0.1) answers in about
   10 ms; a ``Chaos(latency=1.0, rate=0.01)`` wrapped around its handler makes 1% of the
   responses 100x slower. A client sends requests with 8 in flight through
   ``Hedge.call_async`` (real tasks; the loser's connection is closed by its cancellation)
   for the same three settings, and reports the same figures.

The simulation is seeded and reproducible; the HTTP run depends on the machine, so read
its ratios, not its milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _timing
from resilience import Hedge
from resilience.chaos import Chaos
from resilience.hedging import latency_percentile

if TYPE_CHECKING:
    from collections.abc import Callable

MEDIAN = 0.010
SIGMA = 0.2
SLOW_RATE = 0.01
SLOWDOWN = 100.0
FIXED_DELAY = 0.025
FAN_OUT = 10
IN_FLIGHT = 8  # few enough that client and server share 1 CPU without queueing


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def summary(latencies: list[float], extra: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50": percentile(ordered, 0.50),
        "p99": percentile(ordered, 0.99),
        "p99.9": percentile(ordered, 0.999),
        "extra": extra,
    }


# ---------------------------------------------------------------------- simulation


def backend_latency(rng: random.Random) -> float:
    """One backend call: lognormal around 10 ms, 1% of them 100x slower."""
    latency = MEDIAN * math.exp(rng.gauss(0.0, SIGMA))
    return latency * SLOWDOWN if rng.random() < SLOW_RATE else latency


def simulate(
    delay: float | Callable[[], float] | None, calls: int, seed: int
) -> tuple[list[float], float]:
    """Return each call's latency and the extra calls per call, as ``Hedge`` would run it."""
    rng = random.Random(seed)
    record = getattr(delay, "record", None)
    latencies: list[float] = []
    hedges = 0
    for _ in range(calls):
        primary = backend_latency(rng)
        wait = math.inf if delay is None else (delay() if callable(delay) else delay)
        if primary <= wait:
            latency = primary
        else:
            hedges += 1
            hedged = wait + backend_latency(rng)
            latency = min(primary, hedged)
        if record is not None:  # Hedge records the latency its caller saw
            record(latency)
        latencies.append(latency)
    return latencies, hedges / calls


def fan_out(latencies: list[float]) -> list[float]:
    """Request latencies of a service waiting for FAN_OUT backend calls each."""
    return [max(latencies[i : i + FAN_OUT]) for i in range(0, len(latencies), FAN_OUT)]


SETTINGS: dict[str, Callable[[], float | Callable[[], float] | None]] = {
    "no hedging": lambda: None,
    f"fixed {FIXED_DELAY * 1000:.0f} ms": lambda: FIXED_DELAY,
    "latency_percentile(q=0.95)": lambda: latency_percentile(q=0.95),
}


def run_simulation(calls: int) -> dict[str, tuple[list[float], float]]:
    return {name: simulate(make(), calls, seed=1) for name, make in SETTINGS.items()}


# ---------------------------------------------------------------------- real HTTP


async def serve(rng: random.Random) -> tuple[asyncio.Server, int, set[asyncio.Task[Any]]]:
    """A tiny HTTP/1.0 server: ~10 ms per answer, 1% of them 100x slower (a Chaos)."""
    chaos = Chaos(latency=MEDIAN * SLOWDOWN, rate=SLOW_RATE, rng=rng, sleep=asyncio.sleep)

    async def answer() -> bytes:
        await asyncio.sleep(MEDIAN)
        return b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"

    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
            task.add_done_callback(handlers.discard)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(await chaos.call_async(answer))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], handlers


async def get(port: int) -> bytes:
    """One HTTP request on a fresh connection; a cancellation closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


async def http_run(requests: int, delay: Any, port: int) -> tuple[list[float], float]:
    hedge = None if delay is None else Hedge(delay=delay)
    latencies: list[float] = []
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            body = await (get(port) if hedge is None else hedge.call_async(get, port))
            latencies.append(time.perf_counter() - started)
            if not body.endswith(b"ok"):
                raise RuntimeError(body)

    await asyncio.gather(*(one() for _ in range(requests)))
    extra = 0.0 if hedge is None else hedge.get_stats()["hedges"] / requests
    return latencies, extra


async def run_http(requests: int) -> dict[str, tuple[list[float], float]]:
    server, port, handlers = await serve(random.Random(7))
    results = {}
    try:
        for name, make in SETTINGS.items():
            delay = make()
            if delay is not None and callable(delay):
                await http_run(200, delay, port)  # warm the percentile up
            results[name] = await http_run(requests, delay, port)
    finally:
        # Abandoned slow answers are still sleeping: let them finish before closing.
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()
    return results


# ---------------------------------------------------------------------- output


def table(
    title: str, results: dict[str, tuple[list[float], float]], group: bool
) -> dict[str, tuple[float, float]]:
    """Print one table; return each setting's (p99.9 times lower, extra calls)."""
    _timing.heading(title)
    rows = {
        name: summary(fan_out(latencies) if group else latencies, extra)
        for name, (latencies, extra) in results.items()
    }
    base = next(iter(rows.values()))["p99.9"]
    _timing.table(
        ["setting", "p50 ms", "p99 ms", "p99.9 ms", "p99.9 × lower", "extra calls"],
        [
            (
                name,
                f"{row['p50'] * 1000:.1f}",
                f"{row['p99'] * 1000:.1f}",
                f"{row['p99.9'] * 1000:.1f}",
                _timing.times(base / row["p99.9"]),
                f"{row['extra']:.2%}",
            )
            for name, row in rows.items()
        ],
    )
    return {name: (base / row["p99.9"], row["extra"]) for name, row in rows.items()}


def _targets(gains: dict[str, tuple[float, float]], where: str) -> list[_timing.Target]:
    """Issue 13: p99.9 at least 10x lower for at most 5% extra calls, per hedged setting."""
    return [
        _timing.Target(
            13,
            f"{name}, {where}: p99.9 ≥ 10× lower for ≤ 5% extra calls",
            f"{gain:.1f}× lower, {extra:.2%} extra",
            gain >= 10 and extra <= 0.05,  # the figures
        )
        for name, (gain, extra) in gains.items()
        if name != "no hedging"
    ]


def plot(results: dict[str, tuple[list[float], float]], title: str, path: Path) -> None:
    """Draw each setting's latency tail (log scale) against its percentile."""
    import matplotlib as mpl  # noqa: PLC0415  # optional: only with --plot

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    tail = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995]
    positions = [-math.log10(1 - q) for q in tail]
    for name, (latencies, extra) in results.items():
        ordered = sorted(latencies)
        values = [percentile(ordered, q) * 1000 for q in tail]
        axes.plot(positions, values, marker="o", label=f"{name} (+{extra:.1%} calls)")
    axes.set_xticks(positions, [f"p{q * 100:g}" for q in tail], rotation=45)
    axes.set_yscale("log")
    axes.set_ylabel("latency, ms (log scale)")
    axes.set_title(title)
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="simulated backend calls")
    parser.add_argument("--http", type=int, default=3000, help="real HTTP requests per setting")
    parser.add_argument("--plot", type=Path, help="write PNG figures into this directory")
    args = parser.parse_args()

    simulated = run_simulation(args.calls)
    per_call = table(f"Simulation, per backend call ({args.calls:,} calls)", simulated, False)
    table(f"Simulation, per request fanning out to {FAN_OUT} calls", simulated, group=True)
    goals = _targets(per_call, "simulated")
    real = asyncio.run(run_http(args.http)) if args.http else {}
    if real:
        over_http = table(
            f"Real asyncio tasks against a local HTTP server ({args.http:,} requests)", real, False
        )
        goals += _targets(over_http, "real HTTP")
    _timing.targets(goals)
    if args.plot:
        args.plot.mkdir(parents=True, exist_ok=True)
        plot(
            simulated,
            "Simulated backend: 1% of calls 100x slower",
            args.plot / "hedging-simulation.png",
        )
        if real:
            plot(
                real,
                "Real HTTP on loopback: 1% of responses 100x slower",
                args.plot / "hedging-http.png",
            )


if __name__ == "__main__":
    main()
