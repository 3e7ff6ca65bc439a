"""Retry storms: how much load reaches a dead backend, and what stops it.

Run: ``PYTHONPATH=src python benchmarks/retry_storm.py [--plots docs/img]``.

Two simulations on a fake clock (no real waiting; every retry, budget and throttle is the
library's own code):

1. **Three layers through a full outage.** A client calls service A, which calls B, which
   calls C, which calls the database. The database is down. Each of A, B and C retries
   its downstream call 3 times in all (``max_retries=2``), so a single request can reach the
   database 3 x 3 x 3 = 27 times. Requests arrive at 1,000 a second for 10 seconds. Printed:
   database calls per client request, with plain retries, with a ``RetryBudget`` per service
   (retries at most 20% of first attempts), and with a ``RetryThrottle`` per service
   (gRPC-style tokens: retries stop once half the tokens are gone).
2. **AdaptiveThrottle at 5x overload.** Clients send 1,000 requests a second to a backend
   that accepts 200 a second and refuses the rest. With an ``AdaptiveThrottle(k=2)`` in the
   client, the backend should receive about ``k`` times the requests it accepts. Printed: the
   backend's received/accepted ratio in the steady state.

``--plots DIR`` also writes ``retry-storm-layers.png`` and ``retry-storm-adaptive.png``
(needs matplotlib: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resilience import AdaptiveThrottle, Retry, RetryBudget, RetryThrottle, ThrottledError
from resilience.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

RATE = 1000  # client requests a second
SECONDS = 10


class Database:
    """The bottom of the stack, down for the whole run: it counts what reaches it."""

    def __init__(self) -> None:
        self.calls = 0

    def query(self) -> None:
        self.calls += 1
        raise ConnectionError("database down")


def layered(mode: str) -> tuple[float, list[float]]:
    """Run three retrying layers over a dead database; return calls per request, per second."""
    clock = FakeClock(1000.0)
    database = Database()

    def guard() -> RetryBudget | RetryThrottle | None:
        if mode == "budget":
            return RetryBudget(ratio=0.2, min_per_second=1.0, clock=clock)
        if mode == "throttle":
            return RetryThrottle(max_tokens=10, token_ratio=0.1)
        return None

    def layer(downstream: Callable[[], None]) -> Callable[[], None]:
        retry = Retry(max_retries=2, base_delay=0.0, budget=guard(), clock=clock)
        return lambda: retry.call(downstream)

    client = layer(layer(layer(database.query)))  # A(B(C(database)))
    per_second: list[float] = []
    for _ in range(SECONDS):
        before = database.calls
        for _ in range(RATE):
            clock.advance(1.0 / RATE)
            with contextlib.suppress(ConnectionError):
                client()
        per_second.append((database.calls - before) / RATE)
    return database.calls / (RATE * SECONDS), per_second


def adaptive(k: float = 2.0, seconds: int = 400) -> tuple[float, list[tuple[int, int, int]]]:
    """Clients at 5x a backend's capacity through an AdaptiveThrottle.

    Returns the steady-state received/accepted ratio (the last half of the run) and, per
    second, (sent, received, accepted).
    """
    clock = FakeClock(1000.0)
    throttle = AdaptiveThrottle(k=k, window=60.0, clock=clock)
    throttle._random = random.Random(7).random  # noqa: SLF001  # a reproducible run
    capacity = 200  # the backend accepts this many a second
    sent_per_second = 5 * capacity
    state = {"left": 0, "received": 0, "accepted": 0}

    def backend() -> None:
        state["received"] += 1
        if state["left"] <= 0:
            raise ConnectionError("overloaded")
        state["left"] -= 1
        state["accepted"] += 1

    series: list[tuple[int, int, int]] = []
    for _ in range(seconds):
        state.update(left=capacity, received=0, accepted=0)
        for _ in range(sent_per_second):
            clock.advance(1.0 / sent_per_second)
            with contextlib.suppress(ConnectionError, ThrottledError):
                throttle.call(backend)
        series.append((sent_per_second, state["received"], state["accepted"]))
    steady = series[seconds // 2 :]
    received = sum(row[1] for row in steady)
    accepted = sum(row[2] for row in steady)
    return received / accepted, series


def plot(directory: Path, layers: dict[str, list[float]], series: list[Any]) -> None:
    """Write the two PNGs the docs show."""
    import matplotlib as mpl  # noqa: PLC0415  # only for --plots

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axis = plt.subplots(figsize=(7, 3.6), dpi=110)
    for label, values in layers.items():
        axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
    axis.set_yscale("log")
    axis.set_xlabel("second of the outage")
    axis.set_ylabel("database calls per client request")
    axis.set_title("Three layers retrying 3 times through a full outage")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(directory / "retry-storm-layers.png")
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 3.6), dpi=110)
    seconds = range(1, len(series) + 1)
    axis.plot(seconds, [row[0] for row in series], label="sent by clients")
    axis.plot(seconds, [row[1] for row in series], label="received by the backend")
    axis.plot(seconds, [row[2] for row in series], label="accepted by the backend")
    axis.set_xlabel("second")
    axis.set_ylabel("requests per second")
    axis.set_title("AdaptiveThrottle(k=2) at 5x overload")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(directory / "retry-storm-adaptive.png")
    plt.close(figure)


def main() -> None:
    """Run both simulations and print their figures as markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", type=Path, help="directory to write the PNGs to")
    options = parser.parse_args()

    # Imported here: tests load this file by path, without benchmarks/ on sys.path.
    import _timing  # noqa: PLC0415

    print(f"Three layers x 3 attempts, database down, {RATE} requests/s for {SECONDS} s\n")
    layers: dict[str, list[float]] = {}
    loads: dict[str, float] = {}
    for mode, label in (
        ("plain", "nothing (plain retries)"),
        ("budget", "RetryBudget(ratio=0.2) per service"),
        ("throttle", "RetryThrottle(max_tokens=10) per service"),
    ):
        loads[mode], layers[label] = layered(mode)
    _timing.table(
        ["retries guarded by", "database calls per client request"],
        [
            (label, _timing.times(load, 2))
            for label, load in zip(layers, loads.values(), strict=True)
        ],
    )

    ratio, series = adaptive()
    print("\nAdaptiveThrottle(k=2), clients at 5x the backend's capacity\n")
    _timing.table(
        ["backend received / accepted (steady state)", "target"],
        [(f"{ratio:.2f}", "about k = 2")],
        align="rr",
    )
    _timing.targets(
        [
            _timing.at_most(11, "with `RetryBudget`: ≤ 2× the requests", loads["budget"], 2),
            _timing.at_most(11, "with `RetryThrottle`: ≤ 1.1×", loads["throttle"], 1.1),
            _timing.Target(
                11,
                "`AdaptiveThrottle(k=2)` at 5× overload: received / accepted about 2 (± 15%)",
                f"{ratio:.2f}",
                abs(ratio - 2) <= 0.3,  # the test's tolerance
            ),
        ]
    )
    if options.plots is not None:
        options.plots.mkdir(parents=True, exist_ok=True)
        plot(options.plots, layers, series)
        print(f"\nplots written to {options.plots}")


if __name__ == "__main__":
    main()
