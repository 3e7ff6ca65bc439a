"""The timing harness every benchmark shares: baselines, interleaved rounds, ratios, tables.

Private to ``benchmarks/``: a script imports it as ``_timing`` (a script's own folder is
first on ``sys.path``, so ``python benchmarks/bench_x.py`` and ``run_all.py`` both find it).

How ``compare`` times things:

- A *runner* is ``run(n) -> seconds``: it performs ``n`` iterations of what is measured
  and returns the time they took, so set-up stays outside the timed part. ``loop``,
  ``raising``, ``awaits`` and ``in_thread`` make the usual ones. They read the CPU time of
  the thread that runs the loop (``time.thread_time``), not the wall clock: on a machine
  shared with other busy processes, a run preempted for a few milliseconds would
  otherwise count them as the library's. Work done in another thread (a worker pool,
  threads started by the runner) needs the wall clock: ``loop(..., clock=time.perf_counter)``.
- Each runner's ``n`` is calibrated once so that one run takes about ``Plan.seconds``
  (or it is fixed with ``number=``, for "create 10,000 of them").
- In each of ``Plan.rounds`` rounds, every candidate in turn runs right after a run of the
  baseline (a bare call, a bare await, a peer). The candidate's ratio for the round is its
  ns per call over that baseline run's. A shared virtual CPU drifts in speed by up to 2x
  between seconds; a ratio taken within one round cancels the drift where two separate
  bests would not.
- A ``Timing`` keeps the best (lowest) ns per call over the rounds, the median of the
  per-round ratios, and the baseline's best, so a script can report either "median
  per-round ratio" or "best over best" and say which.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import functools
import gc
import importlib
import statistics
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Mapping, Sequence

Runner = Callable[[int], float]
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Plan:
    """How long to measure: rounds, and the seconds one run of one candidate takes."""

    rounds: int = 9
    seconds: float = 0.03


FULL = Plan()
QUICK = Plan(rounds=5, seconds=0.01)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """Return an argument parser described by the script's docstring, with ``--quick``."""
    described = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    described.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    return described


def plan(*, quick: bool) -> Plan:
    """Return the plan for ``--quick`` or a full run."""
    return QUICK if quick else FULL


def optional(module: str) -> Any:
    """Import a peer library, or say it is skipped and return None when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"(skipping {module}: not installed; pip install -e '.[bench]')")
        return None


# --------------------------------------------------------------------------- runners


def loop(func: Callable[[], object], *, clock: Callable[[], float] = time.thread_time) -> Runner:
    """Call ``func()`` ``n`` times; ``clock=time.perf_counter`` for work in other threads."""

    def run(n: int) -> float:
        started = clock()
        for _ in range(n):
            func()
        return clock() - started

    return run


def raising(func: Callable[[], object]) -> Runner:
    """Call ``func()`` ``n`` times, catching what it raises (the raise is part of the cost)."""

    def run(n: int) -> float:
        started = time.thread_time()
        for _ in range(n):
            try:
                func()
            except Exception:  # each library raises its own error type
                pass
        return time.thread_time() - started

    return run


@functools.cache
def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every async runner: starting a loop per run would be timed noise."""
    event_loop = asyncio.new_event_loop()
    atexit.register(event_loop.close)
    return event_loop


def awaits(make: Callable[[], Awaitable[Any]]) -> Runner:
    """Await ``make()`` ``n`` times, one after another in one task of a running loop."""

    async def timed(n: int) -> float:
        started = time.thread_time()
        for _ in range(n):
            await make()
        return time.thread_time() - started

    return lambda n: _event_loop().run_until_complete(timed(n))


def in_thread(run: Runner) -> Runner:
    """Run ``run`` in a fresh thread other than the main one."""

    def threaded(n: int) -> float:
        took: list[float] = []
        thread = threading.Thread(target=lambda: took.append(run(n)))
        thread.start()
        thread.join()
        return took[0]

    return threaded


