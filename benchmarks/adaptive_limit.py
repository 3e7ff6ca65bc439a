"""Simulate a service of fixed capacity under overload, behind each kind of concurrency limit.

Run: ``pip install -e '.[bench]' && python benchmarks/adaptive_limit.py`` (``--quick`` for a
short run, ``--plot DIR`` to write the PNGs, ``--markdown`` to print the table for the docs).

A deterministic discrete-event simulation (a seeded ``random.Random``, no real time):

- the service is a queue with ``SERVERS`` servers and one FIFO line; each request takes a
  log-normal service time (mean ``MEAN_SERVICE`` s, sigma ``SIGMA``), so the capacity is
  ``SERVERS / MEAN_SERVICE`` requests per second; it serves every request it has accepted,
  even one whose client stopped waiting (servers do not know);
- clients send requests as a Poisson stream at 0.5x to 3x that capacity, and give up on a
  request after ``CLIENT_TIMEOUT`` s (a failure);
- between them sits the limit under test, exactly as a ``Bulkhead`` without a queue uses it:
  a request finding ``limit`` requests in flight is rejected at once; each finished request
  is fed to the real ``resilience.AdaptiveLimit`` (its duration, the requests in flight,
  whether it failed), whose new limit applies from then on.

Goodput is successful responses per second as a fraction of capacity; latencies are those
of successful responses. The "no-load p99" is the p99 of the service time alone, measured
by a run at 5% load.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _timing
from resilience import AdaptiveLimit

SERVERS = 10
MEAN_SERVICE = 0.010
SIGMA = 0.5
CAPACITY = SERVERS / MEAN_SERVICE  # requests per second
CLIENT_TIMEOUT = 1.0
LOADS = (0.5, 1.0, 1.5, 2.0, 3.0)
LIMITS = ("none", "fixed 200", "aimd", "gradient", "vegas")
WARMUP = 5.0  # seconds of simulated time left out of the figures

_ARRIVE, _DONE, _GIVE_UP = 0, 1, 2


@dataclass(slots=True)
class _Request:
    sent: float
    finished: bool = False  # the client has its answer or gave up


@dataclass(slots=True)
class Result:
    """One run's figures."""

    limit: str
    load: float
    goodput: float  # successful responses per second / capacity
    p50: float  # seconds, successful responses
    p99: float
    rejected: float  # fraction of requests rejected by the limit
    timed_out: float  # fraction of requests the client gave up on
    final_limit: int | None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def simulate(  # noqa: C901, PLR0915  # one event loop, read top to bottom
    limit_name: str,
    load: float,
    seconds: float,
    *,
    client_timeout: float = CLIENT_TIMEOUT,
    seed: int = 7,
) -> Result:
    """Run one configuration and return its figures."""
    rng = random.Random(seed)  # a simulation, not cryptography
    mu = math.log(MEAN_SERVICE) - SIGMA**2 / 2  # a log-normal with mean MEAN_SERVICE
    adaptive: AdaptiveLimit | None = None
    fixed: int | None = None
    if limit_name == "fixed 200":
        fixed = 200
    elif limit_name != "none":
        adaptive = AdaptiveLimit(limit_name, clock=lambda: 0.0)  # type: ignore[arg-type]
    rate = load * CAPACITY
    events: list[tuple[float, int, int, Any]] = []
    seq = 0

    def push(at: float, kind: int, data: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, data))

    push(rng.expovariate(rate), _ARRIVE, None)
    line: list[_Request] = []  # the service's FIFO queue (a list used from `head` on)
    head = 0
    busy = 0
    in_flight = 0
    sent = ok = rejected = timed_out = 0
    latencies: list[float] = []

    def start_service(now: float) -> None:
        nonlocal head, busy
        while busy < SERVERS and head < len(line):
            request = line[head]
            head += 1
            busy += 1
            push(now + rng.lognormvariate(mu, SIGMA), _DONE, request)

    def finish(request: _Request, now: float, *, failed: bool) -> None:
        nonlocal in_flight
        request.finished = True
        if adaptive is not None:
            adaptive._sample(now - request.sent, in_flight, failed=failed)  # noqa: SLF001
        in_flight -= 1

    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > seconds:
            break
        measured = now >= WARMUP
        if kind == _ARRIVE:
            push(now + rng.expovariate(rate), _ARRIVE, None)
            sent += measured
            limit = adaptive.limit if adaptive is not None else fixed
            if limit is not None and in_flight >= limit:
                rejected += measured
                continue
            in_flight += 1
            request = _Request(now)
            line.append(request)
            push(now + client_timeout, _GIVE_UP, request)
            start_service(now)
        elif kind == _DONE:
            busy -= 1
            if not data.finished:
                if measured:
                    ok += 1
                    latencies.append(now - data.sent)
                finish(data, now, failed=False)
            start_service(now)
        elif not data.finished:  # the client gives up
            timed_out += measured
            finish(data, now, failed=True)
        if head > 100_000:  # keep the line's list from growing without end
            del line[:head]
            head = 0
    span = seconds - WARMUP
    return Result(
        limit=limit_name,
        load=load,
        goodput=ok / span / CAPACITY,
        p50=_percentile(latencies, 0.50),
        p99=_percentile(latencies, 0.99),
        rejected=rejected / max(sent, 1),
        timed_out=timed_out / max(sent, 1),
        final_limit=adaptive.limit if adaptive is not None else fixed,
    )


