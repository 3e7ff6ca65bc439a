"""What a switched-off Chaos costs, as ratios to a bare call timed in the same rounds.

Run: ``PYTHONPATH=src python benchmarks/bench_chaos.py``. Prints a markdown table.

Rows:

- ``enabled=False``, decorator: the decorator hands back the function itself (target: at
  most 3x a bare call; it is 1x by construction).
- ``enabled=False``, ``call()``: the strategy form a pipeline uses.
- ``RESILIENCE_CHAOS=off``, decorator: an enabled Chaos at the default ``rate=0.001``
  disarmed by the kill switch. The switch is read (about a microsecond) only for a call that
  would be injected, so an operator can flip it at run time; at ``rate=1.0`` every call
  pays that read.
- ``enabled=callable`` returning False, decorator: a feature-flag switch.
- enabled, ``rate=0``: the cost of deciding (the switch, one random draw, a count).

Each figure is the best of several interleaved rounds; compare ratios, not nanoseconds.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from resilience.chaos import Chaos

if TYPE_CHECKING:
    from collections.abc import Callable

ROUNDS = 9
ROUND_SECONDS = 0.04


def ok() -> int:
    return 1


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


def main() -> None:
    off = Chaos(fault=ConnectionError, rate=1.0, enabled=False)
    armed = Chaos(fault=ConnectionError, rate=0.001)
    always = Chaos(fault=ConnectionError, rate=1.0)
    flagged = Chaos(fault=ConnectionError, rate=1.0, enabled=lambda: False)
    idle = Chaos(fault=ConnectionError, rate=0.0)
    killed = armed(ok)
    candidates: dict[str, Callable[[], Any]] = {
        "bare call": ok,
        "`enabled=False`, decorator": off(ok),
        "`enabled=False`, `call()`": lambda: off.call(ok),
        "`RESILIENCE_CHAOS=off`, `rate=0.001`, decorator": killed,
        "`RESILIENCE_CHAOS=off`, `rate=1.0`, decorator": always(ok),
        "`enabled=callable` (False), decorator": flagged(ok),
    }
    os.environ["RESILIENCE_CHAOS"] = "off"
    try:
        best = time_sync(candidates)
    finally:
        del os.environ["RESILIENCE_CHAOS"]
    # Timed in its own rounds, with the switch unset as in production.
    armed_best = time_sync({"bare call": ok, "enabled, `rate=0`, decorator": idle(ok)})
    print("| scenario | ns/call | × bare call |")
    print("|---|---:|---:|")
    bare = best.pop("bare call")
    print(f"| bare call | {bare:,.0f} | 1.0× |")
    for name, ns in best.items():
        print(f"| {name} | {ns:,.0f} | {ns / bare:.1f}× |")
    armed_bare = armed_best.pop("bare call")
    for name, ns in armed_best.items():
        print(f"| {name} | {ns:,.0f} | {ns / armed_bare:.1f}× |")


if __name__ == "__main__":
    main()