def with_setup(setup: Callable[[], object], run: Runner) -> Runner:
    """Call ``setup()`` (untimed) before each run: to switch something on or off."""

    def prepared(n: int) -> float:
        setup()
        return run(n)

    return prepared


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class Timing:
    """One candidate's figures from ``compare``.

    Attributes:
        ns: the best (lowest) ns per iteration over the rounds.
        ratio: the median over rounds of (ns per iteration) / (the baseline's ns per
            iteration, timed right before it in the same round).
        baseline_ns: the baseline's best ns per iteration over the whole comparison.
    """

    ns: float
    ratio: float
    baseline_ns: float

    @property
    def best_ratio(self) -> float:
        """The best over the baseline's best: the figure the older scripts printed."""
        return self.ns / self.baseline_ns


def calibrate(run: Runner, seconds: float) -> int:
    """Return the ``n`` for which one ``run(n)`` takes about ``seconds``."""
    n = 1
    while True:
        took = run(n)
        if took >= seconds / 8 or n >= 10**9:
            return max(1, round(n * seconds / max(took, 1e-9)))
        n *= 8


def _ns_per_call(run: Runner, n: int) -> float:
    gc.collect()  # the previous run's garbage is not this one's cost
    return run(n) / n * 1e9


def compare(
    candidates: Mapping[Key, Runner],
    baseline: Runner,
    *,
    timing: Plan = FULL,
    number: int | None = None,
) -> dict[Key, Timing]:
    """Time each candidate against ``baseline`` in interleaved rounds (see the module doc).

    Args:
        candidates: runners by label (any hashable); the result keeps their order.
        baseline: the runner every candidate is divided by, run right before each of them.
        timing: rounds, and the length of one run when ``number`` is None.
        number: a fixed ``n`` for every run instead of a calibrated one.
    """
    sizes = {label: number or calibrate(run, timing.seconds) for label, run in candidates.items()}
    base_size = number or calibrate(baseline, timing.seconds)
    runs: dict[Key, list[float]] = {label: [] for label in candidates}
    bases: dict[Key, list[float]] = {label: [] for label in candidates}
    for _ in range(timing.rounds):
        for label, run in candidates.items():
            bases[label].append(_ns_per_call(baseline, base_size))
            runs[label].append(_ns_per_call(run, sizes[label]))
    baseline_ns = min(min(times) for times in bases.values())
    return {
        label: Timing(
            ns=min(runs[label]),
            ratio=statistics.median(
                ns / base for ns, base in zip(runs[label], bases[label], strict=True)
            ),
            baseline_ns=baseline_ns,
        )
        for label in candidates
    }


# --------------------------------------------------------------------------- printing


def times(value: float, digits: int = 1) -> str:
    """Format a ratio with the multiplication sign: 7.5 becomes ``7.5`` and the sign."""
    return f"{value:,.{digits}f}×"


def ns(value: float) -> str:
    """Format nanoseconds: ``1,234``."""
    return f"{value:,.0f}"


def heading(text: str) -> None:
    """Print a section heading (level 3: ``run_all`` puts each benchmark under a level 2)."""
    print(f"\n### {text}\n")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, align: str = "") -> None:
    """Print a markdown table; ``align`` has an ``l`` or ``r`` per column (default: l, then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if side == "r" else "---" for side in align) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


@dataclass(frozen=True, slots=True)
class Target:
    """A figure an issue asks for, and what this run measured.

    Attributes:
        issue: the issue that sets it.
        what: what is measured, with its limit (``closed call <= 7x a bare call``).
        measured: the figure, formatted.
        met: whether this run meets it.
    """

    issue: int
    what: str
    measured: str
    met: bool


def at_most(issue: int, what: str, value: float, limit: float, unit: str = "×") -> Target:
    """A target met when ``value <= limit``; the default unit formats a ratio."""
    return Target(issue, what, _with_unit(value, unit), value <= limit)


def at_least(issue: int, what: str, value: float, limit: float, unit: str = "×") -> Target:
    """A target met when ``value >= limit``."""
    return Target(issue, what, _with_unit(value, unit), value >= limit)


def _with_unit(value: float, unit: str) -> str:
    if unit == "×":
        return times(value, 2 if value < 10 else 1)  # digits that matter
    return f"{value:,.1f} {unit}".rstrip()


def targets(items: Iterable[Target]) -> None:
    """Print the targets as a table with met or missed for each."""
    heading("Targets")
    table(
        ["issue", "target", "this run", "met"],
        [(f"#{t.issue}", t.what, t.measured, "met" if t.met else "**missed**") for t in items],
        align="llrl",
    )