def no_load_p99(seconds: float) -> float:
    """The p99 latency at 5% load: the service time's own p99."""
    return simulate("none", 0.05, max(seconds, 60.0)).p99


def _table(results: list[Result], base_p99: float) -> list[str]:
    rows = [
        (
            "| limit | load | goodput | p50 (ms) | p99 (ms) | p99 / no-load p99 | rejected "
            "| timed out | final limit |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        final = "-" if r.final_limit is None else str(r.final_limit)
        if math.isnan(r.p99):  # no request succeeded
            p50 = p99 = ratio = "-"
        else:
            p50, p99 = f"{r.p50 * 1000:.1f}", f"{r.p99 * 1000:.1f}"
            ratio = f"{r.p99 / base_p99:.2f}"
        rows.append(
            f"| {r.limit} | {r.load:.1f}x | {r.goodput:.0%} | {p50} | {p99} | {ratio} "
            f"| {r.rejected:.0%} | {r.timed_out:.0%} | {final} |"
        )
    return rows


def _plot(results: list[Result], base_p99: float, directory: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415  # only for --plot

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    figures = [
        ("goodput", "goodput (fraction of capacity)", "adaptive_goodput.png", 1.0),
        ("p50", "p50 latency (ms)", "adaptive_p50.png", 1000.0),
        ("p99", "p99 latency (ms)", "adaptive_p99.png", 1000.0),
    ]
    for field, label, filename, scale in figures:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        styles = zip(LIMITS, "os^Dv", ["-", "--", ":", "-", "-"], strict=True)
        for name, marker, line in styles:
            points = [(r.load, getattr(r, field) * scale) for r in results if r.limit == name]
            ax.plot(*zip(*points, strict=True), marker=marker, linestyle=line, label=name)
        if field == "p99":
            ax.axhline(2 * base_p99 * 1000, color="grey", linestyle="--", label="2x no-load p99")
            ax.set_yscale("log")
        if field == "goodput":
            ax.axhline(0.9, color="grey", linestyle="--", label="90% of capacity")
        ax.set_xlabel("offered load (x capacity)")
        ax.set_ylabel(label)
        ax.set_title(f"{SERVERS} servers, mean service {MEAN_SERVICE * 1000:g} ms")
        ax.grid(visible=True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(directory / filename, dpi=100)
        plt.close(fig)


def main() -> None:
    """Run every configuration at every load; print the table; plot on request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter simulated runs")
    parser.add_argument("--plot", type=Path, help="write PNG plots into this directory")
    parser.add_argument("--markdown", action="store_true", help="print only the markdown table")
    args = parser.parse_args()
    seconds = 15.0 if args.quick else 35.0
    base_p99 = no_load_p99(seconds)
    results = [simulate(name, load, seconds) for name in LIMITS for load in LOADS]
    print(
        f"{SERVERS} servers, log-normal service time mean {MEAN_SERVICE * 1000:g} ms "
        f"(sigma {SIGMA}), capacity {CAPACITY:g}/s, client timeout {CLIENT_TIMEOUT:g} s, "
        f"{seconds - WARMUP:g} s measured per run; no-load p99 {base_p99 * 1000:.1f} ms"
    )
    print()
    print("\n".join(_table(results, base_p99)))
    print()
    print(f"(median goodput across runs: {statistics.median(r.goodput for r in results):.0%})")
    print()
    tight = 2 * base_p99
    print(f"The same at 2x and 3x with a client timeout of {tight * 1000:.0f} ms (2x no-load p99):")
    print()
    strict = [
        simulate(name, load, seconds, client_timeout=tight)
        for name in LIMITS
        for load in (2.0, 3.0)
    ]
    print("\n".join(_table(strict, base_p99)))
    goals = []
    for name in LIMITS[2:]:  # the adaptive ones: no limit and a fixed one are references
        overload = [r for r in results if r.limit == name and r.load >= 2.0]
        worst = max(r.p99 / base_p99 for r in overload)
        least = min(r.goodput for r in overload)
        p99 = "no response in time" if math.isnan(worst) else f"p99 {worst:.2f}×"
        goals.append(
            _timing.Target(
                12,
                f"{name}: at 2x and 3x load, p99 ≤ 2× the no-load p99 and goodput ≥ 90%",
                f"{p99}, goodput {least:.0%}",
                all(r.p99 <= 2 * base_p99 and r.goodput >= 0.9 for r in overload),
            )
        )
    _timing.targets(goals)
    if args.plot is not None:
        _plot(results, base_p99, args.plot)


if __name__ == "__main__":
    main()
